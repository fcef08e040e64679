#!/usr/bin/env bash
# The official `openai` Python package (installed into the project virtualenv
# .venv) against homi-server's OpenAI-compatible endpoint, with the fake
# provider behind Homi: plain and streamed completions, memories injected
# after the background worker extracted them, errors as the SDK expects.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
if ! .venv/bin/python -c 'import openai' 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check 'openai==3.57.0'
fi
# Every script builds the one feature set the tests build (the whole workspace,
# all features): one build of the dependency tree serves every check.
cargo build -q --workspace --all-features --bins
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
./target/debug/homi-fake-provider >"$work/fake.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/fake.out" ] && break; sleep 0.1; done
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
base="http://127.0.0.1:$port"
OPENAI_BASE_URL=$(head -n1 "$work/fake.out") OPENAI_API_KEY=sk-fake DATABASE_URL="sqlite://$work/homi.db" \
  API_HOST=127.0.0.1 API_PORT="$port" ./target/debug/homi-server >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -sf "$base/health" >/dev/null && break; sleep 0.1; done
token=$(curl -sf -X POST "$base/api/v1/auth/signup" -H 'content-type: application/json' \
  -d '{"email":"sdk@example.com","password":"openai sdk password"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
HOMI_BASE_URL="$base" HOMI_TOKEN="$token" .venv/bin/python "$root/homi-server/tests/openai_sdk.py" \
  || { cat "$work/server.log"; exit 1; }
