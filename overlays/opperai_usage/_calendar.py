"""Calendar roll-ups: UTC buckets summed into the days, ISO weeks, months, quarters or years of
a time zone's own calendar (`roll_up`), and which UTC buckets to fetch for them
(`fetch_granularity`).

The API buckets in UTC only. A local day in Stockholm is 23:00 to 23:00 UTC (22:00 in summer,
and 23 or 25 hours long on the days the clocks change); in Kolkata it starts at 18:30 UTC. So a
local period is summed from UTC buckets that each lie wholly inside it: hours where the zone's
period boundaries fall on whole hours, minutes where they do not (Asia/Kolkata, +05:30;
Asia/Kathmandu, +05:45), days, months or a year where they fall on those (UTC itself).

Labels are local dates: `2026-11-02` (day), `2026-W45` (ISO week, Monday to Sunday, in its ISO
year: 2027-01-01 is in `2026-W53`), `2026-11` (month), `2026-Q4` (quarter), `2026` (year).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from ._columns import (
    INCOMPLETE,
    PERIOD,
    columns_for,
    json_text,
    sum_costs,
    sum_numbers,
    value_text,
)
from ._generated.types import UNSET
from ._validation import InvalidArgumentError, invalid

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from .models import GetUsageResultItem, Granularity

Period = Literal["day", "week", "month", "quarter", "year"]
PERIODS: tuple[Period, ...] = ("day", "week", "month", "quarter", "year")
_UTC = dt.timezone.utc
_MIDNIGHT = dt.time()
_TICK = dt.timedelta(microseconds=1)


def zone(tz: str | dt.tzinfo) -> dt.tzinfo:
    """`tz` as a tzinfo: an IANA name (`Europe/Stockholm`, `UTC`) read with zoneinfo, or a
    tzinfo as it is. An unknown name raises `InvalidArgumentError` naming it."""
    if isinstance(tz, dt.tzinfo):
        return tz
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(tz, str):
        raise invalid("tz", f"must be an IANA time zone name or a tzinfo, not {tz!r}")
    try:
        found: ZoneInfo = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise invalid(
            "tz",
            f"{tz!r} is not a time zone: give an IANA name such as Europe/Stockholm or UTC "
            "(a system without a time zone database needs `pip install tzdata`)",
        ) from None
    return found


def _checked_period(period: str) -> Period:
    for known in PERIODS:
        if period == known:
            return known
    raise invalid("period", f"must be one of {', '.join(map(repr, PERIODS))}, not {period!r}")


def first_day(day: dt.date, period: Period) -> dt.date:
    """The local date the period holding `day` starts on."""
    if period == "day":
        return day
    if period == "week":
        return day - dt.timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    if period == "quarter":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    return day.replace(month=1, day=1)


def next_first_day(day: dt.date, period: Period) -> dt.date | None:
    """The first day of the period after the one starting on `day` (None past year 9999)."""
    try:
        if period == "day":
            return day + dt.timedelta(days=1)
        if period == "week":
            return day + dt.timedelta(days=7)
        months = {"month": 1, "quarter": 3, "year": 12}[period]
        number = day.year * 12 + day.month - 1 + months
        return dt.date(number // 12, number % 12 + 1, 1)
    except (OverflowError, ValueError):
        return None


def label(day: dt.date, period: Period) -> str:
    """The period starting on `day`, as its label (see the module's docstring)."""
    if period == "day":
        return day.isoformat()
    if period == "week":
        year, week, _ = day.isocalendar()
        return f"{year:04d}-W{week:02d}"
    if period == "month":
        return f"{day.year:04d}-{day.month:02d}"
    if period == "quarter":
        return f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}"
    return f"{day.year:04d}"


def local_start(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    """Midnight starting `day` in `tz`, aware; where the clocks skip midnight, the moment they
    skip it (zoneinfo reads a time in a gap with the offset before it), where it repeats, the
    first midnight."""
    return dt.datetime.combine(day, _MIDNIGHT, tzinfo=tz)


def boundaries(
    start: dt.datetime, end: dt.datetime, period: Period, tz: dt.tzinfo
) -> list[dt.datetime]:
    """The starts (in UTC) of every local period `[start, end)` touches, and the end of the
    last one."""
    day = first_day(start.astimezone(tz).date(), period)
    found = [local_start(day, tz).astimezone(_UTC)]
    while found[-1] < end:
        following = next_first_day(day, period)
        if following is None:
            break
        day = following
        found.append(local_start(day, tz).astimezone(_UTC))
    return found


def _aligned(moment: dt.datetime, granularity: str) -> bool:
    """Whether a UTC bucket of `granularity` starts at `moment` (UTC)."""
    if moment.second or moment.microsecond:
        return False
    checks = {
        "minute": True,
        "hour": moment.minute == 0,
        "day": moment.minute == moment.hour == 0,
        "month": moment.minute == moment.hour == 0 and moment.day == 1,
        "year": moment.minute == moment.hour == 0 and moment.day == moment.month == 1,
    }
    return checks[granularity]


def fetch_granularity(
    start: dt.datetime, end: dt.datetime, period: str = "day", tz: str | dt.tzinfo = "UTC"
) -> Granularity:
    """The coarsest UTC granularity whose buckets each lie inside one local period over
    `[start, end)` (aware datetimes): `hour` for most zones, `minute` where the periods start
    off the hour (Asia/Kolkata), `day` or `month` in UTC. Raises `InvalidArgumentError` for a
    zone whose offset there is not whole minutes (local mean time, before ~1900)."""
    from .models import Granularity

    period = _checked_period(period)
    starts = boundaries(_aware(start, "start"), _aware(end, "end"), period, zone(tz))
    for granularity in ("year", "month", "day", "hour", "minute"):
        if all(_aligned(moment, granularity) for moment in starts):
            return Granularity(granularity)
    raise invalid("tz", f"{tz} has an offset of seconds in this range: no UTC bucket fits it")


def _aware(moment: dt.datetime | None, name: str) -> dt.datetime:
    if not isinstance(moment, dt.datetime) or moment.tzinfo is None:
        raise invalid(name, f"must be an aware datetime, not {moment!r}")
    return moment.astimezone(_UTC)


def roll_up(
    items: Iterable[GetUsageResultItem],
    period: str = "day",
    tz: str | dt.tzinfo = "UTC",
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    now: dt.datetime | None = None,
    granularity: str | Granularity = "hour",
    fields: Sequence[str] | None = None,
    group_by: Sequence[str] | None = None,
) -> list[GetUsageResultItem]:
    """`items` (UTC buckets of `granularity`, from `get_usage` or `iter_usage`) summed per local
    `period` of `tz` and per group: one item per period and group that has usage, in time order.

    Each item's `time_bucket` is the period's start (an aware datetime in `tz`), `cost` the
    exact sum, `count` the sum (`UNSET` when no item had one), each field the sum (as the
    table's totals sum them), each group tag as it was; and two more keys: `period`, the local
    label (`2026-11-02`, `2026-W45`, `2026-11`, `2026-Q4`, `2026`), and `incomplete`, True when
    `[start, end)` (the range the items were fetched for) leaves out part of the period, or when
    the period ends after `now` (default: this moment).

    `fields` and `group_by` say which keys are summed and which are tags, as for `to_pandas`
    (read off the items when left out). An item whose bucket straddles a period's boundary
    (day buckets for a zone other than UTC) raises `InvalidArgumentError`: fetch the
    granularity `fetch_granularity` gives.
    """
    from .models import Granularity

    period = _checked_period(period)
    tz = zone(tz)
    try:
        step = _bucket_end(Granularity(granularity))
    except ValueError:
        names = ", ".join(repr(g.value) for g in Granularity)
        raise invalid("granularity", f"must be one of {names}, not {granularity!r}") from None
    range_start = None if start is None else _aware(start, "start")
    range_end = None if end is None else _aware(end, "end")
    moment = dt.datetime.now(_UTC) if now is None else _aware(now, "now")
    listed = list(items)
    columns = columns_for(listed, fields, group_by)
    places: dict[int, dt.date] = {}  # id(time_bucket) -> its period's first day (kept alive)
    groups: dict[tuple[dt.date, tuple[Any, ...]], tuple[list[Any], list[Any], list[list[Any]]]]
    groups = {}  # (first day, tags) -> (tags, costs, [each field's values..., counts])
    for item in listed:
        when = item.time_bucket
        day = places.get(id(when))
        if day is None:
            day = places[id(when)] = _place(when, step, period, tz)
        extras = item.additional_properties
        tags = [extras.get(name) for name in columns.group_by]
        key = (day, tuple(map(_hashable, tags)))
        group = groups.get(key)
        if group is None:
            group = groups[key] = (tags, [], [[] for _ in range(len(columns.fields) + 1)])
        group[1].append(item.cost)
        for values, name in zip(group[2], columns.fields, strict=False):
            values.append(extras.get(name))
        group[2][-1].append(None if item.count is UNSET else item.count)
    order = sorted(groups, key=lambda key: (key[0], [_order(tag) for tag in groups[key][0]]))
    return [
        _item(day, groups[day, tags][0], *groups[day, tags][1:], columns.group_by,
              columns.fields, period, tz, (range_start, range_end, moment))
        for day, tags in order
    ]  # fmt: skip


def _hashable(value: Any) -> Any:
    return json_text(value) if isinstance(value, dict | list) else (type(value), value)


def _order(tag: Any) -> tuple[bool, str]:
    """Groups in a period sorted by their tags' text, nulls last (as the API sorts them)."""
    return tag is None, value_text(tag)


def _bucket_end(granularity: Granularity) -> Callable[[dt.datetime], dt.datetime | None]:
    """The end of the UTC bucket starting at a moment."""
    from . import _windows

    if not _windows.handles(granularity):
        raise invalid("granularity", f"{granularity.value!r} buckets cannot be rolled up")

    def bucket_end(moment: dt.datetime) -> dt.datetime | None:
        return _windows.start(_windows.index(moment, granularity) + 1, granularity)

    return bucket_end


def _place(
    when: dt.datetime,
    bucket_end: Callable[[dt.datetime], dt.datetime | None],
    period: Period,
    tz: dt.tzinfo,
) -> dt.date:
    """The first day of the local period that holds the whole bucket starting at `when`."""
    when = when.replace(tzinfo=_UTC) if when.tzinfo is None else when
    day = first_day(when.astimezone(tz).date(), period)
    last = bucket_end(when.astimezone(_UTC))
    if last is not None and first_day((last - _TICK).astimezone(tz).date(), period) != day:
        raise InvalidArgumentError(
            "granularity",
            f"granularity: the bucket starting {when.isoformat()} spans two {period}s in "
            f"{tz}: fetch the granularity fetch_granularity() gives",
        )
    return day


def _item(
    day: dt.date,
    tags: list[Any],
    costs: list[Any],
    sums: list[list[Any]],
    group_by: Sequence[str],
    fields: Sequence[str],
    period: Period,
    tz: dt.tzinfo,
    limits: tuple[dt.datetime | None, dt.datetime | None, dt.datetime],
) -> GetUsageResultItem:
    from .models import GetUsageResultItem

    *sums, counts = sums
    begins = local_start(day, tz)
    following = next_first_day(day, period)
    ends = None if following is None else local_start(following, tz)
    range_start, range_end, now = limits
    incomplete = (
        (range_start is not None and range_start > begins)
        or (ends is not None and range_end is not None and range_end < ends)
        or (ends is not None and now < ends)
    )
    count = UNSET if all(c is None for c in counts) else sum(c for c in counts if c is not None)
    item = GetUsageResultItem(time_bucket=begins, cost=sum_costs(costs), count=count)
    extras: dict[str, Any] = {PERIOD: label(day, period), INCOMPLETE: incomplete}
    extras.update(zip(group_by, tags, strict=True))
    for name, values in zip(fields, sums, strict=True):
        extras[name] = None if all(v is None for v in values) else sum_numbers(values)
    item.additional_properties = extras
    return item
