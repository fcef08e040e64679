"""A store written by the real mem0 (mem0ai from PyPI, against the fake
provider) imports into Homi completely: every memory with its id, text,
scopes, metadata and timestamps, and every history event; a second import
adds nothing; on SQLite and Postgres."""

import datetime as dt

import pytest

import homi


def _when(text):
    return dt.datetime.fromisoformat(text).astimezone(dt.timezone.utc)


def test_a_store_written_by_mem0_imports_completely(env, fake, tmp_path, monkeypatch):
    monkeypatch.setenv("MEM0_TELEMETRY", "false")
    monkeypatch.setenv("MEM0_DIR", str(tmp_path / "mem0-home"))
    from mem0 import Memory as Mem0

    config = {
        "vector_store": {"provider": "qdrant", "config": {
            "path": str(tmp_path / "qdrant"), "collection_name": "mem0", "embedding_model_dims": 64}},
        "llm": {"provider": "openai", "config": {"model": "gpt-4o-mini", "openai_base_url": fake.base_url}},
        "embedder": {"provider": "openai", "config": {
            "model": "text-embedding-3-small", "openai_base_url": fake.base_url, "embedding_dims": 64}},
        "history_db_path": str(tmp_path / "history.db"),
    }
    mem0 = Mem0.from_config(config)
    mem0.add([{"role": "user", "content": "I love pizza"}], user_id="alice", metadata={"topic": "food"})
    mem0.add([{"role": "user", "content": "I live in Lisbon"}], user_id="alice", infer=False)
    mem0.add([{"role": "user", "content": "I collect stamps"}], user_id="alice", infer=False)
    mem0.add([{"role": "user", "content": "My dog is called Rex"}], user_id="bob", agent_id="helper", infer=False)
    alice = {m["memory"]: m["id"] for m in mem0.get_all(filters={"user_id": "alice"}, top_k=100)["results"]}
    mem0.update(alice["I live in Lisbon"], text="I live in Porto")
    mem0.delete(alice["I collect stamps"])
    want = {}
    for scope in ({"user_id": "alice"}, {"user_id": "bob", "agent_id": "helper"}):
        for m in mem0.get_all(filters=scope, top_k=100)["results"]:
            want[m["id"]] = m
    history = {mid: mem0.history(mid) for mid in want}
    assert len(want) == 3 and "I live in Porto" in {m["memory"] for m in want.values()}
    mem0.close()
    # mem0's close() leaves its Qdrant client open, and a local Qdrant store
    # takes one client at a time: let go of it, as ending the process would.
    mem0.vector_store.client.close()

    # Opening Homi where mem0's store is says how to bring the memories over.
    with pytest.warns(UserWarning, match=r"homi\.import_mem0\(config\)"):
        homi.Memory.from_config(config)
    into = homi.Memory()
    report = homi.import_mem0(config, into=into)
    assert report["read"] == 3 and report["imported"] == 3 and report["invalid"] == 0, report
    # The same embedding model and size: mem0's vectors are kept.
    assert report["embedded"] == 0, report
    got = {}
    for user, agent in (("alice", None), ("bob", "helper")):
        for m in into.get_all(user_id=user, agent_id=agent)["results"]:
            got[m["id"]] = m
    assert set(got) == set(want)
    for mid, m in want.items():
        g = got[mid]
        assert g["memory"] == m["memory"], (g, m)
        for key in ("user_id", "agent_id", "run_id"):
            assert g.get(key) == m.get(key), (key, g, m)
        assert (m.get("metadata") or {}).items() <= g["metadata"].items(), (g, m)
        assert _when(g["created_at"]) == _when(m["created_at"]), (g, m)
        assert [(h["event"], h["old_memory"], h["new_memory"]) for h in into.history(mid)] == [
            (h["event"], h["old_memory"], h["new_memory"]) for h in history[mid]
        ], mid
    # Found by meaning and by keyword.
    assert into.search("Where do I live?", user_id="alice", limit=1)["results"][0]["memory"] == "I live in Porto"
    # Again: nothing new.
    again = homi.import_mem0(config, into=into)
    assert (again["imported"], again["already_present"]) == (0, 3), again


def test_an_unknown_store_says_what_homi_reads(env, tmp_path):
    with pytest.raises(homi.ValidationError, match="Qdrant"):
        homi.import_mem0({"vector_store": {"provider": "pinecone", "config": {}}}, into=homi.Memory())
    with pytest.raises(homi.ValidationError, match="no mem0 collection"):
        homi.import_mem0({"vector_store": {"provider": "qdrant", "config": {"path": str(tmp_path)}}}, into=homi.Memory())
