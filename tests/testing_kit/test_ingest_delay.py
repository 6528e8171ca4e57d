"""Late events and a movable `now`: `UsageServer(ingest_delay=...)` and `--ingest-delay` show
each event a seeded time after it happened, up to the delay; `server.now` and
`POST /_control/now` move the moment the server answers at. Over HTTP on loopback, the kit
in this process and as a process of its own.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from opperai_usage.testing import UsageServer
from tests.support.net import TLS
from tests.support.servers import Kit, LocalServer, start_kit

UTC = timezone.utc
USAGE = "/v2/analytics/usage"
AUTH = {"Authorization": "Bearer test"}
PROG = "python -m opperai_usage.testing"
NOW = datetime(2026, 11, 15, 12, tzinfo=UTC)
DELAY = timedelta(hours=6)
#: The last two days up to a day after NOW, by hour and model: where late events show.
RECENT = {
    "from_date": "2026-11-13T12:00:00Z",
    "to_date": "2026-11-16T12:00:00Z",
    "granularity": "hour",
    "group_by": "model",
    "fields": "total_tokens",
}


def usage(base_url: str, **params: Any) -> list[dict[str, Any]]:
    with httpx.Client(base_url=base_url, headers=AUTH, timeout=30, verify=TLS) as http:
        answer = http.get(USAGE, params=params)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()
    return items


def counts(items: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """Events per (bucket, model)."""
    return Counter({(item["time_bucket"], item["model"]): item["count"] for item in items})


def before(items: list[dict[str, Any]], moment: datetime) -> list[dict[str, Any]]:
    """The items of the hours that end by `moment`."""
    return [item for item in items if item["time_bucket"] < moment.strftime("%Y-%m-%dT%H")]


def stop(kit: Kit) -> None:
    kit.process.send_signal(signal.SIGTERM)
    out, err = kit.process.communicate(timeout=10)
    assert (kit.process.returncode, out) == (0, "")
    assert "Traceback" not in err, err


def test_events_arrive_late_never_early_and_within_the_delay() -> None:
    with (
        UsageServer(seed=5, now=NOW) as on_time,
        UsageServer(seed=5, now=NOW, ingest_delay=DELAY) as late,
    ):
        arrived = usage(late.base_url, **RECENT)
        happened = usage(on_time.base_url, **RECENT)
        # older than the delay: everything has arrived
        assert before(arrived, NOW - DELAY) == before(happened, NOW - DELAY)
        # within it, some events have not, and none arrived before it happened
        assert counts(arrived) < counts(happened)
        assert sum(counts(arrived).values()) < sum(counts(happened).values())
        seen = counts(arrived)
        for hours in range(1, 8):
            moment = NOW + timedelta(hours=hours)
            on_time.now = late.now = moment
            now_arrived = counts(usage(late.base_url, **RECENT))
            assert max(key[0] for key in now_arrived) < (moment + timedelta(hours=1)).isoformat()
            assert now_arrived <= counts(usage(on_time.base_url, **RECENT)), moment
            assert seen <= now_arrived, moment  # what had arrived stays; more arrives
            seen = now_arrived
            if hours == 6:  # every event that happened by NOW has arrived by NOW + DELAY
                assert before(usage(late.base_url, **RECENT), NOW) == before(happened, NOW)
        assert seen > counts(arrived)


def test_late_events_are_the_same_for_a_seed_and_now() -> None:
    with (
        UsageServer(seed=5, now=NOW, ingest_delay=DELAY) as one,
        UsageServer(seed=5, now=NOW + timedelta(hours=3), ingest_delay=DELAY) as later,
        UsageServer(seed=6, now=NOW, ingest_delay=DELAY) as other,
        UsageServer(seed=5, now=NOW, ingest_delay=DELAY / 2) as shorter,
    ):
        first = usage(one.base_url, **RECENT)
        assert usage(one.base_url, **RECENT) == first
        assert usage(other.base_url, **RECENT) != first
        assert counts(usage(shorter.base_url, **RECENT)) > counts(first)
        one.now = NOW + timedelta(hours=3)  # moved there, or started there: the same answers
        assert usage(one.base_url, **RECENT) == usage(later.base_url, **RECENT) != first
        one.now = NOW  # and back
        assert usage(one.base_url, **RECENT) == first


def test_no_delay_is_the_default_and_a_wrong_one_is_refused() -> None:
    with (
        UsageServer(seed=5, now=NOW) as default,
        UsageServer(seed=5, now=NOW, ingest_delay=timedelta(0)) as none,
    ):
        assert usage(default.base_url, **RECENT) == usage(none.base_url, **RECENT)
    with pytest.raises(TypeError, match=r"^ingest_delay: must be a timedelta, got int$"):
        UsageServer(ingest_delay=6)  # type: ignore[arg-type]
    for wrong in (timedelta(seconds=-1), timedelta(days=366)):
        with pytest.raises(ValueError, match=r"^ingest_delay: must be from 0 to 365 days, got "):
            UsageServer(ingest_delay=wrong)


def test_now_is_read_and_moved_in_python() -> None:
    with UsageServer(now=NOW.replace(tzinfo=None)) as server:  # naive is UTC
        assert server.now == NOW
        server.now = datetime(2026, 11, 16, 9, tzinfo=timezone(timedelta(hours=9)))
        assert server.now == datetime(2026, 11, 16, 0, tzinfo=UTC)
        assert server.now.tzinfo == UTC
        with pytest.raises(TypeError, match=r"^now: must be a datetime, got str$"):
            server.now = "2026-11-16"  # type: ignore[assignment]
        with pytest.raises(ValueError, match=r"^now: must be in the years 2 to 9998 \(UTC\)"):
            server.now = datetime(9999, 1, 1, tzinfo=UTC)
        assert server.now == datetime(2026, 11, 16, 0, tzinfo=UTC)  # unchanged
        # a query without dates asks about now's month
        server.now = datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)
        month = usage(server.base_url, granularity="month")
        assert [(item["time_bucket"], item["count"]) for item in month] == [
            ("2026-12-01T00:00:00Z", 1)  # the first event of a day is at 00:00:00
        ]


def test_following_the_clock_now_is_the_end_of_the_day() -> None:
    """Without `now`, answers change at midnight only, so calls moments apart agree."""
    with UsageServer() as server:
        day = datetime.now(UTC).date()
        now = server.now
    if datetime.now(UTC).date() == day:  # not across a midnight
        assert now == datetime(day.year, day.month, day.day, 23, 59, 59, 999_999, tzinfo=UTC)


# -- as a process: --ingest-delay and /_control/now


def test_the_command_line_delay_and_moving_now_over_http() -> None:
    kit = start_kit("--seed", "5", "--now", "2026-11-15T12:00:00Z", "--ingest-delay", "6h")
    try:
        with (
            UsageServer(seed=5, now=NOW, ingest_delay=DELAY) as same,
            UsageServer(seed=5, now=NOW) as on_time,
        ):
            arrived = usage(kit.url, **RECENT)
            assert arrived == usage(same.base_url, **RECENT)
            assert arrived != usage(on_time.base_url, **RECENT)
            control = LocalServer(kit.url)
            assert control.now() == "2026-11-15T12:00:00Z"
            assert control.set_now("2026-11-15T20:00:00+02:00") == "2026-11-15T18:00:00Z"
            assert control.now() == "2026-11-15T18:00:00Z"
            same.now = NOW + DELAY
            later = usage(kit.url, **RECENT)
            assert later == usage(same.base_url, **RECENT)
            assert counts(later) > counts(arrived)
    finally:
        stop(kit)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"now": "yesterday"}, "now: not a date or time: 'yesterday' (input is too short)"),
        ({"now": "9999-12-31T00:00:00Z"}, "now: must be in the years 2 to 9998 (UTC), got 9999"),
        ({"now": 1700000000}, 'expected {"now": "<ISO 8601 date and time>"}'),
        ({"now": "2026-11-15", "then": 1}, 'expected {"now": "<ISO 8601 date and time>"}'),
        (["2026-11-15"], 'expected {"now": "<ISO 8601 date and time>"}'),
        (None, 'expected {"now": "<ISO 8601 date and time>"}'),
    ],
)
def test_a_wrong_now_is_refused_and_changes_nothing(body: Any, error: str) -> None:
    with UsageServer(now=NOW) as server, httpx.Client(base_url=server.base_url) as control:
        refused = control.post("/_control/now", json=body)
        assert refused.status_code == 400
        assert refused.json()["error"].startswith(error)
        assert server.now == NOW
        not_json = control.post(
            "/_control/now", content=b"{", headers={"Content-Type": "application/json"}
        )
        assert not_json.status_code == 400
        assert server.now == NOW


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("6", "must be a count and a unit, s, m, h or d, such as 90m or 6h, not '6'"),
        ("6x", "must be a count and a unit, s, m, h or d, such as 90m or 6h, not '6x'"),
        ("-1h", "must be a count and a unit, s, m, h or d, such as 90m or 6h, not '-1h'"),
        ("1.5h", "must be a count and a unit, s, m, h or d, such as 90m or 6h, not '1.5h'"),
        ("366d", "must be at most 365d, not '366d'"),
        ("9000h", "must be at most 365d, not '9000h'"),
    ],
)
def test_a_wrong_ingest_delay_exits_2_naming_it(value: str, error: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "opperai_usage.testing", f"--ingest-delay={value}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines()[-1] == f"{PROG}: error: argument --ingest-delay: {error}"
