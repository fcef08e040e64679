#!/usr/bin/env bash
# Installs the `homi` Python package into the project virtualenv .venv with
# the README's command (`pip install ./homi-py`, which builds the wheel with
# maturin), with pytest and the official openai package, and runs homi-py's
# pytest suite against the fake provider, on SQLite and, when
# HOMI_TEST_DATABASE_URL is set (scripts/pg.sh start), on Postgres.
#   bash scripts/python-test.sh            (debug build; HOMI_WHEEL_RELEASE=1 for release)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/pip install -q --disable-pip-version-check 'maturin>=1.9,<2' 'pytest>=8' 'openai==3.57.0' 'python-dotenv>=1'
# Every script builds the one feature set the tests build (the whole workspace,
# all features): one build of the dependency tree serves every check.
cargo build -q --workspace --all-features --bins
# As README.md says: `pip install ./homi-py`, into the project virtualenv
# (the example and the benchmark below use it). pip builds a release wheel by
# default; this one takes the quicker debug build, which shares the
# workspace's target directory with the other checks.
MATURIN_PEP517_ARGS="--profile dev" .venv/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps ./homi-py

# The abi3 wheel (one for CPython 3.9 and later), built with maturin: release,
# or in CI the debug profile (the same code, built in a fraction of the
# time). It goes into a clean virtualenv with only what the tests need, as a
# user installs it; pytest runs on it, and mypy's stubtest checks that the
# .pyi stubs say what the module has.
wheel_profile=(--release)
if [ -n "${CI:-}" ]; then wheel_profile=(--profile dev); fi
wheels=$(mktemp -d)
.venv/bin/maturin build "${wheel_profile[@]}" -m homi-py/Cargo.toml --out "$wheels" 2>&1 | tail -n 1
wheel=$(ls "$wheels"/homi-*-abi3-*.whl)
clean=$(mktemp -d)
trap 'rm -rf "$wheels" "$clean"' EXIT
python3 -m venv "$clean/venv"
# mem0ai itself, to write the store its import test reads (and qdrant-client with it).
"$clean/venv/bin/pip" install -q --disable-pip-version-check "$wheel" 'pytest>=8' 'openai==3.57.0' 'mypy>=1.18,<2' 'mem0ai==2.2.1'
(cd homi-py && "$clean/venv/bin/python" -m pytest -q tests)
(cd homi-py && "$clean/venv/bin/python" -m mypy.stubtest homi --ignore-disjoint-bases)

# examples/memory_agent.py, the original script with its import changed, on
# the test Postgres (its config names a Supabase store) and the fake provider.
if [ -n "${HOMI_TEST_DATABASE_URL:-}" ]; then
  psql=$(ls .venv/lib/python*/site-packages/pgserver/pginstall/bin/psql | head -n1)
  db="homi_agent_$$"
  "$psql" "$HOMI_TEST_DATABASE_URL" -q -c "CREATE DATABASE $db"
  url="${HOMI_TEST_DATABASE_URL%/*}/$db"
  work=$(mktemp -d)
  ./target/debug/homi-fake-provider >"$work/fake.out" 2>&1 &
  fake=$!
  trap 'kill $fake 2>/dev/null || true; rm -rf "$work" "$wheels" "$clean"' EXIT
  for _ in $(seq 1 100); do [ -s "$work/fake.out" ] && break; sleep 0.1; done
  export OPENAI_BASE_URL=$(head -n1 "$work/fake.out") OPENAI_API_KEY=sk-fake HOMI_EMBEDDING_DIMS=64
  out=$(printf 'I love pizza\nWhat food do I like?\nexit\n' | DATABASE_URL="$url" .venv/bin/python examples/memory_agent.py)
  grep -q "AI: You said: I love pizza" <<<"$out" || { echo "memory_agent.py did not answer: $out"; exit 1; }
  grep -q "Goodbye!" <<<"$out"
  DATABASE_URL="$url" .venv/bin/python - <<'PY'
import os
from homi import Memory
m = Memory.from_config({"vector_store": {"provider": "supabase", "config": {"connection_string": os.environ["DATABASE_URL"], "collection_name": "memories"}}})
memories = [e["memory"] for e in m.get_all(user_id="default_user")["results"]]
assert "I love pizza" in memories, memories
print("memory_agent.py kept:", memories)
PY
fi

# The Homi half of the mem0 comparison (homi-py/bench), at smoke size, so the
# benchmark script cannot rot: it must run and report every operation.
bench_dir=$(mktemp -d)
./target/debug/homi-fake-provider >"$bench_dir/fake.out" 2>&1 &
bench_fake=$!
for _ in $(seq 1 100); do [ -s "$bench_dir/fake.out" ] && break; sleep 0.1; done
out=$(OPENAI_BASE_URL=$(head -n1 "$bench_dir/fake.out") OPENAI_API_KEY=sk-fake DATABASE_URL= \
  .venv/bin/python homi-py/bench/memory_ops.py --lib homi --memories 200 --users 4 --searches 20 --adds 5 --store "$bench_dir")
kill $bench_fake 2>/dev/null || true
rm -rf "$bench_dir"
.venv/bin/python -c 'import json, sys
r = json.loads(sys.argv[1])
for op in ("add_infer_small", "load", "search", "add_infer_full"):
    assert r[op]["p50_ms"] > 0, (op, r)
print("memory_ops.py (smoke):", {op: round(r[op]["p50_ms"], 2) for op in ("add_infer_small", "search", "add_infer_full")}, "ms p50")' "$out"
