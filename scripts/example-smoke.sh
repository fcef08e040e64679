#!/usr/bin/env bash
# Runs the examples end to end against the fake provider, each on a fresh
# SQLite file:
# - memory_chat: two turns through a pipe, then a second run that must find
#   what the first one stored;
# - chat: streamed turns in one conversation, the second given the fact the
#   first taught (through the background extraction worker), conversations;
# - auth: sign-up, sign-in, verify, profile, refresh, sign-out (the token
#   must stop working), API keys; a wrong password must fail clearly.
set -euo pipefail
cd "$(dirname "$0")/.."
# Every script builds the one feature set the tests build (the whole workspace,
# all features): one build of the dependency tree serves every check.
cargo build -q --workspace --all-features --bins
work=$(mktemp -d)
fake_out="$work/fake.out"
./target/debug/homi-fake-provider >"$fake_out" 2>&1 &
fake=$!
trap 'kill $fake 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do [ -s "$fake_out" ] && break; sleep 0.1; done
url=$(head -n1 "$fake_out")
case "$url" in http://*) ;; *) echo "fake provider did not start: $(cat "$fake_out")"; exit 1;; esac

# expect TEXT OUTPUT: fails, saying what was missing, unless OUTPUT has the line part TEXT.
expect() {
  if ! grep -qF -- "$1" <<<"$2"; then
    echo "FAILED: expected '$1' in the output above"; exit 1
  fi
}
# refute TEXT OUTPUT: the opposite.
refute() {
  if grep -qF -- "$1" <<<"$2"; then
    echo "FAILED: did not expect '$1' in the output above"; exit 1
  fi
}

echo "== memory_chat"
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

echo "== chat"
export DATABASE_URL="sqlite://$work/chat.db"
out=$(./target/debug/chat --user alice "I live in Lisbon" "Where do I live?")
echo "$out"
expect "alice: 0 memories so far" "$out"
# Turn 1: nothing remembered yet; the reply streamed; the fact extracted after it.
first_turn=$(sed -n '/^You: I live in Lisbon/,/^You: /p' <<<"$out")
expect "memories used: none" "$first_turn"
expect "AI: You said: I live in Lisbon" "$first_turn"
expect "learned: I live in Lisbon" "$first_turn"
# Turn 2, same conversation: the fact of turn 1 is among its memories and in the reply.
second_turn=$(sed -n '/^You: Where do I live?/,$p' <<<"$out")
expect "memories used: I live in Lisbon" "$second_turn"
expect "AI: You said: Where do I live? I remember: I live in Lisbon" "$second_turn"
refute "(conversation " "$second_turn"
# One conversation, titled by its first message.
session=$(sed -n 's/^  (conversation \(.*\))$/\1/p' <<<"$out")
[ -n "$session" ] || { echo "FAILED: no conversation id"; exit 1; }
[ "$(grep -c '^  [0-9a-f-]\{36\}  ' <<<"$out")" = 1 ] || { echo "FAILED: expected one conversation"; exit 1; }
expect "  $session  " "$out"
expect '"I live in Lisbon"' "$out"

# Messages from standard input; --session continues the conversation.
out=$(printf 'I have a beagle named Rex\n\nWhat is my dog called?\n' | ./target/debug/chat --user alice --session "$session")
echo "$out"
expect "alice: 2 memories so far" "$out"
refute "(conversation " "$out"
expect "learned: I have a beagle named Rex" "$out"
expect "I have a beagle named Rex" "$(sed -n '/^You: What is my dog called?/,$p' <<<"$out" | grep '^  memories used: ')"
[ "$(grep -c '^  [0-9a-f-]\{36\}  ' <<<"$out")" = 1 ] || { echo "FAILED: --session started another conversation"; exit 1; }

# Another user: none of alice's memories or conversations.
out=$(./target/debug/chat --user bob "Where do I live?")
echo "$out"
expect "bob: 0 memories so far" "$out"
expect "memories used: none" "$out"
refute "Lisbon" "$out"
refute "$session" "$out"

# Bad input and a missing provider fail with a sentence, never a panic.
long=$(head -c 2001 /dev/zero | tr '\0' x)
if ./target/debug/chat --user alice "$long" >/dev/null 2>"$work/err"; then
  echo "FAILED: a 2001-character message was accepted"; exit 1
fi
cat "$work/err"
expect "error: invalid message: the message is longer than 2000 characters" "$(cat "$work/err")"
if env -u OPENAI_BASE_URL -u OPENAI_API_KEY ./target/debug/chat --user alice "hello" >/dev/null 2>"$work/err"; then
  echo "FAILED: expected a failure without a provider"; exit 1
fi
cat "$work/err"
expect "no model provider is configured: set OPENAI_API_KEY" "$(cat "$work/err")"
refute "panicked" "$(cat "$work/err")"

echo "== auth"
export DATABASE_URL="sqlite://$work/auth.db"
out=$(./target/debug/auth --email Ada@Example.com --password 'correct horse battery staple' --name 'Ada Lovelace')
echo "$out"
user_id=$(sed -n 's/^signed up: Ada@Example.com (\(.*\))$/\1/p' <<<"$out")
[ -n "$user_id" ] || { echo "FAILED: no sign-up"; exit 1; }
expect "access token verified: user $user_id" "$out"
expect 'profile: Ada@Example.com "Ada Lovelace"' "$out"
expect 'profile updated: "Ada Lovelace (updated)"' "$out"
expect "refreshed: new access token verified" "$out"
expect "after sign-out the access token is refused: unauthorized: the auth session has ended" "$out"
expect "after sign-out the refresh token is refused too" "$out"
expect "may write: true, may manage keys: false, user 'customer-42' is stored as 'acme:customer-42'" "$out"
expect "API key revoked: refused from now on" "$out"

# A returning user (email compared case-insensitively, credentials from the
# environment) signs into the same account, with the updated profile.
out=$(HOMI_EXAMPLE_EMAIL=ada@example.com HOMI_EXAMPLE_PASSWORD='correct horse battery staple' ./target/debug/auth)
echo "$out"
expect "ada@example.com already has an account: signing in" "$out"
expect "access token verified: user $user_id" "$out"
expect 'profile: Ada@Example.com "Ada Lovelace (updated)"' "$out"

# A wrong password, a short one and a malformed email fail clearly.
if ./target/debug/auth --email ada@example.com --password 'not the password' >"$work/out" 2>"$work/err"; then
  echo "FAILED: signed in with a wrong password"; exit 1
fi
cat "$work/err"
expect "error: unauthorized: invalid email or password" "$(cat "$work/err")"
refute "signed in" "$(cat "$work/out")"
if ./target/debug/auth --email grace@example.com --password short >/dev/null 2>"$work/err"; then
  echo "FAILED: a 5-character password was accepted"; exit 1
fi
cat "$work/err"
expect "error: invalid password: the password must be at least 8 characters long" "$(cat "$work/err")"
if ./target/debug/auth --email not-an-email --password 'correct horse battery staple' >/dev/null 2>"$work/err"; then
  echo "FAILED: a malformed email was accepted"; exit 1
fi
cat "$work/err"
expect "error: invalid email: 'not-an-email' is not an email address" "$(cat "$work/err")"
refute "panicked" "$(cat "$work/err")"

echo "example smoke test passed"
