"""`roll_up` and `fetch_granularity`: local calendar periods summed from UTC buckets equal a
brute-force sum of minute buckets per local period, against the testing kit on loopback, in
several zones, across both summer-time changes and a year end.

The API rounds each bucket's cost to the micro-dollar, so a period's cost summed from hours
and the same period summed from minutes differ by that rounding: a roll-up's cost is held
exactly equal to the sum of the buckets it was given, and to the minutes' sum within half a
micro-dollar per bucket; tokens are held equal to the minutes' sum exactly."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import opperai_usage
from opperai_usage import Opper, fetch_granularity, roll_up
from opperai_usage._generated.types import UNSET
from opperai_usage.errors import InvalidArgumentError
from opperai_usage.models import GetUsageResultItem
from opperai_usage.testing import UsageServer

UTC = dt.timezone.utc
#: Each kit holds the 60 days before its `now`.
SPRING = dt.datetime(2026, 4, 7, 12, tzinfo=UTC)  # US 03-08, EU 03-29, Chile back 04-05
SEPTEMBER = dt.datetime(2026, 9, 10, 12, tzinfo=UTC)  # Chile forward at midnight, 09-06
AUTUMN = dt.datetime(2026, 11, 6, 12, tzinfo=UTC)  # EU 2026-10-25, US 2026-11-01
YEAR_END = dt.datetime(2027, 1, 3, 12, tzinfo=UTC)
ZONES = ("Europe/Stockholm", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "UTC")
FIELDS = ["total_tokens"]
GROUP_BY = ["model"]
#: (kit, first local day, last local day + 1) per case: a few days, so minutes stay cheap.
RANGES = {
    "eu-spring": (SPRING, dt.date(2026, 3, 28), dt.date(2026, 3, 31)),
    "us-spring": (SPRING, dt.date(2026, 3, 7), dt.date(2026, 3, 10)),
    "eu-autumn": (AUTUMN, dt.date(2026, 10, 24), dt.date(2026, 10, 27)),
    "us-autumn": (AUTUMN, dt.date(2026, 10, 31), dt.date(2026, 11, 3)),
    "year-end": (YEAR_END, dt.date(2026, 12, 29), dt.date(2027, 1, 3)),
    # Chile changes its clocks at midnight: 2026-04-05 starts at 04:00 UTC after a 25-hour day,
    # and 2026-09-06 has no midnight (00:00 is 01:00) and 23 hours.
    "cl-autumn": (SPRING, dt.date(2026, 4, 4), dt.date(2026, 4, 7)),
    "cl-spring": (SEPTEMBER, dt.date(2026, 9, 5), dt.date(2026, 9, 8)),
}
CASES = [(case, zone) for case in RANGES if not case.startswith("cl-") for zone in ZONES]
CASES += [("cl-autumn", "America/Santiago"), ("cl-spring", "America/Santiago")]


@pytest.fixture(scope="module")
def kits() -> Iterator[dict[dt.datetime, UsageServer]]:
    with (
        UsageServer(now=SPRING) as spring,
        UsageServer(now=AUTUMN) as autumn,
        UsageServer(now=YEAR_END) as year_end,
        UsageServer(now=SEPTEMBER) as september,
    ):
        yield {SPRING: spring, AUTUMN: autumn, YEAR_END: year_end, SEPTEMBER: september}


def local(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=zone)


def period_of(moment: dt.datetime, period: str, zone: ZoneInfo) -> tuple[str, dt.date]:
    """The label and first local day of the period holding `moment`, worked out plainly."""
    day = moment.astimezone(zone).date()
    if period == "day":
        return day.isoformat(), day
    if period == "week":
        iso = day.isocalendar()
        return f"{iso[0]}-W{iso[1]:02d}", dt.date.fromisocalendar(iso[0], iso[1], 1)
    if period == "month":
        return day.strftime("%Y-%m"), day.replace(day=1)
    if period == "quarter":
        quarter = (day.month + 2) // 3
        return f"{day.year}-Q{quarter}", dt.date(day.year, 3 * quarter - 2, 1)
    return str(day.year), dt.date(day.year, 1, 1)


def brute_force(
    buckets: list[GetUsageResultItem],
    period: str,
    zone: ZoneInfo,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
) -> dict[tuple[str, str], tuple[Any, ...]]:
    """(label, model) -> (cost, total_tokens, count, incomplete, buckets), from the buckets
    (count `UNSET` when the kit sends none)."""
    sums: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [Decimal(0), 0, UNSET, False, 0])
    for item in buckets:
        name, first = period_of(item.time_bucket, period, zone)
        following = first + dt.timedelta(days=1)
        while period_of(local(following, zone), period, zone)[0] == name:
            following += dt.timedelta(days=1)
        period_start, period_end = local(first, zone), local(following, zone)
        entry = sums[name, item["model"]]
        entry[0] += Decimal(item.cost)
        entry[1] += item["total_tokens"]
        if isinstance(item.count, int):
            entry[2] = item.count + (0 if entry[2] is UNSET else entry[2])
        entry[3] = start > period_start or end < period_end or now < period_end
        entry[4] += 1
    return {key: tuple(values) for key, values in sums.items()}


def rolled(items: list[GetUsageResultItem]) -> dict[tuple[str, str], tuple[Any, ...]]:
    found: dict[tuple[str, str], tuple[Any, ...]] = {}
    for item in items:
        key = (item["period"], item["model"])
        assert key not in found, f"{key} twice"
        found[key] = (Decimal(item.cost), item["total_tokens"], item.count, item["incomplete"])
    return found


@pytest.mark.parametrize(("case", "zone_name"), CASES)
def test_local_days_equal_the_sum_of_their_minutes(
    kits: dict[dt.datetime, UsageServer], case: str, zone_name: str
) -> None:
    now, first, last = RANGES[case]
    zone = ZoneInfo(zone_name)
    start, end = local(first, zone), local(last, zone)
    periods = ("day", "week", "month", "quarter", "year") if case == "year-end" else ("day",)
    with Opper(api_key="test", server_url=kits[now].url) as opper:
        query: dict[str, Any] = {"from_date": start, "to_date": end, "fields": FIELDS}
        query["group_by"] = GROUP_BY
        minutes = list(opper.analytics.iter_usage(granularity="minute", **query))
        assert len({item.time_bucket for item in minutes}) > 100  # enough data to tell
        for period in periods:
            granularity = fetch_granularity(start, end, period, zone_name)
            in_utc = {"day": "day", "week": "day", "month": "month", "quarter": "month"}
            expected = {"UTC": in_utc.get(period, "year")}
            expected |= {"Asia/Kolkata": "minute", "Asia/Kathmandu": "minute"}
            assert granularity.value == expected.get(zone_name, "hour"), period
            buckets = list(opper.analytics.iter_usage(granularity=granularity, **query))
            result = roll_up(
                iter(buckets), period, zone_name, start=start, end=end, now=now,
                granularity=granularity, fields=FIELDS, group_by=GROUP_BY,
            )  # fmt: skip
            got = rolled(result)
            exact = brute_force(buckets, period, zone, start, end, now)
            assert got == {key: value[:4] for key, value in exact.items()}, period
            from_minutes = brute_force(minutes, period, zone, start, end, now)
            assert got.keys() == from_minutes.keys(), period
            for key, (cost, tokens, count, partial, buckets) in from_minutes.items():
                assert got[key][1:] == (tokens, count, partial), (period, key)
                rounding = Decimal("0.0000005") * (buckets + exact[key][4])
                assert abs(got[key][0] - cost) <= rounding, (period, key)
            assert [item.time_bucket for item in result] == sorted(i.time_bucket for i in result)


def test_summer_time_days_are_23_and_25_hours(kits: dict[dt.datetime, UsageServer]) -> None:
    """Stockholm's 2026-10-25 has 25 hours; its last hour's events belong to it, not to the
    26th (which a 24-hour day would give them to)."""
    zone = ZoneInfo("Europe/Stockholm")
    start, end = local(dt.date(2026, 10, 25), zone), local(dt.date(2026, 10, 27), zone)
    assert end.astimezone(UTC) - start.astimezone(UTC) == dt.timedelta(hours=49)
    with Opper(api_key="test", server_url=kits[AUTUMN].url) as opper:
        hours = opper.analytics.get_usage(from_date=start, to_date=end, granularity="hour")
    result = roll_up(hours, "day", zone, start=start, end=end, now=AUTUMN, fields=[], group_by=[])
    assert [item["period"] for item in result] == ["2026-10-25", "2026-10-26"]
    second = start.astimezone(UTC) + dt.timedelta(hours=25)
    assert [item.time_bucket for item in result] == [start, second]
    in_last_hour = [i for i in hours if i.time_bucket == second - dt.timedelta(hours=1)]
    assert in_last_hour, "the kit's data has usage in the 25th hour"
    first_day = [i for i in hours if i.time_bucket < second]
    assert Decimal(result[0].cost) == sum(Decimal(i.cost) for i in first_day)
    new_york = ZoneInfo("America/New_York")
    sunday, monday = (local(dt.date(2026, 3, d), new_york).astimezone(UTC) for d in (8, 9))
    assert monday - sunday == dt.timedelta(hours=23)


def test_incomplete_marks_the_ends_of_the_range_and_the_running_period(
    kits: dict[dt.datetime, UsageServer],
) -> None:
    start = dt.datetime(2026, 12, 29, 6, tzinfo=UTC)  # a Tuesday morning
    now = dt.datetime(2027, 1, 2, 15, tzinfo=UTC)
    with Opper(api_key="test", server_url=kits[YEAR_END].url) as opper:
        items = opper.analytics.get_usage(from_date=start, to_date=now, granularity="hour")
    days = roll_up(items, "day", "UTC", start=start, end=now, now=now, fields=[], group_by=[])
    assert [(i["period"], i["incomplete"]) for i in days] == [
        ("2026-12-29", True),
        ("2026-12-30", False),
        ("2026-12-31", False),
        ("2027-01-01", False),
        ("2027-01-02", True),
    ]
    # Without a range, only the clock: the day still running at `now`.
    running = roll_up(items, "day", "UTC", now=now, fields=[], group_by=[])
    assert [i["incomplete"] for i in running] == [False, False, False, False, True]
    weeks = roll_up(items, "week", "UTC", start=start, end=now, now=now, fields=[], group_by=[])
    assert [(i["period"], i["incomplete"]) for i in weeks] == [("2026-W53", True)]
    assert Decimal(weeks[0].cost) == sum(Decimal(i.cost) for i in items)


def test_labels() -> None:
    from opperai_usage._calendar import label

    day = dt.date(2027, 1, 1)  # a Friday, in ISO week 53 of 2026
    assert [label(day, p) for p in ("day", "week", "month", "quarter", "year")] == [
        "2027-01-01",
        "2026-W53",
        "2027-01",
        "2027-Q1",
        "2027",
    ]
    assert label(dt.date(2026, 11, 2), "week") == "2026-W45"
    assert label(dt.date(2026, 11, 2), "quarter") == "2026-Q4"


def test_bad_arguments_are_refused_naming_them() -> None:
    start = dt.datetime(2026, 11, 1, tzinfo=UTC)
    end = dt.datetime(2026, 11, 3, tzinfo=UTC)
    with pytest.raises(InvalidArgumentError, match="'Mars/Olympus' is not a time zone") as bad:
        roll_up([], "day", "Mars/Olympus")
    assert bad.value.parameter == "tz"
    with pytest.raises(InvalidArgumentError, match="period must be one of") as bad:
        roll_up([], "fortnight")
    assert bad.value.parameter == "period"
    with pytest.raises(InvalidArgumentError, match="start must be an aware datetime"):
        fetch_granularity(start.replace(tzinfo=None), end)
    day_bucket = GetUsageResultItem(time_bucket=start, cost="1.5")
    with pytest.raises(InvalidArgumentError, match="spans two days in Europe/Stockholm") as bad:
        roll_up([day_bucket], "day", "Europe/Stockholm", granularity="day")
    assert bad.value.parameter == "granularity"
    assert roll_up([day_bucket], "day", "UTC", granularity="day", now=end)[0].cost == "1.5"
    with pytest.raises(InvalidArgumentError, match="granularity must be one of") as bad:
        roll_up([day_bucket], "day", "UTC", granularity="week")
    assert bad.value.parameter == "granularity"


def test_quarters_in_utc_are_made_of_months() -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=UTC)
    end = dt.datetime(2027, 1, 1, tzinfo=UTC)
    assert fetch_granularity(start, end, "quarter").value == "month"
    assert fetch_granularity(start, end, "week").value == "day"
    assert fetch_granularity(start, end, "year").value == "year"
    assert fetch_granularity(start, end, "month", "Asia/Kathmandu").value == "minute"
    assert "roll_up" in opperai_usage.__all__


def test_dataframes_carry_the_period_and_incomplete_columns(
    kits: dict[dt.datetime, UsageServer],
) -> None:
    start = dt.datetime(2026, 12, 30, 12, tzinfo=UTC)
    with Opper(api_key="test", server_url=kits[YEAR_END].url) as opper:
        items = opper.analytics.get_usage(
            from_date=start, to_date=YEAR_END, granularity="hour", group_by=GROUP_BY
        )
    result = roll_up(items, "day", "America/New_York", start=start, end=YEAR_END, now=YEAR_END)
    frame = opperai_usage.to_pandas(result)
    assert list(frame.columns) == [
        "time_bucket", "period", "incomplete", "model", "count", "cost",
    ]  # fmt: skip
    assert (str(frame["period"].dtype), str(frame["incomplete"].dtype)) == ("string", "bool")
    assert list(frame["period"]) == [item["period"] for item in result]
    assert list(frame["incomplete"]) == [item["incomplete"] for item in result]
    polars = opperai_usage.to_polars(result)
    assert polars.columns == list(frame.columns)
    assert polars["incomplete"].to_list() == list(frame["incomplete"])


def test_any_json_tag_groups_and_nulls_come_last() -> None:
    """Tags are any JSON value (an object, a list, a number, null): each is a group of its own,
    kept as it was, and sums stay exact."""
    when = dt.datetime(2026, 11, 2, 10, tzinfo=UTC)
    tags: list[Any] = [None, {"a": 1}, ["x"], 7, "b", {"a": 1}, None]
    items = []
    for index, tag in enumerate(tags):
        item = GetUsageResultItem(time_bucket=when, cost=f"0.{index + 1}00001", count=index)
        item.additional_properties = {"team": tag, "total_tokens": index}
        items.append(item)
    result = roll_up(
        items, "month", "UTC", now=YEAR_END, group_by=["team"], fields=["total_tokens"]
    )
    assert [(i["team"], i.cost, i.count, i["total_tokens"]) for i in result] == [
        (7, "0.400001", 3, 3),
        (["x"], "0.300001", 2, 2),
        ("b", "0.500001", 4, 4),
        ({"a": 1}, "0.800002", 6, 6),
        (None, "0.800002", 6, 6),
    ]
    assert {i["period"] for i in result} == {"2026-11"}


def test_a_day_without_a_midnight_starts_when_the_clocks_jump() -> None:
    santiago = ZoneInfo("America/Santiago")
    start = local(dt.date(2026, 9, 5), santiago).astimezone(UTC)
    end = local(dt.date(2026, 9, 8), santiago).astimezone(UTC)
    hours = [
        GetUsageResultItem(time_bucket=start + dt.timedelta(hours=h), cost="1")
        for h in range((end - start) // dt.timedelta(hours=1))
    ]
    days = roll_up(hours, "day", santiago, start=start, end=end, now=SEPTEMBER)
    assert [(d["period"], d.time_bucket.astimezone(UTC), d.cost) for d in days] == [
        ("2026-09-05", dt.datetime(2026, 9, 5, 4, tzinfo=UTC), "24"),
        ("2026-09-06", dt.datetime(2026, 9, 6, 4, tzinfo=UTC), "23"),  # 00:00-04 is 01:00-03
        ("2026-09-07", dt.datetime(2026, 9, 7, 3, tzinfo=UTC), "24"),
    ]
