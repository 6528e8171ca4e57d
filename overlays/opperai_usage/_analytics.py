"""`opper.analytics`: the usage operation, sync and async, as the official SDK spells it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import httpx

from ._decode import result_or_raise
from ._query import build_query
from ._retries import RetryConfig, RetryPolicy
from ._transport import send, send_async
from ._validation import check_count, invalid
from .models import GetUsageResultItem, Granularity
from .types import UNSET, Unset

if TYPE_CHECKING:
    from ._client import Opper
    from ._iterate import AsyncWindowedUsage, WindowedUsage
    from ._windows import Window

DateArg = dt.datetime | dt.date | str | None | Unset
ListArg = Sequence[str] | None | Unset
#: `iter_usage`'s `window`: a day by minute, 60 days by hour, about four years by day.
DEFAULT_WINDOW = 1_440
#: `iter_usage`'s `concurrency`: enough to keep a connection busy while another answer is
#: decoded, few enough not to meet the API's rate limit.
DEFAULT_CONCURRENCY = 4


class Analytics:
    """Usage analytics: cost and summed event metadata, bucketed by time and grouped by tags."""

    def __init__(self, opper: Opper) -> None:
        self._opper = opper

    def _prepare(
        self,
        client: httpx.Client | httpx.AsyncClient,
        arguments: Mapping[str, object],
        retries: RetryConfig | Unset | None,
        server_url: str | None,
        timeout_ms: int | float | None,
        http_headers: Mapping[str, str] | None,
    ) -> tuple[httpx.Request, RetryPolicy, float]:
        """Everything before the first byte is sent, shared by the sync and async calls."""
        method, path, params = build_query(arguments)
        opper = self._opper
        request, timeout_s = opper._build_request(
            client, method, path, params, server_url, timeout_ms, http_headers
        )
        return request, opper._retry_policy(retries), timeout_s

    def get_usage(
        self,
        *,
        from_date: DateArg = UNSET,
        to_date: DateArg = UNSET,
        granularity: Granularity | str | Unset | None = UNSET,
        fields: ListArg = UNSET,
        group_by: ListArg = UNSET,
        retries: RetryConfig | Unset | None = UNSET,
        server_url: str | None = None,
        timeout_ms: int | float | None = None,
        http_headers: Mapping[str, str] | None = None,
    ) -> list[GetUsageResultItem]:
        """Usage between `from_date` (inclusive) and `to_date` (exclusive), one item per time
        bucket and group: `cost`, the sum of each of `fields`, the value of each `group_by` tag.

        Raises `InvalidArgumentError` (a `ValueError`) before sending anything for bad
        arguments, an `OpperError` subclass for an error answer, and httpx's exceptions for
        network failures that retries did not cure.
        """
        query: dict[str, object] = {"from_date": from_date, "to_date": to_date}
        query |= {"granularity": granularity, "fields": fields, "group_by": group_by}
        return self._fetch(query, retries, server_url, timeout_ms, http_headers)

    def _fetch(
        self,
        query: Mapping[str, object],
        retries: RetryConfig | Unset | None,
        server_url: str | None,
        timeout_ms: int | float | None,
        http_headers: Mapping[str, str] | None,
    ) -> list[GetUsageResultItem]:
        """One request's items (`get_usage`, or one window of `iter_usage`)."""
        client = self._opper._get_client()
        request, policy, timeout_s = self._prepare(
            client, query, retries, server_url, timeout_ms, http_headers
        )
        limit = self._opper._max_response_bytes
        response = send(client, request, policy, timeout_s, self._opper._logger, max_bytes=limit)
        return result_or_raise(response)

    async def get_usage_async(
        self,
        *,
        from_date: DateArg = UNSET,
        to_date: DateArg = UNSET,
        granularity: Granularity | str | Unset | None = UNSET,
        fields: ListArg = UNSET,
        group_by: ListArg = UNSET,
        retries: RetryConfig | Unset | None = UNSET,
        server_url: str | None = None,
        timeout_ms: int | float | None = None,
        http_headers: Mapping[str, str] | None = None,
    ) -> list[GetUsageResultItem]:
        """`get_usage`, for asyncio (or trio) programs: the same arguments and behaviour."""
        query: dict[str, object] = {"from_date": from_date, "to_date": to_date}
        query |= {"granularity": granularity, "fields": fields, "group_by": group_by}
        return await self._fetch_async(query, retries, server_url, timeout_ms, http_headers)

    async def _fetch_async(
        self,
        query: Mapping[str, object],
        retries: RetryConfig | Unset | None,
        server_url: str | None,
        timeout_ms: int | float | None,
        http_headers: Mapping[str, str] | None,
    ) -> list[GetUsageResultItem]:
        """`_fetch`'s async twin."""
        connections = await self._opper._loop_connections()
        client = connections.client
        request, policy, timeout_s = self._prepare(
            client, query, retries, server_url, timeout_ms, http_headers
        )
        logger = self._opper._logger
        gate, limit = connections.gate, self._opper._max_response_bytes
        response = await send_async(
            client, request, policy, timeout_s, logger, gate, max_bytes=limit
        )
        return result_or_raise(response)

    # -- any range, window by window (_windows plans them, _iterate fetches them)

    def iter_usage(
        self,
        *,
        from_date: DateArg = UNSET,
        to_date: DateArg = UNSET,
        granularity: Granularity | str | Unset | None = UNSET,
        fields: ListArg = UNSET,
        group_by: ListArg = UNSET,
        window: int = DEFAULT_WINDOW,
        concurrency: int = DEFAULT_CONCURRENCY,
        retries: RetryConfig | Unset | None = UNSET,
        server_url: str | None = None,
        timeout_ms: int | float | None = None,
        http_headers: Mapping[str, str] | None = None,
    ) -> WindowedUsage:
        """The items `get_usage` would return over the same range, in time order, fetched in
        windows of at most `window` buckets, `concurrency` requests at a time, as they are read.

        A window that times out, or is answered 413 or 504, is asked for again in two halves,
        down to a single bucket. Any other error is raised as `get_usage` raises it, its
        `usage_window` (and a note) saying which window failed. Bad arguments raise
        `InvalidArgumentError` here, before anything is sent.
        """
        from ._iterate import WindowedUsage

        query: dict[str, object] = {"from_date": from_date, "to_date": to_date}
        query |= {"granularity": granularity, "fields": fields, "group_by": group_by}
        settings = (retries, server_url, timeout_ms, http_headers)
        windows, total, unit, full = self._plan(query, window, concurrency, *settings)
        self._opper._get_client()  # a closed client refuses now, not at the first item

        def fetch(part: Window) -> list[GetUsageResultItem]:
            return self._fetch({**full, "from_date": part.start, "to_date": part.end}, *settings)

        return WindowedUsage(windows, total, fetch, unit, concurrency)

    def iter_usage_async(
        self,
        *,
        from_date: DateArg = UNSET,
        to_date: DateArg = UNSET,
        granularity: Granularity | str | Unset | None = UNSET,
        fields: ListArg = UNSET,
        group_by: ListArg = UNSET,
        window: int = DEFAULT_WINDOW,
        concurrency: int = DEFAULT_CONCURRENCY,
        retries: RetryConfig | Unset | None = UNSET,
        server_url: str | None = None,
        timeout_ms: int | float | None = None,
        http_headers: Mapping[str, str] | None = None,
    ) -> AsyncWindowedUsage:
        """`iter_usage` for `async for`: the same arguments and items. Arguments are checked
        when it is called; requests start with the first `__anext__`."""
        from ._iterate import AsyncWindowedUsage

        query: dict[str, object] = {"from_date": from_date, "to_date": to_date}
        query |= {"granularity": granularity, "fields": fields, "group_by": group_by}
        settings = (retries, server_url, timeout_ms, http_headers)
        windows, total, unit, full = self._plan(query, window, concurrency, *settings)
        self._opper._check_open()

        async def fetch(part: Window) -> list[GetUsageResultItem]:
            query = {**full, "from_date": part.start, "to_date": part.end}
            return await self._fetch_async(query, *settings)

        return AsyncWindowedUsage(windows, total, fetch, unit, concurrency)

    def _plan(
        self,
        query: Mapping[str, object],
        window: int,
        concurrency: int,
        retries: RetryConfig | Unset | None,
        server_url: str | None,
        timeout_ms: int | float | None,
        http_headers: Mapping[str, str] | None,
    ) -> tuple[Iterator[Window], int, Granularity, dict[str, object]]:
        """Every argument checked; the windows, how many, their granularity and the query
        over the whole range (dates in UTC, the granularity named), which they cut up."""
        from . import _windows
        from ._query import as_utc

        build_query(query)  # every argument checked as get_usage checks it, in its order
        check_count("window", window, "the most buckets one request may cover")
        check_count("concurrency", concurrency, "how many requests are in flight at once")
        given = query["granularity"]
        unit = Granularity.DAY  # the API's default, asked for by name: the windows rely on it
        if given is not None and not isinstance(given, Unset):
            unit = Granularity(given)  # a member or its value: build_query has checked it
        if not _windows.handles(unit):
            raise invalid("granularity", f"{unit.value!r} cannot be cut into windows yet")
        # Without a date, the API's documented default, on this machine's clock.
        default = _windows.default_range(dt.datetime.now(dt.timezone.utc))
        ends = []
        for name, fallback in (("from_date", default.start), ("to_date", default.end)):
            value = query[name]
            ends.append(
                fallback if value is None or isinstance(value, Unset) else as_utc(name, value)
            )
        full = {**query, "from_date": ends[0], "to_date": ends[1], "granularity": unit}
        # The longest URL any window sends is the whole range's: checked once, here.
        _, path, params = build_query(full)
        self._opper._checked_url(path, params, server_url, timeout_ms, http_headers)
        self._opper._retry_policy(retries)
        whole = _windows.Window(ends[0], ends[1])
        total = _windows.count(whole, unit, window)
        return _windows.plan(whole, unit, window), total, unit, full
