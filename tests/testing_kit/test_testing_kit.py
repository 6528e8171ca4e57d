"""The testing kit as its users use it: `UsageServer` in the test's own process, the pytest
fixtures loaded through the package's `pytest11` entry point, and the README's example test
run by pytest in a process of its own, as a user's project would run it.

`test_testing_server.py` pins the server's HTTP behaviour (run as a process); here: the Python
API, determinism, 1,000 concurrent async calls, and a close that leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from opperai_usage import Opper, errors
from opperai_usage.testing import RecordedRequest, UsageServer
from tests.support import ROOT

UTC = timezone.utc
USAGE = "/v2/analytics/usage"
AUTH = {"Authorization": "Bearer test"}
NOW = datetime(2026, 11, 15, 12, tzinfo=UTC)


@pytest.fixture
def server() -> Iterator[UsageServer]:
    """A fresh in-process server that accepts any bearer token."""
    with UsageServer() as running:
        yield running


@pytest.fixture
def http(server: UsageServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=5) as client:
        yield client


def get_usage(server: UsageServer, key: str = "test", **arguments: Any) -> list[dict[str, Any]]:
    """One call through the client, its items as JSON-like dicts."""
    with Opper(api_key=key, server_url=server.url, retry_config=None) as opper:
        return [item.to_dict() for item in opper.analytics.get_usage(**arguments)]


# -- the API's behaviour, through the client


def test_answers_like_the_api_and_checks_the_key() -> None:
    with UsageServer(api_key="test") as server:
        rows = get_usage(server, granularity="month", fields=["total_tokens"], group_by=["model"])
        assert rows
        assert {row["time_bucket"] for row in rows} == {
            datetime.now(UTC).strftime("%Y-%m-01T00:00:00+00:00")
        }
        assert all(row["total_tokens"] > 0 for row in rows)
        assert len({row["model"] for row in rows}) == len(rows) > 1
        for wrong in ("Test", "tes", "sk-live-oops"):
            with pytest.raises(errors.UnauthorizedError) as refused:
                get_usage(server, key=wrong)
            assert refused.value.data.detail == "Missing or invalid bearer token"
        with httpx.Client(base_url=server.base_url) as anonymous:
            assert anonymous.get(USAGE).status_code == 401
            invalid = anonymous.get(USAGE, params={"granularity": "week"}, headers=AUTH)
        assert invalid.status_code == 422
        assert invalid.json()["detail"][0]["loc"] == ["query", "granularity"]
        assert len(server.requests) == 6


def test_same_seed_same_answers() -> None:
    query: dict[str, Any] = {
        "granularity": "day",
        "fields": ["total_tokens"],
        "group_by": ["project.name"],
    }
    with UsageServer(seed=3) as one, UsageServer(seed=3) as two, UsageServer(seed=4) as other:
        first = get_usage(one, **query)
        assert first == get_usage(two, **query) != get_usage(other, **query)
    with UsageServer(seed=3, now=NOW) as fixed:
        again = get_usage(fixed, **query, from_date="2026-10-01", to_date="2026-11-16")
    with UsageServer(seed=3, now=NOW.replace(tzinfo=None)) as naive:  # naive is UTC
        assert get_usage(naive, **query, from_date="2026-10-01", to_date="2026-11-16") == again
    assert again[0]["time_bucket"] == "2026-10-01T00:00:00+00:00"
    assert again[-1]["time_bucket"] == "2026-11-15T00:00:00+00:00"  # the data ends on `now`'s day
    with UsageServer(seed=3, now=NOW) as fixed:
        month = get_usage(fixed, granularity="month")  # no dates: `now`'s month
    assert [row["time_bucket"] for row in month] == ["2026-11-01T00:00:00+00:00"]


# -- scripting


def test_enqueued_answers_come_in_order_then_the_data(
    server: UsageServer, http: httpx.Client
) -> None:
    real = http.get(USAGE).json()
    server.enqueue(status=503, headers={"Retry-After": "2"})
    server.enqueue(status=429, json={"type": "TooManyRequests"})
    server.enqueue(json=None)
    server.enqueue(body=b"\xff\xfe not utf-8", content_type="application/json")
    server.enqueue(body="<html>down</html>", status=502, content_type="text/html")
    server.enqueue(content_type="text/csv")
    server.enqueue(items=25)
    server.enqueue()
    assert server.pending == 8

    busy = http.get(USAGE)
    assert (busy.status_code, busy.content, busy.headers["retry-after"]) == (503, b"", "2")
    assert busy.headers["content-type"] == "text/plain; charset=utf-8"
    limited = http.get(USAGE)
    assert (limited.status_code, limited.json()) == (429, {"type": "TooManyRequests"})
    assert limited.headers["content-type"] == "application/json"
    assert http.get(USAGE).content == b"null"
    assert http.get(USAGE).content == b"\xff\xfe not utf-8"
    html = http.get(USAGE)
    assert (html.status_code, html.text, html.headers["content-type"]) == (
        502,
        "<html>down</html>",
        "text/html",
    )
    csv = http.get(USAGE)
    assert (csv.headers["content-type"], csv.json()) == ("text/csv", real)
    assert len(http.get(USAGE, params={"granularity": "week"}).json()) == 25  # query ignored
    assert server.pending == 1
    assert http.get(USAGE).json() == real  # enqueue(): the real answer, in its turn
    assert server.pending == 0
    assert http.get(USAGE).json() == real  # the queue is used up: the data again
    assert http.get("/v2/other").status_code == 404  # not the usage endpoint: nothing used


def test_scripted_faults_over_the_client(server: UsageServer) -> None:
    server.enqueue(drop=True)
    server.enqueue(items=10, truncate=True)
    server.enqueue(delay=2)
    server.enqueue(body="[]", dribble=0.5)
    with Opper(api_key="test", server_url=server.url, retry_config=None) as opper:
        with pytest.raises(httpx.RemoteProtocolError):
            opper.analytics.get_usage()
        with pytest.raises(httpx.RemoteProtocolError):
            opper.analytics.get_usage()
    with Opper(api_key="test", server_url=server.url, retry_config=None, timeout_ms=300) as opper:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            opper.analytics.get_usage()  # the 2 s delay
        with pytest.raises(httpx.ReadTimeout):
            opper.analytics.get_usage()  # "[", then "]" 0.5 s later: past the budget
        assert time.monotonic() - started < 1.5
    with Opper(api_key="test", server_url=server.url) as opper:  # default retries
        server.enqueue(status=503, headers={"Retry-After": "0"})
        assert opper.analytics.get_usage()
    assert len(server.requests) == 6


@pytest.mark.parametrize(
    ("settings", "error", "message"),
    [
        ({"stauts": 503}, TypeError, "unexpected keyword argument 'stauts'"),
        (
            {"status": "503"},
            ValueError,
            "status: must be an HTTP status from 200 to 999, got '503'",
        ),
        ({"status": 101}, ValueError, "status: must be an HTTP status from 200 to 999, got 101"),
        ({"status": True}, ValueError, "status: must be an HTTP status"),
        ({"json": {}, "body": ""}, ValueError, "json and body: give one of them, not both"),
        ({"json": {1, 2}}, ValueError, "json: cannot be sent as JSON (Object of type set"),
        ({"json": float("nan")}, ValueError, "json: cannot be sent as JSON"),
        ({"body": 3}, TypeError, "body: must be str or bytes, got int"),
        ({"delay": -1}, ValueError, "delay: must be a number of seconds >= 0, got -1"),
        ({"delay": "1"}, TypeError, "delay: must be a number of seconds, got '1'"),
        ({"dribble": float("inf")}, ValueError, "dribble: must be a number of seconds >= 0"),
        ({"drop": 1}, TypeError, "drop: must be True or False, got 1"),
        ({"items": -5}, ValueError, "items: must be a count (an int >= 0), got -5"),
        ({"items": 5, "status": 500}, ValueError, "items: sends a 200 of made-up items"),
        ({"drop": True, "json": {}, "delay": 1}, ValueError, "drop: closes the connection"),
        ({"headers": {"Retry After": "1"}}, ValueError, "headers: 'Retry After' is not an HTTP"),
        ({"headers": {"Retry-After": 1}}, TypeError, "the value of 'Retry-After' must be a str"),
        ({"headers": {"X": "a\r\nSet-Cookie: b"}}, ValueError, "'X' holds a line break"),
        ({"headers": [("X", "y")]}, TypeError, "headers: must be a mapping"),
        ({"content_type": "text/html\n"}, ValueError, "holds a line break"),
    ],
)
def test_a_wrong_setting_is_refused_at_once(
    server: UsageServer, settings: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        server.enqueue(**settings)
    assert server.pending == 0


# -- inspecting


def test_requests_record_what_was_sent_with_the_key_redacted(server: UsageServer) -> None:
    key = "sk-secret-0123456789"
    get_usage(server, key=key, fields=["total_tokens", "prompt_tokens"], group_by=["project.name"])
    with httpx.Client(base_url=server.base_url) as anonymous:
        anonymous.post("/v2/analytics/usage?x=1&x=&y=%C3%A4", headers={"X-Trace": "a"})
    call, post = server.requests
    assert isinstance(call, RecordedRequest)
    assert (call.method, call.path) == ("GET", USAGE)
    assert call.query == {"fields": ["total_tokens", "prompt_tokens"], "group_by": ["project.name"]}
    assert call.raw_query == "fields=total_tokens&fields=prompt_tokens&group_by=project.name"
    assert call.headers["authorization"] == "<redacted>"
    assert call.headers["user-agent"].startswith("opperai-usage/")
    assert key not in repr(server.requests)
    assert (post.method, post.query, post.headers["x-trace"]) == (
        "POST",
        {"x": ["1", ""], "y": ["ä"]},
        "a",
    )
    assert "authorization" not in post.headers
    requests = server.requests
    requests.clear()  # a copy: the server's record is untouched
    assert len(server.requests) == 2


def test_reset_forgets_answers_requests_and_counts(server: UsageServer, http: httpx.Client) -> None:
    server.enqueue(status=500)
    server.enqueue(status=500)
    assert http.get(USAGE).status_code == 500
    assert (len(server.requests), server.pending, server.connections) == (1, 1, 1)
    server.reset()
    assert (server.requests, server.pending, server.connections) == ([], 0, 0)
    assert http.get(USAGE).status_code == 200


def test_wait_for_requests_made_by_another_thread(server: UsageServer) -> None:
    def later() -> None:
        time.sleep(0.3)
        get_usage(server)
        get_usage(server)

    worker = threading.Thread(target=later)
    worker.start()
    try:
        assert server.requests == []
        first, second = server.wait_for_requests(2, timeout=10)
        assert first.path == second.path == USAGE
    finally:
        worker.join(timeout=10)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"^2 of 3 requests arrived within 0.2 s$"):
        server.wait_for_requests(3, timeout=0.2)
    assert 0.2 <= time.monotonic() - started < 2


def test_life_cycle_misuse_is_refused() -> None:
    server = UsageServer()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url
    assert repr(server) == "<UsageServer not started seed=7>"
    server.start()
    try:
        assert re.fullmatch(r"<UsageServer http://127\.0\.0\.1:\d+ seed=7>", repr(server))
        with pytest.raises(RuntimeError, match="starts once"):
            server.start()
        with server:  # a started server may still be used as a context manager
            assert server.url == server.base_url + "/v2"
    finally:
        server.close()
    server.close()  # twice is harmless
    with pytest.raises(RuntimeError, match="starts once"):
        server.start()
    for key in ("", "  ", 12):
        with pytest.raises(ValueError, match="api_key: must be a non-empty str"):
            UsageServer(api_key=key)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="now: must be a datetime"):
        UsageServer(now="2026-11-15")  # type: ignore[arg-type]


# -- load and shutdown


@pytest.mark.load  # 1,000 calls: seconds of work, run by `nox -s load`
def test_a_thousand_concurrent_async_calls() -> None:
    """1,000 calls at once on one client: each gets the answer to its own query."""
    queries: list[dict[str, Any]] = [
        {"granularity": "month", "fields": ["total_tokens"]},
        {"granularity": "month", "group_by": ["model"]},
        {"granularity": "year", "fields": ["prompt_tokens"], "group_by": ["customer_id"]},
        {"granularity": "day", "fields": ["completion_tokens"]},
    ]

    async def run(server: UsageServer) -> list[list[dict[str, Any]]]:
        async with Opper(api_key="test", server_url=server.url) as opper:
            calls = [opper.analytics.get_usage_async(**queries[i % 4]) for i in range(1_000)]
            return [[item.to_dict() for item in items] for items in await asyncio.gather(*calls)]

    with UsageServer(api_key="test") as server:
        expected = [get_usage(server, **query) for query in queries]
        server.reset()
        results = asyncio.run(run(server))
        assert len(server.requests) == 1_000
        # The client's pool (100 connections) is reused: a connection httpcore drops now and
        # then is replaced, but a burst never opens one per call (httpx's default of 20 idle
        # connections kept did: about 1,000 here).
        assert server.connections < 200
    assert len({len(rows) for rows in expected}) > 1  # the queries' answers differ
    assert all(rows == expected[i % 4] for i, rows in enumerate(results))


def test_close_leaves_no_thread_and_no_socket() -> None:
    """Idle keep-alive connections, a request held in a 60 s delay and one dribbling: closing
    ends them at once, and every thread and socket the server opened is gone."""
    process = psutil.Process()
    threads, fds = set(threading.enumerate()), process.num_fds()
    outcomes: list[str] = []

    def call(server: UsageServer) -> None:
        with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=30) as client:
            try:
                client.get(USAGE)
            except httpx.HTTPError as error:
                outcomes.append(type(error).__name__)

    server = UsageServer()
    with server:
        port = int(server.base_url.rsplit(":", 1)[1])
        idle = [httpx.Client(base_url=server.base_url, headers=AUTH) for _ in range(5)]
        for client in idle:
            client.get(USAGE).raise_for_status()  # and keep the connection open
        server.enqueue(delay=60)
        server.enqueue(items=1_000, dribble=0.5)
        waiting = [threading.Thread(target=call, args=(server,)) for _ in range(2)]
        for thread in waiting:
            thread.start()
        server.wait_for_requests(7, timeout=10)
        assert len(threading.enumerate()) >= len(threads) + 1 + 7  # acceptor, 7 connections
        started = time.monotonic()
    closing = time.monotonic() - started
    for thread in waiting:
        thread.join(timeout=10)
    for client in idle:
        client.close()
    assert closing < 5
    assert sorted(outcomes) == ["RemoteProtocolError", "RemoteProtocolError"]
    assert set(threading.enumerate()) == threads
    assert [
        c for c in process.net_connections(kind="inet") if port in (c.laddr.port, *c.raddr[1:])
    ] == []
    assert process.num_fds() == fds


# -- the pytest plugin, as a user's project meets it


def test_the_fixture_is_a_started_server_for_the_key_test(opper_usage_server: UsageServer) -> None:
    assert get_usage(opper_usage_server, key="test", granularity="year")
    with pytest.raises(errors.UnauthorizedError):
        get_usage(opper_usage_server, key="another")


def test_code_that_reads_the_environment(
    opper_usage_server: UsageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's recipe: OPPER_BASE_URL is `base_url`, OPPER_API_KEY the convention."""
    monkeypatch.delenv("OPPER_HTTP_BEARER", raising=False)
    monkeypatch.setenv("OPPER_BASE_URL", opper_usage_server.base_url)
    monkeypatch.setenv("OPPER_API_KEY", "test")
    with Opper() as opper:
        assert opper.analytics.get_usage(granularity="year")
    (request,) = opper_usage_server.requests
    assert request.path == USAGE


def python(code: str) -> str:
    """Run `code` in a fresh interpreter of this venv; its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


def test_the_kit_is_imported_only_when_asked_for() -> None:
    loaded = "import sys; print(sorted(m for m in sys.modules if m.startswith({!r})))"
    assert python(f"import opperai_usage; {loaded.format('opperai_usage.testing')}") == "[]"
    plugin = f"import opperai_usage._pytest_plugin; {loaded.format('opperai_usage')}"
    # the plugin costs pytest runs nothing but itself and the package's empty __init__
    assert (
        python(plugin)
        == "['opperai_usage', 'opperai_usage._pytest_plugin', 'opperai_usage._version']"
    )
    assert python(f"import opperai_usage._pytest_plugin; {loaded.format('httpx')}") == "[]"


def readme_example(heading: str = "## Testing your code") -> str:
    """The first Python block after a heading of the README."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split(f"\n{heading}\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def run_pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m pytest` in `folder`, as a user's project would run it: the installed
    package, no conftest, none of our settings or environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPPER_", "PYTEST_", "PYTHON"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(folder), *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_readme_example_passes_as_a_users_test(tmp_path: Path) -> None:
    example = readme_example()
    assert "conftest" not in example
    assert "opper_usage_server" in example
    (tmp_path / "test_costs.py").write_text(example)
    done = run_pytest(tmp_path, "test_costs.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^plugins: .*\bopperai-usage-", done.stdout, re.MULTILINE), done.stdout
    assert re.search(r"\b5 passed\b", done.stdout), done.stdout
    disabled = run_pytest(tmp_path, "-p", "no:opperai_usage", "test_costs.py")
    assert disabled.returncode == 1
    assert "fixture 'opper_usage_server' not found" in disabled.stdout


def test_the_readme_late_events_example_passes(tmp_path: Path) -> None:
    example = readme_example("### Time: a stable past and late events")
    assert "ingest_delay=" in example
    assert "server.now = " in example
    (tmp_path / "test_late.py").write_text(example)
    done = run_pytest(tmp_path, "test_late.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b1 passed\b", done.stdout), done.stdout


def test_the_fixtures_scope_and_cost(tmp_path: Path) -> None:
    (tmp_path / "test_scopes.py").write_text(
        "import socket, sys\n"
        "seen = []\n"
        "def test_nothing_is_imported_before_a_fixture_is_asked_for():\n"
        "    assert 'httpx' not in sys.modules\n"
        "    assert 'opperai_usage.testing' not in sys.modules\n"
        "def test_one(opper_usage_server, opper_usage_server_session):\n"
        "    seen.append((opper_usage_server, opper_usage_server_session))\n"
        "def test_two(opper_usage_server, opper_usage_server_session):\n"
        "    [(first, session)] = seen\n"
        "    assert first is not opper_usage_server and session is opper_usage_server_session\n"
        "    host, port = first.base_url.removeprefix('http://').split(':')\n"
        "    if first.base_url != opper_usage_server.base_url:  # the port is not reused\n"
        "        try:\n"
        "            socket.create_connection((host, int(port)), timeout=5).close()\n"
        "        except ConnectionRefusedError:\n"
        "            return\n"
        "        raise AssertionError('the first test\\'s server is still listening')\n"
    )
    done = run_pytest(tmp_path, "-q", "test_scopes.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b3 passed\b", done.stdout), done.stdout
