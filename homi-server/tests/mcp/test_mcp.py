"""Real MCP clients against Homi's MCP door: the official Python SDK (PyPI
`mcp`) over stdio against `homi mcp`, and over streamable HTTP against the
server's /mcp, with the fake OpenAI-compatible provider behind Homi.

Run by scripts/mcp-test.sh, which builds the binaries and installs the SDK."""

import asyncio
import json
import os
import pathlib
import socket
import subprocess
import time
import urllib.error
import urllib.request

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import Implementation

REPO = pathlib.Path(__file__).resolve().parents[3]
BIN = REPO / "target" / "debug"
TOOLS = {
    "add_memory", "search_memories", "list_memories", "get_memory", "update_memory",
    "delete_memory", "memory_history", "delete_all_memories",
}


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url, body, headers=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req) as resp:
        return json.load(resp) if resp.status != 204 else None


class Fake:
    def __init__(self, base_url):
        self.base_url = base_url
        self.root = base_url[: -len("/v1")]

    def control(self, path, body=None):
        _post(self.root + path, body or {})

    def fault(self, target, kind, times=1):
        self.control("/_fake/faults", {"target": target, "fault": {"kind": kind}, "times": times})

    def stats(self):
        with urllib.request.urlopen(self.root + "/_fake/stats") as resp:
            return json.load(resp)


@pytest.fixture(scope="session")
def fake():
    proc = subprocess.Popen([str(BIN / "homi-fake-provider"), "--port", str(_port())],
                            stdout=subprocess.PIPE, text=True)
    base = proc.stdout.readline().strip()
    assert base.startswith("http://"), base
    yield Fake(base)
    proc.terminate()
    proc.wait(timeout=10)


def _env(fake, tmp, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "HOMI_MCP_USER")}
    env.update({
        "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-fake", "HOMI_EMBEDDING_DIMS": "64",
        "DATABASE_URL": f"sqlite://{tmp}/homi.db", "HOMI_PROVIDER_MAX_RETRIES": "0",
        "HOMI_PROVIDER_TIMEOUT_SECS": "5",
    })
    env.update(extra)
    return env


def _stdio(fake, tmp, *args, client="claude-ai", **env):
    params = StdioServerParameters(command=str(BIN / "homi"), args=["mcp", *args], env=_env(fake, tmp, **env))
    return Client(params, client_info=Implementation(name=client, version="1.0"), mode="legacy")


def _texts(result):
    return "\n".join(c.text for c in result.content if getattr(c, "text", None))


def run(coro):
    return asyncio.run(coro)


# ----------------------------------------------------------------- stdio

def test_stdio_every_tool_resource_and_prompt(fake, tmp_path):
    async def main():
        async with _stdio(fake, tmp_path, "--user", "ann") as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            assert set(tools) == TOOLS
            for t in tools.values():
                assert t.description and t.input_schema["type"] == "object", t

            added = await c.call_tool("add_memory", {"text": "Prefers window seats", "infer": False,
                                                     "metadata": {"topic": "travel"}})
            assert not added.is_error, _texts(added)
            event = added.structured_content["results"][0]
            assert event["event"] == "ADD" and "Prefers window seats" in _texts(added)
            mid = event["id"]
            await c.call_tool("add_memory", {"messages": [{"role": "user", "content": "I live in Lisbon"}],
                                             "infer": False, "timestamp": "2024-05-01T10:00:00Z"})

            found = await c.call_tool("search_memories", {"query": "seat on a plane", "top_k": 5})
            hits = found.structured_content["results"]
            assert hits[0]["memory"] == "Prefers window seats", hits
            assert "score" in _texts(found)
            # The memory is in the client's agent scope, under the user.
            assert hits[0]["user_id"] == "ann" and hits[0]["agent_id"] == "claude-ai"
            narrowed = await c.call_tool("search_memories", {"query": "seat", "filters": {"topic": "food"}})
            assert narrowed.structured_content["results"] == []

            page = await c.call_tool("list_memories", {"limit": 1})
            assert len(page.structured_content["results"]) == 1 and page.structured_content["next_cursor"]
            rest = await c.call_tool("list_memories", {"limit": 1, "cursor": page.structured_content["next_cursor"]})
            assert len(rest.structured_content["results"]) == 1

            got = await c.call_tool("get_memory", {"id": mid})
            assert got.structured_content["metadata"] == {"topic": "travel"}
            upd = await c.call_tool("update_memory", {"id": mid, "text": "Prefers aisle seats",
                                                      "metadata": {"since": 2024}})
            assert upd.structured_content["memory"] == "Prefers aisle seats"
            assert upd.structured_content["metadata"] == {"topic": "travel", "since": 2024}
            history = await c.call_tool("memory_history", {"id": mid})
            events = [e["event"] for e in history.structured_content["results"]]
            assert events == ["ADD", "UPDATE"], events

            # Resources: the template, one memory by URI, the summary.
            templates = (await c.list_resource_templates()).resource_templates
            assert templates[0].uri_template == "homi://memories/{id}"
            one = await c.read_resource(f"homi://memories/{mid}")
            assert json.loads(one.contents[0].text)["memory"] == "Prefers aisle seats"
            resources = (await c.list_resources()).resources
            assert [str(r.uri) for r in resources] == ["homi://summary"]
            summary = await c.read_resource("homi://summary")
            assert summary.contents[0].text

            # The prompt brings the relevant memories before the message.
            prompts = (await c.list_prompts()).prompts
            assert [p.name for p in prompts] == ["remember"]
            prompt = await c.get_prompt("remember", {"message": "Book me a flight, where do I sit?"})
            text = prompt.messages[0].content.text
            assert "Prefers aisle seats" in text and text.endswith("Book me a flight, where do I sit?"), text

            # Bad arguments: a tool error with Homi's code, not a transport failure.
            bad = await c.call_tool("search_memories", {"query": "x", "top_k": 1000})
            assert bad.is_error and bad.structured_content["error"]["code"] == "invalid_input"
            assert "top_k" in _texts(bad)
            missing = await c.call_tool("get_memory", {"id": "00000000-0000-4000-8000-000000000000"})
            assert missing.is_error and missing.structured_content["error"]["code"] == "not_found"
            nothing = await c.call_tool("add_memory", {"infer": False})
            assert nothing.is_error and "text" in _texts(nothing)
            refused = await c.call_tool("delete_all_memories", {})
            assert refused.is_error and "confirm" in _texts(refused)
            assert len((await c.call_tool("list_memories", {})).structured_content["results"]) == 2

            deleted = await c.call_tool("delete_memory", {"id": mid})
            assert deleted.structured_content == {"deleted": 1, "id": mid}
            wiped = await c.call_tool("delete_all_memories", {"confirm": True})
            assert wiped.structured_content == {"deleted": 1}
            assert (await c.call_tool("list_memories", {})).structured_content["results"] == []

    run(main())


def test_stdio_apps_keep_their_own_memories_unless_shared(fake, tmp_path):
    async def add(client, text, *args):
        async with _stdio(fake, tmp_path, "--user", "bo", *args, client=client) as c:
            r = await c.call_tool("add_memory", {"text": text, "infer": False})
            assert not r.is_error, _texts(r)

    async def listed(client, *args):
        async with _stdio(fake, tmp_path, "--user", "bo", *args, client=client) as c:
            r = await c.call_tool("list_memories", {})
            return sorted(m["memory"] for m in r.structured_content["results"])

    async def main():
        await add("claude-ai", "Writes Rust at work")
        await add("cursor", "Uses tabs, never spaces")
        assert await listed("claude-ai") == ["Writes Rust at work"]
        assert await listed("cursor") == ["Uses tabs, never spaces"]
        # A shared agent name, and "" for the user's memories across apps.
        await add("claude-ai", "Likes green tea", "--agent", "shared")
        assert await listed("cursor", "--agent", "shared") == ["Likes green tea"]
        assert await listed("anything", "--agent", "") == [
            "Likes green tea", "Uses tabs, never spaces", "Writes Rust at work"]
        # HOMI_MCP_USER names the user when --user is absent.
        params = StdioServerParameters(command=str(BIN / "homi"), args=["mcp", "--agent", ""],
                                       env=_env(fake, tmp_path, HOMI_MCP_USER="bo"))
        async with Client(params, mode="legacy") as c:
            r = await c.call_tool("list_memories", {})
            assert len(r.structured_content["results"]) == 3

    run(main())


def test_stdio_logs_go_to_stderr_only(fake, tmp_path):
    # A raw client: stdout must carry JSON-RPC and nothing else.
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}
    proc = subprocess.run([str(BIN / "homi"), "mcp", "--user", "cy"], input=json.dumps(init) + "\n",
                          capture_output=True, text=True, timeout=60,
                          env=_env(fake, tmp_path, RUST_LOG="debug"))
    lines = [l for l in proc.stdout.splitlines() if l.strip()]
    assert lines, proc.stderr
    for l in lines:
        assert json.loads(l)["jsonrpc"] == "2.0", l
    assert json.loads(lines[0])["result"]["serverInfo"]["name"] == "homi"


def test_stdio_provider_fault_is_a_tool_error_and_writes_nothing(fake, tmp_path):
    async def main():
        async with _stdio(fake, tmp_path, "--user", "dee") as c:
            fake.fault("embeddings", "server_error", times=5)
            r = await c.call_tool("add_memory", {"text": "I am allergic to peanuts", "infer": False})
            assert r.is_error, _texts(r)
            assert r.structured_content["error"]["code"] == "provider_unavailable"
            # The provider's address and answer stay in Homi's log.
            said = _texts(r) + json.dumps(r.structured_content)
            assert fake.root.split("//")[1] not in said, said
            assert "model provider failed" in said and "cause is in Homi's log" in said, said
            fake.control("/_fake/reset")
            listed = await c.call_tool("list_memories", {})
            assert listed.structured_content["results"] == []

    run(main())


# ----------------------------------------------------------------- the Inspector

def _inspector():
    path = os.environ.get("HOMI_MCP_INSPECTOR")
    if not path:
        pytest.fail("HOMI_MCP_INSPECTOR is not set: run scripts/mcp-test.sh, which installs the MCP Inspector")
    return path


def _inspect(env, *args, code=0):
    """The Inspector's answer and notes; it exits 5 for a tool error."""
    out = subprocess.run([_inspector(), "--cli", *args], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == code, out.stderr
    return (json.loads(out.stdout) if out.stdout.strip() else None), out.stderr


def test_the_inspector_lists_and_calls_the_tools_over_stdio(fake, tmp_path):
    env = _env(fake, tmp_path, RUST_LOG="warn")
    # The Inspector starts the server with only the variables given with -e.
    server_env = [a for k in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "HOMI_EMBEDDING_DIMS", "DATABASE_URL", "RUST_LOG")
                  for a in ("-e", f"{k}={env[k]}")]
    homi = [*server_env, str(BIN / "homi"), "mcp", "--user", "kim"]
    listed, notes = _inspect(env, *homi, "--method", "tools/list")
    assert {t["name"] for t in listed["tools"]} == TOOLS
    # Every tool's schema is portable (no union types, nothing unconstrained).
    assert "Schema portability" not in notes, notes
    added, _ = _inspect(env, *homi, "--method", "tools/call", "--tool-name", "add_memory",
                        "--tool-arg", "text=Plays the cello", "--tool-arg", "infer=false")
    assert added["isError"] is False and added["structuredContent"]["results"][0]["event"] == "ADD"
    found, _ = _inspect(env, *homi, "--method", "tools/call", "--tool-name", "search_memories",
                        "--tool-arg", "query=cello")
    assert found["structuredContent"]["results"][0]["memory"] == "Plays the cello"
    prompt, _ = _inspect(env, *homi, "--method", "prompts/get", "--prompt-name", "remember",
                         "--prompt-args", "message=What instrument do I play?")
    assert "Plays the cello" in prompt["messages"][0]["content"]["text"]
    bad, notes = _inspect(env, *homi, "--method", "tools/call", "--tool-name", "delete_all_memories", code=5)
    assert "tool_is_error" in notes, notes
    assert bad["isError"] is True and bad["structuredContent"]["error"]["code"] == "invalid_input", bad


# ----------------------------------------------------------------- HTTP

@pytest.fixture(scope="module")
def server(fake, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    port = _port()
    env = _env(fake, tmp, API_HOST="127.0.0.1", API_PORT=str(port),
               DATABASE_URL=os.environ.get("HOMI_MCP_DATABASE_URL") or f"sqlite://{tmp}/homi.db")
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen([str(BIN / "homi-server")], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(base + "/health")
            break
        except OSError:
            time.sleep(0.1)
    yield base, env
    proc.terminate()
    proc.wait(timeout=20)


def _signup(base, email):
    return _post(base + "/api/v1/auth/signup", {"email": email, "password": "mcp test password 1"})


def _http(base, headers):
    client = httpx2.AsyncClient(headers=headers, timeout=30)
    return Client(streamable_http_client(base + "/mcp", http_client=client), mode="legacy")


def test_http_callers_reach_only_their_own_memories(server):
    server, _ = server
    eve = _signup(server, "eve@example.com")
    fay = _signup(server, "fay@example.com")

    async def main():
        eve_mcp = _http(server, {"Authorization": f"Bearer {eve['access_token']}"})
        fay_mcp = _http(server, {"Authorization": f"Bearer {fay['access_token']}"})
        async with eve_mcp as e, fay_mcp as f:
            assert {t.name for t in (await e.list_tools()).tools} == TOOLS
            r = await e.call_tool("add_memory", {"text": "Eve's locker code is 4711", "infer": False})
            assert not r.is_error, _texts(r)
            eve_id = r.structured_content["results"][0]["id"]
            await f.call_tool("add_memory", {"text": "Fay keeps bees", "infer": False})
            # At once, each sees only their own.
            found_e, found_f = await asyncio.gather(
                e.call_tool("search_memories", {"query": "locker code bees"}),
                f.call_tool("search_memories", {"query": "locker code bees"}))
            assert [m["memory"] for m in found_e.structured_content["results"]] == ["Eve's locker code is 4711"]
            assert [m["memory"] for m in found_f.structured_content["results"]] == ["Fay keeps bees"]
            # Another user's memory by id is not there, for reads and writes alike.
            for tool, args in [("get_memory", {"id": eve_id}), ("delete_memory", {"id": eve_id}),
                               ("update_memory", {"id": eve_id, "text": "mine now"}),
                               ("memory_history", {"id": eve_id})]:
                r = await f.call_tool(tool, args)
                assert r.is_error and r.structured_content["error"]["code"] == "not_found", (tool, r)
            with pytest.raises(Exception):
                await f.read_resource(f"homi://memories/{eve_id}")
            # filters cannot widen the scope to another user.
            r = await f.call_tool("search_memories", {"query": "locker", "filters": {"user_id": eve["user"]["id"]}})
            assert r.is_error and r.structured_content["error"]["code"] == "invalid_input"
            r = await e.call_tool("get_memory", {"id": eve_id})
            assert r.structured_content["memory"] == "Eve's locker code is 4711"

    run(main())


def test_http_refuses_missing_and_revoked_credentials(server):
    server, _ = server
    # No credentials: 401 with WWW-Authenticate, before any MCP.
    req = urllib.request.Request(server + "/mcp", method="POST", data=b"{}", headers={
        "content-type": "application/json", "accept": "application/json, text/event-stream"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert e.value.code == 401 and e.value.headers["WWW-Authenticate"].startswith("Bearer")

    gus = _signup(server, "gus@example.com")
    headers = {"Authorization": f"Bearer {gus['access_token']}"}

    async def main():
        async with _http(server, headers) as c:
            r = await c.call_tool("add_memory", {"text": "Gus drives a blue van", "infer": False})
            assert not r.is_error, _texts(r)
        # Signed out: the token is revoked, and the next request is refused.
        _post(server + "/api/v1/auth/signout", {}, headers)
        with pytest.raises(Exception):
            async with _http(server, headers) as c:
                await c.call_tool("list_memories", {})

    run(main())


def test_http_service_keys_act_for_the_named_user(server):
    base, env = server
    created = subprocess.run([str(BIN / "homi"), "key", "create", "--name", "mcp-reader", "--scope", "read"],
                             env=env, capture_output=True, text=True, check=True)
    reader = created.stdout.strip().splitlines()[0]
    created = subprocess.run([str(BIN / "homi"), "key", "create", "--name", "mcp-writer", "--scope", "write"],
                             env=env, capture_output=True, text=True, check=True)
    writer = created.stdout.strip().splitlines()[0]

    async def main():
        async with _http(base, {"X-API-Key": writer, "X-User-Id": "ivy"}) as w:
            r = await w.call_tool("add_memory", {"text": "Ivy runs marathons", "infer": False})
            assert not r.is_error, _texts(r)
        async with _http(base, {"X-API-Key": reader, "X-User-Id": "ivy"}) as c:
            found = await c.call_tool("search_memories", {"query": "marathons"})
            assert [m["memory"] for m in found.structured_content["results"]] == ["Ivy runs marathons"]
            # A read key cannot write: a tool error, and nothing written.
            r = await c.call_tool("add_memory", {"text": "Ivy hates running", "infer": False})
            assert r.is_error and r.structured_content["error"]["code"] == "forbidden", _texts(r)
            assert len((await c.call_tool("list_memories", {})).structured_content["results"]) == 1
        async with _http(base, {"X-API-Key": reader, "X-User-Id": "jay"}) as c:
            assert (await c.call_tool("list_memories", {})).structured_content["results"] == []

    run(main())


def test_the_inspector_calls_the_tools_over_http(server):
    base, env = server
    lee = _signup(base, "lee@example.com")
    auth = f"Authorization: Bearer {lee['access_token']}"
    url = base + "/mcp"
    listed, _ = _inspect(env, url, "--transport", "http", "--header", auth, "--method", "tools/list")
    assert {t["name"] for t in listed["tools"]} == TOOLS
    added, _ = _inspect(env, url, "--transport", "http", "--header", auth, "--method", "tools/call",
                        "--tool-name", "add_memory", "--tool-arg", "text=Lee sails on weekends", "--tool-arg", "infer=false")
    assert added["isError"] is False
    listed, _ = _inspect(env, url, "--transport", "http", "--header", auth, "--method", "tools/call",
                         "--tool-name", "list_memories")
    assert [m["memory"] for m in listed["structuredContent"]["results"]] == ["Lee sails on weekends"]
    # Without credentials the Inspector cannot connect.
    out = subprocess.run([_inspector(), "--cli", url, "--transport", "http", "--method", "tools/list"],
                         env=env, capture_output=True, text=True, timeout=120)
    # (It reads the 401's WWW-Authenticate as a call to sign in.)
    assert out.returncode != 0 and "auth_required" in out.stderr, out


def test_http_requests_carry_ids_and_count_in_metrics(server):
    base, _ = server
    req = urllib.request.Request(base + "/mcp", method="POST", data=b"{}", headers={
        "content-type": "application/json", "x-request-id": "mcp-req-1"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert e.value.headers["x-request-id"] == "mcp-req-1"
    with urllib.request.urlopen(base + "/metrics") as resp:
        metrics = resp.read().decode()
    assert any('route="/mcp"' in l and l.startswith("homi_http_requests_total") for l in metrics.splitlines()), metrics


# ----------------------------------------------------------------- README

def _readme_snippets(lang):
    text = (REPO / "README.md").read_text()
    start = text.index("## Use Homi from Claude, Cursor and agents")
    section = text[start:text.index("\n## ", start + 1)]
    blocks = section.split("```")
    return [b[len(lang) + 1:] for b in blocks[1::2] if b.startswith(lang + "\n")]


def test_the_readme_snippets_work_as_written(fake, tmp_path):
    configs = [json.loads(b) for b in _readme_snippets("json")]
    assert len(configs) == 2 and all("homi" in c["mcpServers"] for c in configs)
    shell = _readme_snippets("sh")[0]
    assert "claude mcp add homi -- homi mcp" in shell
    path = f"{BIN}{os.pathsep}{os.environ['PATH']}"
    env = _env(fake, tmp_path, PATH=path)

    # Claude Desktop's entry, with this test's provider and store, started by the Inspector.
    desktop = configs[0]
    desktop["mcpServers"]["homi"]["env"] = {k: env[k] for k in (
        "OPENAI_API_KEY", "OPENAI_BASE_URL", "HOMI_EMBEDDING_DIMS", "DATABASE_URL")}
    config = tmp_path / "claude_desktop_config.json"
    config.write_text(json.dumps(desktop))
    listed, _ = _inspect(env, "--config", str(config), "--server", "homi", "--method", "tools/list")
    assert {t["name"] for t in listed["tools"]} == TOOLS

    # The Python agent, as written, against `homi mcp` on the PATH.
    agent = _readme_snippets("python")[0]
    import sys
    out = subprocess.run([sys.executable, "-c", agent], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Prefers window seats "), out.stdout


def test_the_readme_claude_code_commands_connect(fake, server, tmp_path):
    base, server_env = server
    claude = os.environ.get("HOMI_CLAUDE_CLI")
    if not claude:
        pytest.fail("HOMI_CLAUDE_CLI is not set: run scripts/mcp-test.sh, which installs Claude Code's CLI")
    token = _signup(base, "claude@example.com")["access_token"]
    lines = [l for l in _readme_snippets("sh")[0].splitlines() if l.startswith("claude mcp add")]
    assert len(lines) == 2, lines
    import shlex
    for i, line in enumerate(lines):
        line = line.replace("https://homi.example.com/mcp", base + "/mcp").replace("<access token>", token)
        home = tmp_path / f"home{i}"
        home.mkdir()
        # `homi` from the PATH; the stdio server inherits the provider and the store.
        env = _env(fake, tmp_path, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", HOME=str(home),
                   DISABLE_AUTOUPDATER="1", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1")
        argv = shlex.split(line)
        added = subprocess.run([claude, *argv[1:]], env=env, cwd=home, capture_output=True, text=True, timeout=120)
        assert added.returncode == 0, added.stderr + added.stdout
        listed = subprocess.run([claude, "mcp", "list"], env=env, cwd=home, capture_output=True, text=True, timeout=120)
        assert "homi" in listed.stdout and "Connected" in listed.stdout, listed.stdout + listed.stderr
