"""Fixtures: Homi's fake OpenAI-compatible provider (the homi-fake-provider
binary, over real HTTP), and a fresh store per test on SQLite and, when the
test PostgreSQL runs (HOMI_TEST_DATABASE_URL from scripts/pg.sh), on
Postgres too."""

import glob
import json
import os
import pathlib
import socket
import subprocess
import sys
import urllib.request
import uuid

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


class Fake:
    """The running fake provider and its control API."""

    def __init__(self, base_url):
        self.base_url = base_url
        self.root = base_url[: -len("/v1")]

    def control(self, path, body=None):
        data = json.dumps(body or {}).encode()
        req = urllib.request.Request(
            self.root + path, data=data, headers={"content-type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(req) as resp:
            return resp.read()

    def stats(self):
        with urllib.request.urlopen(self.root + "/_fake/stats") as resp:
            return json.load(resp)

    def reset(self):
        self.control("/_fake/reset")

    def requests(self):
        """Every request received since the last reset: [{path, body}]."""
        with urllib.request.urlopen(self.root + "/_fake/requests") as resp:
            return json.load(resp)

    def latency(self, ms):
        self.control("/_fake/latency", {"ms": ms})

    def fault(self, target, kind, times=1, **details):
        """Queues a fault: kind server_error, rate_limited (retry_after_secs=),
        timeout (delay_ms=), malformed_json, wrong_schema or stall."""
        self.control("/_fake/faults", {"target": target, "fault": {"kind": kind, **details}, "times": times})


def _start_fake():
    binary = os.environ.get("HOMI_FAKE_PROVIDER", str(REPO / "target" / "debug" / "homi-fake-provider"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([binary, "--port", str(port)], stdout=subprocess.PIPE, text=True)
    base_url = proc.stdout.readline().strip()
    assert base_url.startswith("http://"), f"the fake provider did not start: {base_url!r}"
    return proc, Fake(base_url)


@pytest.fixture(scope="session")
def fake():
    proc, running = _start_fake()
    yield running
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def other_fake():
    """A second provider, for an embedder on another server than the LLM."""
    proc, running = _start_fake()
    yield running
    proc.terminate()
    proc.wait(timeout=10)


def _psql():
    found = glob.glob(str(REPO / ".venv" / "lib" / "python*" / "site-packages" / "pgserver" / "pginstall" / "bin" / "psql"))
    return found[0] if found else "psql"


def _fresh_postgres_database():
    base = os.environ.get("HOMI_TEST_DATABASE_URL")
    if not base:
        if os.environ.get("HOMI_REQUIRE_POSTGRES") == "1":
            pytest.fail("HOMI_TEST_DATABASE_URL is not set: start the test server with scripts/pg.sh start")
        pytest.skip("HOMI_TEST_DATABASE_URL is not set (bash scripts/pg.sh start)")
    name = "homi_py_" + uuid.uuid4().hex
    subprocess.run([_psql(), base, "-q", "-c", f"CREATE DATABASE {name}"], check=True)
    return base.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'homi.db'}"
    return _fresh_postgres_database()


@pytest.fixture
def env(monkeypatch, fake, database_url):
    """The environment a user would set: the provider and the store."""
    fake.reset()
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("HOMI_DATABASE_URL", database_url)
    monkeypatch.setenv("HOMI_EMBEDDING_DIMS", "64")
    monkeypatch.setenv("HOMI_PROVIDER_MAX_RETRIES", "0")
    monkeypatch.setenv("HOMI_PROVIDER_TIMEOUT_SECS", "5")
    return database_url


sys.path.insert(0, str(pathlib.Path(__file__).parent))
