"""The kit's data set over time, through its server over HTTP on loopback: a function of the
seed and of event time, so moving `now` on only adds events and the past stays as it was;
every item's `count` is the number of its events; the custom tag `customer_id` is on about
70 % of the events, and the others group under null, as with Opper's API.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opperai_usage import Opper
from opperai_usage.testing import UsageServer
from tests.support import API_KEY
from tests.support.net import TLS

UTC = timezone.utc
USAGE = "/v2/analytics/usage"
NOW = datetime(2026, 11, 15, 12, 30, 15, tzinfo=UTC)
#: The first moment of a server started at NOW: 60 days back, that day included.
FIRST = datetime(2026, 9, 17, tzinfo=UTC)
WIDE = {"from_date": "2000-01-01T00:00:00Z", "to_date": "2100-01-01T00:00:00Z"}
TAGS = ["model", "project.name", "environment", "customer_id"]
FIELDS = ["prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens"]


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def usage(server: UsageServer, **params: Any) -> list[dict[str, Any]]:
    """One answer of the server, as JSON; it must be a 200."""
    with httpx.Client(base_url=server.base_url, timeout=30, verify=TLS) as http:
        answer = http.get(USAGE, params=params, headers={"Authorization": "Bearer test"})
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()
    return items


def counted(items: list[dict[str, Any]]) -> tuple[int, Decimal]:
    """Events and cost in all the items."""
    return sum(item["count"] for item in items), sum(
        (Decimal(i["cost"]) for i in items), Decimal(0)
    )


@pytest.fixture(scope="module")
def big() -> Iterator[UsageServer]:
    """A server with ten times the default events (50,000 over the 60 days up to NOW)."""
    with UsageServer(seed=21, now=NOW, events=50_000) as server:
        yield server


# -- a stable past


def test_moving_now_on_keeps_the_past_and_only_adds_events() -> None:
    queries: list[dict[str, Any]] = [
        {"granularity": "minute", "group_by": ["model"], "fields": ["total_tokens"]},
        {"granularity": "hour", "group_by": TAGS, "fields": FIELDS},
        {"granularity": "day", "group_by": ["customer_id"]},
        {"granularity": "month", "fields": ["cached_tokens"]},
    ]
    past = {"from_date": "2026-09-01T00:00:00Z", "to_date": iso(NOW)}
    with UsageServer(seed=3, now=NOW) as server:
        before = [usage(server, **past, **query) for query in queries]
        days_before = usage(server, **WIDE, granularity="day", group_by=["model"])
        server.now = NOW + timedelta(days=9, hours=3)
        assert server.now == NOW + timedelta(days=9, hours=3)
        assert [usage(server, **past, **query) for query in queries] == before
        days_after = usage(server, **WIDE, granularity="day", group_by=["model"])
    assert all(before)
    # the day of NOW grows, days after it appear; every earlier item is as it was
    kept = [item for item in days_after if item["time_bucket"] < "2026-11-15"]
    assert kept == [item for item in days_before if item["time_bucket"] < "2026-11-15"]
    assert days_before[0]["time_bucket"] == "2026-09-17T00:00:00Z"  # 60 days, NOW's included
    assert days_after[0] == days_before[0]
    assert days_after[-1]["time_bucket"] == "2026-11-24T00:00:00Z"
    grown = {(i["time_bucket"], i["model"]): i["count"] for i in days_after}
    assert all(grown[item["time_bucket"], item["model"]] >= item["count"] for item in days_before)
    assert counted(days_after)[0] > counted(days_before)[0]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(-50, 50),
    later=st.integers(1, 45 * 86_400),
    start=st.floats(0, 1, exclude_max=True),
    length=st.integers(1, 20 * 86_400),
    granularity=st.sampled_from(["minute", "hour", "day", "month", "year"]),
    group_by=st.lists(st.sampled_from(TAGS), max_size=2, unique=True),
    delay=st.sampled_from([timedelta(0), timedelta(hours=6)]),
)
def test_the_past_is_a_function_of_the_seed_and_time(
    seed: int,
    later: int,
    start: float,
    length: int,
    granularity: str,
    group_by: list[str],
    delay: timedelta,
) -> None:
    """A range that ends before `now` (less the ingest delay: all its events have arrived) is
    answered the same after `now` moves on by any amount, and by a server started at the
    later `now` (whose data starts later), over a range both hold."""
    moved = NOW + timedelta(seconds=later)
    first_later = datetime.combine(moved.date(), datetime.min.time(), UTC) - timedelta(days=59)
    arrived = NOW - delay
    begin = first_later + timedelta(seconds=int((arrived - first_later).total_seconds() * start))
    end = min(begin + timedelta(seconds=length), arrived)
    query = {"granularity": granularity, "group_by": group_by, "fields": ["total_tokens"]}
    query.update(from_date=iso(begin), to_date=iso(end))
    with (
        UsageServer(seed=seed, now=NOW, ingest_delay=delay) as server,
        UsageServer(seed=seed, now=moved, ingest_delay=delay) as fresh,
    ):
        before = usage(server, **query)
        server.now = moved
        assert usage(server, **query) == before
        assert usage(fresh, **query) == before


def test_servers_started_on_other_days_agree_on_the_days_both_hold() -> None:
    query = {"granularity": "hour", "group_by": TAGS, "fields": FIELDS}
    query.update(from_date="2026-10-20T00:00:00Z", to_date="2026-11-15T12:00:00Z")
    later = NOW + timedelta(days=25)
    with UsageServer(seed=9, now=NOW) as first, UsageServer(seed=9, now=later) as second:
        assert usage(first, **query) == usage(second, **query)
        days = {**WIDE, "granularity": "day"}
        assert usage(second, **days)[0]["time_bucket"] == "2026-10-12T00:00:00Z"
        first.now = later
        # the data starts 60 days before the day a server starts with, and stays there
        assert usage(first, **days)[25:] == usage(second, **days)


def test_another_seed_is_another_past() -> None:
    query = {**WIDE, "granularity": "day", "group_by": ["model"], "fields": ["total_tokens"]}
    with UsageServer(seed=1, now=NOW) as one, UsageServer(seed=2, now=NOW) as two:
        first, second = usage(one, **query), usage(two, **query)
    assert first != second
    assert [item["time_bucket"] for item in first][:1] == ["2026-09-17T00:00:00Z"]
    assert 0.8 < counted(first)[0] / counted(second)[0] < 1.25  # the same volume, roughly


def test_the_volume_and_its_spread_are_as_before() -> None:
    """About `events` events every 60 days, spread over them: the default 5,000, and ten
    times that with `events=50_000`, none with 0; every day has events, the first at
    00:00:00."""
    with UsageServer(seed=7, now=NOW) as server:
        days = usage(server, **WIDE, granularity="day")
        midnight = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
        server.now = midnight
        first_minute = usage(server, **{**WIDE, "from_date": iso(midnight)}, granularity="minute")
    assert len(days) == 60
    total = counted(days)[0]
    assert 4_500 < total * 60 / 59.52 < 5_600  # NOW's day is 52 % over
    assert min(item["count"] for item in days[:-1]) > 40
    assert [(item["time_bucket"], item["count"]) for item in first_minute] == [
        ("2026-11-15T00:00:00Z", 1)
    ]
    with UsageServer(seed=7, now=NOW, events=50_000) as dense:
        assert 9 * total < counted(usage(dense, **WIDE, granularity="year"))[0] < 11 * total
    with UsageServer(seed=7, now=NOW, events=0) as empty:
        assert usage(empty, **WIDE, granularity="year") == []


# -- count


def test_count_is_the_number_of_events_whatever_the_grouping(big: UsageServer) -> None:
    whole = usage(big, **WIDE, granularity="year")
    events, cost = counted(whole)
    assert events > 45_000
    groupings: list[dict[str, Any]] = [
        {"granularity": "minute", "group_by": TAGS, "fields": FIELDS},
        {"granularity": "hour", "group_by": ["customer_id"]},
        {"granularity": "day", "group_by": ["model", "project.name"]},
        {"granularity": "month", "group_by": ["unknown.tag"]},
    ]
    for grouping in groupings:
        items = usage(big, **WIDE, **grouping)
        assert all(type(item["count"]) is int and item["count"] >= 1 for item in items)
        assert sum(item["count"] for item in items) == events, grouping
        # each item's cost is rounded to the micro-dollar
        assert abs(counted(items)[1] - cost) <= Decimal("0.000001") * len(items)
    by_minute = usage(big, **WIDE, granularity="minute", group_by=TAGS)
    assert max(item["count"] for item in by_minute) < 10  # a minute and 4 tags: a few events


def test_count_adds_up_as_now_moves_on() -> None:
    """At midnight a day holds its first event only; moving `now` on, minute by minute, the
    day's count goes up by each new minute's count."""
    midnight = datetime(2026, 11, 15, tzinfo=UTC)
    query = {"granularity": "day", "from_date": "2026-11-15", "to_date": "2026-11-16"}
    minutes = {**query, "granularity": "minute", "fields": ["total_tokens"]}
    with UsageServer(seed=4, now=midnight) as server:
        (first,) = usage(server, **query)
        assert first["count"] == 1
        server.now = midnight + timedelta(hours=3)
        seen = usage(server, **minutes)
        counts = []
        for item in seen:
            bucket = datetime.fromisoformat(item["time_bucket"].replace("Z", "+00:00"))
            server.now = bucket + timedelta(seconds=59)
            (day,) = usage(server, **query)
            counts.append(day["count"])
    assert len(seen) > 5
    assert counts == [sum(item["count"] for item in seen[: i + 1]) for i in range(len(seen))]
    assert all(item["count"] >= 1 for item in seen)


def test_the_client_reads_count(big: UsageServer) -> None:
    with Opper(api_key=API_KEY, server_url=big.url) as opper:
        items = opper.analytics.get_usage(granularity="month", group_by=["model"])
    raw = usage(big, granularity="month", group_by=["model"])
    assert [item.to_dict()["count"] for item in items] == [item["count"] for item in raw]
    assert all(item.to_dict()["count"] > 0 for item in items)


def test_count_is_not_a_field_and_cost_in_fields_is_ignored(big: UsageServer) -> None:
    with httpx.Client(base_url=big.base_url, headers={"Authorization": "Bearer t"}) as http:
        refused = http.get(USAGE, params={"fields": ["total_tokens", "count"]})
        plain = http.get(USAGE, params={"fields": "total_tokens"}).json()
        with_cost = http.get(USAGE, params={"fields": ["cost", "total_tokens"]}).json()
    assert refused.status_code == 400
    assert refused.json() == {
        "type": "BadRequestError",
        "message": "The request is invalid",
        "detail": "count is always returned: it is not a field",
    }
    assert with_cost == plain
    assert list(plain[0]) == ["time_bucket", "cost", "count", "total_tokens"]


# -- customer_id


def test_customer_id_is_on_about_70_percent_of_events(big: UsageServer) -> None:
    items = usage(big, **WIDE, granularity="year", group_by=["customer_id"])
    events = sum(item["count"] for item in items)
    tagged = sum(item["count"] for item in items if item["customer_id"] is not None)
    assert 0.6 < tagged / events < 0.8
    untagged = [item for item in items if item["customer_id"] is None]
    assert len(untagged) == 1
    assert untagged[0]["count"] > 0
    assert Decimal(untagged[0]["cost"]) > 0
    assert all(isinstance(item["customer_id"], str) for item in items if item not in untagged)
    assert len(items) > 3


def test_untagged_usage_groups_under_null_like_other_tags(big: UsageServer) -> None:
    """Items whose events lack the tag carry it as null, through the client too."""
    with Opper(api_key=API_KEY, server_url=big.url) as opper:
        items = opper.analytics.get_usage(
            granularity="day", group_by=["customer_id", "project.name"]
        )
    assert items
    assert any(item["customer_id"] is None for item in items)
    assert any(item["project.name"] is None for item in items)
    assert any(item["customer_id"] == "acme" for item in items)
    keys = {(item.time_bucket, item["customer_id"], item["project.name"]) for item in items}
    assert len(keys) == len(items)  # one item per bucket and group, untagged included
