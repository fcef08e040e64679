#!/usr/bin/env bash
# Runs the homi-server binary end to end: on the embedded default with nothing
# configured (it serves, auth works, chat says what to set), then against the
# fake provider (signup, chat, the background worker extracts the memory,
# search finds it), SIGKILL with jobs queued (all complete after a restart),
# and SIGTERM with a request in flight (answered before the server exits).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p homi-testkit -p homi-server
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_up() { for _ in $(seq 1 100); do curl -sf "$1/health" >/dev/null && return 0; sleep 0.1; done; echo "server did not start"; cat "$work"/*.log; exit 1; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# 1. Nothing configured: an SQLite file in the working directory, built-in auth.
port=$(free_port); base="http://127.0.0.1:$port"
(cd "$work" && exec env -u OPENAI_API_KEY -u OPENAI_BASE_URL -u DATABASE_URL API_HOST=127.0.0.1 API_PORT="$port" \
  "$OLDPWD/target/debug/homi-server" >"$work/bare.log" 2>&1) &
pids+=($!)
wait_up "$base"
token=$(curl -sf -X POST "$base/api/v1/auth/signup" -H 'content-type: application/json' \
  -d '{"email":"smoke@example.com","password":"smoke test password"}' | json "['access_token']")
status=$(curl -s -o "$work/chat.json" -w '%{http_code}' -X POST "$base/api/v1/chat" \
  -H "authorization: Bearer $token" -H 'content-type: application/json' -d '{"message":"hello"}')
[ "$status" = 503 ] || { echo "chat without a provider answered $status"; exit 1; }
grep -q OPENAI_API_KEY "$work/chat.json"
[ -f "$work/homi.db" ] || { echo "no ./homi.db was created"; exit 1; }
kill -TERM "${pids[0]}"; wait "${pids[0]}" || { echo "the bare server did not stop cleanly"; cat "$work/bare.log"; exit 1; }

# 2. Against the fake provider, with the background worker.
./target/debug/homi-fake-provider >"$work/fake.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/fake.out" ] && break; sleep 0.1; done
port=$(free_port); base="http://127.0.0.1:$port"
OPENAI_BASE_URL=$(head -n1 "$work/fake.out") OPENAI_API_KEY=sk-fake DATABASE_URL="sqlite://$work/served.db" \
  API_HOST=127.0.0.1 API_PORT="$port" HOMI_LOG_FORMAT=json ./target/debug/homi-server >"$work/served.log" 2>&1 &
server=$!
pids+=($server)
wait_up "$base"
token=$(curl -sf -X POST "$base/api/v1/auth/signup" -H 'content-type: application/json' \
  -d '{"email":"john@example.com","password":"securepassword123","full_name":"John"}' | json "['access_token']")
reply=$(curl -sf -X POST "$base/api/v1/chat" -H "authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"message":"I love pizza"}' | json "['response']")
[ "$reply" = "You said: I love pizza" ] || { echo "unexpected reply: $reply"; exit 1; }
found=""
for _ in $(seq 1 100); do
  found=$(curl -sf -X POST "$base/api/v1/memories/search" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' -d '{"query":"pizza"}' | json "['memories']")
  [ "$found" = "['I love pizza']" ] && break
  sleep 0.1
done
[ "$found" = "['I love pizza']" ] || { echo "the worker never extracted the memory: $found"; exit 1; }
grep -q '"level":"INFO"' "$work/served.log" || { echo "no JSON logs"; exit 1; }
kill -TERM "$server"
wait "$server" || { echo "the server did not stop cleanly"; cat "$work/served.log"; exit 1; }

# 3. SIGKILL with extraction jobs queued: after a restart every job completes.
fake_root=$(head -n1 "$work/fake.out"); fake_root=${fake_root%/v1}
start_served() {
  OPENAI_BASE_URL="$fake_root/v1" OPENAI_API_KEY=sk-fake DATABASE_URL="sqlite://$work/served.db" \
    API_HOST=127.0.0.1 API_PORT="$port" HOMI_JOB_LEASE_SECS=2 ./target/debug/homi-server >>"$work/served.log" 2>&1 &
  server=$!
  pids+=($server)
  wait_up "$base"
}
start_served
# The provider's embeddings fail: turns answer 502, their messages are kept
# and their extraction is queued (and keeps failing, so it stays queued).
curl -sf -X POST "$fake_root/_fake/faults" -H 'content-type: application/json' \
  -d '{"target": "embeddings", "fault": {"kind": "server_error"}, "times": 100000}' >/dev/null
for fact in "I collect stamps" "My cat is called Nori"; do
  status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$base/api/v1/chat" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' -d "{\"message\": \"$fact\"}")
  [ "$status" = 502 ] || { echo "a failing provider answered $status"; exit 1; }
done
kill -KILL "$server"; wait "$server" 2>/dev/null || true
curl -sf -X POST "$fake_root/_fake/reset" >/dev/null
start_served
for fact in "I collect stamps" "My cat is called Nori"; do
  found=""
  for _ in $(seq 1 300); do
    found=$(curl -sf -X POST "$base/api/v1/memories/search" -H "authorization: Bearer $token" \
      -H 'content-type: application/json' -d "{\"query\": \"$fact\", \"limit\": 20}" | json "['memories']")
    grep -q "$fact" <<<"$found" && break
    sleep 0.1
  done
  grep -q "$fact" <<<"$found" || { echo "the job for '$fact' never completed after the restart: $found"; cat "$work/served.log"; exit 1; }
done
kill -TERM "$server"; wait "$server"

# 4. SIGTERM with a request in flight: it is answered, then the server exits 0
# and takes no new requests.
start_served
curl -sf -X POST "$fake_root/_fake/latency" -H 'content-type: application/json' -d '{"ms": 1500}' >/dev/null
curl -s -o "$work/inflight.json" -w '%{http_code}' -X POST "$base/api/v1/chat" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' -d '{"message": "I am in flight"}' >"$work/inflight.status" &
inflight=$!
sleep 0.5
kill -TERM "$server"
wait "$inflight"
[ "$(cat "$work/inflight.status")" = 200 ] || { echo "the request in flight got $(cat "$work/inflight.status")"; cat "$work/inflight.json"; exit 1; }
grep -q "You said: I am in flight" "$work/inflight.json"
wait "$server" || { echo "the server did not stop cleanly with a request in flight"; exit 1; }
if curl -s -o /dev/null "$base/health"; then echo "the server still answers after SIGTERM"; exit 1; fi
echo "server smoke test passed"
