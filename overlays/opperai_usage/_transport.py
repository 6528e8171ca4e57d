"""Sending one call: attempts, waits between them, a time budget per attempt, debug lines.

The decisions live in `RetryPolicy`; the sync and async loops below are twins that only
differ in how they wait and read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator

import anyio
import httpx

from ._retries import RetryPolicy
from .errors import redacted_request


class _Deadline:
    """Raises httpx's own `ReadTimeout` once the attempt's budget is spent, so a body dribbled
    byte by byte cannot hold a call past `timeout_ms` (httpx's timeouts are per read)."""

    def __init__(self, request: httpx.Request, deadline: float) -> None:
        self._request = request
        self._deadline = deadline

    def check(self) -> None:
        if time.monotonic() > self._deadline:
            raise httpx.ReadTimeout(
                "the response took longer than timeout_ms", request=self._request
            )


class _SyncDeadlineStream(httpx.SyncByteStream):
    def __init__(self, stream: httpx.SyncByteStream, deadline: _Deadline) -> None:
        self._stream, self._deadline = stream, deadline

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            self._deadline.check()
            yield chunk

    def close(self) -> None:
        self._stream.close()


class _AsyncDeadlineStream(httpx.AsyncByteStream):
    def __init__(self, stream: httpx.AsyncByteStream, deadline: _Deadline) -> None:
        self._stream, self._deadline = stream, deadline

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            self._deadline.check()
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class _Attempts:
    """One call's attempts: asks the policy after each, logs it, counts the retries."""

    def __init__(
        self, request: httpx.Request, policy: RetryPolicy, logger: logging.Logger | None
    ) -> None:
        self._request, self._policy, self._logger = request, policy, logger
        self._started = time.monotonic()
        self._retries = 0

    def wait_after(
        self, outcome: httpx.Response | Exception, attempt_started: float
    ) -> float | None:
        """Seconds to sleep before the next attempt, or `None` when `outcome` is final."""
        wait = self._policy.delay(self._retries, time.monotonic() - self._started, outcome)
        if self._logger is not None:
            self._log(outcome, attempt_started, wait)
        self._retries += 1
        return wait

    def _log(
        self, outcome: httpx.Response | Exception, attempt_started: float, wait: float | None
    ) -> None:
        assert self._logger is not None
        result = (
            str(outcome.status_code)
            if isinstance(outcome, httpx.Response)
            else type(outcome).__name__
        )
        then = "" if wait is None else f", retrying in {wait:.2f}s"
        self._logger.debug(
            "%s %s -> %s (attempt %d, %.1f ms%s)",
            self._request.method,
            self._request.url,
            result,
            self._retries + 1,
            (time.monotonic() - attempt_started) * 1000,
            then,
        )


def _final(outcome: httpx.Response | Exception) -> httpx.Response:
    if isinstance(outcome, httpx.RequestError):
        # httpx's exception keeps the request it failed on, credentials and all: a logged or
        # pickled network error must not carry the API key.
        outcome.request = redacted_request(outcome.request)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def send(
    client: httpx.Client,
    request: httpx.Request,
    policy: RetryPolicy,
    timeout_s: float,
    logger: logging.Logger | None,
) -> httpx.Response:
    """The final answer (read in full), after as many attempts as `policy` allows."""
    attempts = _Attempts(request, policy, logger)
    while True:
        attempt_started = time.monotonic()
        outcome: httpx.Response | Exception
        try:
            outcome = client.send(request, stream=True)
            deadline = _Deadline(request, attempt_started + timeout_s)
            outcome.stream = _SyncDeadlineStream(outcome.stream, deadline)  # type: ignore[arg-type]
            try:
                outcome.read()
            finally:
                outcome.close()
        except httpx.TransportError as error:
            outcome = error
        wait = attempts.wait_after(outcome, attempt_started)
        if wait is None:
            return _final(outcome)
        time.sleep(wait)


async def send_async(
    client: httpx.AsyncClient,
    request: httpx.Request,
    policy: RetryPolicy,
    timeout_s: float,
    logger: logging.Logger | None,
    gate: anyio.Semaphore,
) -> httpx.Response:
    """The async twin of `send`; each attempt first waits for a place at `gate`, and its time
    budget starts once it has one."""
    attempts = _Attempts(request, policy, logger)
    while True:
        async with gate:
            attempt_started = time.monotonic()
            outcome: httpx.Response | Exception
            try:
                outcome = await client.send(request, stream=True)
                deadline = _Deadline(request, attempt_started + timeout_s)
                outcome.stream = _AsyncDeadlineStream(outcome.stream, deadline)  # type: ignore[arg-type]
                try:
                    await outcome.aread()
                finally:
                    await outcome.aclose()
            except httpx.TransportError as error:
                outcome = error
        wait = attempts.wait_after(outcome, attempt_started)
        if wait is None:
            return _final(outcome)
        await anyio.sleep(wait)
