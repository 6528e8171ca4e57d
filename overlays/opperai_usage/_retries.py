"""Retry configuration (the official SDK's `RetryConfig`/`BackoffStrategy`) and the one policy
that decides, for sync and async calls alike, whether and how long to wait before retrying."""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass

import httpx

#: Statuses worth another attempt: throttling and the transient server errors.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: The longest `Retry-After` honoured, in seconds; a longer one waits this long.
RETRY_AFTER_CAP_S = 60.0


@dataclass(frozen=True, slots=True)
class BackoffStrategy:
    """Exponential backoff, all times in milliseconds."""

    initial_interval: int
    max_interval: int
    exponent: float
    max_elapsed_time: int


@dataclass(frozen=True, slots=True)
class RetryConfig:
    """When to try again. Any `strategy` other than `"backoff"` turns retries off.

    `max_retries` (not in the official SDK) bounds the number of retries; `None` leaves
    only `backoff.max_elapsed_time` to end them, as the official SDK does.
    """

    strategy: str
    backoff: BackoffStrategy | None = None
    retry_connection_errors: bool = False
    max_retries: int | None = None


_DEFAULT_BACKOFF = BackoffStrategy(
    initial_interval=500, max_interval=8_000, exponent=2.0, max_elapsed_time=60_000
)
#: On unless configured otherwise: 2 retries, 0.5 s doubling to 8 s, at most 60 s in all.
DEFAULT_RETRY_CONFIG = RetryConfig(
    "backoff", _DEFAULT_BACKOFF, retry_connection_errors=True, max_retries=2
)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds, from either of its forms (delta-seconds or an HTTP date)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() also takes "²"
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


#: Network failures worth another attempt (not, say, an unsupported URL scheme).
_RETRYABLE_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class RetryPolicy:
    """Decides after each failed attempt: `None` to stop, or the seconds to sleep first."""

    __slots__ = ("_backoff", "_connection_errors", "_max_retries")

    def __init__(self, config: RetryConfig | None) -> None:
        self._max_retries: int | None = 0
        self._backoff = _DEFAULT_BACKOFF
        self._connection_errors = False
        if config is not None and config.strategy == "backoff":
            self._max_retries = config.max_retries
            self._backoff = config.backoff or _DEFAULT_BACKOFF
            self._connection_errors = config.retry_connection_errors

    def delay(
        self, retries_done: int, elapsed_s: float, outcome: httpx.Response | Exception
    ) -> float | None:
        """How long to wait after an attempt that ended in `outcome`; `None`: do not retry."""
        if self._max_retries is not None and retries_done >= self._max_retries:
            return None
        if isinstance(outcome, Exception):
            if not (self._connection_errors and isinstance(outcome, _RETRYABLE_ERRORS)):
                return None
            wait = None
        elif outcome.status_code in RETRY_STATUSES:
            wait = retry_after_seconds(outcome)
        else:
            return None
        if wait is None:
            backoff = self._backoff
            interval = backoff.initial_interval / 1000 * backoff.exponent**retries_done
            wait = min(interval * random.uniform(0.75, 1.25), backoff.max_interval / 1000)
        wait = min(wait, RETRY_AFTER_CAP_S)
        if elapsed_s + wait > self._backoff.max_elapsed_time / 1000:
            return None  # waiting would overrun the call's time budget: give up now
        return wait
