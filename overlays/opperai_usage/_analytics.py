"""`opper.analytics`: the usage operation, sync and async, as the official SDK spells it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import httpx

from ._decode import result_or_raise
from ._query import build_query
from ._retries import RetryConfig, RetryPolicy
from ._transport import send, send_async
from .models import GetUsageResultItem, Granularity
from .types import UNSET, Unset

if TYPE_CHECKING:
    from ._client import Opper

DateArg = dt.datetime | dt.date | str | None | Unset
ListArg = Sequence[str] | None | Unset


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
