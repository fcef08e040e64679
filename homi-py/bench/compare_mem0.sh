#!/usr/bin/env bash
# Homi vs mem0 2.2.1 from Python on the same fake provider (not part of the
# test command: the full size takes tens of minutes, mostly mem0's).
#   bash homi-py/bench/compare_mem0.sh [--memories N] [--adds N] [--searches N]
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
if [ ! -x .venv-mem0/bin/python ]; then python3 -m venv .venv-mem0; fi
.venv-mem0/bin/pip install -q --disable-pip-version-check 'mem0ai==2.2.1'
.venv/bin/pip install -q --disable-pip-version-check 'maturin>=1.9,<2'
cargo build -q --release -p homi-testkit
.venv/bin/maturin build -q --release -m homi-py/Cargo.toml -o target/wheels-release -i .venv/bin/python
.venv/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps target/wheels-release/homi-*.whl
# Zero latency: the libraries' own cost, with 10k memories over 10 users.
.venv/bin/python homi-py/bench/compare_mem0.py --latency-ms 0 "$@"
# 200 ms per provider request: what a user waits for an add (a small store;
# loading 10k memories through a 200 ms embedder would take mem0 over half an hour).
.venv/bin/python homi-py/bench/compare_mem0.py --latency-ms 200 --memories 200 --adds 20 --searches 20
