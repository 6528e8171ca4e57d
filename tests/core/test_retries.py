"""Retries: the official SDK's RetryConfig semantics, on by default, one policy for sync and
async."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx
import pytest

from opperai_usage import errors
from opperai_usage._retries import RETRY_AFTER_CAP_S, RetryPolicy
from opperai_usage.utils import DEFAULT_RETRY_CONFIG, BackoffStrategy, RetryConfig
from tests.support.calls import ITEMS, Recorder, Usage

URL = "http://127.0.0.1:9/v2"
FAST = RetryConfig("backoff", BackoffStrategy(1, 5, 2.0, 2_000), retry_connection_errors=True)


def ok() -> httpx.Response:
    return httpx.Response(200, json=ITEMS)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(usage: Usage, status: int) -> None:
    recorder = Recorder(httpx.Response(status), httpx.Response(status), ok())
    assert len(usage(server_url=URL, transport=recorder.transport, retry_config=FAST)) == 2
    assert len(recorder.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 404, 422, 501])
def test_other_statuses_are_not_retried(usage: Usage, status: int) -> None:
    recorder = Recorder(httpx.Response(status, json={"detail": None}), ok())
    with pytest.raises(errors.OpperError):
        usage(server_url=URL, transport=recorder.transport, retry_config=FAST)
    assert len(recorder.requests) == 1


def test_connection_errors_are_retried_when_asked(usage: Usage) -> None:
    recorder = Recorder(httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), ok())
    assert usage(server_url=URL, transport=recorder.transport, retry_config=FAST)
    assert len(recorder.requests) == 3


def test_connection_errors_surface_as_httpx_errors_when_not_retried(usage: Usage) -> None:
    recorder = Recorder(httpx.ConnectError("refused"), ok())
    config = RetryConfig(
        "backoff", BackoffStrategy(1, 5, 2.0, 2_000), retry_connection_errors=False
    )
    with pytest.raises(httpx.ConnectError):
        usage(server_url=URL, transport=recorder.transport, retry_config=config)
    assert len(recorder.requests) == 1


def test_per_call_retries_override_the_client(usage: Usage) -> None:
    recorder = Recorder(httpx.Response(503), ok())
    with pytest.raises(errors.APIError):
        usage(server_url=URL, transport=recorder.transport, retry_config=FAST,
              call={"retries": RetryConfig("none")})  # fmt: skip
    assert len(recorder.requests) == 1


def test_none_turns_retries_off(usage: Usage) -> None:
    recorder = Recorder(httpx.Response(503), ok())
    with pytest.raises(errors.APIError, match="Status 503"):
        usage(server_url=URL, transport=recorder.transport, retry_config=None)
    assert len(recorder.requests) == 1


def test_max_retries_bounds_attempts(usage: Usage) -> None:
    config = RetryConfig("backoff", BackoffStrategy(1, 5, 2.0, 5_000), max_retries=3)
    recorder = Recorder(httpx.Response(500))
    with pytest.raises(errors.APIError, match="Status 500"):
        usage(server_url=URL, transport=recorder.transport, retry_config=config)
    assert len(recorder.requests) == 4


def test_max_elapsed_time_bounds_the_call_then_raises_the_last_answer(usage: Usage) -> None:
    config = RetryConfig("backoff", BackoffStrategy(20, 20, 1.0, 300))
    recorder = Recorder(httpx.Response(500, text="still down"))
    started = time.monotonic()
    with pytest.raises(errors.APIError, match="still down"):
        usage(server_url=URL, transport=recorder.transport, retry_config=config)
    assert time.monotonic() - started < 1.0
    # About 14 attempts 20 ms apart; at least 3 on a loaded machine (4 were seen under mutmut).
    assert 3 <= len(recorder.requests) <= 20


def test_retry_after_is_honoured(usage: Usage) -> None:
    """`Retry-After: 0` wins over a backoff growing to 5 s, but still waits its initial
    interval (0.2 s), not nothing: no storm of retries. (That a longer one is waited for, a
    whole second, is timed over real sockets in test_faults.py.)"""
    patient = RetryConfig("backoff", BackoffStrategy(200, 5_000, 25.0, 60_000), max_retries=2)
    zero = httpx.Response(429, headers={"retry-after": "0"})
    recorder = Recorder(zero, zero, ok())
    started = time.monotonic()
    assert usage(server_url=URL, transport=recorder.transport, retry_config=patient)
    assert 0.4 <= time.monotonic() - started < 2.0
    assert len(recorder.requests) == 3


def test_default_config_retries_twice_on_statuses_and_connection_errors(usage: Usage) -> None:
    """A refused connection, then 503s: both retried, twice in all, then the last 503 is
    raised. (Each wait is the default's 0.5 s; one call shows all three.)"""
    assert DEFAULT_RETRY_CONFIG.max_retries == 2
    unavailable = httpx.Response(503, headers={"retry-after": "0"}, text="still down")
    recorder = Recorder(httpx.ConnectError("refused"), unavailable)  # then 503 for good
    with pytest.raises(errors.APIError, match="still down"):
        usage(server_url=URL, transport=recorder.transport)
    assert len(recorder.requests) == 3


def response(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers)


def test_policy_backoff_grows_with_jitter_proportional_to_the_interval() -> None:
    policy = RetryPolicy(RetryConfig("backoff", BackoffStrategy(100, 10_000, 2.0, 60_000)))
    for retries, interval in [(0, 0.1), (1, 0.2), (2, 0.4), (5, 3.2)]:
        waits = [policy.delay(retries, 0.0, response(503)) for _ in range(200)]
        assert all(w is not None and 0.75 * interval <= w <= 1.25 * interval for w in waits)
        assert len(set(waits)) > 100  # jittered, not constant


@pytest.mark.parametrize("retries", [0, 3])
def test_the_jitter_is_25_percent_either_side_of_the_interval(retries: int) -> None:
    """The README promises +-25 %: waits fall both below and above the nominal interval,
    about half each way, reaching near both ends (a one-sided jitter, 0.75-1.0 or 1.0-1.25,
    fails here). 400 draws: the chance of a correct jitter failing is below 1e-15."""
    policy = RetryPolicy(RetryConfig("backoff", BackoffStrategy(200, 60_000, 2.0, 600_000)))
    interval = 0.2 * 2.0**retries
    ratios = []
    for _ in range(400):
        wait = policy.delay(retries, 0.0, response(503))
        assert wait is not None
        ratios.append(wait / interval)
    assert 0.75 <= min(ratios) < 0.8
    assert 1.2 < max(ratios) <= 1.25
    below = sum(ratio < 1.0 for ratio in ratios)
    assert 140 <= below <= 260  # half of 400, within 6 standard deviations
    assert 0.95 < sum(ratios) / len(ratios) < 1.05


def test_policy_caps_waits_at_max_interval() -> None:
    policy = RetryPolicy(RetryConfig("backoff", BackoffStrategy(1_000, 1_500, 3.0, 60_000)))
    assert policy.delay(4, 0.0, response(503)) == 1.5


def test_policy_reads_retry_after_as_seconds_or_http_date() -> None:
    policy = RetryPolicy(RetryConfig("backoff", BackoffStrategy(1, 5, 2.0, 600_000)))
    assert policy.delay(0, 0.0, response(429, **{"retry-after": "7"})) == 7.0
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    wait = policy.delay(0, 0.0, response(503, **{"retry-after": date}))
    assert wait is not None
    assert 28 <= wait <= 30
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    # A date gone by waits the shortest wait: the backoff's initial interval (1 ms here).
    assert policy.delay(0, 0.0, response(503, **{"retry-after": past})) == 0.001
    assert policy.delay(0, 0.0, response(429, **{"retry-after": "86400"})) == RETRY_AFTER_CAP_S


def test_policy_gives_up_when_the_wait_would_overrun_max_elapsed_time() -> None:
    policy = RetryPolicy(RetryConfig("backoff", BackoffStrategy(100, 100, 1.0, 1_000)))
    assert policy.delay(0, 0.0, response(429, **{"retry-after": "5"})) is None
    assert policy.delay(0, 0.95, response(503)) is None
    assert policy.delay(0, 0.1, response(503)) is not None


def test_policy_strategy_other_than_backoff_never_retries() -> None:
    policy = RetryPolicy(RetryConfig("none", BackoffStrategy(1, 5, 2.0, 1_000), True))
    assert policy.delay(0, 0.0, response(503)) is None
    assert policy.delay(0, 0.0, httpx.ConnectError("x")) is None


def test_policy_does_not_retry_errors_that_would_fail_again() -> None:
    policy = RetryPolicy(DEFAULT_RETRY_CONFIG)
    assert policy.delay(0, 0.0, httpx.UnsupportedProtocol("ftp")) is None
    assert policy.delay(0, 0.0, httpx.RemoteProtocolError("dropped")) is not None


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda: BackoffStrategy(-1, 5, 2.0, 1_000), "initial_interval"),
        (lambda: BackoffStrategy(1, -5, 2.0, 1_000), "max_interval"),
        (lambda: BackoffStrategy(1, 5, 0, 1_000), "exponent"),
        (lambda: BackoffStrategy(1, 5, float("nan"), 1_000), "exponent"),
        (lambda: BackoffStrategy(1, 5, 2.0, 0), "max_elapsed_time"),
        (lambda: BackoffStrategy(1, 5, 2.0, float("inf")), "max_elapsed_time"),
        (lambda: BackoffStrategy("1", 5, 2.0, 1_000), "initial_interval"),  # type: ignore[arg-type]
        (lambda: BackoffStrategy(True, 5, 2.0, 1_000), "initial_interval"),
        (lambda: RetryConfig(None), "strategy"),  # type: ignore[arg-type]
        (lambda: RetryConfig("backoff", {"initial_interval": 1}), "backoff"),  # type: ignore[arg-type]
        (lambda: RetryConfig("backoff", None, "yes"), "retry_connection_errors"),  # type: ignore[arg-type]
        (lambda: RetryConfig("backoff", None, True, -1), "max_retries"),
        (lambda: RetryConfig("backoff", None, True, 2.5), "max_retries"),  # type: ignore[arg-type]
    ],
)
def test_retry_settings_are_checked_when_made(make: Any, named: str) -> None:
    """Where the value is written, not in the middle of a retry (time.sleep(-0.5))."""
    with pytest.raises(errors.InvalidArgumentError) as raised:
        make()
    assert raised.value.parameter == named
    assert str(raised.value).startswith(f"{named} of ")


def test_the_backoff_stops_growing_at_max_interval() -> None:
    """max_retries=None and a long max_elapsed_time: thousands of retries in, the exponent
    would overflow a float (2.0**1024); the wait is max_interval."""
    policy = RetryPolicy(RetryConfig("backoff", BackoffStrategy(500, 8_000, 2.0, 10**12)))
    for retries in (10, 1_023, 1_024, 5_000, 10**6):
        wait = policy.delay(retries, 0.0, response(503))
        assert wait == 8.0
    huge = RetryPolicy(RetryConfig("backoff", BackoffStrategy(1, 2_000, 1e300, 10**12)))
    assert huge.delay(3, 0.0, response(503)) == 2.0


def test_max_elapsed_time_applies_only_while_retries_are_on() -> None:
    assert RetryPolicy(None).max_elapsed_s is None
    assert RetryPolicy(RetryConfig("none")).max_elapsed_s is None
    assert RetryPolicy(DEFAULT_RETRY_CONFIG).max_elapsed_s == 60.0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: BackoffStrategy(-1, 5, 2.0, 1_000),
         "initial_interval of BackoffStrategy must be a finite number >= 0, not -1"),
        (lambda: BackoffStrategy(1, -0.5, 2.0, 1_000),
         "max_interval of BackoffStrategy must be a finite number >= 0, not -0.5"),
        (lambda: BackoffStrategy(1, 5, 0, 1_000),
         "exponent of BackoffStrategy must be a finite number > 0, not 0"),
        (lambda: BackoffStrategy(1, 5, 2.0, 0.0),
         "max_elapsed_time of BackoffStrategy must be a finite number > 0, not 0.0"),
    ],
)  # fmt: skip
def test_retry_settings_say_what_is_allowed(make: Any, message: str) -> None:
    with pytest.raises(errors.InvalidArgumentError) as raised:
        make()
    assert str(raised.value) == message


def test_zero_intervals_are_allowed_and_retry_at_once(usage: Usage) -> None:
    """initial_interval and max_interval may be 0 (retry without waiting); exponent and
    max_elapsed_time must be above 0."""
    config = RetryConfig("backoff", BackoffStrategy(0, 0, 1.0, 5_000), max_retries=2)
    assert RetryPolicy(config).delay(1, 0.0, response(503)) == 0.0
    recorder = Recorder(httpx.Response(503), ok())
    assert usage(server_url=URL, transport=recorder.transport, retry_config=config)
    assert len(recorder.requests) == 2


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        (" 3 ", 3.0),
        ("0", 0.1),  # the backoff's initial interval: no storm of retries
        ("86400", 60.0),  # the cap: a minute at most
        ("\u00b2", None),  # a digit to str.isdigit(), not to HTTP: the backoff applies
        ("soon", None),
        ("-5", None),
        ("", None),
    ],
)
def test_retry_after_in_seconds(header: str, expected: float | None) -> None:
    policy = RetryPolicy(RetryConfig("backoff", BackoffStrategy(100, 100, 1.0, 600_000)))
    raw = [(b"retry-after", header.encode("latin-1"))]  # as it comes off the wire
    wait = policy.delay(0, 0.0, httpx.Response(503, headers=raw))
    assert wait is not None
    if expected is None:
        assert 0.075 <= wait <= 0.125  # the backoff's 100 ms, jittered
    else:
        assert wait == expected


def test_a_wait_that_would_end_exactly_at_max_elapsed_time_is_not_taken() -> None:
    policy = RetryPolicy(RetryConfig("backoff", BackoffStrategy(100, 100, 1.0, 10_000)))
    five = httpx.Response(429, headers={"retry-after": "5"})
    assert policy.delay(0, 4.5, five) == 5.0
    assert policy.delay(0, 5.0, five) is None  # 5 + 5 s: the budget would be all gone


def test_max_retries_counts_retries_not_attempts() -> None:
    policy = RetryPolicy(RetryConfig("backoff", BackoffStrategy(1, 1, 1.0, 60_000), max_retries=2))
    assert policy.delay(0, 0.0, response(503)) is not None
    assert policy.delay(1, 0.0, response(503)) is not None
    assert policy.delay(2, 0.0, response(503)) is None
    assert RetryPolicy(RetryConfig("backoff", max_retries=0)).delay(0, 0.0, response(503)) is None


def test_without_a_backoff_the_default_one_applies() -> None:
    """`RetryConfig("backoff")` alone: 0.5 s doubling to 8 s, 60 s in all; no retries after
    connection errors unless asked."""
    policy = RetryPolicy(RetryConfig("backoff"))
    assert policy.max_elapsed_s == 60.0
    first = policy.delay(0, 0.0, response(503))
    assert first is not None
    assert 0.375 <= first <= 0.625
    assert policy.delay(10, 0.0, response(503)) == 8.0
    assert policy.delay(0, 0.0, httpx.ConnectError("refused")) is None
    assert RETRY_AFTER_CAP_S == 60.0


def test_retry_config_says_what_it_got() -> None:
    with pytest.raises(errors.InvalidArgumentError) as raised:
        RetryConfig("backoff", None, "yes")  # type: ignore[arg-type]
    assert str(raised.value) == "retry_connection_errors of RetryConfig must be a bool, not 'yes'"


def test_a_network_error_with_a_long_chain_of_causes_is_still_retried() -> None:
    """Only a TLS failure among an error's causes stops retries; a chain of twenty plain
    OS errors is a network failure like any other."""
    cause: BaseException = OSError("reset")
    for _ in range(20):
        try:
            raise OSError("wrapped") from cause
        except OSError as wrapped:
            cause = wrapped
    error = httpx.ConnectError("refused")
    error.__cause__ = cause
    assert RetryPolicy(DEFAULT_RETRY_CONFIG).delay(0, 0.0, error) is not None
