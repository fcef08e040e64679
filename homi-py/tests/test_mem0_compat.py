"""Leaving mem0 is one changed import: mem0's configurations (dicts and
pydantic objects, its providers by name, its embedded vector stores) and its
calls as agents make them, against the fake provider on SQLite and Postgres."""

import datetime as dt
import os
import subprocess
import sys
import textwrap
import uuid

import pytest

import homi
from homi import Memory


def _chat_calls(fake):
    return [r for r in fake.requests() if r["path"].endswith("/chat/completions")]


def test_mem0_readme_config_with_a_local_qdrant_path(fake, tmp_path, monkeypatch):
    # mem0's README: Memory.from_config with Qdrant on disk. Homi's store
    # lives in that directory.
    fake.reset()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    path = tmp_path / "qdrant"
    config = {
        "vector_store": {"provider": "qdrant", "config": {"collection_name": "test", "path": str(path), "on_disk": True}},
        "llm": {"provider": "openai", "config": {"model": "gpt-4.1-nano-2025-04-14", "temperature": 0.2, "max_tokens": 2000, "top_p": 0.9}},
        "embedder": {"provider": "openai", "config": {"model": "text-embedding-3-small", "embedding_dims": 64}},
        "history_db_path": str(tmp_path / "history.db"),
        "custom_instructions": "Only remember what the person eats.",
    }
    m = Memory.from_config(config)
    m.add([{"role": "user", "content": "I had ramen for lunch"}], user_id="alice")
    # mem0's collection "test" is Homi's homi-test.db there: another collection
    # in the same directory is another store.
    assert (path / "homi-test.db").exists()
    assert [r["memory"] for r in m.search("ramen", filters={"user_id": "alice"})["results"]] == ["I had ramen for lunch"]
    calls = _chat_calls(fake)
    assert calls, "no extraction call"
    body = calls[-1]["body"]
    assert body["model"] == "gpt-4.1-nano-2025-04-14"
    assert round(body["temperature"], 2) == 0.2 and round(body["top_p"], 2) == 0.9 and body["max_tokens"] == 2000
    assert "Only remember what the person eats." in body["messages"][0]["content"]
    # prompt= replaces the configured instructions for one call.
    m.add("I moved to Porto", user_id="alice", prompt="Only remember places.")
    system = _chat_calls(fake)[-1]["body"]["messages"][0]["content"]
    assert "Only remember places." in system and "eats" not in system


def test_a_pydantic_config_is_read_like_the_dict(env, tmp_path):
    class LlmConfig:
        def model_dump(self):
            return {"provider": "openai", "config": {"model": "gpt-4o-mini"}}

    class MemoryConfig:
        """The shape of mem0.configs.base.MemoryConfig().model_dump(): every
        field, unset ones as None."""

        def model_dump(self):
            return {
                "vector_store": {"provider": "qdrant", "config": {
                    "collection_name": "mem0", "embedding_model_dims": 64, "client": None, "host": None,
                    "port": None, "path": str(tmp_path / "q"), "url": None, "api_key": None, "https": None, "on_disk": False}},
                "llm": LlmConfig().model_dump(),
                "embedder": {"provider": "openai", "config": {}},
                "history_db_path": str(tmp_path / "history.db"),
                "reranker": None,
                "graph_store": None,
                "version": "v1.1",
                "custom_instructions": None,
            }

    m = Memory.from_config(MemoryConfig())
    m.add("I keep bees", user_id="carol", infer=False)
    assert (tmp_path / "q" / "homi.db").exists()
    assert m.get_all(user_id="carol")["results"][0]["memory"] == "I keep bees"


def test_the_llm_and_the_embedder_on_different_servers(fake, other_fake, tmp_path, monkeypatch):
    fake.reset()
    other_fake.reset()
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    m = Memory.from_config({
        "llm": {"provider": "vllm", "config": {"model": "qwen", "vllm_base_url": fake.base_url}},
        "embedder": {"provider": "lmstudio", "config": {"model": "nomic", "lmstudio_base_url": other_fake.base_url}},
        "vector_store": {"provider": "faiss", "config": {"path": str(tmp_path / "faiss")}},
    })
    m.add("I keep bees", user_id="carol")
    assert m.search("bees", user_id="carol")["results"][0]["memory"] == "I keep bees"
    assert fake.stats()["embedding_requests"] == 0 and fake.stats()["chat_requests"] >= 1
    assert other_fake.stats()["chat_requests"] == 0 and other_fake.stats()["embedding_requests"] >= 1
    assert _chat_calls(fake)[0]["body"]["model"] == "qwen"


def test_azure_openai_by_its_mem0_config(fake, tmp_path, monkeypatch):
    fake.reset()
    monkeypatch.setenv("EMBEDDING_AZURE_OPENAI_API_KEY", "emb-key")
    azure = lambda deployment: {  # noqa: E731
        "azure_deployment": deployment, "azure_endpoint": fake.root, "api_version": "2024-10-21"}
    m = Memory.from_config({
        "llm": {"provider": "azure_openai", "config": {"model": "gpt-4o", "azure_kwargs": {"api_key": "az", **azure("chat-dep")}}},
        "embedder": {"provider": "azure_openai", "config": {"model": "text-embedding-3-small", "embedding_dims": 64, "azure_kwargs": azure("emb-dep")}},
        "vector_store": {"provider": "chroma", "config": {"path": str(tmp_path / "chroma")}},
    })
    m.add("I keep bees", user_id="carol")
    paths = {r["path"] for r in fake.requests()}
    assert paths == {"/openai/deployments/chat-dep/chat/completions", "/openai/deployments/emb-dep/embeddings"}, paths


def test_what_homi_cannot_honour_says_why(env):
    for config, says in [
        ({"graph_store": {"provider": "neo4j", "config": {}}}, "no graph store"),
        ({"reranker": {"provider": "cohere"}}, "llm_reranker"),
        ({"vector_store": {"provider": "qdrant", "config": {"host": "localhost", "port": 6333}}}, "Coming from mem0"),
        ({"vector_store": {"provider": "pinecone", "config": {}}}, "Coming from mem0"),
        ({"llm": {"provider": "anthropic", "config": {}}}, "OpenAI protocol"),
        ({"embedder": {"provider": "gemini", "config": {}}}, "huggingface"),
        ({"llm": {"provider": "deepseek", "config": {}}}, "DEEPSEEK_API_KEY"),
    ]:
        with pytest.raises(homi.ValidationError, match=says):
            Memory.from_config(config)


def test_the_library_reads_only_its_own_variables(fake, tmp_path):
    # An app with its own DATABASE_URL, DEBUG, API_PORT, SUPABASE_* and a
    # .env in its working directory: Memory() neither breaks nor moves.
    app = tmp_path / "app"
    app.mkdir()
    (app / ".env").write_text("HOMI_DATABASE_URL=postgres://nowhere/at-all\nHOMI_JOB_MAX_ATTEMPTS=not-a-number\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOMI_", "OPENAI_", "SUPABASE_"))}
    env.update(
        DATABASE_URL="mysql://the-apps-own/db",
        DEBUG="maybe",
        API_PORT="not a port",
        SUPABASE_URL="not a url",
        SUPABASE_KEY="k",
        HOMI_DIR=str(tmp_path / "homi-home"),
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=fake.base_url,
        HOMI_EMBEDDING_DIMS="64",
    )
    script = """
        from homi import Memory
        with Memory() as m:
            m.add("I keep bees", user_id="carol", infer=False)
            print(m.get_all(user_id="carol")["results"][0]["memory"])
    """
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=app, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "I keep bees"
    assert (tmp_path / "homi-home" / "homi.db").exists()
    # Without HOMI_DIR: ~/.homi, as mem0 keeps ~/.mem0.
    env.pop("HOMI_DIR")
    env["HOME"] = str(tmp_path / "home")
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=app, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "home" / ".homi" / "homi.db").exists()
    assert not (app / "homi.db").exists()


def test_agents_messages_as_mem0_skips_them(env):
    m = Memory()
    transcript = [
        {"role": "user", "content": [
            {"type": "text", "text": "My cat"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            {"type": "text", "text": "is called Nori"},
        ]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "save", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "{\"saved\": true}"},
        {"role": "function", "name": "save", "content": "ok"},
    ]
    added = m.add(transcript, user_id="ana", infer=False)["results"]
    assert [e["memory"] for e in added] == ["My cat is called Nori"]


def test_mem0_call_shapes(env):
    m = Memory()
    # Integer ids are strings, keyword or positional, in filters too.
    m.add("I keep bees", user_id=42, infer=False)
    assert m.get_all(user_id="42")["results"][0]["memory"] == "I keep bees"
    assert m.get_all(filters={"user_id": 42})["results"][0]["user_id"] == "42"
    item = m.get_all(user_id=42)["results"][0]
    # ISO 8601 with +00:00, as datetime.fromisoformat reads it on Python 3.9.
    for key in ("created_at", "updated_at"):
        assert item[key].endswith("+00:00"), item[key]
        assert dt.datetime.fromisoformat(item[key]).tzinfo is not None
    # A metadata-only update keeps the text and merges the metadata.
    m.update(item["id"], metadata={"topic": "hobby"})
    m.update(item["id"], metadata={"mood": "calm"})
    got = m.get(item["id"])
    assert got["memory"] == "I keep bees" and got["metadata"] == {"topic": "hobby", "mood": "calm"}
    # History entries carry every key mem0's do.
    for entry in m.history(item["id"]):
        assert set(entry) >= {"id", "memory_id", "old_memory", "new_memory", "event", "created_at",
                              "updated_at", "is_deleted", "actor_id", "role"}, entry
    # delete_all takes the id positionally.
    assert m.delete_all(42)["message"] == "Memories deleted successfully!"
    assert m.get_all(user_id="42")["results"] == []


def test_mem0_2x_reads_get_its_defaults(env):
    m = Memory()
    m.add([{"role": "user", "content": f"fact number {i} about gardens"} for i in range(30)], user_id="gil", infer=False)
    m.add("The capital of Peru is Lima", user_id="gil", infer=False)
    # 2.x style (filters=, top_k=): 20 results by default, threshold 0.1.
    assert len(m.search("gardens", filters={"user_id": "gil"})["results"]) == 20
    assert len(m.get_all(filters={"user_id": "gil"})["results"]) == 20
    found = m.search("gardens", filters={"user_id": "gil"}, top_k=100)["results"]
    assert all(r["score"] >= 0.1 for r in found)
    # 1.x style (user_id=, limit=): 100 results, no threshold.
    assert len(m.search("gardens", user_id="gil")["results"]) == 31
    assert len(m.get_all(user_id="gil")["results"]) == 31


def test_close_and_context_managers(env):
    with Memory() as m:
        m.add("I keep bees", user_id="carol", infer=False)
    # Closed: a later call opens the store again.
    assert m.get_all(user_id="carol")["results"][0]["memory"] == "I keep bees"
    m.close()

    import asyncio

    async def main():
        async with homi.AsyncMemory() as am:
            return (await am.get_all(user_id="carol"))["results"]

    assert asyncio.run(main())[0]["memory"] == "I keep bees"


def test_procedural_memory_for_an_agent(env, fake):
    m = Memory()
    fake.control("/_fake/replies", {"content": "Task: book a flight. Step 1: searched flights, found LIS-OPO at 9:00."})
    added = m.add(
        [{"role": "user", "content": "Book me a flight to Porto"}, {"role": "assistant", "content": "Found LIS-OPO at 9:00"}],
        agent_id="travel-agent",
        memory_type="procedural_memory",
    )["results"]
    assert [e["event"] for e in added] == ["ADD"]
    got = m.get(added[0]["id"])
    assert got["memory"].startswith("Task: book a flight")
    assert got["metadata"]["memory_type"] == "procedural_memory"
    with pytest.raises(homi.ValidationError, match="memory_type"):
        m.add("x", agent_id="travel-agent", memory_type="semantic")


def test_exceptions_answer_to_mem0s_names(env):
    m = Memory()
    with pytest.raises(homi.MemoryNotFoundError) as e:
        m.delete(str(uuid.uuid4()))
    assert e.value.error_code == "MEM_404" and isinstance(e.value, homi.NotFoundError)
    assert e.value.message == str(e.value) and e.value.details == {}
    with pytest.raises(homi.ValidationError) as e:
        m.add("no scope")
    assert e.value.error_code == "VAL_001"
    from homi.errors import MemoryError as Mem0Base

    assert issubclass(homi.RateLimitError, Mem0Base) and homi.ConfigurationError is homi.ConfigError
    assert homi.VectorStoreError is homi.StorageError and homi.LLMError is homi.ProviderError


def test_collections_in_one_directory_never_mix(fake, tmp_path, monkeypatch):
    fake.reset()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    monkeypatch.setenv("HOMI_EMBEDDING_DIMS", "64")

    def config(collection):
        return {"vector_store": {"provider": "qdrant", "config": {"path": str(tmp_path / "q"), "collection_name": collection}}}

    work, home = Memory.from_config(config("work")), Memory.from_config(config("home"))
    work.add("I write Rust", user_id="ann", infer=False)
    home.add("I grow roses", user_id="ann", infer=False)
    assert [m["memory"] for m in work.get_all(user_id="ann")["results"]] == ["I write Rust"]
    assert [m["memory"] for m in home.search("roses", user_id="ann")["results"]] == ["I grow roses"]
    assert work.search("roses", user_id="ann", mode="keyword")["results"] == []


def test_collections_on_one_postgres_database_never_mix(fake, monkeypatch):
    from conftest import _fresh_postgres_database

    url = _fresh_postgres_database()
    fake.reset()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    monkeypatch.setenv("HOMI_EMBEDDING_DIMS", "64")

    def config(provider, collection):
        return {"vector_store": {"provider": provider, "config": {"connection_string": url, "collection_name": collection}}}

    work, home = Memory.from_config(config("pgvector", "work")), Memory.from_config(config("supabase", "home"))
    default = Memory.from_config(config("pgvector", "mem0"))
    work.add("I write Rust", user_id="ann", infer=False)
    home.add("I grow roses", user_id="ann", infer=False)
    assert [m["memory"] for m in work.get_all(user_id="ann")["results"]] == ["I write Rust"]
    assert [m["memory"] for m in home.search("roses", user_id="ann")["results"]] == ["I grow roses"]
    assert work.search("roses", user_id="ann", mode="keyword")["results"] == []
    assert default.get_all(user_id="ann")["results"] == []
    # The same collection from another Memory finds its memories.
    again = Memory.from_config(config("supabase", "work"))
    assert [m["memory"] for m in again.get_all(user_id="ann")["results"]] == ["I write Rust"]


def test_explain_says_how_each_score_was_made(env):
    m = Memory()
    m.add("I keep bees on the roof", user_id="ann", infer=False)
    m.add("The roof needs new tiles", user_id="ann", infer=False)
    found = m.search("bees", filters={"user_id": "ann"}, explain=True)["results"]
    assert found, found
    for r in found:
        d = r["score_details"]
        assert abs(d["fused"] - r["score"]) < 1e-6, r
        assert {"semantic", "keyword", "base", "neighbour", "speaker_factor"} <= set(d), d
    assert found[0]["memory"] == "I keep bees on the roof" and found[0]["score_details"]["keyword"] == 1.0
    plain = m.search("bees", filters={"user_id": "ann"})["results"]
    assert all("score_details" not in r for r in plain)
    keyword = m.search("bees", user_id="ann", mode="keyword", explain=True)["results"]
    assert keyword[0]["score_details"] == {"keyword": 1.0, "fused": 1.0}


def test_the_llm_reranker_scores_with_the_chat_model(fake, tmp_path, monkeypatch):
    fake.reset()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    monkeypatch.setenv("HOMI_EMBEDDING_DIMS", "64")
    m = Memory.from_config({
        "vector_store": {"provider": "qdrant", "config": {"path": str(tmp_path / "q")}},
        "reranker": {"provider": "llm_reranker", "config": {"top_k": 2}},
    })
    for text in ["I keep bees on the roof", "The bees swarmed in May", "I read about bees"]:
        m.add(text, user_id="ann", infer=False)
    plain = m.search("bees", filters={"user_id": "ann"}, mode="keyword")["results"]
    assert len(plain) == 3 and all("rerank_score" not in r for r in plain)
    calls = fake.stats()["chat_requests"]
    # The chat model scores each result, in the search's order.
    for score in ["0.1", "Score: 0.9", "no idea"]:
        fake.control("/_fake/replies", {"content": score})
    reranked = m.search("bees", filters={"user_id": "ann"}, mode="keyword", rerank=True)["results"]
    assert fake.stats()["chat_requests"] == calls + 3
    assert [r["memory"] for r in reranked] == [plain[1]["memory"], plain[2]["memory"]]
    assert [round(r["rerank_score"], 3) for r in reranked] == [0.9, 0.5]
    sent = [r for r in fake.requests() if r["path"] == "/v1/chat/completions"][-1]["body"]["messages"]
    assert "relevance" in sent[0]["content"] and sent[1]["content"].startswith("Query: bees")


def test_expiration_dates_hide_memories_as_mem0_does(env):
    m = Memory()
    now = dt.datetime.now(dt.timezone.utc)
    today = now.date()
    m.add("Parked on level 3", user_id="eve", infer=False, expiration_date=today.isoformat())
    m.add("Dentist on Friday", user_id="eve", infer=False, expiration_date=today + dt.timedelta(days=3))
    m.add("I like figs", user_id="eve", infer=False)
    # Said ten days ago, over since yesterday.
    m.add("Booked a trip to Lisbon", user_id="eve", infer=False,
          timestamp=now - dt.timedelta(days=10), expiration_date=now - dt.timedelta(days=1))
    listed = {r["memory"]: r for r in m.get_all(user_id="eve")["results"]}
    assert set(listed) == {"Parked on level 3", "Dentist on Friday", "I like figs"}
    assert listed["Parked on level 3"]["expiration_date"] == today.isoformat()
    assert "expiration_date" not in listed["I like figs"]
    shown = {r["memory"]: r for r in m.get_all(user_id="eve", show_expired=True)["results"]}
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    assert shown["Booked a trip to Lisbon"]["expiration_date"] == yesterday
    for kwargs in ({"user_id": "eve"}, {"filters": {"user_id": "eve"}}):
        hits = [r["memory"] for r in m.search("trip to Lisbon", **kwargs)["results"]]
        assert "Booked a trip to Lisbon" not in hits
        hits = [r["memory"] for r in m.search("trip to Lisbon", show_expired=True, **kwargs)["results"]]
        assert "Booked a trip to Lisbon" in hits
    assert m.get(shown["Booked a trip to Lisbon"]["id"])["expiration_date"] == yesterday

    # update: left out keeps the date, a new date moves it, None lifts it.
    dentist = listed["Dentist on Friday"]["id"]
    m.update(dentist, metadata={"where": "clinic"})
    got = m.get(dentist)
    assert got["expiration_date"] == (today + dt.timedelta(days=3)).isoformat() and got["metadata"] == {"where": "clinic"}
    m.update(dentist, expiration_date=dt.date(2099, 1, 31))
    assert m.get(dentist)["expiration_date"] == "2099-01-31"
    m.update(dentist, expiration_date=None)
    assert "expiration_date" not in m.get(dentist)
    with pytest.raises(homi.ValidationError, match="expiration_date"):
        m.update(dentist, expiration_date="2001-01-01")
    with pytest.raises(homi.ValidationError, match="expiration_date"):
        m.add("x", user_id="eve", infer=False, expiration_date="next friday")


def test_reference_date_reads_relative_dates(env):
    m = Memory()
    m.add("Talked about the garden with Ana", user_id="joe", infer=False, timestamp="2024-03-04T10:00:00Z")
    m.add("Talked about the garden with Bo", user_id="joe", infer=False, timestamp="2024-03-07T10:00:00Z")

    def matched(**kwargs):
        found = m.search("what did we talk about yesterday?", user_id="joe", explain=True, **kwargs)["results"]
        return {r["memory"]: r["score_details"].get("date_match") for r in found}

    assert matched(reference_date="2024-03-05") == {"Talked about the garden with Ana": True,
                                                    "Talked about the garden with Bo": False}
    assert matched(reference_date=dt.date(2024, 3, 8))["Talked about the garden with Bo"] is True
    # Unix seconds: 2024-03-08T12:00:00Z.
    assert matched(reference_date=1709899200)["Talked about the garden with Bo"] is True
    # Without a reference day, "yesterday" is not read.
    assert set(matched().values()) == {None}
    with pytest.raises(homi.ValidationError, match="reference_date"):
        m.search("x", user_id="joe", reference_date="someday")
