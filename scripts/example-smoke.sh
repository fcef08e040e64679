#!/usr/bin/env bash
# Runs the memory_chat example end to end against the fake provider: two turns
# through a pipe, then a second run that must find what the first one stored.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p homi-testkit -p homi-examples
work=$(mktemp -d)
fake_out="$work/fake.out"
./target/debug/homi-fake-provider >"$fake_out" 2>&1 &
fake=$!
trap 'kill $fake 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do [ -s "$fake_out" ] && break; sleep 0.1; done
url=$(head -n1 "$fake_out")
case "$url" in http://*) ;; *) echo "fake provider did not start: $(cat "$fake_out")"; exit 1;; esac

export OPENAI_BASE_URL="$url" OPENAI_API_KEY=sk-fake DATABASE_URL="sqlite://$work/homi.db"
first=$(printf 'I live in Lisbon\nI have a beagle named Rex\nexit\n' | ./target/debug/memory_chat --user smoke --show-memories)
echo "$first"
grep -q "AI: You said: I live in Lisbon" <<<"$first"
grep -q "(ADD) I have a beagle named Rex" <<<"$first"
second=$(printf 'What is my dog called?\n' | ./target/debug/memory_chat --user smoke --show-memories)
echo "$second"
grep -q "(used) I have a beagle named Rex" <<<"$second"
# Another user sees none of it.
third=$(printf 'What is my dog called?\n' | ./target/debug/memory_chat --user stranger --show-memories)
if grep -q "(used)" <<<"$third"; then echo "memories leaked across users"; exit 1; fi
# Without a provider the example says what to set.
if env -u OPENAI_BASE_URL -u OPENAI_API_KEY ./target/debug/memory_chat </dev/null 2>"$work/err"; then
  echo "expected a failure without a provider"; exit 1
fi
grep -q "OPENAI_API_KEY" "$work/err"
echo "example smoke test passed"
