"""The testing kit's server run as a process (`python -m opperai_usage.testing`), over HTTP.

Other tests (ours and users') trust this server to behave like the API and to fault exactly
as scripted, so these pin both: the API's answers and error shapes, and every `/_control/`
action. `test_testing_kit.py` tests the Python API of the same server.
"""

from __future__ import annotations

import calendar
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest

from opperai_usage.testing import UsageServer, _state
from tests.support.net import TLS
from tests.support.servers import Kit, start_kit

UTC = timezone.utc

API_KEY = "sk-test-0123456789"
USAGE = "/v2/analytics/usage"
WIDE = {"from_date": "2000-01-01T00:00:00Z", "to_date": "2100-01-01T00:00:00Z"}


def stop(server: Kit, signum: int) -> tuple[int, str, str]:
    """Signal the server; return its exit code and remaining stdout and stderr."""
    server.process.send_signal(signum)
    out, err = server.process.communicate(timeout=10)
    return server.process.returncode, out, err


def thread_count(pid: int) -> int:
    """Threads of a process, read from /proc (Linux)."""
    return len(os.listdir(f"/proc/{pid}/task"))


@pytest.fixture(scope="module")
def server() -> Iterator[Kit]:
    """One server (with a fixed API key) for the whole module; it must exit 0 on SIGTERM."""
    running = start_kit("--api-key", API_KEY)
    try:
        yield running
    finally:
        code, out, err = stop(running, signal.SIGTERM)
    assert (code, out) == (0, "")
    assert "Traceback" not in err


@pytest.fixture
def client(server: Kit) -> Iterator[httpx.Client]:
    """An authorised client on a freshly reset server."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=5, verify=TLS) as http:
        http.post("/_control/reset").raise_for_status()
        yield http


def script(client: httpx.Client, *actions: dict[str, Any]) -> None:
    """Queue fault actions for the next usage requests."""
    client.post("/_control/script", json=list(actions)).raise_for_status()


def items(response: httpx.Response) -> list[dict[str, Any]]:
    """The item list of a successful usage answer."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert isinstance(body, list)
    return body


def test_requires_a_bearer_token(client: httpx.Client, server: Kit) -> None:
    expected = {
        "type": "UnauthorizedError",
        "message": "The request is unauthorized",
        "detail": "Missing or invalid bearer token",
    }
    with httpx.Client(base_url=server.url, timeout=5) as anonymous:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}):
            response = anonymous.get(USAGE, headers=headers)
            assert response.status_code == 401
            assert response.json() == expected
            assert re.fullmatch(r"req_[0-9a-f]{16}", response.headers["x-request-id"])
    assert client.get(USAGE).status_code == 200


def test_any_token_without_api_key_and_clean_sigint_exit(client: httpx.Client) -> None:
    running = start_kit("--seed", "3")
    try:
        with httpx.Client(base_url=running.url, timeout=5) as http:
            response = http.get(USAGE, params=WIDE, headers={"Authorization": "Bearer whatever"})
            assert items(response) != items(client.get(USAGE, params=WIDE))  # another seed
            for refused in ("Bearer", "Basic whatever"):
                assert http.get(USAGE, headers={"Authorization": refused}).status_code == 401
    finally:
        code, out, err = stop(running, signal.SIGINT)
    assert (code, out, err) == (0, "", "")


def test_command_line_mistakes_exit_with_a_message() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        cases = {
            ("--port", port): (1, f"cannot listen on 127.0.0.1:{port}: "),
            ("--now", "yesterday"): (2, "error: argument --now: not a date or time: 'yesterday'"),
            ("--api-key", " "): (2, "error: --api-key: must not be empty"),
            ("--seed", "x"): (2, "error: argument --seed: invalid int value: 'x'"),
        }
        for args, (code, message) in cases.items():
            done = subprocess.run(
                [sys.executable, "-m", "opperai_usage.testing", *args],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert (done.returncode, done.stdout) == (code, ""), args
            assert f"python -m opperai_usage.testing: {message}" in done.stderr, done.stderr
            assert "Traceback" not in done.stderr


def test_invalid_granularity_is_fastapi_422(client: httpx.Client) -> None:
    response = client.get(USAGE, params={"granularity": "week"})
    assert response.status_code == 422
    expected = "'minute', 'hour', 'day', 'month' or 'year'"
    assert response.json() == {
        "type": "RequestValidationError",
        "message": "The request is invalid",
        "detail": [
            {
                "type": "enum",
                "loc": ["query", "granularity"],
                "msg": f"Input should be {expected}",
                "input": "week",
                "ctx": {"expected": expected},
            }
        ],
    }


def test_every_bad_parameter_is_listed(client: httpx.Client) -> None:
    params = {"from_date": "not-a-date", "to_date": "2026-13-01", "granularity": "week"}
    response = client.get(USAGE, params=params)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [(d["type"], d["loc"], d["input"]) for d in detail] == [
        ("datetime_from_date_parsing", ["query", "from_date"], "not-a-date"),
        ("datetime_from_date_parsing", ["query", "to_date"], "2026-13-01"),
        ("enum", ["query", "granularity"], "week"),
    ]
    assert detail[0]["msg"] == "Input should be a valid datetime or date, invalid character in year"


def test_now_fixes_the_data_and_the_default_month() -> None:
    """`--now`: the data runs from 60 days back to that moment, and no dates means that month."""
    running = start_kit("--seed", "5", "--now", "2026-02-10T15:00:00Z")
    try:
        with httpx.Client(base_url=running.url, timeout=5) as http:
            auth = {"Authorization": "Bearer any"}
            params = {**WIDE, "granularity": "day", "group_by": "model"}
            days = items(http.get(USAGE, params=params, headers=auth))
            assert days[0]["time_bucket"] == "2025-12-13T00:00:00Z"
            assert days[-1]["time_bucket"] == "2026-02-10T00:00:00Z"
            late = {**WIDE, "granularity": "minute", "from_date": "2026-02-10T12:00:00Z"}
            minutes = items(http.get(USAGE, params=late, headers=auth))
            assert minutes
            assert minutes[-1]["time_bucket"] <= "2026-02-10T15:00:00Z"  # none after now
            month = items(http.get(USAGE, params={"granularity": "month"}, headers=auth))
            assert [row["time_bucket"] for row in month] == ["2026-02-01T00:00:00Z"]
        # the same seed and moment in this process: the same answers
        now = datetime(2026, 2, 10, 15, tzinfo=UTC)
        with UsageServer(seed=5, now=now) as same, httpx.Client(base_url=same.base_url) as http:
            assert items(http.get(USAGE, params=params, headers=auth)) == days
    finally:
        code, out, err = stop(running, signal.SIGTERM)
    assert (code, out, err) == (0, "", "")


def test_a_server_started_before_midnight_answers_the_new_month(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Started on the last evening of a month, asked after midnight about "this month" (no
    dates): following the clock, its now has moved on with the day, and the new month holds
    events (each day starts with one)."""

    class Clock(datetime):
        moment = datetime(2026, 11, 30, 23, 55, tzinfo=UTC)

        @classmethod
        def now(cls, tz: Any = None) -> Clock:
            return cls.fromtimestamp(cls.moment.timestamp(), tz)

    monkeypatch.setattr(_state, "datetime", Clock)
    params = {"granularity": "day"}
    auth = {"Authorization": "Bearer any"}
    with UsageServer(seed=3) as server, httpx.Client(base_url=server.base_url) as http:
        november = items(http.get(USAGE, params=params, headers=auth))
        Clock.moment = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
        december = items(http.get(USAGE, params=params, headers=auth))
    assert november
    assert all(row["time_bucket"].startswith("2026-11-") for row in november)
    assert [row["time_bucket"] for row in december] == ["2026-12-01T00:00:00Z"]


def test_dates_accept_z_offsets_naive_and_date_only(client: httpx.Client) -> None:
    """Naive and date-only mean UTC; an offset moves the instant."""
    day = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%d")
    params = {"granularity": "hour", "fields": "total_tokens"}

    def answer(from_date: str, to_date: str) -> list[dict[str, Any]]:
        return items(
            client.get(USAGE, params={**params, "from_date": from_date, "to_date": to_date})
        )

    utc = answer(f"{day}T00:00:00Z", f"{day}T12:00:00Z")
    assert len(utc) > 3
    assert answer(day, f"{day}T12:00:00") == utc
    assert answer(f"{day}T02:00:00+02:00", f"{day}T12:00:00.000+00:00") == utc
    later = [row for row in utc if row["time_bucket"] >= f"{day}T01:00:00Z"]
    assert answer(f"{day}T03:00:00+02:00", f"{day}T12:00:00Z") == later


def test_from_date_must_be_before_to_date(client: httpx.Client) -> None:
    for to_date in ("2026-11-01T00:00:00Z", "2026-10-31T23:00:00-01:00"):
        response = client.get(USAGE, params={"from_date": "2026-11-01", "to_date": to_date})
        assert response.status_code == 400
        assert response.json() == {
            "type": "BadRequestError",
            "message": "The request is invalid",
            "detail": "from_date must be before to_date",
        }


def test_repeated_scalar_last_one_wins(client: httpx.Client) -> None:
    answer = items(
        client.get(f"{USAGE}?granularity=week&granularity=year&from_date=bad&from_date=2000-01-01")
    )
    assert answer
    assert all(item["time_bucket"].endswith("-01-01T00:00:00Z") for item in answer)


@pytest.mark.parametrize(
    ("granularity", "pattern"),
    [
        ("minute", r"\d{4}-\d\d-\d\dT\d\d:\d\d:00Z"),
        ("hour", r"\d{4}-\d\d-\d\dT\d\d:00:00Z"),
        ("day", r"\d{4}-\d\d-\d\dT00:00:00Z"),
        ("month", r"\d{4}-\d\d-01T00:00:00Z"),
        ("year", r"\d{4}-01-01T00:00:00Z"),
    ],
)
def test_buckets_really_group(client: httpx.Client, granularity: str, pattern: str) -> None:
    """Every granularity sums to the same totals as one wide bucket, in fewer rows."""
    params = {**WIDE, "fields": ["total_tokens", "prompt_tokens"]}
    whole = items(client.get(USAGE, params={**params, "granularity": "year"}))
    rows = items(client.get(USAGE, params={**params, "granularity": granularity}))
    buckets = [row["time_bucket"] for row in rows]
    assert buckets == sorted(set(buckets))
    assert all(re.fullmatch(pattern, bucket) for bucket in buckets)
    for field in params["fields"]:
        assert sum(row[field] for row in rows) == sum(row[field] for row in whole) > 0
    cost = sum((Decimal(row["cost"]) for row in rows), Decimal(0))
    whole_cost = sum((Decimal(row["cost"]) for row in whole), Decimal(0))
    assert abs(cost - whole_cost) <= Decimal("1e-6") * len(rows)  # each row is rounded
    if granularity in ("day", "month"):
        assert len(rows) < (62 if granularity == "day" else 4)


def test_fields_are_summed_and_tags_grouped(client: httpx.Client) -> None:
    fields = ["prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "nope"]
    group_by = ["project.name", "customer_id"]
    params = {**WIDE, "granularity": "month", "fields": fields, "group_by": group_by}
    rows = items(client.get(USAGE, params=params))
    assert all(list(row) == ["time_bucket", "cost", "count", *fields, *group_by] for row in rows)
    assert all(
        row["total_tokens"] == row["prompt_tokens"] + row["completion_tokens"] for row in rows
    )
    assert all(row["nope"] == 0 for row in rows)
    assert any(row["cached_tokens"] > 0 for row in rows)
    assert {row["project.name"] for row in rows} == {None, "alpha", "beta", "gamma"}
    assert None in {row["customer_id"] for row in rows}

    def order(row: dict[str, Any]) -> tuple[Any, ...]:
        groups = tuple((row[tag] is not None, row[tag] or "") for tag in group_by)
        return (row["time_bucket"], groups)

    assert rows == sorted(rows, key=order)
    assert len({order(row) for row in rows}) == len(rows)
    unknown = items(client.get(USAGE, params={**WIDE, "granularity": "year", "group_by": "x.y"}))
    assert len(unknown) == len({row["time_bucket"] for row in unknown})
    assert all(row["x.y"] is None for row in unknown)


def test_exploded_lists_are_percent_decoded_and_raw_query_recorded(client: httpx.Client) -> None:
    raw = (
        "fields=total_tokens&fields=completion_tokens&group_by=a+b&group_by=%C3%A4%2C%26%3D"
        "&granularity=year&unknown=1&from_date=2000-01-01T00%3A00%3A00%2B02%3A00"
    )
    rows = items(client.get(f"{USAGE}?{raw}"))
    assert rows
    for row in rows:
        assert list(row) == [
            "time_bucket",
            "cost",
            "count",
            "total_tokens",
            "completion_tokens",
            "a b",
            "ä,&=",
        ]
        assert (row["a b"], row["ä,&="]) == (None, None)
    [record] = client.get("/_control/requests").json()
    assert (record["method"], record["path"], record["raw_query"]) == ("GET", USAGE, raw)
    assert record["query"] == {
        "fields": ["total_tokens", "completion_tokens"],
        "group_by": ["a b", "ä,&="],
        "granularity": ["year"],
        "unknown": ["1"],
        "from_date": ["2000-01-01T00:00:00+02:00"],
    }


def test_defaults_cover_the_current_month(client: httpx.Client) -> None:
    """No dates means [first of this month, last of this month), both 00:00 UTC."""
    now = datetime.now(UTC)
    first = now.strftime("%Y-%m-01T00:00:00Z")
    last = now.strftime(f"%Y-%m-{calendar.monthrange(now.year, now.month)[1]:02d}T00:00:00Z")
    rows = items(client.get(USAGE, params={"granularity": "month", "fields": "total_tokens"}))
    assert [row["time_bucket"] for row in rows] == [first]
    days = items(client.get(USAGE))
    assert days
    assert all(first <= row["time_bucket"] < last for row in days)
    assert all(list(row) == ["time_bucket", "cost", "count"] for row in days)
    assert days == items(client.get(USAGE, params={"from_date": first, "to_date": last}))


def test_scripted_canned_answers_then_normal(client: httpx.Client) -> None:
    script(
        client,
        {"status": 503, "body": "down", "headers": {"Retry-After": "2"}},
        {"status": 429, "json": {"type": "TooManyRequests"}},
        {"status": 302, "headers": {"Location": "/v2/analytics/usage?granularity=year"}},
        {"content_type": "text/html"},
        {},
    )
    down = client.get(USAGE)
    assert (down.status_code, down.text, down.headers["retry-after"]) == (503, "down", "2")
    assert down.headers["content-type"].startswith("text/plain")
    assert "x-request-id" in down.headers
    limited = client.get(USAGE)
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/json"
    assert limited.json() == {"type": "TooManyRequests"}
    moved = client.get(USAGE)
    assert (moved.status_code, moved.headers["location"]) == (302, USAGE + "?granularity=year")
    html = client.get(USAGE)
    assert (html.status_code, html.headers["content-type"]) == (200, "text/html")
    assert html.json() == client.get(USAGE).json()  # {} and an empty queue: the real answer


def test_scripted_drop_disconnects(client: httpx.Client) -> None:
    script(client, {"drop": True})
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(USAGE)
    items(client.get(USAGE))


def test_scripted_truncate_sends_half_the_body(client: httpx.Client, server: Kit) -> None:
    body = {"padding": "x" * 100}
    script(client, {"json": body, "truncate": True}, {"json": body, "truncate": True})
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(USAGE)
    connection = http.client.HTTPConnection(*server.address, timeout=5)
    try:
        connection.request("GET", USAGE)
        response = connection.getresponse()
        full = len(json.dumps(body, separators=(",", ":")))
        assert (response.status, response.getheader("Content-Length")) == (200, str(full))
        with pytest.raises(http.client.IncompleteRead) as error:
            response.read()
        assert len(error.value.partial) == full // 2
    finally:
        connection.close()


def test_scripted_delay_and_dribble(client: httpx.Client) -> None:
    script(client, {"delay_ms": 300}, {"delay_ms": 400}, {"body": "0123456789", "dribble_ms": 25})
    started = time.monotonic()
    items(client.get(USAGE))
    assert time.monotonic() - started >= 0.3
    with pytest.raises(httpx.ReadTimeout):
        client.get(USAGE, timeout=0.1)
    started = time.monotonic()
    assert client.get(USAGE).text == "0123456789"
    assert time.monotonic() - started >= 9 * 0.025
    items(client.get(USAGE))  # the server survived the client that gave up


def test_a_reset_ends_the_delays_under_way(client: httpx.Client, server: Kit) -> None:
    """A test that has seen the request it waited for resets, instead of waiting out a delay
    long enough to be safe; the held request then gets its answer."""
    script(client, {"delay_ms": 30_000})
    answers: list[httpx.Response] = []
    with httpx.Client(base_url=server.url, headers=client.headers, timeout=20) as other:
        held = threading.Thread(target=lambda: answers.append(other.get(USAGE, params=WIDE)))
        started = time.monotonic()
        held.start()
        while client.get("/_control/stats").json()["requests"] < 1:
            assert time.monotonic() - started < 10, "the request did not arrive"
            time.sleep(0.005)  # poll
        assert not answers, "the delay did not hold the answer"
        client.post("/_control/reset").raise_for_status()
        held.join(timeout=10)
    assert time.monotonic() - started < 10
    assert len(items(answers[0])) > 0


def test_scripted_synthetic_items(client: httpx.Client) -> None:
    script(client, {"items": 25})
    rows = items(client.get(USAGE, params={"granularity": "week"}))  # parameters are ignored
    assert len(rows) == 25
    keys = [
        "time_bucket",
        "cost",
        "count",
        "completion_tokens",
        "total_tokens",
        "model",
        "project.name",
    ]
    assert all(list(row) == keys for row in rows)
    assert [
        sum(r["time_bucket"] == b for r in rows) for b in sorted({r["time_bucket"] for r in rows})
    ] == [10, 10, 5]
    assert all(re.fullmatch(r"\d+\.\d{6}", row["cost"]) for row in rows)
    assert all(type(row["count"]) is int and row["count"] >= 1 for row in rows)
    assert all(row["total_tokens"] > row["completion_tokens"] for row in rows)


def test_stats_count_attempts_and_connections(client: httpx.Client, server: Kit) -> None:
    script(client, {"drop": True}, {"status": 500})
    with httpx.Client(base_url=server.url, timeout=5) as fresh:
        with pytest.raises(httpx.RemoteProtocolError):
            fresh.get(USAGE)
        assert fresh.get(USAGE).status_code == 500
        assert fresh.get(USAGE).status_code == 401
        assert fresh.get("/_control/stats").json() == {"requests": 3, "connections": 2}


def test_requests_are_recorded_with_auth_redacted(client: httpx.Client, server: Kit) -> None:
    client.get(USAGE, params={"fields": "total_tokens"}, headers={"X-Trace": "abc"})
    with httpx.Client(base_url=server.url, timeout=5) as anonymous:
        anonymous.get(USAGE)
    response = client.get("/_control/requests")
    assert API_KEY not in response.text
    first, second = response.json()
    assert (first["raw_query"], first["headers"]["x-trace"]) == ("fields=total_tokens", "abc")
    assert first["headers"]["authorization"] == "<redacted>"
    assert "authorization" not in second["headers"]
    assert second["raw_query"] == ""


def test_reset_clears_queue_and_records(client: httpx.Client) -> None:
    script(client, {"status": 500})
    client.get("/_control/stats")
    client.post("/_control/reset").raise_for_status()
    items(client.get(USAGE))
    assert client.get("/_control/stats").json()["requests"] == 1
    client.post("/_control/reset").raise_for_status()
    assert client.get("/_control/requests").json() == []


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"status": 500}, "expected a JSON array of action objects"),
        ([{"stauts": 500}], "unknown action key 'stauts' (known: status, json, body, "),
        ([{"delay_ms": -1}], "delay_ms: must be a number of milliseconds >= 0, got -1"),
        ([{"items": True}], "items: must be a count (an int >= 0), got True"),
        ([{"status": 700.0}], "status: must be an HTTP status from 200 to 999, got 700.0"),
        ([{"headers": {"Retry-After": 2}}], "headers: the value of 'Retry-After' must be a str"),
        ([{"drop": True, "status": 500}], "drop: closes the connection without answering"),
        ([{}, {"json": {}, "body": "x"}], "json and body: give one of them, not both"),
    ],
)
def test_bad_scripts_are_refused_whole(client: httpx.Client, payload: Any, error: str) -> None:
    refused = client.post("/_control/script", json=payload)
    assert refused.status_code == 400
    assert refused.json()["error"].startswith(error)
    assert client.get(USAGE).json() == client.get(USAGE).json()  # nothing was queued
    assert client.get("/_control/stats").json()["requests"] == 2


def test_other_paths_are_not_found_and_recorded(client: httpx.Client) -> None:
    script(client, {"status": 500})
    for method, path in (("GET", "/v2/analytics/other"), ("POST", USAGE), ("GET", "/_control/x")):
        missing = client.request(method, path)
        assert missing.status_code == 404
        assert missing.json() == {
            "type": "NotFoundError",
            "message": "The resource was not found",
            "detail": f"No route for {method} {path}",
        }
    recorded = client.get("/_control/requests").json()
    assert [(r["method"], r["path"]) for r in recorded] == [
        ("GET", "/v2/analytics/other"),
        ("POST", USAGE),
    ]
    assert client.get(USAGE).status_code == 500  # only usage requests use up the script


def test_concurrent_keepalive_connections_leave_no_threads(server: Kit) -> None:
    """200 connections open at once are all served and reused, and their threads end."""
    httpx.post(f"{server.url}/_control/reset").raise_for_status()
    pid = server.process.pid
    baseline = thread_count(pid)
    count = 200
    opened, resumed, finished = (threading.Barrier(count + 1, timeout=10) for _ in range(3))
    statuses: list[int] = []

    def one() -> None:
        connection = http.client.HTTPConnection(*server.address, timeout=10)
        headers = {"Authorization": f"Bearer {API_KEY}"}
        try:
            for barrier in (opened, resumed):
                connection.request("GET", USAGE + "?granularity=month", headers=headers)
                response = connection.getresponse()
                response.read()
                statuses.append(response.status)
                barrier.wait()
            connection.close()
            finished.wait()
        except threading.BrokenBarrierError:
            connection.close()  # the test body failed and reports why

    workers = [threading.Thread(target=one) for _ in range(count)]
    for worker in workers:
        worker.start()
    try:
        opened.wait()  # every connection is open and idle now
        busy = thread_count(pid)
        resumed.wait()
        finished.wait()
    except BaseException:
        for barrier in (opened, resumed, finished):
            barrier.abort()
        raise
    finally:
        for worker in workers:
            worker.join()
    assert busy >= count  # one thread per open connection
    assert statuses == [200] * count * 2
    stats = httpx.get(f"{server.url}/_control/stats").json()
    assert stats == {"requests": 2 * count, "connections": count + 1}  # + this one
    deadline = time.monotonic() + 5
    while thread_count(pid) > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert thread_count(pid) <= baseline
