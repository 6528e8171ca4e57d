"""Query parsing and aggregation for `GET /analytics/usage`, shaped like the real API.

Validation errors mirror what FastAPI (pydantic v2) answers, so a client's error
handling can be exercised without the real service.
"""

from __future__ import annotations

import calendar
import functools
import itertools
import json
import re
import threading
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from ._dataset import DAY, DAYS, FIELDS, TAGS, Day, moment, seconds

UTC = timezone.utc

GRANULARITIES = ("minute", "hour", "day", "month", "year")
_EXPECTED = "'minute', 'hour', 'day', 'month' or 'year'"
_TIMESTAMP = re.compile(r"-?\d+(\.\d+)?")
_MICRO = Decimal("0.000001")
#: `parse_datetime`'s reason for a date and offset that fall outside years 1 to 9999 in UTC.
OUT_OF_RANGE = "datetime value is outside expected range in UTC"
_MICROSECOND = timedelta(microseconds=1)
#: Bucket widths in seconds; day, month and year buckets hold whole days.
_WIDTHS = {"minute": 60, "hour": 3_600}
#: Encoded answers kept for queries asked again, at most this many bytes of them.
MAX_CACHED_BYTES = 256 * 2**20
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
    body = {"type": "BadRequestError", "message": "The request is invalid"}
    if dates["from_date"] >= dates["to_date"]:
        raise QueryError(400, {**body, "detail": "from_date must be before to_date"})
    if "count" in lists["fields"]:
        raise QueryError(400, {**body, "detail": "count is always returned: it is not a field"})
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
    """Answers queries over the events of one seed and rate from day `first_day` on (see
    `_dataset`), as seen at a given moment with an ingest delay: an event is in an answer once
    its time plus its share of the delay is at most `now`. Encoded answers are cached while
    their range is past the delay, when they can no longer change."""

    def __init__(self, seed: int, events: int, first_day: int, ingest_delay: timedelta) -> None:
        self.seed, self.events, self.first_day = seed, events, first_day
        self.delay = ingest_delay // _MICROSECOND  # whole numbers: no float rounding
        self._lock = threading.Lock()
        self._answers: OrderedDict[tuple[Query, int | None], bytes] = OrderedDict()
        self._answer_bytes = 0

    def build(self, now: datetime) -> None:
        """Build (and cache) the days from the first to `now`'s, ahead of the first query."""
        for number in range(self.first_day, now.toordinal()):
            DAYS.get(self.seed, self.events, number)

    def encoded(
        self, query: Query, now: datetime, stopping: threading.Event | None = None
    ) -> bytes:
        """The JSON body for `query` at `now` (cached once nothing in its range can change):
        one item per (bucket, group) with events in [from, to) that arrived by `now`, sorted
        by bucket, then group (null first). Interrupted once `stopping` is set."""
        now_us = seconds(now) * 1_000_000 + now.microsecond
        settled = now_us - self.delay >= _ceil_seconds(query.to_date) * 1_000_000
        key = (query, None if settled else now_us)
        with self._lock:
            body = self._answers.get(key)
            if body is not None:
                self._answers.move_to_end(key)
                return body
        body = self._encode(query, now_us, stopping)
        with self._lock:
            if key not in self._answers:
                self._answers[key] = body
                self._answer_bytes += len(body)
                while self._answer_bytes > MAX_CACHED_BYTES or len(self._answers) > 512:
                    self._answer_bytes -= len(self._answers.popitem(last=False)[1])
        return body

    def _encode(self, query: Query, now_us: int, stopping: threading.Event | None) -> bytes:
        """The JSON body, each item written from one template (`_item_format`): a
        minute-granularity answer over weeks can be hundreds of thousands of items."""
        group_of, groups = _grouping(query.group_by)
        fields = tuple(name for name in query.fields if name != "cost")  # the API ignores it
        columns = [FIELDS.index(name) if name in FIELDS else None for name in fields]
        low = max(_ceil_seconds(query.from_date), self.first_day * DAY)
        high = min(_ceil_seconds(query.to_date), now_us // 1_000_000 + 1)
        sums: dict[int, list[int]] = {}
        for number in range(low // DAY, (high - 1) // DAY + 1) if low < high else ():
            if stopping is not None and stopping.is_set():
                raise Interrupted
            day = DAYS.get(self.seed, self.events, number)
            visible = self._visible(day, low, high, now_us)
            width = _WIDTHS.get(query.granularity, 0)
            whole = 0 if width else seconds(truncate(moment(number * DAY), query.granularity))
            _add(sums, day, visible, width, whole, len(groups), group_of, columns)
        item = _item_format(fields, query.group_by)
        values = [[json.dumps(value) for value in group] for group in groups]
        labels: dict[int, str] = {}
        encoded = []
        for key in sorted(sums):  # by bucket, then group: groups are numbered in that order
            bucket, group = divmod(key, len(groups))
            label = labels.get(bucket)
            if label is None:
                # not strftime: its %Y writes year 2 as "2", not "0002"
                label = labels[bucket] = moment(bucket).replace(tzinfo=None).isoformat()
            cost, count, *totals = sums[key]
            encoded.append(item.format(label, _usd(cost), count, *totals, *values[group]))
        return f"[{','.join(encoded)}]".encode()

    def _visible(self, day: Day, low: int, high: int, now_us: int) -> Iterable[int]:
        """The indices of `day`'s events in [low, high) that arrived by `now_us` (in
        microseconds, like `seconds()`)."""
        times = day.seconds
        first = bisect_left(times, low)
        last = bisect_left(times, high)
        on_time = (now_us - self.delay) // 1_000_000  # any event until then has arrived
        late = bisect_right(times, on_time, first, last) if self.delay else last
        if late == last:
            return range(first, last)
        lags, delay = day.lags, self.delay
        arrived = [i for i in range(late, last) if lags[i] * delay <= now_us - times[i] * 1_000_000]
        return itertools.chain(range(first, late), arrived)


@functools.lru_cache(maxsize=64)
def _grouping(group_by: tuple[str, ...]) -> tuple[list[int], list[tuple[str | None, ...]]]:
    """For each combination of tags (`TAGS`), the number of its group, and each group's
    values (None for a tag it lacks), numbered in the API's order: null before any text."""
    keys = [tuple(tags.get(key) for key in group_by) for tags in TAGS]
    groups = sorted(set(keys), key=_group_order)
    number = {values: index for index, values in enumerate(groups)}
    return [number[values] for values in keys], groups


@functools.lru_cache(maxsize=64)
def _item_format(fields: Sequence[str], group_by: Sequence[str]) -> str:
    """A `str.format` template of one item's JSON: its arguments are the time bucket, the
    cost, the count, each field's sum, and each group value as JSON. The keys are those of
    the dict `{time_bucket, cost, count}` updated with the fields, then the group values
    (a later name that repeats an earlier one takes its place, as in a dict)."""
    slots: dict[str, str] = {"time_bucket": '"{0}Z"', "cost": '"{1}"', "count": "{2}"}
    slots.update((name, f"{{{index}}}") for index, name in enumerate(fields, 3))
    slots.update((name, f"{{{index}}}") for index, name in enumerate(group_by, 3 + len(fields)))
    pairs = (
        json.dumps(name).replace("{", "{{").replace("}", "}}") + ":" + value
        for name, value in slots.items()
    )
    return "{{" + ",".join(pairs) + "}}"


def _add(
    sums: dict[int, list[int]],
    day: Day,
    indices: Iterable[int],
    width: int,
    whole: int,
    groups: int,
    group_of: list[int],
    columns: list[int | None],
) -> None:
    """Add `day`'s events at `indices` to `sums`, keyed by bucket * groups + group, each
    [cost, count, *fields]: a bucket is `width` seconds, or, when 0, the one starting at
    `whole`."""
    times, costs, tags = day.seconds, day.costs, day.tags
    summed = [
        (slot, day.fields[column]) for slot, column in enumerate(columns, 2) if column is not None
    ]
    size = 2 + len(columns)
    whole *= groups
    for index in indices:
        second = times[index]
        key = ((second - second % width) * groups if width else whole) + group_of[tags[index]]
        totals = sums.get(key)
        if totals is None:
            totals = sums[key] = [0] * size
        totals[0] += costs[index]
        totals[1] += 1
        for slot, column in summed:
            totals[slot] += column[index]


def _ceil_seconds(moment: datetime) -> int:
    """`seconds(moment)`, rounded up: an event at a whole second `s` is before `moment` when
    `s < _ceil_seconds(moment)`, and at or after it when `s >= _ceil_seconds(moment)`."""
    return seconds(moment) + (1 if moment.microsecond else 0)


def _usd(nano: int) -> str:
    """Nano-USD as USD with 6 decimals, rounded half to even like Decimal.quantize."""
    micro, rest = divmod(nano, 1_000)
    if rest > 500 or (rest == 500 and micro % 2):
        micro += 1
    return f"{micro // 1_000_000}.{micro % 1_000_000:06d}"


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
                "count": 1 + index % 37,
                "completion_tokens": completion,
                "total_tokens": completion + 100 + index % 300,
                "model": models[index % 5],
                "project.name": projects[(index % 10 // 5 + index // 10) % 4],
            }
        )
    return json.dumps(items, separators=(",", ":")).encode()[1:-1]
