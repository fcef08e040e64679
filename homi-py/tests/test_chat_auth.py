"""homi.Chat and homi.Auth against the fake provider, on SQLite and Postgres."""

import asyncio
import time

import pytest

import homi


def _wait_for_memory(user_id, text, timeout=15):
    m = homi.Memory()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [x["memory"] for x in m.get_all(user_id=user_id)["results"]]
        if text in found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{text!r} was never extracted for {user_id}")


def test_a_turn_is_stored_and_its_memories_extracted(env):
    chat = homi.Chat()
    turn = chat.turn("I collect stamps", user_id="alice")
    for key in ("response", "user_id", "session_id", "memories_used", "timestamp", "usage", "model"):
        assert key in turn, key
    assert turn["response"] == "You said: I collect stamps"
    # The worker beside the Chat extracts after the reply.
    _wait_for_memory("alice", "I collect stamps")
    again = chat.turn("What do I collect?", user_id="alice", session_id=turn["session_id"])
    assert "I collect stamps" in again["memories_used"]
    (conv,) = chat.conversations("alice")
    assert conv["id"] == turn["session_id"]
    assert [m["role"] for m in chat.messages("alice", turn["session_id"])] == ["user", "assistant"] * 2
    assert chat.conversations("bob") == []
    assert chat.summary("alice")["memory_count"] == 1
    assert chat.delete_conversation("alice", turn["session_id"]) is True
    assert chat.conversations("alice") == []


def test_streams_iterate_and_async_iterate(env):
    chat = homi.Chat()
    events = list(chat.stream("Tell me a story", user_id="carol"))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "memories" and kinds[-1] == "done" and kinds.count("delta") >= 2
    assert events[-1]["response"] == "You said: Tell me a story"
    assert "".join(e["content"] for e in events if e["type"] == "delta") == "You said: Tell me a story"

    async def main():
        turn = await chat.aturn("Async hello", user_id="carol")
        streamed = [e async for e in chat.stream("Async stream", user_id="carol")]
        return turn, streamed

    turn, streamed = asyncio.run(main())
    assert turn["response"] == "You said: Async hello"
    assert streamed[-1]["type"] == "done"


def test_chat_errors(env, fake):
    chat = homi.Chat()
    with pytest.raises(homi.ValidationError, match="message"):
        chat.turn("   ", user_id="dan")
    fake.fault("chat", "server_error", times=5)
    with pytest.raises(homi.ProviderError):
        chat.turn("This fails", user_id="dan")


def test_accounts_tokens_and_keys(env):
    auth = homi.Auth()
    up = auth.sign_up("ada@example.com", "correct horse battery", full_name="Ada")
    assert up["user"]["email"] == "ada@example.com" and up["session"]["token_type"] == "bearer"
    with pytest.raises(homi.ConflictError):
        auth.sign_up("ADA@example.com", "another long password")
    with pytest.raises(homi.ValidationError, match="password"):
        auth.sign_up("short@example.com", "short")
    s = auth.sign_in("ada@example.com", "correct horse battery")
    who = auth.verify(s["access_token"])
    assert who["user_id"] == up["user"]["id"]
    assert auth.get_user(s["access_token"])["full_name"] == "Ada"
    assert auth.update_user(s["access_token"], full_name="Ada L.")["full_name"] == "Ada L."
    with pytest.raises(homi.AuthError):
        auth.sign_in("ada@example.com", "wrong password!")
    pair = auth.refresh(s["refresh_token"])
    auth.sign_out(pair["access_token"])
    with pytest.raises(homi.AuthError):
        auth.verify(pair["access_token"])

    key = auth.create_api_key("backend", ["read", "write"], namespace="acme")
    assert key["secret"].startswith("homi_sk_")
    listed = auth.list_api_keys()
    assert [k["name"] for k in listed] == ["backend"] and "secret" not in listed[0]
    auth.revoke_api_key(key["id"])
    assert auth.list_api_keys()[0]["revoked_at"] is not None
    with pytest.raises(homi.ValidationError, match="root"):
        auth.create_api_key("x", ["root"])

    assert auth.delete_user(up["user"]["id"]) is True
    with pytest.raises(homi.AuthError):
        auth.sign_in("ada@example.com", "correct horse battery")
