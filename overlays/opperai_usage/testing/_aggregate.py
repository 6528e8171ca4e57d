"""Query parsing and aggregation for `GET /analytics/usage`, shaped like the real API.

Validation errors mirror what FastAPI (pydantic v2) answers, so a client's error
handling can be exercised without the real service.
"""

from __future__ import annotations

import calendar
import functools
import json
import re
import threading
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from ._dataset import Event

UTC = timezone.utc

GRANULARITIES = ("minute", "hour", "day", "month", "year")
_EXPECTED = "'minute', 'hour', 'day', 'month' or 'year'"
_TIMESTAMP = re.compile(r"-?\d+(\.\d+)?")
_MICRO = Decimal("0.000001")
#: `parse_datetime`'s reason for a date and offset that fall outside years 1 to 9999 in UTC.
OUT_OF_RANGE = "datetime value is outside expected range in UTC"
#: Made-up items are built this many at a time, so that closing the server stops a long build.
_BLOCK = 10_000


@dataclass(frozen=True, slots=True)
class Query:
    """A validated request: half-open UTC range, bucket size, summed fields, group tags."""

    from_date: datetime
    to_date: datetime
    granularity: str
    fields: tuple[str, ...]
    group_by: tuple[str, ...]


class Interrupted(Exception):
    """The server closed while an answer was being built."""


class QueryError(Exception):
    """A request the API refuses: `status` and the Opper error body to send."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body["message"])
        self.status = status
        self.body = body


def parse_datetime(text: str) -> datetime | str:
    """Parse like pydantic (ISO 8601, date-only, unix seconds); naive means UTC.

    Returns the aware UTC datetime, or pydantic's reason text when `text` is not one (or is
    an instant before year 1 or after year 9999 once moved to UTC).
    """
    if _TIMESTAMP.fullmatch(text):
        seconds = float(text)
        seconds = seconds / 1000 if abs(seconds) > 2e10 else seconds
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return "timestamp value is outside expected range"
    if len(text) < 10:
        return "input is too short"
    try:
        # 3.10's fromisoformat does not read "Z"; the same instant spelled +00:00 it does
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" else text)
    except ValueError:
        return "invalid character in year" if not text[:4].isdigit() else "invalid datetime"
    try:
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is in year 0 in UTC
        return OUT_OF_RANGE


def current_month(now: datetime) -> tuple[datetime, datetime]:
    """The documented defaults: first and (literally) last day of this month, 00:00 UTC."""
    first = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return first, first.replace(day=calendar.monthrange(first.year, first.month)[1])


def parse_query(raw_query: str, now: datetime) -> Query:
    """Validate a raw query string; raise QueryError with the API's 422 or 400 body."""
    scalars: dict[str, str] = {}
    lists: dict[str, list[str]] = {"fields": [], "group_by": []}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        if key in lists:
            lists[key].append(value)
        else:
            scalars[key] = value  # a repeated scalar: the last one wins, as in FastAPI
    problems: list[dict[str, Any]] = []
    default_from, default_to = current_month(now)
    dates = {"from_date": default_from, "to_date": default_to}
    for name in dates:
        if name in scalars:
            parsed = parse_datetime(scalars[name])
            if isinstance(parsed, str):
                problems.append(
                    {
                        "type": "datetime_from_date_parsing",
                        "loc": ["query", name],
                        "msg": f"Input should be a valid datetime or date, {parsed}",
                        "input": scalars[name],
                        "ctx": {"error": parsed},
                    }
                )
            else:
                dates[name] = parsed
    granularity = scalars.get("granularity", "day")
    if granularity not in GRANULARITIES:
        problems.append(
            {
                "type": "enum",
                "loc": ["query", "granularity"],
                "msg": f"Input should be {_EXPECTED}",
                "input": granularity,
                "ctx": {"expected": _EXPECTED},
            }
        )
    if problems:
        body = {"type": "RequestValidationError", "message": "The request is invalid"}
        raise QueryError(422, {**body, "detail": problems})
    if dates["from_date"] >= dates["to_date"]:
        body = {"type": "BadRequestError", "message": "The request is invalid"}
        raise QueryError(400, {**body, "detail": "from_date must be before to_date"})
    return Query(
        dates["from_date"],
        dates["to_date"],
        granularity,
        tuple(lists["fields"]),
        tuple(lists["group_by"]),
    )


def truncate(moment: datetime, granularity: str) -> datetime:
    """The start of the bucket that holds `moment`."""
    moment = moment.replace(second=0, microsecond=0)
    if granularity == "minute":
        return moment
    moment = moment.replace(minute=0)
    if granularity == "hour":
        return moment
    moment = moment.replace(hour=0)
    if granularity == "day":
        return moment
    moment = moment.replace(day=1)
    return moment if granularity == "month" else moment.replace(month=1)


def _group_order(values: tuple[str | None, ...]) -> tuple[tuple[bool, str], ...]:
    """Sort key for group values: null before any string."""
    return tuple((value is not None, value or "") for value in values)


class Aggregator:
    """Answers queries over a fixed event list; caches encoded answers by query."""

    def __init__(self, events: Sequence[Event]) -> None:
        self.events = sorted(events, key=lambda event: event.timestamp)
        self._times = [event.timestamp for event in self.events]
        self.encoded = functools.lru_cache(maxsize=512)(self._encoded)

    def aggregate(self, query: Query) -> list[dict[str, Any]]:
        """One item per (bucket, group) with events in [from, to), sorted."""
        low = bisect_left(self._times, query.from_date)
        high = bisect_left(self._times, query.to_date)
        sums: dict[tuple[datetime, tuple[str | None, ...]], tuple[list[Decimal], list[int]]] = {}
        for event in self.events[low:high]:
            key = (
                truncate(event.timestamp, query.granularity),
                tuple(event.tags.get(tag) for tag in query.group_by),
            )
            cost, totals = sums.setdefault(key, ([Decimal(0)], [0] * len(query.fields)))
            cost[0] += event.cost
            for index, field in enumerate(query.fields):
                totals[index] += event.metadata.get(field, 0)
        items = []
        for bucket, groups in sorted(sums, key=lambda k: (k[0], _group_order(k[1]))):
            cost, totals = sums[bucket, groups]
            item: dict[str, Any] = {
                # not strftime: its %Y writes year 2 as "2", not "0002"
                "time_bucket": bucket.replace(tzinfo=None).isoformat() + "Z",
                "cost": str(cost[0].quantize(_MICRO)),
            }
            item.update(zip(query.fields, totals, strict=True))
            item.update(zip(query.group_by, groups, strict=True))
            items.append(item)
        return items

    def _encoded(self, query: Query) -> bytes:
        """The JSON body for `query` (cached: the data never changes)."""
        return json.dumps(self.aggregate(query), separators=(",", ":")).encode()


def synthetic_items(count: int, stopping: threading.Event | None = None) -> bytes:
    """`count` made-up items, ten per hourly bucket, for client decoding benchmarks, encoded
    as one JSON array. Built a block at a time; Interrupted once `stopping` is set."""
    blocks = []
    for start in range(0, count, _BLOCK):
        if stopping is not None and stopping.is_set():
            raise Interrupted
        blocks.append(_synthetic_block(start, min(start + _BLOCK, count)))
    return b"[" + b",".join(blocks) + b"]"


@functools.lru_cache(maxsize=128)
def _synthetic_block(start: int, stop: int) -> bytes:
    """Items `start` to `stop` (excluded), comma-separated: a piece of the JSON array. Cached,
    so a test that asks for a million items again gets them at once."""
    models = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "mistral-large", "gemini-2.5-pro")
    projects = ("alpha", "beta", "gamma", None)
    base = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    items = []
    for index in range(start, stop):
        bucket = datetime.fromtimestamp(base + (index // 10) * 3600, UTC)
        completion = 10 + index % 500
        items.append(
            {
                "time_bucket": bucket.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "cost": str((Decimal(index % 997) * Decimal("0.000137")).quantize(_MICRO)),
                "completion_tokens": completion,
                "total_tokens": completion + 100 + index % 300,
                "model": models[index % 5],
                "project.name": projects[(index % 10 // 5 + index // 10) % 4],
            }
        )
    return json.dumps(items, separators=(",", ":")).encode()[1:-1]
