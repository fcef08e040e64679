#!/usr/bin/env bash
# Times `homi memory import`, `export` and `reembed` over N memories of 10
# users against the fake provider (zero latency), on SQLite.
#   bash scripts/bench-transfer.sh                 # release build, 10,000 memories
#   HOMI_BENCH_SMOKE=1 bash scripts/bench-transfer.sh   # debug build, 300 (CI)
# Every step's result is checked, so the smoke run fails if one breaks.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${HOMI_TRANSFER_N:-10000}
profile=release
if [ -n "${HOMI_BENCH_SMOKE:-}" ]; then n=300; profile=debug; fi
if [ "$profile" = release ]; then
  cargo build -q --release -p homi-cli -p homi-testkit
else
  cargo build -q --workspace --all-features --bins
fi
bin="target/$profile"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

"$bin/homi-fake-provider" >"$work/fake.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/fake.out" ] && break; sleep 0.1; done
export OPENAI_BASE_URL
OPENAI_BASE_URL=$(head -n1 "$work/fake.out")
export OPENAI_API_KEY=sk-fake HOMI_EMBEDDING_MODEL=text-embedding-3-small
unset HOMI_EMBEDDING_DIMS

# N memories as an export would write them: one ADD in each history.
python3 - "$n" >"$work/seed.jsonl" <<'PY'
import hashlib, json, sys, uuid
n = int(sys.argv[1])
topics = ["tea", "hiking", "Lisbon", "jazz", "chess", "sushi", "running", "Rust", "piano", "cats"]
for i in range(n):
    text = f"Fact {i}: likes {topics[i % 10]} and {topics[(i * 7) % 10]} number {i}"
    t = f"2026-01-01T00:00:{i % 60:02d}.{i % 1000000:06d}Z"
    mid = str(uuid.uuid4())
    print(json.dumps({
        "id": mid, "memory": text, "hash": hashlib.md5(text.encode()).hexdigest(),
        "metadata": {"i": i}, "created_at": t, "updated_at": t, "user_id": f"user{i % 10}",
        "valid_from": t, "valid_to": None,
        "history": [{"id": str(uuid.uuid4()), "memory_id": mid, "old_memory": None, "new_memory": text,
                     "event": "ADD", "created_at": t, "updated_at": t, "is_deleted": False}],
    }))
PY

store() { echo "sqlite://$work/$1.db"; }
results=()
timed() { # name, expected, command...: runs the command, checks its output, records the time
  local name=$1 expected=$2; shift 2
  local start end out
  start=$(date +%s.%N)
  out=$("$@")
  end=$(date +%s.%N)
  if [ -n "$expected" ] && [ "$out" != "$expected" ]; then
    echo "$name: expected '$expected', got '$out'"; exit 1
  fi
  results+=("$(python3 -c "s=$end-$start; print(f'| $name | {s:.2f} s | {$n/s:,.0f} memories/s |')")")
}

a=$(store a); b=$(store b); c=$(store c)
timed "import (embeds every text)" "$n" \
  sh -c "DATABASE_URL=$a $bin/homi --json memory import $work/seed.jsonl | python3 -c \"import json,sys; print(json.load(sys.stdin)['imported'])\""
timed "import again (all present)" "$n" \
  sh -c "DATABASE_URL=$a $bin/homi --json memory import $work/seed.jsonl | python3 -c \"import json,sys; print(json.load(sys.stdin)['already_present'])\""
timed "export" "" sh -c "DATABASE_URL=$a $bin/homi memory export --output $work/plain.jsonl >/dev/null"
timed "export --embeddings" "" sh -c "DATABASE_URL=$a $bin/homi memory export --embeddings --output $work/vectors.jsonl >/dev/null"
[ "$(wc -l <"$work/plain.jsonl")" -eq "$n" ] || { echo "export wrote $(wc -l <"$work/plain.jsonl") lines"; exit 1; }
timed "import with vectors (no model call)" "0" \
  sh -c "DATABASE_URL=$b $bin/homi --json memory import $work/vectors.jsonl | python3 -c \"import json,sys; print(json.load(sys.stdin)['embedded'])\""
DATABASE_URL=$b "$bin/homi" memory export --output "$work/copy.jsonl" >/dev/null
cmp -s "$work/plain.jsonl" "$work/copy.jsonl" || { echo "the copy does not export the same bytes"; exit 1; }
timed "import, embedded again" "$n" \
  sh -c "DATABASE_URL=$c $bin/homi --json memory import $work/plain.jsonl | python3 -c \"import json,sys; print(json.load(sys.stdin)['embedded'])\""
timed "reembed (1536 -> 384 dims)" "$n" \
  sh -c "DATABASE_URL=$a HOMI_EMBEDDING_MODEL=all-minilm-l6-v2 $bin/homi --json memory reembed | python3 -c \"import json,sys; print(json.load(sys.stdin)['embedded'])\""
found=$(DATABASE_URL=$a HOMI_EMBEDDING_MODEL=all-minilm-l6-v2 "$bin/homi" --json memory search \
  "Fact 7: likes Rust and cats number 7" --user user7 --limit 1 | python3 -c "import json,sys; print(json.load(sys.stdin)['results'][0]['memory'])")
[ "$found" = "Fact 7: likes Rust and cats number 7" ] || { echo "search after reembed found: $found"; exit 1; }

echo "$n memories, $profile build, SQLite, fake provider with no latency"
echo "| step | time | rate |"
echo "|---|---|---|"
printf '%s\n' "${results[@]}"
