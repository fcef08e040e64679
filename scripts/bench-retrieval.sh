#!/usr/bin/env bash
# The retrieval benchmark on LoCoMo conversations (issue protocol): recall@k
# and hit@k for keyword, semantic and hybrid search with the local MiniLM
# embedder, through the Rust API (homi-core/benches/retrieval.rs) and through
# the Python package (homi-py/bench/locomo.py), scored by one script.
#
#   bash scripts/bench-retrieval.sh [DIR]        DIR defaults to ../shared/data/locomo-dev
#   HOMI_BENCH_SMOKE=1 bash scripts/bench-retrieval.sh   two conversations cut short, debug builds (CI)
#
# The full run builds release code (cargo bench, and the wheel with pip's
# default release profile) and prints a markdown table for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
data=$(cd "${1:-../shared/data/locomo-dev}" && pwd)
smoke=${HOMI_BENCH_SMOKE:-0}
model=$(bash scripts/model.sh)
# No provider: the embedded default uses the local embedder, as a new user's would.
unset OPENAI_API_KEY OPENAI_BASE_URL DATABASE_URL HOMI_DATABASE_URL
export HOMI_EMBEDDER=local HOMI_EMBEDDING_MODEL_DIR="$model" HOMI_LOCOMO_DIR="$data"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ "$smoke" = 1 ]; then
  # All features: the build the other checks made already.
  HOMI_RETRIEVAL_OUT="$work/rust.json" cargo test -q --workspace --all-features --bench retrieval
  flag=--smoke
  # The wheel the Python tests installed (scripts/python-test.sh).
  .venv/bin/python -c 'import homi' || { echo "install the homi wheel first: bash scripts/python-test.sh"; exit 1; }
else
  HOMI_RETRIEVAL_OUT="$work/rust.json" cargo bench -q -p homi-core --features local,sqlite --bench retrieval
  flag=
  .venv/bin/pip install -q --disable-pip-version-check 'maturin>=1.9,<2'
  .venv/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps ./homi-py
fi
.venv/bin/python homi-py/bench/locomo.py run "$data" --out "$work/python.json" $flag
.venv/bin/python homi-py/bench/locomo.py score "$data" "$work/rust.json" "$work/python.json" $flag | tee "$work/table.md"
# Both doors must agree: the same store and ranking behind them (memories
# with equal scores may come in either order: ids are random).
.venv/bin/python - "$work/table.md" <<'PY'
import json, sys
summary = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
for mode in ("keyword", "semantic", "hybrid"):
    r, p = summary[f"rust/{mode}"]["all"], summary[f"python/{mode}"]["all"]
    assert r["questions"] > 0, (mode, r)
    for k in (1, 5, 10, 20):
        assert abs(r[f"recall@{k}"] - p[f"recall@{k}"]) <= 0.05, (mode, k, r, p)
print("rust and python agree on every mode")
PY
