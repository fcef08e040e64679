"""Homi and mem0 side by side from Python, on the same fake provider.

    bash homi-py/bench/compare_mem0.sh          (sets up both virtualenvs, then runs this)

Runs memory_ops.py with Homi (the project's .venv, release wheel) and with
mem0 2.2.1 (its own .venv-mem0, default embedded store), each against the
fake provider with the given latency, and prints a table.
"""

import argparse
import json
import os
import pathlib
import subprocess
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[2]


def run(python, lib, base_url, args):
    with tempfile.TemporaryDirectory() as store:
        env = dict(os.environ, OPENAI_BASE_URL=base_url, OPENAI_API_KEY="sk-bench", MEM0_TELEMETRY="False")
        env.pop("DATABASE_URL", None)
        out = subprocess.run(
            [python, str(REPO / "homi-py" / "bench" / "memory_ops.py"), "--lib", lib, "--store", store, *args],
            env=env, check=True, capture_output=True, text=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency-ms", type=int, default=0)
    ap.add_argument("--memories", default="10000")
    ap.add_argument("--adds", default="100")
    ap.add_argument("--searches", default="200")
    a = ap.parse_args()
    fake = subprocess.Popen([str(REPO / "target" / "release" / "homi-fake-provider"), "--latency-ms", str(a.latency_ms)],
                            stdout=subprocess.PIPE, text=True)
    base = fake.stdout.readline().strip()
    try:
        args = ["--memories", a.memories, "--adds", a.adds, "--searches", a.searches]
        homi = run(str(REPO / ".venv" / "bin" / "python"), "homi", base, args)
        mem0 = run(str(REPO / ".venv-mem0" / "bin" / "python"), "mem0", base, args)
    finally:
        fake.terminate()
    print(f"provider latency {a.latency_ms} ms, {a.memories} memories over 10 users")
    print(f"{'operation':<34} {'Homi p50':>10} {'Homi p95':>10} {'mem0 p50':>10} {'mem0 p95':>10} {'ratio p50':>10}")
    for key, name in [("search", "search (store full)"), ("add_infer_small", "add(infer=True), empty store"),
                      ("add_infer_full", "add(infer=True), store full")]:
        h, m = homi[key], mem0[key]
        print(f"{name:<34} {h['p50_ms']:>9.2f}ms {h['p95_ms']:>9.2f}ms {m['p50_ms']:>9.2f}ms {m['p95_ms']:>9.2f}ms {m['p50_ms'] / h['p50_ms']:>9.1f}x")
    print(f"{'load (add infer=False), per memory':<34} {homi['load']['p50_ms']:>9.2f}ms {'':>10} {mem0['load']['p50_ms']:>9.2f}ms")
    print(json.dumps({"homi": homi, "mem0": mem0}))


if __name__ == "__main__":
    main()
