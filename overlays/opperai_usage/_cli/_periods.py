"""The usage command's calendar periods: `--tz ZONE` with `--granularity day|week|month|
quarter|year`, and `week` or `quarter` without it (in UTC). The range is read in the zone,
the UTC buckets `fetch_granularity` names are fetched, and `roll_up` sums them into local
periods, with the `period` and `incomplete` columns."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._calendar import PERIODS, Period, first_day, local_start, next_first_day, zone
from .._columns import LABELS, Columns
from .._validation import InvalidArgumentError
from ._failures import UsageError

if TYPE_CHECKING:
    from ..models import GetUsageResultItem, Granularity

#: Granularities the API does not have, which only a roll-up makes.
CALENDAR_ONLY = ("week", "quarter")
_UTC = dt.timezone.utc


def time_zone(name: str) -> dt.tzinfo:
    """`--tz`'s zone; a name zoneinfo does not know is bad usage (exit 2), named."""
    try:
        return zone(name)
    except InvalidArgumentError as error:
        raise UsageError("--tz: " + str(error).removeprefix("tz ")) from None


def month_range(year: int, month: int, tz: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    """The local month's first and following month's first midnight, in UTC."""
    day = dt.date(year, month, 1)
    following = next_first_day(day, "month")
    if following is None:
        raise UsageError("the month must end before year 10000")
    return local_start(day, tz).astimezone(_UTC), local_start(following, tz).astimezone(_UTC)


def _moment(text: str, flag: str, tz: dt.tzinfo) -> dt.datetime:
    """An ISO 8601 date or date-time; without an offset, in `tz`."""
    try:
        when = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" else text)
    except ValueError:
        raise UsageError(
            f"{flag} must be an ISO 8601 date or date-time, such as 2026-11-01, not {text!r}"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=tz)).astimezone(_UTC)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to fetch for local periods, and how to roll it up."""

    period: Period
    tz: dt.tzinfo
    start: dt.datetime
    end: dt.datetime
    now: dt.datetime

    def arguments(self) -> dict[str, Any]:
        from .._calendar import fetch_granularity

        granularity = fetch_granularity(self.start, self.end, self.period, self.tz)
        return {"from_date": self.start, "to_date": self.end, "granularity": granularity}

    def roll_up(
        self, items: Sequence[GetUsageResultItem], columns: Columns, granularity: Granularity
    ) -> list[GetUsageResultItem]:
        from .._calendar import roll_up

        return roll_up(
            items, self.period, self.tz, start=self.start, end=self.end, now=self.now,
            granularity=granularity, fields=columns.fields, group_by=columns.group_by,
        )  # fmt: skip

    @staticmethod
    def columns(columns: Columns) -> Columns:
        return dataclasses.replace(columns, labels=LABELS)


def plan(args: argparse.Namespace, now: dt.datetime) -> Plan | None:
    """The plan for `--tz` or a calendar-only granularity; None when the API's own buckets are
    asked for. The range: `--month` (the local month), `--last`, or `--from`/`--to` read in the
    zone when they have no offset, each end defaulting to this local month's."""
    granularity = args.granularity
    if args.tz is None and granularity not in CALENDAR_ONLY:
        return None
    if granularity is None:
        granularity = "day"
    period = next((known for known in PERIODS if known == granularity), None)
    if period is None:
        raise UsageError(
            f"--tz takes --granularity {', '.join(PERIODS)}, not {granularity!r}: minute and "
            "hour buckets are the API's own, in UTC (leave out --tz)"
        )
    tz = time_zone(args.tz or "UTC")
    this_month = first_day(now.astimezone(tz).date(), "month")
    start, end = month_range(this_month.year, this_month.month, tz)
    if args.month is not None:
        start, end = month_range(args.month[0].year, args.month[0].month, tz)
    elif args.last is not None:
        start, end = now.replace(microsecond=0) - args.last, now.replace(microsecond=0)
    else:
        if args.from_date is not None:
            start = _moment(args.from_date, "--from", tz)
        if args.to_date is not None:
            end = _moment(args.to_date, "--to", tz)
    if start >= end:
        raise UsageError("the range is empty: --from must come before --to")
    return Plan(period, tz, start, end, now)
