"""The testing kit against hostile or careless clients: what a stray web page, a client that
lies about its body, huge headers, a huge scripted answer and out-of-range arguments can do.

The kit runs on developers' machines next to their browsers, and in CI for hours: a request
must never crash a connection unanswered, hang it, or make the kit hold unbounded memory or
threads, and `/_control/` must not be scriptable or readable from a web page.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import psutil
import pytest

from opperai_usage.testing import UsageServer, _aggregate, _state
from opperai_usage.testing._handler import MAX_BODY
from opperai_usage.testing._state import MAX_HEADER_VALUE, MAX_RECORDED_BYTES
from tests.support.net import TLS
from tests.support.servers import Kit, LocalServer, start_kit

UTC = timezone.utc
USAGE = "/v2/analytics/usage"
AUTH = {"Authorization": "Bearer test"}
PROG = "python -m opperai_usage.testing"


def stop_kit(kit: Kit) -> None:
    """SIGTERM: the kit must exit 0, having printed no traceback on the way."""
    kit.process.send_signal(signal.SIGTERM)
    out, err = kit.process.communicate(timeout=10)
    assert (kit.process.returncode, out) == (0, "")
    assert "Traceback" not in err, err


@pytest.fixture(scope="module")
def kit() -> Iterator[Kit]:
    running = start_kit("--host", "127.0.0.1")
    try:
        yield running
    finally:
        stop_kit(running)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def exchange(port: int, request: bytes, *, closes: bool = False, timeout: float = 5) -> Answer:
    """Send `request` as is on a connection of its own and read one answer; with `closes`,
    the kit must then close the connection. Fails if it answers nothing within `timeout` s."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock,
        sock.makefile("rb") as reader,
    ):
        sock.sendall(request)
        try:
            status_line = reader.readline()
            if not status_line:
                pytest.fail("the connection was closed with no answer")
            headers = {}
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = reader.read(int(headers.get("content-length", "0")))
        except TimeoutError:
            pytest.fail(f"no answer within {timeout} s")
        answer = Answer(int(status_line.split()[1]), headers, body)
        if closes:
            try:
                assert reader.read(1) == b"", f"more than one answer: {answer}"
            except TimeoutError:
                pytest.fail(f"the connection was left open after {answer}")
        return answer


def request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """One HTTP/1.1 request's bytes, headers exactly as given (nothing added)."""
    lines = [f"{method} {path} HTTP/1.1", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# -- 1. dates a pydantic API reads but that leave years 1 to 9999 once moved to UTC


@pytest.mark.parametrize(
    ("name", "value"),
    [("from_date", "0001-01-01T00:00:00+01:00"), ("to_date", "9999-12-31T23:00:00-05:00")],
)
def test_dates_outside_years_1_to_9999_in_utc_are_a_422(kit: Kit, name: str, value: str) -> None:
    reason = "datetime value is outside expected range in UTC"
    with httpx.Client(base_url=kit.url, headers=AUTH, timeout=5) as http:
        refused = http.get(USAGE, params={name: value})
        assert refused.status_code == 422
        assert refused.json() == {
            "type": "RequestValidationError",
            "message": "The request is invalid",
            "detail": [
                {
                    "type": "datetime_from_date_parsing",
                    "loc": ["query", name],
                    "msg": f"Input should be a valid datetime or date, {reason}",
                    "input": value,
                    "ctx": {"error": reason},
                }
            ],
        }
        # the very edges, once in UTC, are dates: they are answered
        edges = {"from_date": "0001-01-01T01:00:00+01:00", "to_date": "9999-12-31T18:59:59-05:00"}
        assert http.get(USAGE, params={**edges, "granularity": "year"}).json()


# -- 2. request bodies: a length the kit will not read is refused, and the connection closed


_NOT_A_LENGTH = "Content-Length must be one whole number of bytes"
_OVER = "the body is over the kit's limit of 16777216 bytes"


@pytest.mark.parametrize(
    ("framing", "status", "error"),
    [
        pytest.param("Content-Length: -1", 400, _NOT_A_LENGTH, id="-1"),
        pytest.param("Content-Length: 1e12", 400, _NOT_A_LENGTH, id="1e12"),
        pytest.param("Content-Length: ", 400, _NOT_A_LENGTH, id="empty"),
        pytest.param("Content-Length: 1\r\nContent-Length: 2", 400, _NOT_A_LENGTH, id="1 and 2"),
        pytest.param("Transfer-Encoding: chunked", 400, "Transfer-Encoding is not", id="chunked"),
        pytest.param("Content-Length: 1000000000000", 413, _OVER, id="10**12"),
        pytest.param(f"Content-Length: {'9' * 5000}", 413, _OVER, id="5000 digits"),
        pytest.param(f"Content-Length: {MAX_BODY + 1}", 413, _OVER, id="MAX_BODY+1"),
    ],
)
@pytest.mark.parametrize(
    ("method", "path"), [("GET", USAGE), ("POST", "/_control/script"), ("POST", "/_control/reset")]
)
def test_a_body_the_kit_will_not_read_is_refused_and_the_connection_closed(
    kit: Kit, method: str, path: str, framing: str, status: int, error: str
) -> None:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{kit.port}\r\nAuthorization: Bearer t\r\n"
    sent = f"{head}Content-Type: application/json\r\n{framing}\r\n\r\n".encode()
    answer = exchange(kit.port, sent, closes=True)
    assert (answer.status, answer.headers["connection"]) == (status, "close")
    assert json.loads(answer.body)["error"].startswith(error)
    still_serving = httpx.get(f"{kit.url}/_control/stats", timeout=5, verify=TLS)
    assert still_serving.status_code == 200


def test_a_body_of_the_limit_is_read(kit: Kit) -> None:
    local = LocalServer(kit.url)
    local.reset()
    padding = MAX_BODY - len(b'[{"body":""}]')
    payload = b'[{"body":"' + b"x" * padding + b'"}]'
    assert len(payload) == MAX_BODY
    queued = httpx.post(
        f"{kit.url}/_control/script",
        content=payload,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert queued.json() == {"queued": 1}
    local.reset()


# -- 3. what a request records is bounded


def test_huge_headers_are_recorded_cut_and_the_kits_memory_stays_bounded() -> None:
    """60 requests with 6 MB of headers each (95 of 65,000 characters, near http.server's
    limits) to a path that does not exist: 370 MB sent, 60 * 95 * 4 KiB kept.

    One malloc arena: otherwise each connection thread may park the memory it freed after
    parsing its headers in an arena of its own, and the process's size says little about
    what the kit keeps (it grew by 70 to 180 MiB, by load; 400 MiB when it kept everything).
    """
    kit = start_kit("--host", "127.0.0.1", env={"MALLOC_ARENA_MAX": "1"})
    try:
        memory = psutil.Process(kit.process.pid).memory_info
        before = memory().rss
        huge = {f"X-Big-{index}": "v" * 65_000 for index in range(95)}
        for _ in range(60):
            sent = request("GET", "/nope", {"Host": "127.0.0.1", **huge, "Connection": "close"})
            assert exchange(kit.port, sent, closes=True).status == 404
        grown = memory().rss - before
        recorded = httpx.get(f"{kit.url}/_control/requests", timeout=30).json()
    finally:
        stop_kit(kit)
    assert grown < 160 * 2**20, f"the kit grew by {grown / 2**20:.0f} MiB"
    assert len(recorded) == 60
    cut = "v" * MAX_HEADER_VALUE + "<truncated>"
    assert all(
        record["headers"]
        == {"host": "127.0.0.1", **dict.fromkeys(map(str.lower, huge), cut)}
        | {"connection": "close"}
        for record in recorded
    )


def test_the_newest_requests_are_kept_within_the_byte_limit() -> None:
    """Requests of about 400 KB each: the oldest are forgotten once MAX_RECORDED_BYTES is
    reached; the counters still count them all."""
    with UsageServer() as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        large = {f"X-H{index}": "v" * MAX_HEADER_VALUE for index in range(95)}
        for number in range(200):
            sent = request("GET", f"/nope?n={number}", {**large, "Connection": "close"})
            assert exchange(port, sent).status == 404
        kept = server.requests
        assert len(server.wait_for_requests(200, timeout=5)) == len(kept)  # all 200 counted
    numbers = [int(record.query["n"][0]) for record in kept]
    assert 100 < len(numbers) < 200
    assert numbers == list(range(200 - len(numbers), 200))  # the newest, oldest first
    text = sum(len(name) + len(value) for record in kept for name, value in record.headers.items())
    assert text <= MAX_RECORDED_BYTES


def test_at_most_max_records_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_state, "MAX_RECORDS", 3)
    with UsageServer() as server, httpx.Client(base_url=server.base_url, timeout=5) as http:
        for number in range(5):
            http.get("/nope", params={"n": number})
        assert [record.query["n"] for record in server.requests] == [["2"], ["3"], ["4"]]
        server.reset()
        http.get("/nope", params={"n": 5})
        assert [record.query["n"] for record in server.requests] == [["5"]]


def test_a_recorded_header_value_is_cut_with_a_mark() -> None:
    with UsageServer() as server, httpx.Client(base_url=server.base_url, timeout=5) as http:
        long = "a" * (MAX_HEADER_VALUE + 1)
        http.get(USAGE, headers={"X-Long": long, "X-Edge": long[1:], **AUTH})
    (record,) = server.requests
    assert record.headers["x-long"] == "a" * MAX_HEADER_VALUE + "<truncated>"
    assert record.headers["x-edge"] == long[1:]
    assert record.headers["authorization"] == "<redacted>"


# -- 4. closing ends every thread, even one building a huge scripted answer


def test_close_stops_an_answer_still_being_built() -> None:
    threads = set(threading.enumerate())
    blocks = _aggregate._synthetic_block.cache_info  # made-up items are built a block at a time
    server = UsageServer().start()
    port = int(server.base_url.rsplit(":", 1)[1])
    try:
        server.enqueue(items=30_000_000)  # minutes to build, and gigabytes
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        built = blocks().hits + blocks().misses
        client.sendall(request("GET", USAGE, {"Host": "127.0.0.1"}))
        deadline = time.monotonic() + 10
        while blocks().hits + blocks().misses < built + 2:  # the build is under way
            assert time.monotonic() < deadline, "the answer is not being built"
            time.sleep(0.005)
    finally:
        started = time.monotonic()
        server.close()
        closing = time.monotonic() - started
    with client:
        assert client.recv(1024) == b""  # dropped: no answer
    assert [thread.name for thread in set(threading.enumerate()) - threads] == []
    assert closing < 5
    assert blocks().hits + blocks().misses < built + 200  # not the 3,000 blocks of them all


# -- 5. /_control/ refuses what a web page can send


def page_requests(port: int) -> dict[str, bytes]:
    """What a page in a browser on this machine can make it send to the kit."""
    script = b'[{"status": 500}]'

    def post(headers: dict[str, str], body: bytes = script) -> bytes:
        base = {"Host": f"127.0.0.1:{port}", "Content-Length": str(len(body))}
        return request("POST", "/_control/script", {**base, **headers}, body)

    def get(host: str, path: str = "/_control/requests") -> bytes:
        return request("GET", path, {"Host": host})

    origin = {"Origin": "http://evil.example"}
    return {
        "a text/plain form": post({"Content-Type": "text/plain", **origin}),
        "a text/plain form, no Origin": post({"Content-Type": "text/plain"}),
        "an urlencoded form": post({"Content-Type": "application/x-www-form-urlencoded"}),
        "a multipart form": post({"Content-Type": "multipart/form-data; boundary=x"}),
        "a body with no type": post({}),
        "JSON from another origin": post({"Content-Type": "application/json", **origin}),
        "JSON from a sandboxed page": post({"Content-Type": "application/json", "Origin": "null"}),
        "JSON from another local page": post(
            {"Content-Type": "application/json", "Origin": "http://127.0.0.1:3000"}
        ),
        "a reset from another origin": request(
            "POST", "/_control/reset", {"Host": f"127.0.0.1:{port}", **origin}
        ),
        "a rebound name": get(f"evil.example:{port}"),
        "a rebound name, no port": get("evil.example"),
        "a name made like an address": get(f"127.0.0.1.evil.example:{port}"),
        "a rebound name's stats": get(f"evil.example:{port}", "/_control/stats"),
        "no Host (HTTP/1.0)": b"GET /_control/requests HTTP/1.0\r\n\r\n",
    }


@pytest.mark.parametrize("case", list(page_requests(0)))
def test_control_refuses_what_a_web_page_can_send(kit: Kit, case: str) -> None:
    local = LocalServer(kit.url)
    local.reset()
    httpx.get(f"{kit.url}{USAGE}?secret=marker-123", headers=AUTH, timeout=5, verify=TLS)
    answer = exchange(kit.port, page_requests(kit.port)[case])
    assert answer.status in (403, 415)
    assert answer.headers["content-type"] == "application/json"
    assert b"marker-123" not in answer.body
    assert [record["raw_query"] for record in local.requests()] == ["secret=marker-123"]
    assert httpx.get(f"{kit.url}{USAGE}", headers=AUTH, timeout=5, verify=TLS).status_code == 200
    assert local.stats()["requests"] == 2  # nothing was queued, nothing reset


def test_a_web_page_cannot_move_now() -> None:
    """`POST /_control/now` changes what every answer holds: it is refused as a page would
    send it, like the other routes, and `now` stays where it was."""
    with UsageServer(now=datetime(2026, 11, 15, 12, tzinfo=UTC)) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        body = b'{"now": "2030-01-01T00:00:00Z"}'
        base = {"Host": f"127.0.0.1:{port}", "Content-Length": str(len(body))}
        sent = {
            "a text/plain form": {**base, "Content-Type": "text/plain"},
            "JSON from another origin": {
                **base,
                "Content-Type": "application/json",
                "Origin": "http://evil.example",
            },
            "a rebound name": {
                **base,
                "Host": f"evil.example:{port}",
                "Content-Type": "application/json",
            },
        }
        for case, headers in sent.items():
            answer = exchange(port, request("POST", "/_control/now", headers, body))
            assert answer.status in (403, 415), case
            assert server.now == datetime(2026, 11, 15, 12, tzinfo=UTC), case
        allowed = {**base, "Content-Type": "application/json"}
        assert exchange(port, request("POST", "/_control/now", allowed, body)).status == 200
        assert server.now == datetime(2030, 1, 1, tzinfo=UTC)


def test_control_answers_programs_on_this_machine(kit: Kit) -> None:
    local = LocalServer(kit.url)  # the tests' helper: httpx with json=, and a bare POST
    local.reset()
    local.script({"status": 503})
    assert httpx.get(f"{kit.url}{USAGE}", headers=AUTH, timeout=5).status_code == 503
    assert [record["path"] for record in local.requests()] == [USAGE]
    assert local.stats()["requests"] == 1
    port = kit.port
    body = b'[{"status": 502}]'
    accepted = [
        request("GET", "/_control/stats", {"Host": f"localhost:{port}"}),
        request("GET", "/_control/stats", {"Host": f"[::1]:{port}"}),
        request("GET", "/_control/stats", {"Host": "127.0.0.1"}),
        request("GET", "/_control/stats", {"Host": "localhost:8080"}),  # behind a port mapping
        request("POST", "/_control/reset", {"Host": f"127.0.0.1:{port}"}),  # no length, no type
        request("POST", "/_control/reset", {"Host": f"127.0.0.1:{port}", "Content-Length": "0"}),
        request(
            "POST",
            "/_control/script",
            {
                "Host": f"127.0.0.1:{port}",
                "Origin": f"http://127.0.0.1:{port}",  # its own origin
                "Content-Type": "application/json; charset=utf-8",
                "Content-Length": str(len(body)),
            },
            body,
        ),
    ]
    for sent in accepted:
        assert exchange(port, sent).status == 200, sent
    assert httpx.get(f"{kit.url}{USAGE}", headers=AUTH, timeout=5).status_code == 502
    local.reset()


# -- 6. out-of-range arguments are usage errors


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("--port", "99999"), "argument --port: must be from 0 to 65535, got 99999"),
        (("--port", "-1"), "argument --port: must be from 0 to 65535, got -1"),
        (("--port", "x"), "argument --port: not a port number: 'x'"),
        *(
            (("--now", moment), f"argument --now: must be in the years 2 to 9998 (UTC): {moment!r}")
            for moment in (
                "0001-01-01T00:00:00+01:00",
                "9999-12-31T23:00:00-05:00",
                "0001-01-01",
                "9999-12-31",
            )
        ),
    ],
)
def test_out_of_range_arguments_are_usage_errors(args: tuple[str, str], error: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "opperai_usage.testing", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"usage: {PROG} ")
    assert done.stderr.splitlines()[-1] == f"{PROG}: error: {error}"
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"port": 99999}, "port: must be from 0 to 65535, got 99999"),
        ({"port": -1}, "port: must be from 0 to 65535, got -1"),
        (
            {"now": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))},
            "now: must be in the years 2 to 9998 (UTC), got 0001-01-01 00:00:00+01:00",
        ),
        ({"now": datetime(9999, 12, 31)}, "now: must be in the years 2 to 9998 (UTC), got 9999"),
    ],
)
def test_out_of_range_settings_are_refused(settings: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        UsageServer(**settings)


@pytest.mark.parametrize(
    ("now", "bucket"),
    [(datetime(2, 1, 1), "0002-01-01T00:00:00Z"), (datetime(9998, 12, 31), "9998-12-01T00:00:00Z")],
)
def test_the_years_at_the_limits_are_served(now: datetime, bucket: str) -> None:
    with UsageServer(now=now) as server, httpx.Client(base_url=server.base_url) as http:
        answer = http.get(USAGE, params={"granularity": "month"}, headers=AUTH)
    assert [item["time_bucket"] for item in answer.json()] == [bucket]


# -- what already held: loopback only, and idle or slow clients starve no one


def test_a_default_kit_listens_on_loopback_and_outlasts_idle_and_slow_clients() -> None:
    kit = start_kit()  # no --host
    idle: list[socket.socket] = []
    try:
        listening = psutil.Process(kit.process.pid).net_connections(kind="inet")
        assert [c.laddr.ip for c in listening if c.status == psutil.CONN_LISTEN] == ["127.0.0.1"]
        for _ in range(1_000):
            idle.append(socket.create_connection(("127.0.0.1", kit.port), timeout=10))
        slow = socket.create_connection(("127.0.0.1", kit.port), timeout=10)
        idle.append(slow)
        slow.sendall(b"GET /v2/analytics/usage HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")
        started = time.monotonic()
        with httpx.Client(base_url=kit.url, timeout=10) as http:
            assert http.get(USAGE, headers=AUTH).status_code == 200
            assert http.get("/_control/stats").json()["connections"] >= 1_002
        assert time.monotonic() - started < 5
    finally:
        for sock in idle:
            sock.close()
        stop_kit(kit)
