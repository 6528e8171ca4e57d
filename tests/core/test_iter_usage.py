"""`iter_usage` and `iter_usage_async`: a range fetched window by window gives the items one
`get_usage` over it gives, item for item, against the testing kit on loopback with a fixed
`now` (data from 60 days before it), across month and year ends and a leap day."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import itertools
import os
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opperai_usage import Opper, _iterate, _windows
from opperai_usage._windows import Window
from opperai_usage.errors import APIError, InvalidArgumentError, NotFoundError
from opperai_usage.models import GetUsageResultItem, Granularity
from opperai_usage.testing import UsageServer
from opperai_usage.testing._aggregate import current_month
from opperai_usage.utils import BackoffStrategy, RetryConfig
from tests.support import API_KEY
from tests.support.servers import LocalServer

UTC = dt.timezone.utc
#: Data from 2027-11-22 to 2028-01-20: two month ends and a year end.
YEAR_END = dt.datetime(2028, 1, 20, 12, tzinfo=UTC)
#: Data from 2028-01-11 to 2028-03-10: February 29th.
LEAP = dt.datetime(2028, 3, 10, 12, tzinfo=UTC)
QUERY: dict[str, Any] = {"group_by": ["model", "project.name"], "fields": ["total_tokens"]}
#: About how long a bucket is, for ranges of a given number of them.
BUCKET_MINUTES = {"minute": 1, "hour": 60, "day": 1_440, "month": 44_640, "year": 527_040}
NO_RETRIES: dict[str, Any] = {"retry_config": None}


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[dt.datetime, UsageServer]]:
    with UsageServer(now=YEAR_END) as year_end, UsageServer(now=LEAP) as leap:
        yield {YEAR_END: year_end, LEAP: leap}


@pytest.fixture
def kit(servers: dict[dt.datetime, UsageServer]) -> UsageServer:
    """The year-end server, with no script and no requests recorded."""
    servers[YEAR_END].reset()
    return servers[YEAR_END]


def client(server: UsageServer, **options: Any) -> Opper:
    return Opper(api_key=API_KEY, server_url=server.url, **options)


def asked(server: UsageServer) -> list[Window]:
    """Each request's dates, in the order they came."""
    dates = (request.query for request in server.requests)
    return [Window(utc(q["from_date"][0][:-1]), utc(q["to_date"][0][:-1])) for q in dates]


def sent_windows(server: UsageServer) -> list[Window]:
    """Each request's dates, in time order."""
    return sorted(asked(server))


def same(one: list[GetUsageResultItem], many: list[GetUsageResultItem]) -> None:
    """Item for item, and the costs to the last digit."""
    assert many == one
    assert [item.to_dict() for item in many] == [item.to_dict() for item in one]
    assert sum(Decimal(item.cost) for item in many) == sum(Decimal(item.cost) for item in one)


# -- the same items as one call


CASES = [  # granularity, from, to (both in UTC), window, the server
    ("minute", "2027-12-31T22:30:15", "2028-01-01T01:10:00", 17, YEAR_END),
    ("hour", "2027-11-29T10:30:00", "2028-01-02T05:00:00", 50, YEAR_END),
    ("hour", "2027-12-31T23:59:59.999999", "2028-01-01T00:00:00.000001", 1, YEAR_END),
    ("day", "2027-11-22T06:00:00", "2028-01-20T13:00:00", 4, YEAR_END),
    ("month", "2027-11-01T00:00:00", "2028-02-01T00:00:00", 1, YEAR_END),
    ("year", "2027-11-22T06:00:00", "2028-01-20T13:00:00", 1, YEAR_END),
    ("minute", "2028-02-28T23:50:00", "2028-03-01T00:10:00", 7, LEAP),
    ("hour", "2028-02-28T20:00:00", "2028-03-01T04:00:00", 5, LEAP),
    ("day", "2028-02-27T12:00:00", "2028-03-02T00:00:00", 1, LEAP),
    ("month", "2028-01-15T00:00:00", "2028-03-10T00:00:00", 1, LEAP),
    ("hour", "2028-02-29T10:30:00", "2028-02-29T13:15:00", 1_440, LEAP),  # shorter than one
]


@pytest.mark.parametrize(("granularity", "start", "end", "window", "now"), CASES)
def test_windows_give_one_calls_items(
    servers: dict[dt.datetime, UsageServer],
    granularity: str,
    start: str,
    end: str,
    window: int,
    now: dt.datetime,
) -> None:
    server = servers[now]
    server.reset()
    query = {**QUERY, "from_date": utc(start), "to_date": utc(end), "granularity": granularity}
    with client(server) as opper:
        one = opper.analytics.get_usage(**query)
        server.reset()
        windowed = opper.analytics.iter_usage(**query, window=window, concurrency=3)
        many = list(windowed)
    assert one or utc(end) - utc(start) < dt.timedelta(hours=1)
    same(one, many)
    # Whole buckets, each asked for once: the windows tile the range, cut on boundaries.
    sent = sent_windows(server)
    assert sent[0].start == utc(start)
    assert sent[-1].end == utc(end)
    unit = Granularity(granularity)
    for before, after in itertools.pairwise(sent):
        assert before.end == after.start
        assert after.start == _windows.start(_windows.index(after.start, unit), unit)
    assert len(sent) == windowed.windows == windowed.windows_done


def test_dates_in_any_form_are_the_same_instants(kit: UsageServer) -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    forms: list[dict[str, Any]] = [
        {"from_date": "2027-12-30T12:30:00+02:00", "to_date": dt.date(2028, 1, 2)},
        {"from_date": dt.datetime(2027, 12, 30, 10, 30), "to_date": "2028-01-02"},
        {"from_date": dt.datetime(2027, 12, 30, 12, 30, tzinfo=plus_two), "to_date": "2028-01-02"},
    ]
    with client(kit) as opper:
        for dates in forms:
            query = {**QUERY, **dates, "granularity": "hour"}
            one = opper.analytics.get_usage(**query)
            same(one, list(opper.analytics.iter_usage(**query, window=5)))
    assert one[0].time_bucket == utc("2027-12-30T10:00:00")  # the hour from 10:30 on


def test_without_dates_the_apis_default_range(local: LocalServer) -> None:
    """The current month as the API (and the kit, on this machine's clock) reads it, whole or
    from a given date on."""
    for now in (YEAR_END, LEAP, utc("2028-02-01T00:00:00"), utc("2027-12-31T23:59:59")):
        assert _windows.default_range(now) == Window(*current_month(now))
    month = _windows.default_range(dt.datetime.now(UTC))
    since: dict[str, Any] = {"from_date": month.start - dt.timedelta(days=9, hours=5, minutes=30)}
    for _ in range(3):  # again if the month ended meanwhile
        local.reset()
        with Opper(api_key=API_KEY, server_url=local.url) as opper:
            one = opper.analytics.get_usage(granularity="hour")
            many = list(opper.analytics.iter_usage(granularity="hour", window=100))
            one_since = opper.analytics.get_usage(**since)
            many_since = list(opper.analytics.iter_usage(**since, window=2))
        if _windows.default_range(dt.datetime.now(UTC)) == month:
            break
        month = _windows.default_range(dt.datetime.now(UTC))
    same(one, many)
    same(one_since, many_since)
    sent = [request["query"] for request in local.requests()]
    windows = [q for q in sent if q.get("granularity") == ["hour"] and "from_date" in q]
    assert len(windows) > 1  # a month by hour: 672 hours and more
    assert min(q["from_date"][0] for q in windows) == str(month).split(" to ")[0]
    assert max(q["to_date"][0] for q in windows) == str(month).split(" to ")[1]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    granularity=st.sampled_from(Granularity),
    offset=st.integers(0, 64 * 86_400 * 1_000_000),
    length=st.floats(0.01, 60),
    window=st.integers(1, 40),
    concurrency=st.integers(1, 4),
)
def test_any_range_gives_one_calls_items(
    kit: UsageServer,
    granularity: Granularity,
    offset: int,
    length: float,
    window: int,
    concurrency: int,
) -> None:
    """Ranges of up to 60 buckets starting anywhere in the data (or a little before it)."""
    start = utc("2027-11-20T00:00:00") + dt.timedelta(microseconds=offset)
    unit = dt.timedelta(minutes=1) * BUCKET_MINUTES[granularity.value]
    end = start + unit * length
    query = {**QUERY, "from_date": start, "to_date": end, "granularity": granularity}
    with client(kit) as opper:
        one = opper.analytics.get_usage(**query)
        many = list(opper.analytics.iter_usage(**query, window=window, concurrency=concurrency))
    same(one, many)


@settings(max_examples=300, deadline=None)
@given(
    granularity=st.sampled_from(Granularity),
    start=st.datetimes(dt.datetime(1, 1, 2), dt.datetime(9999, 12, 30), timezones=st.just(UTC)),
    seconds=st.floats(1e-6, 400 * 366 * 86_400),
    window=st.integers(1, 100_000),
)
def test_windows_tile_the_range_on_boundaries(
    granularity: Granularity, start: dt.datetime, seconds: float, window: int
) -> None:
    """The plan alone, to the ends of what a datetime holds: contiguous, whole buckets, none
    with more than `window` of them, as many as `count` says."""
    limit = dt.datetime.max.replace(tzinfo=UTC)
    end = start + min(dt.timedelta(seconds=seconds), limit - start)
    whole = Window(start, max(end, start + dt.timedelta(microseconds=1)))
    first, stop = _windows._span(whole, granularity)
    window = max(window, (stop - first) // 500)  # a few hundred windows at most
    total = _windows.count(whole, granularity, window)
    planned = []
    for part in _windows.plan(whole, granularity, window):
        planned.append(part)
        assert len(planned) <= total
        first, stop = _windows._span(part, granularity)
        assert stop - first <= window
    assert len(planned) == total
    assert planned[0].start == whole.start
    assert planned[-1].end == whole.end
    for before, after in itertools.pairwise(planned):
        assert before.end == after.start < after.end
        assert after.start == _windows.start(_windows.index(after.start, granularity), granularity)


@pytest.fixture
def tokyo() -> Iterator[None]:
    """The process's local time zone is Asia/Tokyo (UTC+9) meanwhile."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


@pytest.mark.usefixtures("tokyo")
def test_months_and_years_are_counted_in_utc_whatever_the_local_zone() -> None:
    """Where it is already the next month (or year) in the machine's zone, the buckets and the
    API's default range are still UTC's, as the API's are."""
    month_end = dt.datetime(2026, 11, 30, 23, 30, tzinfo=UTC)  # December 1st in Tokyo
    year_end = dt.datetime(2026, 12, 31, 23, 30, tzinfo=UTC)  # 2027 in Tokyo
    assert _windows.index(month_end, Granularity.MONTH) == 2026 * 12 + 10
    assert _windows.index(year_end, Granularity.YEAR) == 2026
    assert _windows.default_range(month_end) == Window(
        dt.datetime(2026, 11, 1, tzinfo=UTC), dt.datetime(2026, 11, 30, tzinfo=UTC)
    )


def test_every_granularity_of_the_spec_can_be_planned() -> None:
    assert [unit for unit in Granularity if not _windows.handles(unit)] == []


# -- windows the server cannot answer whole


HOURS = {**QUERY, "granularity": "hour", "from_date": utc("2027-12-31T20:00:00")}
FOUR_HOURS = {**HOURS, "to_date": utc("2028-01-01T00:00:00")}


def hours(*pairs: tuple[int, int]) -> list[Window]:
    """Windows as (first hour, end hour) after FOUR_HOURS' start."""
    base = FOUR_HOURS["from_date"]
    step = dt.timedelta(hours=1)
    return [Window(base + first * step, base + end * step) for first, end in pairs]


@pytest.mark.parametrize("answer", [{"status": 413}, {"status": 504}, {"delay": 30}])
def test_a_window_too_much_for_the_server_is_split_in_two(
    kit: UsageServer, answer: dict[str, Any]
) -> None:
    """413, 504 or a timeout: the window's two halves are asked for instead."""
    with client(kit, **NO_RETRIES) as opper:
        one = opper.analytics.get_usage(**FOUR_HOURS)
        kit.reset()
        kit.enqueue(**answer)
        many = list(opper.analytics.iter_usage(**FOUR_HOURS, concurrency=1, timeout_ms=1_000))
    same(one, many)
    assert asked(kit) == hours((0, 4), (0, 2), (2, 4))


def test_halves_are_split_again(kit: UsageServer) -> None:
    with client(kit, **NO_RETRIES) as opper:
        one = opper.analytics.get_usage(**FOUR_HOURS)
        kit.reset()
        kit.enqueue(status=413)
        kit.enqueue(status=504)
        many = list(opper.analytics.iter_usage(**FOUR_HOURS, concurrency=1))
    same(one, many)
    assert asked(kit) == hours((0, 4), (0, 2), (0, 1), (1, 2), (2, 4))


@pytest.mark.parametrize("method", ["iter_usage", "iter_usage_async"])
def test_both_halves_are_split_again(kit: UsageServer, method: str) -> None:
    kit.enqueue(status=413)  # (0, 4)
    kit.enqueue(json=[])  # (0, 2)
    kit.enqueue(status=413)  # (2, 4): split again, in hours
    with client(kit, **NO_RETRIES) as opper:
        query = {**FOUR_HOURS, "concurrency": 1}
        if method == "iter_usage":
            items = list(opper.analytics.iter_usage(**query))
        else:
            items = run_async("asyncio", opper, query)
    assert asked(kit) == hours((0, 4), (0, 2), (2, 4), (2, 3), (3, 4))
    assert {item.time_bucket for item in items} == {w.start for w in hours((2, 3), (3, 4))}


def test_a_later_window_is_split_too(kit: UsageServer) -> None:
    kit.enqueue(json=[])  # (0, 2), the first window
    kit.enqueue(status=504)  # (2, 4), asked for once the first is read
    with client(kit, **NO_RETRIES) as opper:
        list(opper.analytics.iter_usage(**FOUR_HOURS, window=2, concurrency=1))
    assert asked(kit) == hours((0, 2), (2, 4), (2, 3), (3, 4))


def test_another_error_of_a_long_window_is_not_split(kit: UsageServer) -> None:
    kit.enqueue(status=404, json={"type": "NotFoundError", "message": "gone", "detail": "x"})
    with client(kit, **NO_RETRIES) as opper, pytest.raises(NotFoundError) as raised:
        list(opper.analytics.iter_usage(**FOUR_HOURS))
    assert asked(kit) == hours((0, 4))
    assert raised.value.usage_window == hours((0, 4))[0]  # type: ignore[attr-defined]


def test_a_note_is_added_to_those_the_error_has(kit: UsageServer) -> None:
    """The window's note joins the notes an error already carries (as `add_note` does)."""

    def fetch(window: Window) -> list[GetUsageResultItem]:
        error = ValueError("from the fetch")
        error.__notes__ = ["an earlier note"]  # type: ignore[attr-defined]
        raise error

    (window,) = hours((0, 1))
    with pytest.raises(ValueError, match="from the fetch") as raised:
        _iterate.fetch_split(fetch, window, Granularity.HOUR)
    assert raised.value.__notes__ == [  # type: ignore[attr-defined]
        "an earlier note",
        "while fetching the usage window 2027-12-31T20:00:00Z to 2027-12-31T21:00:00Z "
        "(from_date to to_date)",
    ]


def test_down_to_one_bucket_and_then_raised_naming_it(kit: UsageServer) -> None:
    for _ in range(3):
        kit.enqueue(status=413)
    with client(kit, **NO_RETRIES) as opper, pytest.raises(APIError) as raised:
        list(opper.analytics.iter_usage(**{**HOURS, "to_date": utc("2027-12-31T23:00:00")}))
    assert type(raised.value) is APIError
    assert raised.value.status_code == 413
    (failed,) = hours((0, 1))
    assert asked(kit) == hours((0, 3), (0, 1))
    assert raised.value.usage_window == failed  # type: ignore[attr-defined]
    assert raised.value.__notes__ == [  # type: ignore[attr-defined]
        "while fetching the usage window 2027-12-31T20:00:00Z to 2027-12-31T21:00:00Z "
        "(from_date to to_date)"
    ]


def test_retries_come_first_then_the_split(kit: UsageServer) -> None:
    quick = RetryConfig("backoff", BackoffStrategy(10, 10, 1.0, 5_000), True, max_retries=1)
    with client(kit, retry_config=quick) as opper:
        one = opper.analytics.get_usage(**FOUR_HOURS)
        kit.reset()
        kit.enqueue(status=504)
        kit.enqueue(status=504)  # the retry: the window is split
        many = list(opper.analytics.iter_usage(**FOUR_HOURS, concurrency=1))
    same(one, many)
    assert asked(kit) == hours((0, 4), (0, 4), (0, 2), (2, 4))


def test_another_error_is_raised_as_it_is_naming_its_window(kit: UsageServer) -> None:
    kit.enqueue(json=[])  # the first window: nothing
    kit.enqueue(status=404, json={"type": "NotFoundError", "message": "gone", "detail": "x"})
    with client(kit, **NO_RETRIES) as opper:
        windowed = opper.analytics.iter_usage(**FOUR_HOURS, window=1, concurrency=1)
        with pytest.raises(NotFoundError) as raised:
            list(windowed)
    assert type(raised.value) is NotFoundError
    assert raised.value.usage_window == hours((1, 2))[0]  # type: ignore[attr-defined]
    assert "2027-12-31T21:00:00Z to 2027-12-31T22:00:00Z" in str(raised.getrepr())
    assert windowed.windows_done == 1
    assert len(kit.requests) == 2  # nothing after the failed window


# -- arguments, concurrency, stopping early


BAD: list[tuple[dict[str, Any], str]] = [
    ({"window": 0}, "window"),
    ({"window": -3}, "window"),
    ({"window": True}, "window"),
    ({"window": 2.5}, "window"),
    ({"window": "24"}, "window"),
    ({"concurrency": 0}, "concurrency"),
    ({"concurrency": None}, "concurrency"),
    ({"granularity": "week"}, "granularity"),
    ({"from_date": "last tuesday"}, "from_date"),
    ({"to_date": "0001-01-01T00:00:00+01:00"}, "to_date"),
    ({"group_by": "model"}, "group_by"),
    ({"timeout_ms": 0}, "timeout_ms"),
    ({"retries": 3}, "retries"),
    ({"http_headers": {"X-Bad": "\n"}}, "http_headers"),
]


@pytest.mark.parametrize(("bad", "parameter"), BAD)
def test_bad_arguments_are_refused_before_anything_is_sent(
    kit: UsageServer, bad: dict[str, Any], parameter: str
) -> None:
    with client(kit) as opper:
        with pytest.raises(InvalidArgumentError) as sync:
            opper.analytics.iter_usage(**{**FOUR_HOURS, **bad})
        with pytest.raises(InvalidArgumentError) as not_awaited:
            opper.analytics.iter_usage_async(**{**FOUR_HOURS, **bad})
    assert sync.value.parameter == not_awaited.value.parameter == parameter
    assert kit.requests == []


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ({"window": 0}, "window must be an int >= 1 (the most buckets one request may cover)"),
        ({"concurrency": 0}, "concurrency must be an int >= 1 (how many requests are in flight"),
    ],
)
def test_a_bad_count_says_what_it_counts(kit: UsageServer, bad: dict[str, Any], says: str) -> None:
    with client(kit) as opper, pytest.raises(InvalidArgumentError) as raised:
        opper.analytics.iter_usage(**{**FOUR_HOURS, **bad})
    assert str(raised.value).startswith(says)


@pytest.mark.parametrize("name", ["from_date", "to_date"])
def test_a_date_out_of_range_in_utc_is_refused_naming_it(kit: UsageServer, name: str) -> None:
    """Year 1's first minute at +01:00 is a valid date for `get_usage`, but before datetime's
    first moment in UTC, which the windows are planned in: refused, naming the argument."""
    early = dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    with client(kit) as opper, pytest.raises(InvalidArgumentError) as raised:
        opper.analytics.iter_usage(**{**FOUR_HOURS, name: early})
    assert raised.value.parameter == name
    assert str(raised.value) == f"{name} is out of range in UTC: {early!r}"
    assert kit.requests == []


def test_a_granularity_windows_cannot_cut_is_refused_naming_it(
    kit: UsageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were the spec to gain a granularity `_windows` cannot plan, it is refused, not guessed."""
    monkeypatch.setattr(_windows, "handles", lambda granularity: granularity != Granularity.HOUR)
    with client(kit) as opper, pytest.raises(InvalidArgumentError) as raised:
        opper.analytics.iter_usage(**FOUR_HOURS)
    assert raised.value.parameter == "granularity"
    assert str(raised.value) == "granularity 'hour' cannot be cut into windows yet"
    assert kit.requests == []


@pytest.mark.parametrize(
    "bad",
    [
        {"group_by": [f"tag-{n}" for n in range(5_000)]},
        {"server_url": "http://127.0.0.1:9/" + "v" * 65_400},  # valid, but not with a query
    ],
    ids=["query", "server_url"],
)
def test_a_url_too_long_for_any_window_is_refused_at_the_call(
    kit: UsageServer, bad: dict[str, Any]
) -> None:
    """The whole range's URL is the longest any window sends: checked before the first item."""
    with client(kit) as opper, pytest.raises(InvalidArgumentError, match="request URL"):
        opper.analytics.iter_usage(**{**FOUR_HOURS, **bad})
    assert kit.requests == []


@pytest.mark.parametrize("method", ["iter_usage", "iter_usage_async"])
def test_an_empty_range_is_one_request_for_the_api_to_refuse(kit: UsageServer, method: str) -> None:
    """from_date == to_date is sent as it is, as get_usage sends it: one window, one request."""
    empty = {**FOUR_HOURS, "to_date": FOUR_HOURS["from_date"]}
    kit.enqueue(json=[])
    with client(kit) as opper:
        windowed = getattr(opper.analytics, method)(**empty)
        assert windowed.windows == 1
        if method == "iter_usage":
            assert list(windowed) == []
        else:
            assert run_async("asyncio", opper, empty) == []
    assert asked(kit)[0] == Window(empty["from_date"], empty["from_date"])


def test_windows_are_in_flight_at_once() -> None:
    with UsageServer(now=YEAR_END) as server, client(server, **NO_RETRIES) as opper:
        server.enqueue(delay=30)  # the first window's answer, cut short by close()
        windowed = opper.analytics.iter_usage(**FOUR_HOURS, window=1, concurrency=4)
        failed: list[Exception] = []

        def read() -> None:
            try:
                list(windowed)
            except Exception as error:
                failed.append(error)

        reader = threading.Thread(target=read)
        reader.start()
        assert len(server.wait_for_requests(4, timeout=10)) == 4  # while the first waits
        server.close()
        reader.join(timeout=10)
    assert isinstance(failed[0], httpx.TransportError)
    # whichever window's request came first (the threads race) is the one that waited
    assert failed[0].usage_window in hours((0, 1), (1, 2), (2, 3), (3, 4))  # type: ignore[attr-defined]


def test_stopping_early_stops_fetching(kit: UsageServer) -> None:
    day = {**QUERY, "granularity": "hour", "from_date": utc("2028-01-01T00:00:00")}
    with client(kit) as opper:
        windowed = opper.analytics.iter_usage(
            **day, to_date=utc("2028-01-03T00:00:00"), window=1, concurrency=2
        )
        first = next(windowed)
        windowed.close()
        assert first.time_bucket == utc("2028-01-01T00:00:00")
        assert len(kit.requests) <= 3  # the first window, and the two in flight after it
        with pytest.raises(StopIteration):
            next(windowed)
    assert windowed.windows == 48


def test_no_more_windows_are_fetched_than_are_being_read() -> None:
    """While the caller holds the first window's items, only the next `concurrency` windows
    are asked for: answers never pile up ahead of the reader. (A server of its own: no
    request of another test's windows can reach it.)"""
    before = set(threading.enumerate())
    with UsageServer(now=YEAR_END) as kit, client(kit) as opper:
        windowed = opper.analytics.iter_usage(**FOUR_HOURS, window=1, concurrency=1)
        next(windowed)
        kit.wait_for_requests(2)
        with pytest.raises(TimeoutError):
            kit.wait_for_requests(3, timeout=0.3)
        started = {t.name for t in threading.enumerate() if t not in before}
        windowed.close()
    # the window threads are named, for a reader of thread dumps
    assert any(name.startswith("opperai_usage-window_") for name in started), started


def test_closing_does_not_wait_for_a_window_in_flight(kit: UsageServer) -> None:
    """The caller stops while the next window's answer is on its way: close() returns at
    once, leaving that request to end within its own time budget."""
    (first,) = hours((0, 1))
    kit.enqueue(json=[{"time_bucket": "2027-12-31T20:00:00Z", "cost": "0.1", "count": 1}])
    kit.enqueue(delay=10)  # (1, 2)
    with client(kit, **NO_RETRIES) as opper:
        windowed = opper.analytics.iter_usage(**FOUR_HOURS, window=1, concurrency=1)
        assert next(windowed).time_bucket == first.start
        kit.wait_for_requests(2)
        started = time.monotonic()
        windowed.close()
        assert time.monotonic() - started < 2


# -- async


def run_async(backend: str, opper: Opper, query: dict[str, Any]) -> list[GetUsageResultItem]:
    async def collect() -> list[GetUsageResultItem]:
        return [item async for item in opper.analytics.iter_usage_async(**query)]

    return anyio.run(collect, backend=backend)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_async_windows_give_one_calls_items(kit: UsageServer, backend: str) -> None:
    query = {**QUERY, "granularity": "hour", "from_date": utc("2027-12-30T10:30:00")}
    query |= {"to_date": utc("2028-01-02T00:00:00")}
    with client(kit) as opper:
        one = opper.analytics.get_usage(**query)
        windowed = opper.analytics.iter_usage_async(**query, window=7, concurrency=3)

        async def collect() -> list[GetUsageResultItem]:
            return [item async for item in windowed]

        many = anyio.run(collect, backend=backend)
    same(one, many)
    assert windowed.windows == windowed.windows_done == 9  # 62 hour buckets, 7 at a time


def test_async_splits_and_names_the_failed_window(kit: UsageServer) -> None:
    with client(kit, **NO_RETRIES) as opper:
        one = opper.analytics.get_usage(**FOUR_HOURS)
        kit.reset()
        kit.enqueue(status=413)
        kit.enqueue(status=504)
        many = run_async("asyncio", opper, {**FOUR_HOURS, "concurrency": 1})
        same(one, many)
        assert asked(kit) == hours((0, 4), (0, 2), (0, 1), (1, 2), (2, 4))
        kit.reset()
        kit.enqueue(status=500)
        with pytest.raises(APIError) as raised:
            run_async("asyncio", opper, {**FOUR_HOURS, "window": 2, "concurrency": 1})
    assert raised.value.status_code == 500
    assert raised.value.usage_window == hours((0, 2))[0]  # type: ignore[attr-defined]


def test_async_stopping_early_leaves_nothing_running(kit: UsageServer) -> None:
    async def first_item(opper: Opper) -> tuple[GetUsageResultItem, int]:
        windowed = opper.analytics.iter_usage_async(**FOUR_HOURS, window=1, concurrency=2)
        item = await windowed.__anext__()
        await windowed.aclose()
        return item, windowed.windows_done

    with client(kit) as opper:
        item, done = asyncio.run(first_item(opper))
    assert (item.time_bucket, done) == (FOUR_HOURS["from_date"], 1)
    assert len(kit.requests) == 2  # one wave


@pytest.mark.parametrize("method", ["iter_usage", "iter_usage_async"])
def test_the_same_arguments_as_get_usage_and_two_more(method: str) -> None:
    analytics = Opper(api_key=API_KEY).analytics
    arguments = inspect.signature(getattr(analytics, method)).parameters
    one_call = inspect.signature(analytics.get_usage).parameters
    assert set(arguments) == {*one_call, "window", "concurrency"}
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in arguments.values())
