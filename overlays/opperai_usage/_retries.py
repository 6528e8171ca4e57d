"""Retry configuration (the official SDK's `RetryConfig`/`BackoffStrategy`) and the one policy
that decides, for sync and async calls alike, whether and how long to wait before retrying."""

from __future__ import annotations

import email.utils
import math
import random
import time
from dataclasses import dataclass

import httpx

from ._validation import invalid

#: Statuses worth another attempt: throttling and the transient server errors.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: The longest `Retry-After` honoured, in seconds; a longer one waits this long. The shortest is
#: the backoff's `initial_interval`: a zero (or a date gone by) waits that long.
RETRY_AFTER_CAP_S = 60.0


def _check_number(owner: str, name: str, value: object, *, minimum: float, strict: bool) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < minimum
        or (strict and value == minimum)
    ):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise invalid(name, f"of {owner} must be a finite number {bound}, not {value!r}")


@dataclass(frozen=True, slots=True)
class BackoffStrategy:
    """Exponential backoff, all times in milliseconds; checked when made, so that a bad value
    fails where it is written rather than in the middle of a retry."""

    initial_interval: int | float
    max_interval: int | float
    exponent: float
    max_elapsed_time: int | float

    def __post_init__(self) -> None:
        owner = "BackoffStrategy"
        _check_number(
            owner,
            "initial_interval",
            self.initial_interval,
            minimum=0,
            strict=False,  # pragma: no mutate
        )
        _check_number(
            owner,
            "max_interval",
            self.max_interval,
            minimum=0,
            strict=False,  # pragma: no mutate
        )
        _check_number(owner, "exponent", self.exponent, minimum=0, strict=True)
        _check_number(owner, "max_elapsed_time", self.max_elapsed_time, minimum=0, strict=True)


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

    def __post_init__(self) -> None:
        if not isinstance(self.strategy, str):
            raise invalid("strategy", f"of RetryConfig must be a string, not {self.strategy!r}")
        if not isinstance(self.backoff, BackoffStrategy | None):
            raise invalid(
                "backoff", f"of RetryConfig must be a BackoffStrategy or None, not {self.backoff!r}"
            )
        if not isinstance(self.retry_connection_errors, bool):
            flag = self.retry_connection_errors
            raise invalid("retry_connection_errors", f"of RetryConfig must be a bool, not {flag!r}")
        retries = self.max_retries
        if retries is not None and (
            isinstance(retries, bool) or not isinstance(retries, int) or retries < 0
        ):
            raise invalid(
                "max_retries", f"of RetryConfig must be None or an int >= 0, not {retries!r}"
            )


_DEFAULT_BACKOFF = BackoffStrategy(
    initial_interval=500, max_interval=8_000, exponent=2.0, max_elapsed_time=60_000
)
#: On unless configured otherwise: 2 retries, 0.5 s doubling to 8 s, at most 60 s in all.
DEFAULT_RETRY_CONFIG = RetryConfig(
    "backoff", _DEFAULT_BACKOFF, retry_connection_errors=True, max_retries=2
)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds, from either of its forms (delta-seconds or an HTTP date)."""
    value = response.headers.get("retry-after")  # pragma: no mutate
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


def _fails_the_same_way_again(error: BaseException) -> bool:
    """A TLS failure that no later attempt can get past: a certificate that is not trusted or
    does not match, no protocol or cipher in common, TLS spoken to a port that does not speak
    it. (The connection dropping during the handshake is not one: that may pass.)"""
    import ssl  # only on a failure: sync-only programs that never fail do not load it here

    transient = (ssl.SSLEOFError, ssl.SSLSyscallError, ssl.SSLZeroReturnError)
    seen: BaseException | None = error
    for _ in range(16):  # httpx's error, httpcore's, anyio's, the ssl module's
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError) and not isinstance(seen, transient):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class RetryPolicy:
    """Decides after each failed attempt: `None` to stop, or the seconds to sleep first; and
    how much time the call has left (`max_elapsed_s`), which also bounds each attempt."""

    __slots__ = ("_backoff", "_connection_errors", "_max_retries", "max_elapsed_s")

    def __init__(self, config: RetryConfig | None) -> None:
        self._max_retries: int | None = 0
        self._backoff = _DEFAULT_BACKOFF  # pragma: no mutate
        self._connection_errors = False  # pragma: no mutate
        #: The whole call's budget, in seconds, while retries are on; `None` when they are off.
        self.max_elapsed_s: float | None = None
        if config is not None and config.strategy == "backoff":
            self._max_retries = config.max_retries
            self._backoff = config.backoff or _DEFAULT_BACKOFF
            self._connection_errors = config.retry_connection_errors
            self.max_elapsed_s = self._backoff.max_elapsed_time / 1000

    def delay(
        self, retries_done: int, elapsed_s: float, outcome: httpx.Response | Exception
    ) -> float | None:
        """How long to wait after an attempt that ended in `outcome`; `None`: do not retry."""
        if self._max_retries is not None and retries_done >= self._max_retries:
            return None
        if isinstance(outcome, Exception):
            if not (self._connection_errors and isinstance(outcome, _RETRYABLE_ERRORS)):
                return None
            if _fails_the_same_way_again(outcome):
                return None
            wait = None
        elif outcome.status_code in RETRY_STATUSES:
            wait = retry_after_seconds(outcome)
            if wait is not None:  # `Retry-After: 0` must not make a storm of retries
                wait = max(wait, self._backoff.initial_interval / 1000)
        else:
            return None
        if wait is None:
            backoff = self._backoff
            try:
                interval = backoff.initial_interval / 1000 * backoff.exponent**retries_done
            except OverflowError:  # long past max_interval: capped below
                interval = math.inf
            wait = min(interval * random.uniform(0.75, 1.25), backoff.max_interval / 1000)
        wait = min(wait, RETRY_AFTER_CAP_S)
        if self.max_elapsed_s is not None and elapsed_s + wait >= self.max_elapsed_s:
            return None  # waiting would use up the call's time budget: give up now
        return wait
