"""Sending one call: attempts, waits between them, a time budget per attempt, the answer's
size bounded, debug lines.

The decisions live in `RetryPolicy`; the sync and async loops below are twins that only
differ in how they wait, read and keep time.

Each answer is read, decoded, up to `max_response_bytes` (`_read`): past it the attempt ends
with `ResponseTooLargeError`, holding no more than that (and one decoded piece), and the call
is not retried. A compressed body goes to its decoder in small pieces, so that a gzip bomb
cannot inflate far past the limit in one step.

Each attempt's time budget is the smaller of `timeout_ms` and what is left of the call's
`max_elapsed_time`, kept as a deadline (`_deadline`): async attempts run under a cancel scope
that fires at it. A retry timed out by the end of `max_elapsed_time` ends the call with the
attempt before it (`_Attempts.ending`): the call's time ran out, the server did not fail.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterable, Iterator

import anyio
import httpx

from ._deadline import DEADLINE, SyncDeadlineStream, over_budget, timeouts
from ._redact import redact
from ._retries import RetryPolicy
from .errors import (
    ResponseTooLargeError,
    credentials,
    redacted_request,
    secrets_sent,
    without_secrets,
)

#: An attempt never gets less than this (a zero timeout makes sockets non-blocking).
_MIN_BUDGET_S = 0.001
#: The most bytes of a compressed body handed to its decoder at once: gzip and deflate inflate
#: at most about 1,000 times, so a step makes about 1 MiB at most, however the server chunks.
_ENCODED_PIECE = 1024


class _Attempts:
    """One call's attempts: their budgets; asks the policy after each, logs it, counts."""

    _attempt_started: float  # set by start(), before anything reads it

    def __init__(
        self, request: httpx.Request, policy: RetryPolicy, logger: logging.Logger | None
    ) -> None:
        self._request, self._policy, self._logger = request, policy, logger
        self._started: float | None = None
        self._retries = 0
        #: Whether what was left of `max_elapsed_time` (not `timeout_ms`) bounds this attempt.
        self._cut_by_call_budget = False  # pragma: no mutate
        #: The outcome of the attempt before this one, if any.
        self._earlier: httpx.Response | Exception | None = None

    def start(self, timeout_s: float) -> float:
        """Start an attempt; its time budget in seconds. The call's clock (which
        `max_elapsed_time` bounds) starts with its first attempt."""
        now = self._attempt_started = time.monotonic()
        if self._started is None:
            self._started = now
        limit = self._policy.max_elapsed_s
        if limit is None:
            return timeout_s
        left = limit - (now - self._started)
        self._cut_by_call_budget = left < timeout_s  # pragma: no mutate
        return max(min(timeout_s, left), _MIN_BUDGET_S)

    def wait_after(self, outcome: httpx.Response | Exception) -> float | None:
        """Seconds to sleep before the next attempt, or `None` when `outcome` is final."""
        assert self._started is not None
        wait = self._policy.delay(self._retries, time.monotonic() - self._started, outcome)
        if self._logger is not None:
            self._log(outcome, wait)
        self._retries += 1
        if wait is not None:
            self._earlier = outcome
        return wait

    def ending(self, outcome: httpx.Response | Exception) -> httpx.Response | Exception:
        """What the call ends with: `outcome`, unless it is a retry timed out by the end of
        `max_elapsed_time`. The server did not fail then, the call's time ran out, so it
        ends with the attempt before, as the official SDK ends with its last answer."""
        cut = self._cut_by_call_budget and isinstance(outcome, httpx.TimeoutException)
        return self._earlier if cut and self._earlier is not None else outcome

    def _log(self, outcome: httpx.Response | Exception, wait: float | None) -> None:
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
            (time.monotonic() - self._attempt_started) * 1000,  # pragma: no mutate
            then,
        )


def _final(outcome: httpx.Response | Exception, request: httpx.Request) -> httpx.Response:
    if isinstance(outcome, httpx.RequestError):
        _scrub(outcome, request)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def _scrub(error: httpx.RequestError, request: httpx.Request) -> None:
    """Keep the credentials out of a network error. httpx's exception keeps the request it
    failed on (a redirect's, for TooManyRedirects), credentials and all: a logged or pickled
    error must not carry the API key. Its message may quote the server (h11 quotes a
    malformed header line): where that holds the key, the key reads `<redacted>`, and the
    exceptions it came from, which quote it too, are dropped."""
    secrets = sorted(credentials(request) | credentials(error.request))
    message = str(error)
    shown = redact(message, secrets)
    if shown != message:
        error.args = (shown,)
        error.__cause__ = error.__context__ = None
    error.request = redacted_request(error.request)


def _too_large(response: httpx.Response, limit: int) -> ResponseTooLargeError:
    return ResponseTooLargeError(without_secrets(response, secrets_sent(response)), limit)


def _announced_too_large(response: httpx.Response, limit: int) -> bool:
    """Whether an uncompressed body's `Content-Length` says it is over `limit` already."""
    if response.headers.get("content-encoding", "identity").strip().lower() != "identity":
        return False
    length = response.headers.get("content-length", "").strip()
    return length.isascii() and length.isdigit() and int(length) > limit


def _split(chunk: bytes) -> Iterator[bytes]:
    for start in range(0, len(chunk), _ENCODED_PIECE):
        yield chunk[start : start + _ENCODED_PIECE]


class _Pieces(httpx.SyncByteStream):
    """A raw body in pieces of at most `_ENCODED_PIECE` bytes."""

    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            yield from _split(chunk)

    def close(self) -> None:
        if isinstance(self._stream, httpx.SyncByteStream):
            self._stream.close()


class _AsyncPieces(httpx.AsyncByteStream):
    """`_Pieces` for async bodies."""

    def __init__(self, stream: httpx.AsyncByteStream) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            for piece in _split(chunk):
                yield piece

    async def aclose(self) -> None:
        await self._stream.aclose()


def _keep(response: httpx.Response, chunks: list[bytes]) -> None:
    # As `Response.read()` keeps a body read in full (httpx has no public way to set it).
    response._content = b"".join(chunks)


def _read(response: httpx.Response, limit: int) -> None:
    """`response.read()`, ending in `ResponseTooLargeError` as soon as the decoded body
    outgrows `limit` bytes, without holding more."""
    if _announced_too_large(response, limit):
        raise _too_large(response, limit)
    if "content-encoding" in response.headers:  # pragma: no mutate
        response.stream = _Pieces(response.stream)  # type: ignore[arg-type]
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise _too_large(response, limit)
        chunks.append(chunk)
    _keep(response, chunks)


async def _aread(response: httpx.Response, limit: int) -> None:
    """The async twin of `_read`."""
    if _announced_too_large(response, limit):
        raise _too_large(response, limit)
    if "content-encoding" in response.headers:  # pragma: no mutate
        response.stream = _AsyncPieces(response.stream)  # type: ignore[arg-type]
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise _too_large(response, limit)
        chunks.append(chunk)
    _keep(response, chunks)


def send(
    client: httpx.Client,
    request: httpx.Request,
    policy: RetryPolicy,
    timeout_s: float,
    logger: logging.Logger | None,
    *,
    max_bytes: int,
) -> httpx.Response:
    """The final answer (read in full, at most `max_bytes` of it decoded), after as many
    attempts as `policy` allows."""
    attempts = _Attempts(request, policy, logger)
    while True:
        budget = attempts.start(timeout_s)
        request.extensions["timeout"] = timeouts(budget)
        deadline = (time.monotonic() + budget, budget)
        token = DEADLINE.set(deadline)
        outcome: httpx.Response | Exception
        try:
            outcome = client.send(request, stream=True)
            outcome.stream = SyncDeadlineStream(outcome.stream, request, deadline)  # type: ignore[arg-type]  # pragma: no mutate
            try:
                _read(outcome, max_bytes)
            finally:
                outcome.close()
        except (httpx.RequestError, ResponseTooLargeError) as error:
            outcome = error  # RequestError: TooManyRedirects and DecodingError included
        finally:
            DEADLINE.reset(token)
        wait = attempts.wait_after(outcome)
        if wait is None:
            return _final(attempts.ending(outcome), request)
        time.sleep(wait)


async def _receive(client: httpx.AsyncClient, request: httpx.Request, limit: int) -> httpx.Response:
    response = await client.send(request, stream=True)
    try:
        await _aread(response, limit)
    finally:
        await response.aclose()
    return response


async def send_async(
    client: httpx.AsyncClient,
    request: httpx.Request,
    policy: RetryPolicy,
    timeout_s: float,
    logger: logging.Logger | None,
    gate: anyio.Semaphore,
    *,
    max_bytes: int,
) -> httpx.Response:
    """The async twin of `send`. Each attempt first waits for a place at `gate`; its budget
    (and, for the first, the call's clock) starts once it has one, and a timer ends it."""
    attempts = _Attempts(request, policy, logger)
    while True:
        async with gate:
            budget = attempts.start(timeout_s)
            request.extensions["timeout"] = timeouts(budget)
            outcome: httpx.Response | Exception | None = None
            with anyio.move_on_after(budget):
                try:
                    outcome = await _receive(client, request, max_bytes)
                except (httpx.RequestError, ResponseTooLargeError) as error:
                    outcome = error
            if outcome is None:  # the timer ended the attempt
                outcome = httpx.ReadTimeout(over_budget(budget), request=request)
        wait = attempts.wait_after(outcome)
        if wait is None:
            return _final(attempts.ending(outcome), request)
        await anyio.sleep(wait)
