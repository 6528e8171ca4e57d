"""`opper-usage --tz ZONE --granularity day|week|month|quarter|year`, and week and quarter in
UTC, run as a subprocess against the testing kit (a process with a fixed `now`): local periods
with their label and incomplete marker in every format, the UTC buckets asked for, and bad
zones refused before anything is sent."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import pytest

from opperai_usage import Opper
from tests.support import API_KEY
from tests.support.command_line import run
from tests.support.fixed_kit import kit_at
from tests.support.servers import LocalServer

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 6, 12, tzinfo=UTC)  # data from 2026-09-08; EU clocks back 10-25
STOCKHOLM = ZoneInfo("Europe/Stockholm")
QUERY = ["--group-by", "model", "--field", "total_tokens"]


@pytest.fixture(scope="module")
def kit() -> Iterator[LocalServer]:
    with kit_at(NOW) as server:
        yield server


@pytest.fixture
def fresh(kit: LocalServer) -> LocalServer:
    kit.reset()
    return kit


def sent(kit: LocalServer) -> list[dict[str, list[str]]]:
    return [parse_qs(request["raw_query"]) for request in kit.requests()]


def local_days_from_hours(kit: LocalServer, start: dt.datetime, end: dt.datetime) -> Any:
    """(day, model) -> [cost, total_tokens], from the kit's hour buckets, by hand."""
    sums: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [Decimal(0), 0])
    with Opper(api_key=API_KEY, server_url=kit.url) as opper:
        hours = opper.analytics.get_usage(
            from_date=start, to_date=end, granularity="hour", group_by=["model"],
            fields=["total_tokens"],
        )  # fmt: skip
    for item in hours:
        entry = sums[item.time_bucket.astimezone(STOCKHOLM).date().isoformat(), item["model"]]
        entry[0] += Decimal(item.cost)
        entry[1] += item["total_tokens"]
    return {key: [str(cost), tokens] for key, (cost, tokens) in sums.items()}


def test_local_days_in_every_format(fresh: LocalServer, tmp_path: Path) -> None:
    """Stockholm's days across the change to winter time (2026-10-25 has 25 hours)."""
    base = ["--server-url", fresh.url, "--tz", "Europe/Stockholm", *QUERY]
    dates = ["--from", "2026-10-24", "--to", "2026-10-27T12:00"]  # local times
    as_json = run(*base, *dates, "--format", "json", "--html", str(tmp_path / "r.html"))
    assert (as_json.code, as_json.err) == (0, "")
    records = json.loads(as_json.out)
    assert list(records[0]) == [
        "time_bucket", "period", "incomplete", "model", "total_tokens", "count", "cost",
    ]  # fmt: skip
    start = dt.datetime(2026, 10, 24, tzinfo=STOCKHOLM)
    end = dt.datetime(2026, 10, 27, 12, tzinfo=STOCKHOLM)
    assert sent(fresh)[0]["from_date"] == ["2026-10-23T22:00:00Z"]  # local midnight, in UTC
    assert sent(fresh)[0]["to_date"] == ["2026-10-27T11:00:00Z"]
    assert sent(fresh)[0]["granularity"] == ["hour"]
    want = local_days_from_hours(fresh, start, end)
    assert {(r["period"], r["model"]): [r["cost"], r["total_tokens"]] for r in records} == want
    starts = {r["period"]: r["time_bucket"] for r in records}
    assert starts == {
        "2026-10-24": "2026-10-23T22:00:00Z",
        "2026-10-25": "2026-10-24T22:00:00Z",
        "2026-10-26": "2026-10-25T23:00:00Z",  # 25 hours later
        "2026-10-27": "2026-10-26T23:00:00Z",
    }
    incomplete = {r["period"]: r["incomplete"] for r in records}
    assert incomplete == {"2026-10-24": False, "2026-10-25": False, "2026-10-26": False,
                          "2026-10-27": True}  # fmt: skip
    as_csv = run(*base, *dates, "--format", "csv")
    rows = list(csv.reader(io.StringIO(as_csv.out, newline="")))
    assert rows[0] == [
        "time_bucket", "period", "incomplete", "model", "total_tokens", "count", "cost",
    ]  # fmt: skip
    assert [row[1:3] for row in rows[1:]] == [[r["period"], str(r["incomplete"])] for r in records]
    table = run(*base, *dates)
    header, _, *body, _, totals = table.out.splitlines()
    assert header.split() == ["time_bucket", "period", "incomplete", "model", "total_tokens",
                              "count", "cost"]  # fmt: skip
    assert body[-1].split()[1:3] == ["2026-10-27", "True"]
    total = sum((Decimal(r["cost"]) for r in records), Decimal(0))
    tokens = sum(r["total_tokens"] for r in records)
    counts = sum(r["count"] for r in records if r["count"] is not None)
    assert totals.split() == ["total,", f"{len(records)}", "items", str(tokens), str(counts),
                              str(total)]  # fmt: skip
    report = (tmp_path / "r.html").read_text()
    assert "<th>period</th><th>incomplete</th>" in report
    assert "(Europe/Stockholm)" in report
    assert "<th>periods</th><td><code>day in Europe/Stockholm</code></td>" in report


def test_half_hour_zones_fetch_minutes_and_weeks_start_on_monday(fresh: LocalServer) -> None:
    result = run(
        "--server-url", fresh.url, "--tz", "Asia/Kolkata", "--granularity", "week",
        "--from", "2026-10-19", "--to", "2026-11-02", "--format", "jsonl",
    )  # fmt: skip
    assert (result.code, result.err) == (0, "")
    records = [json.loads(line) for line in result.out.splitlines()]
    assert [(r["period"], r["time_bucket"], r["incomplete"]) for r in records] == [
        ("2026-W43", "2026-10-18T18:30:00Z", False),  # Monday 2026-10-19, 00:00 in Kolkata
        ("2026-W44", "2026-10-25T18:30:00Z", False),
    ]
    assert {query["granularity"][0] for query in sent(fresh)} == {"minute"}


def test_week_and_quarter_work_without_tz_in_utc(fresh: LocalServer) -> None:
    quarters = run("--server-url", fresh.url, "--granularity", "quarter", "--from", "2026-09-01",
                   "--to", "2026-11-06", "--format", "json")  # fmt: skip
    weeks = run("--server-url", fresh.url, "--granularity", "week", "--month", "2026-10",
                "--format", "json")  # fmt: skip
    assert (quarters.code, weeks.code, quarters.err, weeks.err) == (0, 0, "", "")
    assert [query["granularity"] for query in sent(fresh)] == [["month"], ["day"]]
    assert [(r["period"], r["incomplete"]) for r in json.loads(quarters.out)] == [
        ("2026-Q3", True),
        ("2026-Q4", True),
    ]
    weeks_seen = [(r["period"], r["time_bucket"], r["incomplete"]) for r in json.loads(weeks.out)]
    assert weeks_seen[0] == ("2026-W40", "2026-09-28T00:00:00Z", True)  # began in September
    assert weeks_seen[-1] == ("2026-W44", "2026-10-26T00:00:00Z", True)  # ends in November
    assert all(not partial for _, _, partial in weeks_seen[1:-1])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tz", "Mars/Olympus"], "--tz: 'Mars/Olympus' is not a time zone"),
        (["--tz", "../../etc/passwd"], "--tz: '../../etc/passwd' is not a time zone"),
        (["--tz", "UTC", "--granularity", "hour"], "--tz takes --granularity day, week"),
        (["--tz", "UTC", "--from", "2026-11-01", "--to", "2026-10-01"], "the range is empty"),
        (["--tz", "UTC", "--from", "yesterday"], "--from must be an ISO 8601 date"),
        (
            ["--tz", "Europe/Amsterdam", "--from", "1930-01-01", "--to", "1930-01-03"],
            "--tz Europe/Amsterdam has an offset of seconds in this range",
        ),  # +00:19:32 then
    ],
)
def test_bad_zones_and_ranges_exit_2_before_any_request(
    fresh: LocalServer, args: list[str], message: str
) -> None:
    result = run("--server-url", fresh.url, *args)
    assert result.code == 2
    assert result.out == ""
    assert result.err.startswith(f"opper-usage: error: {message}")
    assert result.err.count("\n") == 1
    assert fresh.requests() == []
