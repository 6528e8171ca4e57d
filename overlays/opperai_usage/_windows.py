"""A long range cut into windows of whole time buckets, for `iter_usage`.

The API sums each bucket over the part of it inside the range asked for, so a bucket split
between two requests would come back as two items, and a bucket in two windows would be counted
twice. Windows therefore start and end on bucket boundaries (in UTC, where the API buckets),
except the range's own ends, which stay where the caller put them: a range from 10:30 at hour
granularity gets the 10:00 bucket's last half hour, as one request over the range would.

Buckets are numbered (`index`) so that a window is a run of numbers: planning, counting and
splitting are then integer arithmetic, with no calendar in sight but in `start` and `index`.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterator
from typing import NamedTuple

from .models import Granularity

UTC = dt.timezone.utc
_ORIGIN = dt.datetime(1, 1, 1, tzinfo=UTC)
#: Buckets of a fixed length. Months and years are counted by the calendar instead.
_FIXED = {
    Granularity.MINUTE: dt.timedelta(minutes=1),
    Granularity.HOUR: dt.timedelta(hours=1),
    Granularity.DAY: dt.timedelta(days=1),
}
_CALENDAR = (Granularity.MONTH, Granularity.YEAR)
#: The finest step a datetime takes: an exclusive end's last instant is `end - _TICK`.
_TICK = dt.timedelta(microseconds=1)


class Window(NamedTuple):
    """A half-open range `[start, end)` of aware UTC datetimes: one request's dates."""

    start: dt.datetime
    end: dt.datetime

    def __str__(self) -> str:
        return f"{_text(self.start)} to {_text(self.end)}"


def _text(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def handles(granularity: Granularity) -> bool:
    """Whether buckets of this granularity can be planned here (a new one in the spec would not
    be, and `test_iter_usage` says so)."""
    return granularity in _FIXED or granularity in _CALENDAR


def index(moment: dt.datetime, granularity: Granularity) -> int:
    """The number of the bucket that holds `moment` (aware), counted from year 1."""
    step = _FIXED.get(granularity)
    if step is not None:
        return (moment - _ORIGIN) // step
    moment = moment.astimezone(UTC)
    if granularity is Granularity.MONTH:
        return moment.year * 12 + moment.month - 1
    return moment.year


def start(number: int, granularity: Granularity) -> dt.datetime | None:
    """Where bucket `number` starts, or None past what a datetime holds (year 9999's end)."""
    step = _FIXED.get(granularity)
    try:
        if step is not None:
            return _ORIGIN + number * step
        if granularity is Granularity.MONTH:
            return dt.datetime(number // 12, number % 12 + 1, 1, tzinfo=UTC)
        return dt.datetime(number, 1, 1, tzinfo=UTC)
    except (OverflowError, ValueError):
        return None


def _span(window: Window, granularity: Granularity) -> tuple[int, int]:
    """The first and one past the last bucket the window touches."""
    return index(window.start, granularity), index(window.end - _TICK, granularity) + 1


def count(whole: Window, granularity: Granularity, size: int) -> int:
    """How many windows of at most `size` buckets `plan` cuts `whole` into."""
    if whole.start >= whole.end:
        return 1  # sent as it is, for the API to refuse
    first, stop = _span(whole, granularity)
    return -(-(stop - first) // size)


def plan(whole: Window, granularity: Granularity, size: int) -> Iterator[Window]:
    """`whole` in windows of at most `size` buckets, in time order, each cut on a bucket
    boundary; made as they are asked for, so a long range costs no memory up front."""
    if whole.start >= whole.end:
        yield whole
        return
    first, stop = _span(whole, granularity)
    lower = whole.start
    for number in range(first + size, stop + size, size):
        boundary = start(number, granularity) if number < stop else None
        upper = whole.end if boundary is None else boundary
        yield Window(lower, upper)
        lower = upper


def halves(window: Window, granularity: Granularity) -> tuple[Window, Window] | None:
    """The window cut in two on a bucket boundary, or None when it is a single bucket."""
    first, stop = _span(window, granularity)
    if stop - first < 2:
        return None
    middle = start((first + stop) // 2, granularity)
    assert middle is not None  # a bucket inside the window starts inside the datetime range
    return Window(window.start, middle), Window(middle, window.end)


def default_range(now: dt.datetime) -> Window:
    """The range the API reads when neither date is given, as its description states it: the
    first day of the current month (inclusive) to the last day of it (exclusive), 00:00 UTC."""
    now = now.astimezone(UTC)
    first = dt.datetime(now.year, now.month, 1, tzinfo=UTC)
    return Window(first, first.replace(day=calendar.monthrange(now.year, now.month)[1]))
