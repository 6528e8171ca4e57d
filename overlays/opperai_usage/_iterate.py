"""`iter_usage`'s fetch: windows in flight, a window split when the server cannot answer it
whole, and the items handed on in time order.

The sync fetch runs each window's request in a thread pool on the sync client. Each thread
does what a sync `get_usage` does (the client's connections, time budgets and retries, which
are made for threads), so a sync program needs no event loop, and it works inside one too.
The async fetch runs a wave of `concurrency` windows as tasks of one anyio task group, then
yields their items: no task outlives a wave, so a caller that stops early leaves nothing
running, under asyncio and trio alike.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import cast

import anyio
import httpx
from anyio.abc import TaskGroup

from ._windows import Window, halves
from .errors import OpperError
from .models import GetUsageResultItem, Granularity

Items = list[GetUsageResultItem]
#: Statuses that say the window asked too much of the server (413 Content Too Large, 504
#: Gateway Timeout): asked again in two halves.
_TOO_MUCH = frozenset({413, 504})


def _too_much(error: Exception) -> bool:
    """Whether a smaller window may succeed where this one failed."""
    if isinstance(error, httpx.TimeoutException):
        return True
    return isinstance(error, OpperError) and error.status_code in _TOO_MUCH


def _mark(error: Exception, window: Window) -> None:
    """Tells which window `error` belongs to, keeping its type: `usage_window`, and a note."""
    error.usage_window = window  # type: ignore[attr-defined]
    # What `add_note` does from 3.11 on (tracebacks print `__notes__`); on 3.10 it is kept
    # where 3.11 keeps it, for code that reads it.
    note = f"while fetching the usage window {window} (from_date to to_date)"
    setattr(error, "__notes__", [*getattr(error, "__notes__", ()), note])  # noqa: B010


def fetch_split(
    fetch: Callable[[Window], Items], window: Window, granularity: Granularity
) -> Items:
    """`fetch(window)`, or its two halves' items when the server could not answer it whole."""
    try:
        return fetch(window)
    except Exception as error:
        parts = halves(window, granularity) if _too_much(error) else None
        if parts is None:
            _mark(error, window)
            raise
    return fetch_split(fetch, parts[0], granularity) + fetch_split(fetch, parts[1], granularity)


async def fetch_split_async(
    fetch: Callable[[Window], Awaitable[Items]], window: Window, granularity: Granularity
) -> Items:
    """The async twin of `fetch_split`."""
    try:
        return await fetch(window)
    except Exception as error:
        parts = halves(window, granularity) if _too_much(error) else None
        if parts is None:
            _mark(error, window)
            raise
    first = await fetch_split_async(fetch, parts[0], granularity)
    return first + await fetch_split_async(fetch, parts[1], granularity)


class WindowedUsage(Iterator[GetUsageResultItem]):
    """`iter_usage`'s items, fetched as they are read; `windows` is how many windows the range
    makes and `windows_done` how many of them have been received, for a progress line.
    `close()` (or the end of the loop) stops fetching."""

    def __init__(
        self,
        windows: Iterator[Window],
        total: int,
        fetch: Callable[[Window], Items],
        granularity: Granularity,
        concurrency: int,
    ) -> None:
        self.windows = total
        self.windows_done = 0
        self._items = self._run(windows, fetch, granularity, concurrency)

    def __next__(self) -> GetUsageResultItem:
        return next(self._items)

    def close(self) -> None:
        self._items.close()

    def _run(
        self,
        windows: Iterator[Window],
        fetch: Callable[[Window], Items],
        granularity: Granularity,
        concurrency: int,
    ) -> Generator[GetUsageResultItem, None, None]:
        # `concurrency` windows are in flight while the caller reads the oldest one's items, so
        # at most that many answers, and the one being read, are held at once.
        pool = ThreadPoolExecutor(concurrency, thread_name_prefix="opperai_usage-window")
        pending: collections.deque[Future[Items]] = collections.deque()
        try:
            for window in itertools.islice(windows, concurrency):
                pending.append(pool.submit(fetch_split, fetch, window, granularity))
            while pending:
                items = pending.popleft().result()
                for window in itertools.islice(windows, 1):
                    pending.append(pool.submit(fetch_split, fetch, window, granularity))
                self.windows_done += 1
                yield from items
        finally:
            # Every window submitted has a thread of its own (at most `concurrency` are), so
            # none waits to start: those in flight end within their time budget, and nothing
            # reads their answers. Not waited for: an error reaches the caller at once.
            pool.shutdown(wait=False)


class AsyncWindowedUsage(AsyncIterator[GetUsageResultItem]):
    """`iter_usage_async`'s items: `WindowedUsage`'s async twin, with `aclose()`."""

    def __init__(
        self,
        windows: Iterator[Window],
        total: int,
        fetch: Callable[[Window], Awaitable[Items]],
        granularity: Granularity,
        concurrency: int,
    ) -> None:
        self.windows = total
        self.windows_done = 0
        self._items = self._run(windows, fetch, granularity, concurrency)

    async def __anext__(self) -> GetUsageResultItem:
        return await self._items.__anext__()

    async def aclose(self) -> None:
        await self._items.aclose()

    async def _run(
        self,
        windows: Iterator[Window],
        fetch: Callable[[Window], Awaitable[Items]],
        granularity: Granularity,
        concurrency: int,
    ) -> AsyncGenerator[GetUsageResultItem, None]:
        while wave := list(itertools.islice(windows, concurrency)):
            answers: list[Items | Exception | None] = [None] * len(wave)
            # No yield inside the group: a caller that stops between items leaves no task
            # behind and no cancel scope open.
            async with anyio.create_task_group() as group:
                for place, window in enumerate(wave):
                    job = fetch_split_async(fetch, window, granularity)
                    group.start_soon(_answer, job, answers, place, group)
            for answer in answers:
                if isinstance(answer, Exception):
                    raise answer
            received = cast("list[Items]", answers)  # no error: every task put its items
            received.reverse()
            while received:
                items = received.pop()  # each answer let go once read
                self.windows_done += 1
                for item in items:
                    yield item


async def _answer(
    job: Awaitable[Items], answers: list[Items | Exception | None], place: int, group: TaskGroup
) -> None:
    """Puts `job`'s items, or its error, in `answers[place]`; an error cancels the rest of
    the wave, whose answers would not be read."""
    try:
        answers[place] = await job
    except Exception as error:
        answers[place] = error
        group.cancel_scope.cancel()
