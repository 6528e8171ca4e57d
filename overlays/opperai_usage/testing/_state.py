"""What a server was told and what it saw: the moment it takes as now, the queue of scripted
answers, the requests it received and its counters, shared by its connection threads."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ._script import Scripted

#: At most this many requests are kept for `requests`, the newest; older ones are forgotten
#: (the counters keep counting).
MAX_RECORDS = 100_000
#: ...and at most about this many bytes of them (their text, plus 100 a string for Python's
#: own share): some 28,000 typical requests. However long a test runs, and whatever headers
#: a client sends, what the server keeps stays within this.
MAX_RECORDED_BYTES = 64 * 2**20
#: A header value longer than this is recorded cut to this many characters, then TRUNCATED.
MAX_HEADER_VALUE = 4096
REDACTED = "<redacted>"
TRUNCATED = "<truncated>"
_PER_STRING = 100
UTC = timezone.utc
#: The years `now` may fall in (UTC): the data set's 60 days before the day a server starts
#: with, and the day after `now`, must be dates Python can hold.
NOW_YEARS = (2, 9998)


def utc_moment(now: datetime) -> datetime:
    """`now` in UTC (naive is UTC); ValueError naming NOW_YEARS unless it falls in them."""
    try:
        moment = now.replace(tzinfo=now.tzinfo or UTC).astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is in year 0 in UTC
        moment = None
    if moment is None or not NOW_YEARS[0] <= moment.year <= NOW_YEARS[1]:
        first, last = NOW_YEARS
        raise ValueError(f"now: must be in the years {first} to {last} (UTC), got {now}")
    return moment


class Clock:
    """The moment a server takes as now: a fixed one, or, following the clock, the end of the
    current UTC day, so that calls moments apart get the same answers (they change at
    midnight). `set` fixes it, from then on, to any moment in NOW_YEARS, earlier or later."""

    def __init__(self, fixed: datetime | None) -> None:
        self._fixed = None if fixed is None else utc_moment(fixed)

    def now(self) -> datetime:
        fixed = self._fixed  # one read: another thread may set it meanwhile
        if fixed is not None:
            return fixed
        return datetime.now(UTC).replace(hour=23, minute=59, second=59, microsecond=999_999)

    def set(self, moment: datetime) -> datetime:
        """Take `moment` as now from here on; return it in UTC."""
        if not isinstance(moment, datetime):
            raise TypeError(f"now: must be a datetime, got {type(moment).__name__}")
        self._fixed = utc_moment(moment)
        return self._fixed


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the server received (any path but `/_control/`), oldest first in
    `UsageServer.requests`.

    `query` maps each parameter to its values in the order sent (`fields=a&fields=b` is
    `{"fields": ["a", "b"]}`); `raw_query` is the query string exactly as sent (at most 64 KiB:
    the server refuses longer request lines). `headers` has lower-case names, repeated ones
    joined with ", ", the Authorization value replaced by `"<redacted>"`, and any value longer
    than 4,096 characters cut to that length and ended with `"<truncated>"`.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw_query: str

    def to_json(self) -> dict[str, Any]:
        """The form `GET /_control/requests` lists."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "raw_query": self.raw_query,
            "headers": self.headers,
        }


def recorded_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers as a request records them: lower-case names, repeats joined, Authorization
    redacted, long values cut (see `RecordedRequest`)."""
    joined: dict[str, str] = {}
    for name, value in headers:
        name = name.lower()
        joined[name] = f"{joined[name]}, {value}" if name in joined else value
    if "authorization" in joined:
        joined["authorization"] = REDACTED
    return {name: _cut(value) for name, value in joined.items()}


def _footprint(request: RecordedRequest) -> int:
    """About how many bytes `request` holds, to bound what the server keeps."""
    headers, query = request.headers, request.query
    strings = [request.method, request.path, request.raw_query, *headers, *headers.values()]
    strings += [*query, *(value for values in query.values() for value in values)]
    return sum(len(text) for text in strings) + _PER_STRING * len(strings)


def _cut(value: str) -> str:
    return value if len(value) <= MAX_HEADER_VALUE else value[:MAX_HEADER_VALUE] + TRUNCATED


class State:
    """Thread-safe: the answer queue, the recorded requests and the counters."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._queue: deque[Scripted] = deque()
        self._records: deque[tuple[RecordedRequest, int]] = deque()
        self._recorded_bytes = 0
        self._requests = 0
        self._connections = 0
        self._resets = 0

    def reset(self) -> None:
        """Forget the queued answers, the recorded requests and the counts, and end the
        delays of the answers waiting (`hold`)."""
        with self._changed:
            self._queue.clear()
            self._records.clear()
            self._recorded_bytes = 0
            self._requests = self._connections = 0
            self._resets += 1
            self._changed.notify_all()

    def wake(self) -> None:
        """Have every `hold` look at its `stopping` event again (the server sets it)."""
        with self._changed:
            self._changed.notify_all()

    def hold(self, seconds: float, stopping: threading.Event) -> None:
        """A scripted delay: `seconds`, or less if a reset comes or `stopping` is set first
        (so a test that has seen what it waited for need not wait the delay out)."""
        deadline = time.monotonic() + seconds
        with self._changed:
            resets = self._resets
            while self._resets == resets and not stopping.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._changed.wait(left)

    def enqueue(self, answers: Iterable[Scripted]) -> int:
        """Queue answers after those already queued; return how many are queued now."""
        with self._changed:
            self._queue.extend(answers)
            return len(self._queue)

    def connected(self) -> None:
        """Count one accepted TCP connection."""
        with self._changed:
            self._connections += 1

    def record(self, request: RecordedRequest, *, scripted: bool) -> Scripted | None:
        """Record `request`, forgetting the oldest beyond MAX_RECORDS or MAX_RECORDED_BYTES;
        when `scripted`, hand back the queued answer it uses up, if any."""
        size = _footprint(request)
        with self._changed:
            self._requests += 1
            self._records.append((request, size))
            self._recorded_bytes += size
            while len(self._records) > MAX_RECORDS or self._recorded_bytes > MAX_RECORDED_BYTES:
                self._recorded_bytes -= self._records.popleft()[1]
            self._changed.notify_all()
            return self._queue.popleft() if scripted and self._queue else None

    def records(self) -> list[RecordedRequest]:
        """The recorded requests, oldest first."""
        with self._changed:
            return [request for request, _ in self._records]

    def wait_for(self, count: int, timeout: float) -> list[RecordedRequest]:
        """The recorded requests once at least `count` have arrived since the last reset;
        TimeoutError after `timeout` seconds with fewer."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._requests < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{self._requests} of {count} requests arrived within {timeout} s"
                    )
                self._changed.wait(left)
            return [request for request, _ in self._records]

    @property
    def pending(self) -> int:
        """Queued answers no request has used yet."""
        with self._changed:
            return len(self._queue)

    def stats(self) -> dict[str, int]:
        """Requests recorded and connections accepted since the last reset."""
        with self._changed:
            return {"requests": self._requests, "connections": self._connections}
