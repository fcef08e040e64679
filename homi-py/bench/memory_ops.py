"""Times `add` and `search` of one memory library from Python, against an
OpenAI-compatible provider at OPENAI_BASE_URL (the fake provider), and prints
one JSON line. Run by compare_mem0.py once for Homi and once for mem0, each
in its own virtualenv.

    python memory_ops.py --lib homi|mem0 --memories 10000 --users 10 --store DIR
"""

import argparse
import json
import os
import statistics
import sys
import time


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round((len(xs) - 1) * p)))] * 1000.0


def open_memory(lib, store):
    base = os.environ["OPENAI_BASE_URL"]
    llm = {"provider": "openai", "config": {"model": "gpt-4o-mini", "openai_base_url": base}}
    embedder = {"provider": "openai", "config": {"model": "text-embedding-3-small", "openai_base_url": base}}
    if lib == "homi":
        from homi import Memory

        return Memory.from_config({
            "llm": llm,
            "embedder": embedder,
            "vector_store": {"provider": "sqlite", "config": {"path": os.path.join(store, "homi.db")}},
        })
    from mem0 import Memory

    # mem0's default embedded store (Qdrant, local mode), in its own directory.
    return Memory.from_config({
        "llm": llm,
        "embedder": embedder,
        "vector_store": {"provider": "qdrant", "config": {"path": os.path.join(store, "qdrant"), "on_disk": True}},
        "history_db_path": os.path.join(store, "history.db"),
    })


def search(m, lib, query, user):
    if lib == "homi":
        return m.search(query, user_id=user, limit=5)
    return m.search(query, filters={"user_id": user}, top_k=5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", choices=["homi", "mem0"], required=True)
    ap.add_argument("--memories", type=int, default=10000)
    ap.add_argument("--users", type=int, default=10)
    ap.add_argument("--searches", type=int, default=200)
    ap.add_argument("--adds", type=int, default=100)
    ap.add_argument("--store", required=True)
    a = ap.parse_args()
    m = open_memory(a.lib, a.store)
    out = {"lib": a.lib, "memories": a.memories, "users": a.users}

    # add(infer=True) while the store is small.
    t = []
    for i in range(a.adds):
        s = time.perf_counter()
        m.add([{"role": "user", "content": f"I like hobby number {i} very much"}], user_id="adder")
        t.append(time.perf_counter() - s)
    out["add_infer_small"] = {"p50_ms": pct(t, 0.5), "p95_ms": pct(t, 0.95), "n": len(t)}

    # The load: memories spread over the users, stored verbatim.
    s = time.perf_counter()
    load_t = []
    for i in range(a.memories):
        u = f"user-{i % a.users}"
        s1 = time.perf_counter()
        m.add(f"memory {i} about topic {i % 97} for {u}", user_id=u, infer=False)
        load_t.append(time.perf_counter() - s1)
    out["load"] = {"seconds": time.perf_counter() - s, "p50_ms": pct(load_t, 0.5)}

    # search with the store full.
    search(m, a.lib, "warm up", "user-0")
    t = []
    for i in range(a.searches):
        s = time.perf_counter()
        r = search(m, a.lib, f"what about topic {i % 97}", f"user-{i % a.users}")
        t.append(time.perf_counter() - s)
        assert r["results"], "a search found nothing"
    out["search"] = {"p50_ms": pct(t, 0.5), "p95_ms": pct(t, 0.95), "n": len(t)}

    # add(infer=True) with the store full.
    t = []
    for i in range(a.adds):
        s = time.perf_counter()
        m.add([{"role": "user", "content": f"I also like sport number {i}"}], user_id="user-0")
        t.append(time.perf_counter() - s)
    out["add_infer_full"] = {"p50_ms": pct(t, 0.5), "p95_ms": pct(t, 0.95), "n": len(t)}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    sys.exit(main())
