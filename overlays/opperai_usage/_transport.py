"""Sending one call: attempts, waits between them, a time budget per attempt, debug lines.

The decisions live in `RetryPolicy`; the sync and async loops below are twins that only
differ in how they wait, read and keep time.

Each attempt's time budget is the smaller of `timeout_ms` and what is left of the call's
`max_elapsed_time`, and it is enforced as a deadline, not per read: httpx's own timeouts
bound each read, so a body dribbled a byte at a time would never trip them. Async attempts
run under a cancel scope that fires at the deadline. Sync attempts cannot be interrupted from
outside, so the connections of the clients `Opper` makes bound every read, write and connect
by the time left (`DeadlineBackend`); with a client of yours, the deadline is checked as each
chunk arrives. A retry timed out by the end of `max_elapsed_time` ends the call with the
attempt before it (`_Attempts.ending`): the call's time ran out, the server did not fail.
"""

from __future__ import annotations

import contextvars
import logging
import ssl
import time
import typing
from collections.abc import Iterable, Iterator

import anyio
import httpcore
import httpx

from ._retries import RetryPolicy
from .errors import redacted_request

#: The running sync attempt's deadline (`time.monotonic()` seconds) and budget, for
#: `DeadlineBackend`'s streams; `None` outside an attempt.
_DEADLINE: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar(
    "opperai_usage_deadline", default=None
)
#: An attempt never gets less than this (a zero timeout makes sockets non-blocking).
_MIN_BUDGET_S = 0.001


def _over_budget(budget: float) -> str:
    return (
        f"no complete answer within the attempt's time budget of {budget:.3f}s "
        "(timeout_ms, or what was left of the retries' max_elapsed_time)"
    )


_T = typing.TypeVar("_T")


def _within_budget(
    operation: typing.Callable[[float | None], _T], timeout: float | None, error: type[Exception]
) -> _T:
    """`operation(timeout)`, given instead what the running attempt has left: httpx's own
    per-operation timeouts are set to the attempt's whole budget (`_timeouts`), so what is
    left is never longer. When that runs out, `error` says it was the budget."""
    current = _DEADLINE.get()
    if current is None:  # outside an attempt (nothing sends there today): httpx's timeout
        return operation(timeout)
    deadline, budget = current
    left = deadline - time.monotonic()
    if left <= 0:
        raise error(_over_budget(budget))
    try:
        return operation(left)
    except error:
        raise error(_over_budget(budget)) from None


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write waits no longer than the attempt has left."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        read = self._stream.read
        return _within_budget(
            lambda bounded: read(max_bytes, bounded), timeout, httpcore.ReadTimeout
        )

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        write = self._stream.write
        _within_budget(lambda bounded: write(buffer, bounded), timeout, httpcore.WriteTimeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        start_tls = self._stream.start_tls
        stream = _within_budget(
            lambda bounded: start_tls(ssl_context, server_hostname, bounded),
            timeout,
            httpcore.ConnectTimeout,
        )
        return _DeadlineStream(stream)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's sync network backend, whose connections keep to the attempt's deadline.
    TCP only: the transport it serves (`transport_with_deadlines`) has no Unix socket."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        connect = self._backend.connect_tcp
        stream = _within_budget(
            lambda bounded: connect(host, port, bounded, local_address, socket_options),
            timeout,
            httpcore.ConnectTimeout,
        )
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def transport_with_deadlines(tls: ssl.SSLContext) -> httpx.HTTPTransport:
    """httpx's default transport (what `httpx.Client()` makes, with `tls` as its TLS settings),
    its connections kept to each attempt's deadline. httpx has no argument for httpcore's
    `network_backend`, so it is set on the pool httpx made; `tests/test_budgets.py` fails if
    a new httpx moves it."""
    transport = httpx.HTTPTransport(verify=tls)
    pool = getattr(transport, "_pool", None)
    if isinstance(pool, httpcore.ConnectionPool):
        pool._network_backend = DeadlineBackend(pool._network_backend)
    return transport


class _SyncDeadlineStream(httpx.SyncByteStream):
    """The body as it arrives, checked against the deadline at each chunk: the bound for
    clients whose connections are not `DeadlineBackend`'s."""

    def __init__(
        self, stream: httpx.SyncByteStream, request: httpx.Request, deadline: tuple[float, float]
    ) -> None:
        self._stream, self._request = stream, request
        self._deadline, self._budget = deadline

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            if time.monotonic() > self._deadline:
                raise httpx.ReadTimeout(_over_budget(self._budget), request=self._request)
            yield chunk

    def close(self) -> None:
        self._stream.close()


def _timeouts(budget: float) -> dict[str, float]:
    """httpx's per-operation timeouts for an attempt: none may outlast the attempt."""
    return {"connect": budget, "read": budget, "write": budget, "pool": budget}


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
        self._cut_by_call_budget = False
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
        self._cut_by_call_budget = left < timeout_s
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
            (time.monotonic() - self._attempt_started) * 1000,
            then,
        )


def _final(outcome: httpx.Response | Exception) -> httpx.Response:
    if isinstance(outcome, httpx.RequestError):
        # httpx's exception keeps the request it failed on (a redirect's, for
        # TooManyRedirects), credentials and all: a logged or pickled error must not carry
        # the API key.
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
        budget = attempts.start(timeout_s)
        request.extensions["timeout"] = _timeouts(budget)
        deadline = (time.monotonic() + budget, budget)
        token = _DEADLINE.set(deadline)
        outcome: httpx.Response | Exception
        try:
            outcome = client.send(request, stream=True)
            outcome.stream = _SyncDeadlineStream(outcome.stream, request, deadline)  # type: ignore[arg-type]
            try:
                outcome.read()
            finally:
                outcome.close()
        except httpx.RequestError as error:  # TooManyRedirects and DecodingError included
            outcome = error
        finally:
            _DEADLINE.reset(token)
        wait = attempts.wait_after(outcome)
        if wait is None:
            return _final(attempts.ending(outcome))
        time.sleep(wait)


async def send_async(
    client: httpx.AsyncClient,
    request: httpx.Request,
    policy: RetryPolicy,
    timeout_s: float,
    logger: logging.Logger | None,
    gate: anyio.Semaphore,
) -> httpx.Response:
    """The async twin of `send`. Each attempt first waits for a place at `gate`; its budget
    (and, for the first, the call's clock) starts once it has one, and a timer ends it."""
    attempts = _Attempts(request, policy, logger)
    while True:
        async with gate:
            budget = attempts.start(timeout_s)
            request.extensions["timeout"] = _timeouts(budget)
            outcome: httpx.Response | Exception | None = None
            with anyio.move_on_after(budget):
                try:
                    outcome = await client.send(request)  # the body read in full, too
                except httpx.RequestError as error:
                    outcome = error
            if outcome is None:  # the timer ended the attempt
                outcome = httpx.ReadTimeout(_over_budget(budget), request=request)
        wait = attempts.wait_after(outcome)
        if wait is None:
            return _final(attempts.ending(outcome))
        await anyio.sleep(wait)
