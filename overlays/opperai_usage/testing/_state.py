"""What a server was told and what it saw: the queue of scripted answers, the requests it
received and its counters, shared by its connection threads under one lock."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ._script import Scripted

#: Requests kept for `requests`; older ones are forgotten (the counters keep counting).
MAX_RECORDS = 100_000
REDACTED = "<redacted>"


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the server received (any path but `/_control/`), oldest first in
    `UsageServer.requests`.

    `query` maps each parameter to its values in the order sent (`fields=a&fields=b` is
    `{"fields": ["a", "b"]}`); `raw_query` is the query string exactly as sent. `headers` has
    lower-case names, and the Authorization value replaced by `"<redacted>"`.
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


class State:
    """Thread-safe: the answer queue, the recorded requests and the counters."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._queue: deque[Scripted] = deque()
        self._records: deque[RecordedRequest] = deque(maxlen=MAX_RECORDS)
        self._requests = 0
        self._connections = 0

    def reset(self) -> None:
        """Forget the queued answers, the recorded requests and the counts."""
        with self._changed:
            self._queue.clear()
            self._records.clear()
            self._requests = self._connections = 0

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
        """Record `request`; when `scripted`, hand back the queued answer it uses up, if any."""
        with self._changed:
            self._requests += 1
            self._records.append(request)
            self._changed.notify_all()
            return self._queue.popleft() if scripted and self._queue else None

    def records(self) -> list[RecordedRequest]:
        """The recorded requests, oldest first."""
        with self._changed:
            return list(self._records)

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
            return list(self._records)

    @property
    def pending(self) -> int:
        """Queued answers no request has used yet."""
        with self._changed:
            return len(self._queue)

    def stats(self) -> dict[str, int]:
        """Requests recorded and connections accepted since the last reset."""
        with self._changed:
            return {"requests": self._requests, "connections": self._connections}
