"""Sending one call: attempts, waits between them, a time budget per attempt, debug lines.

The decisions live in `RetryPolicy`; the sync and async loops below are twins that only
differ in how they wait, read and keep time.

Each attempt's time budget is the smaller of `timeout_ms` and what is left of the call's
`max_elapsed_time`, kept as a deadline (`_deadline`): async attempts run under a cancel scope
that fires at it. A retry timed out by the end of `max_elapsed_time` ends the call with the
attempt before it (`_Attempts.ending`): the call's time ran out, the server did not fail.
"""

from __future__ import annotations

import logging
import time

import anyio
import httpx

from ._deadline import DEADLINE, SyncDeadlineStream, over_budget, timeouts
from ._retries import RetryPolicy
from .errors import redacted_request

#: An attempt never gets less than this (a zero timeout makes sockets non-blocking).
_MIN_BUDGET_S = 0.001


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
        request.extensions["timeout"] = timeouts(budget)
        deadline = (time.monotonic() + budget, budget)
        token = DEADLINE.set(deadline)
        outcome: httpx.Response | Exception
        try:
            outcome = client.send(request, stream=True)
            outcome.stream = SyncDeadlineStream(outcome.stream, request, deadline)  # type: ignore[arg-type]
            try:
                outcome.read()
            finally:
                outcome.close()
        except httpx.RequestError as error:  # TooManyRedirects and DecodingError included
            outcome = error
        finally:
            DEADLINE.reset(token)
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
            request.extensions["timeout"] = timeouts(budget)
            outcome: httpx.Response | Exception | None = None
            with anyio.move_on_after(budget):
                try:
                    outcome = await client.send(request)  # the body read in full, too
                except httpx.RequestError as error:
                    outcome = error
            if outcome is None:  # the timer ended the attempt
                outcome = httpx.ReadTimeout(over_budget(budget), request=request)
        wait = attempts.wait_after(outcome)
        if wait is None:
            return _final(attempts.ending(outcome))
        await anyio.sleep(wait)
