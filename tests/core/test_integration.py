"""The client against the local Opper-compatible server, over real HTTP on loopback."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

import pytest

from opperai_usage import errors, models
from opperai_usage.utils import BackoffStrategy, RetryConfig
from tests.support import API_KEY
from tests.support.calls import Usage
from tests.support.servers import LocalServer

FAST = RetryConfig("backoff", BackoffStrategy(5, 20, 2.0, 5_000), retry_connection_errors=True)
UTC = dt.timezone.utc


def month_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, 1, tzinfo=UTC)


def test_seed_example_groups_by_model_and_project(local: LocalServer, usage: Usage) -> None:
    items = usage(
        server_url=local.url,
        call={
            "fields": ["completion_tokens", "total_tokens"],
            "group_by": ["model", "project.name"],
        },
    )
    assert items, "the server's data set always covers the current month"
    for item in items:
        assert isinstance(item, models.GetUsageResultItem)
        assert item.time_bucket.tzinfo is not None
        assert set(item.additional_properties) == {
            "completion_tokens",
            "total_tokens",
            "model",
            "project.name",
        }
        assert isinstance(item["total_tokens"], int)
        assert item["total_tokens"] >= item["completion_tokens"]
        Decimal(item.cost)
    # 15% of the server's events have no project tag: their groups come back with null.
    assert any(item["project.name"] is None for item in items)
    assert any(item["project.name"] == "alpha" for item in items)
    (recorded,) = local.requests()
    assert (
        recorded["raw_query"]
        == "fields=completion_tokens&fields=total_tokens&group_by=model&group_by=project.name"
    )
    assert recorded["headers"]["user-agent"].startswith("opperai-usage/")


def test_granularity_really_buckets(local: LocalServer, usage: Usage) -> None:
    today = dt.datetime.now(UTC).date()
    start = month_start(today) - dt.timedelta(days=31)
    window = {
        "from_date": start,
        "to_date": start + dt.timedelta(days=28),
        "fields": ["total_tokens"],
    }
    daily = usage(server_url=local.url, call={**window, "granularity": models.Granularity.DAY})
    hourly = usage(server_url=local.url, call={**window, "granularity": "hour"})
    assert len(hourly) > len(daily) > 1
    assert all(item.time_bucket.hour == 0 for item in daily)
    per_day: dict[dt.date, int] = defaultdict(int)
    for item in hourly:
        per_day[item.time_bucket.date()] += int(item["total_tokens"] or 0)
    assert per_day == {item.time_bucket.date(): item["total_tokens"] for item in daily}
    assert all(start <= item.time_bucket < start + dt.timedelta(days=28) for item in hourly)


def test_group_by_and_fields_sum_consistently(local: LocalServer, usage: Usage) -> None:
    today = dt.datetime.now(UTC).date()
    window = {
        "from_date": month_start(today) - dt.timedelta(days=40),
        "to_date": dt.datetime.now(UTC),
        "granularity": "year",
        "fields": ["total_tokens"],
    }
    (total,) = usage(server_url=local.url, call=window)
    by_model = usage(server_url=local.url, call={**window, "group_by": ["model"]})
    assert len({item["model"] for item in by_model}) >= 3
    assert sum(int(item["total_tokens"] or 0) for item in by_model) == total["total_tokens"]
    assert sum(Decimal(item.cost) for item in by_model) == pytest.approx(
        Decimal(total.cost), abs=Decimal("0.00001")
    )


def test_wrong_key_is_unauthorized(
    local: LocalServer, usage: Usage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPPER_HTTP_BEARER", raising=False)
    with pytest.raises(errors.UnauthorizedError) as raised:
        usage(server_url=local.url, http_bearer="")
    assert raised.value.status_code == 401
    assert raised.value.data.type == "UnauthorizedError"
    assert raised.value.request_id is not None
    assert raised.value.request_id.startswith("req_")


def test_server_side_validation_is_a_request_validation_error(
    local: LocalServer, usage: Usage
) -> None:
    detail = [{"type": "enum", "loc": ["query", "granularity"], "msg": "bad", "input": "week"}]
    body = {"type": "RequestValidationError", "message": "The request is invalid", "detail": detail}
    local.script({"status": 422, "json": body})
    with pytest.raises(errors.RequestValidationError) as raised:
        usage(server_url=local.url)
    assert raised.value.data.detail[0]["loc"] == ["query", "granularity"]


def test_inverted_range_is_a_bad_request(local: LocalServer, usage: Usage) -> None:
    with pytest.raises(errors.BadRequestError, match="The request is invalid"):
        usage(server_url=local.url, call={"from_date": "2026-11-10", "to_date": "2026-11-01"})


def test_transient_failures_are_retried_over_the_wire(local: LocalServer, usage: Usage) -> None:
    local.script({"status": 503, "body": "busy"}, {"drop": True}, {})
    assert usage(server_url=local.url, retry_config=FAST) is not None
    assert local.stats()["requests"] == 3


def test_key_is_sent_as_a_bearer_token(keyed: LocalServer, usage: Usage) -> None:
    """The server accepts `API_KEY` and nothing else: the call succeeds only if that very key
    went over the wire as `Authorization: Bearer <key>`; the key one character short, or
    one more, is refused. It records the header redacted, never the key."""
    keyed.reset()
    assert usage(server_url=keyed.url, http_bearer=API_KEY, call={"group_by": ["model"]})
    for wrong in (API_KEY[:-1], API_KEY + "0"):
        with pytest.raises(errors.UnauthorizedError):
            usage(server_url=keyed.url, http_bearer=wrong, retry_config=None)
    recorded = keyed.requests()
    assert len(recorded) == 3
    assert all(r["headers"]["authorization"] == "<redacted>" for r in recorded)
