"""`live-contract`, offline: the local Opper-compatible server stands in for the API, and its
fault script makes it drift (`cost` as a number, an undocumented status, a missing
`time_bucket`). Its output and exit code are checked: through `main()` in this process, and
once as `nox -s live-contract`, a separate process, as a maintainer or CI runs it."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qsl

import pytest

from tests.support import API_KEY
from tests.support.net import closed_port_url
from tests.support.servers import LocalServer
from tests.support.toolrun import nox, tool

BUCKET = "2026-11-01T00:00:00Z"


def _check(local: LocalServer, **env: str) -> tuple[int, str, str]:
    run = tool("live_contract", "--server-url", local.url, env=env)
    assert API_KEY not in run.stdout + run.stderr
    return run.code, run.stdout, run.stderr


def _queries(local: LocalServer) -> list[list[tuple[str, str]]]:
    return [parse_qsl(r["raw_query"]) for r in local.requests()]


def test_conforming_answers_exit_0_after_the_fixed_set_of_valid_calls(local: LocalServer) -> None:
    code, out, err = _check(local, OPPER_API_KEY=API_KEY)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[-1] == f"{local.url}: 7 of 7 answers conform to openapi.yaml"
    assert all(line.startswith("ok     ") for line in lines[:-1])
    today = dt.datetime.now(dt.timezone.utc).date()
    this_month = today.replace(day=1)
    last_month = (this_month - dt.timedelta(days=1)).replace(day=1)
    assert _queries(local) == [
        [
            ("fields", "completion_tokens"),
            ("fields", "total_tokens"),
            ("group_by", "model"),
            ("group_by", "project.name"),
        ],
        [("granularity", "minute")],
        [("granularity", "hour")],
        [("granularity", "day")],
        [("granularity", "month")],
        [("granularity", "year")],
        [
            ("from_date", f"{last_month.isoformat()}T00:00:00Z"),
            ("to_date", f"{this_month.isoformat()}T00:00:00Z"),
            ("granularity", "day"),
        ],
    ]
    assert {r["headers"]["authorization"] for r in local.requests()} == {"<redacted>"}


def test_the_key_may_come_from_opper_http_bearer(local: LocalServer) -> None:
    code, _, err = _check(local, OPPER_HTTP_BEARER=API_KEY)
    assert (code, err) == (0, "")


def test_cost_as_a_number_is_drift_naming_the_field_and_value(local: LocalServer) -> None:
    items = [{"time_bucket": BUCKET, "cost": 0.0042, "model": "gpt-4o"}] * 3
    local.script({"json": items})
    code, out, _ = _check(local, OPPER_API_KEY=API_KEY)
    assert code == 1
    assert "DRIFT  the seed's query: 200\n" in out
    assert "       body[0].cost: 0.0042 is not of type 'string' (and 2 more like it)\n" in out
    assert out.endswith(": 6 of 7 answers conform to openapi.yaml\n")


def test_an_undocumented_status_is_drift(local: LocalServer) -> None:
    error = {"type": "ImATeapot", "message": "no", "detail": None}
    local.script({}, {"status": 418, "json": error})
    code, out, _ = _check(local, OPPER_API_KEY=API_KEY)
    assert code == 1
    assert "DRIFT  granularity=minute: 418\n" in out
    assert (
        "       status: 418, expected 200 for a valid call (undocumented: openapi.yaml lists "
        "200, 400, 401, 404, 422, default)"
    ) in out


def test_a_missing_time_bucket_is_drift(local: LocalServer) -> None:
    local.script({}, {}, {"json": [{"time_bucket": BUCKET, "cost": "1"}, {"cost": "0.5"}]})
    code, out, _ = _check(local, OPPER_API_KEY=API_KEY)
    assert code == 1
    assert "DRIFT  granularity=hour: 200\n" in out
    assert '       body[1].time_bucket: missing, and required (the item: {"cost": "0.5"})' in out


def test_a_body_of_another_content_type_is_drift(local: LocalServer) -> None:
    local.script({"status": 200, "body": "<html>maintenance</html>", "content_type": "text/html"})
    code, out, _ = _check(local, OPPER_API_KEY=API_KEY)
    assert code == 1
    assert "content-type: Content for the following mimetype not found: text/html" in out


def test_a_transient_answer_is_tried_again(local: LocalServer) -> None:
    local.script({"status": 503, "body": "busy"})
    code, out, _ = _check(local, OPPER_API_KEY=API_KEY)
    assert code == 0, out
    assert local.stats()["requests"] == 8


@pytest.mark.parametrize("env", [{}, {"OPPER_API_KEY": "  "}])
def test_without_a_key_exit_2_before_any_request(local: LocalServer, env: dict[str, str]) -> None:
    code, out, err = _check(local, **env)
    assert (code, out) == (2, "")
    assert err == "live-contract: no API key: set OPPER_API_KEY (or OPPER_HTTP_BEARER)\n"
    assert local.stats()["requests"] == 0


def test_a_refused_key_exit_2(local: LocalServer) -> None:
    refused = {"type": "UnauthorizedError", "message": "The request is unauthorized", "detail": ""}
    local.script({"status": 401, "json": refused})
    code, _, err = _check(local, OPPER_API_KEY="wrong")
    assert code == 2
    assert err == "live-contract: the API refused the key (401): check OPPER_API_KEY\n"


def test_no_connection_exit_2() -> None:
    url = closed_port_url().removesuffix("/openapi.json")
    run = tool("live_contract", "--server-url", url, env={"OPPER_API_KEY": API_KEY})
    assert run.code == 2
    assert run.stderr.startswith(f"live-contract: cannot reach {url}/analytics/usage: ConnectError")
    assert run.stderr.count("\n") == 1


def test_nox_session_end_to_end(local: LocalServer) -> None:
    """`nox -s live-contract`, as the scheduled CI job runs it."""
    conform = nox("live-contract", "--server-url", local.url, env={"OPPER_API_KEY": API_KEY})
    assert conform.code == 0, conform.stderr
    assert conform.stdout.endswith(": 7 of 7 answers conform to openapi.yaml\n")
    local.script({"json": [{"time_bucket": BUCKET, "cost": 12}]})
    drift = nox("live-contract", "--server-url", local.url, env={"OPPER_API_KEY": API_KEY})
    assert drift.code == 1, drift.stderr
    assert "body[0].cost: 12 is not of type 'string'" in drift.stdout
    no_key = nox("live-contract", "--server-url", local.url)
    assert no_key.code == 2
    assert "live-contract: no API key: set OPPER_API_KEY" in no_key.stderr
    assert API_KEY not in conform.stdout + conform.stderr + drift.stdout + drift.stderr
