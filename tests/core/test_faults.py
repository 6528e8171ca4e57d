"""The fault matrix: every way the network or the server can misbehave, scripted on the local
server over real sockets, sync and async.

Each case states the outcome (a result, or the exact error class), how many attempts the
client made (counted by the server, and by the client's own debug lines) and a wall-time
window: the lower bound shows the client waited as told, the upper one that it never hangs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import functools
import logging
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from opperai_usage import errors
from opperai_usage.models import GetUsageResultItem
from opperai_usage.utils import BackoffStrategy, RetryConfig
from tests.support.calls import Usage
from tests.support.net import closed_port_url
from tests.support.servers import LocalServer

#: Mostly waiting on the clock: the modules that do share one worker while the others compute.
pytestmark = pytest.mark.xdist_group("clock")
#: Small waits so the matrix runs in seconds: 10 ms doubling to at most 50 ms, 5 s in all.
FAST = RetryConfig(
    "backoff", BackoffStrategy(10, 50, 2.0, 5_000), retry_connection_errors=True, max_retries=3
)
#: Ended by `max_elapsed_time` (300 ms) alone: 5 ms doubling to 20 ms, a dozen attempts.
UNBOUNDED_300MS = RetryConfig(
    "backoff", BackoffStrategy(5, 20, 2.0, 300), retry_connection_errors=True, max_retries=None
)
#: As the official SDK's RetryConfig is written: no max_retries, only max_elapsed_time.
OFFICIAL = RetryConfig("backoff", BackoffStrategy(10, 50, 2.0, 5_000))
ONE_RETRY = RetryConfig(
    "backoff", BackoffStrategy(10, 50, 2.0, 5_000), retry_connection_errors=True, max_retries=1
)
DEFAULT: Any = "default"  # leave `retry_config` out: the client's default policy
FOREVER = 30  # more scripted faults than any case makes attempts
FOREVER_MANY = 400  # more than attempts 5 ms apart can make in 1.5 s
LARGE = 100_000
#: The query every case sends; its real answer is one item (the current month), as the
#: server's data set always holds events in the current month.
QUERY = {"granularity": "month", "fields": ["total_tokens"], "group_by": []}
REAL = 1

Action = dict[str, Any]
Script = Callable[[], list[Action]]


class AttemptLog(logging.Handler):
    """Counts the client's debug lines: one per attempt, whether or not the server saw it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.logger = logging.getLogger("tests.faults.attempts")
        self.logger.setLevel(logging.DEBUG)
        self.logger.propagate = False

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def attempt_log() -> Iterator[AttemptLog]:
    log = AttemptLog()
    log.logger.addHandler(log)
    try:
        yield log
    finally:
        log.logger.removeHandler(log)


def fixed(*actions: Action) -> Script:
    return lambda: list(actions)


def retry_after_date(at_least: float) -> Script:
    """A 429 whose `Retry-After` is an HTTP date (whole seconds) `at_least` seconds from when
    the case starts, or up to a second more: the matrix checks the retry waited for it."""
    return lambda: [
        {
            "status": 429,
            "headers": {"Retry-After": email.utils.formatdate(math.ceil(time.time() + at_least))},
        }
    ]


def retry_after_due(actions: list[Action]) -> float | None:
    """The latest `Retry-After` date in a script (epoch seconds), if it has one."""
    dates = []
    for action in actions:
        value = action.get("headers", {}).get("Retry-After", "")
        with contextlib.suppress(TypeError, ValueError):
            dates.append(email.utils.parsedate_to_datetime(value).timestamp())
    return max(dates, default=None)


@dataclass(frozen=True)
class Case:
    """One fault: the script, the client settings, what must come out and how fast."""

    script: Script
    outcome: type[BaseException] | int  # an error class, or how many items come back
    attempts: int | tuple[int, int]  # exact, or an inclusive range
    wall: tuple[float, float]  # seconds, inclusive lower bound, exclusive upper bound
    retry_config: Any = FAST
    timeout_ms: int | None = None
    refused: bool = False  # point the client at a closed port instead of the server
    #: The waits the client's debug lines announce, each (low, high) in seconds.
    waits: tuple[tuple[float, float], ...] | None = None
    #: The last attempt may start with a few ms of `max_elapsed_time` left, and time out
    #: before its request reaches the server: the server then counts one attempt fewer.
    last_cut: bool = False
    check: Callable[[Any], None] | None = None


HTML_502 = "<html><body>502 Bad Gateway</body></html>"


def _with_request_id(error: Any, message: str) -> None:
    """`message` is the official SDK's wording; `str()` adds the server's request id."""
    assert error.message == message
    assert error.request_id.startswith("req_")
    assert str(error) == f"{message} (request id {error.request_id})"


def _html_502(error: Any) -> None:
    assert error.status_code == 502
    assert error.body == HTML_502
    message = f"API error occurred: Status 502 Content-Type text/html. Body: {HTML_502}"
    _with_request_id(error, message)


def _text_502(error: Any) -> None:
    assert error.status_code == 502
    message = (
        'API error occurred: Status 502 Content-Type "text/plain; charset=utf-8". '
        "Body: upstream connect error"
    )
    _with_request_id(error, message)


def _status(code: int) -> Callable[[Any], None]:
    def check(error: Any) -> None:
        assert error.status_code == code
        assert str(error.request_id).startswith("req_")

    return check


def _validation(fragment: str) -> Callable[[Any], None]:
    """A ResponseValidationError that names what did not fit (`fragment`)."""

    def check(error: Any) -> None:
        assert error.status_code == 200
        assert isinstance(error.cause, ValueError)
        assert fragment in str(error)

    return check


CASES: dict[str, Case] = {
    # Transient statuses: retried, then the real answer.
    "503-503-200": Case(fixed({"status": 503}, {"status": 503}), REAL, 3, (0.0, 2.0)),
    # Retry-After wins over a shorter backoff, with the official SDK's RetryConfig too.
    "429-retry-after-seconds": Case(
        fixed({"status": 429, "headers": {"Retry-After": "1"}}),
        REAL,
        2,
        (0.95, 3.0),
        retry_config=OFFICIAL,
        waits=((1.0, 1.0),),
    ),
    # The date is 0.3 to 1.3 s ahead; the retry comes no earlier than it (checked below).
    "429-retry-after-http-date": Case(retry_after_date(0.3), REAL, 2, (0.2, 2.5)),
    "429-retry-after-garbage-falls-back-to-backoff": Case(
        fixed({"status": 429, "headers": {"Retry-After": "soon"}}), REAL, 2, (0.0, 1.5)
    ),
    # A non-ASCII digit (sent as the latin-1 byte 0xB2) is no number of seconds either.
    "429-retry-after-superscript-digit-falls-back-to-backoff": Case(
        fixed({"status": 429, "headers": {"Retry-After": "\u00b2"}}), REAL, 2, (0.0, 1.5)
    ),
    # A wait past the call's budget is not waited for: the 429 is raised at once.
    "429-retry-after-absurd-seconds": Case(
        fixed({"status": 429, "headers": {"Retry-After": "999999999999"}}),
        errors.APIError,
        1,
        (0.0, 1.0),
        check=_status(429),
    ),
    "429-retry-after-absurd-date": Case(
        fixed({"status": 429, "headers": {"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"}}),
        errors.APIError,
        1,
        (0.0, 1.0),
        check=_status(429),
    ),
    # Failing forever: bounded by max_retries, or by max_elapsed_time alone.
    "500-forever-max-retries": Case(
        fixed(*[{"status": 500}] * FOREVER), errors.APIError, 4, (0.0, 2.0), check=_status(500)
    ),
    "500-forever-max-elapsed-time": Case(
        fixed(*[{"status": 500}] * FOREVER_MANY),
        errors.APIError,
        (6, FOREVER_MANY - 1),
        (0.25, 1.5),
        retry_config=UNBOUNDED_300MS,
        check=_status(500),
        last_cut=True,
    ),
    "400-not-retried": Case(
        fixed({"status": 400, "json": {"type": "BadRequestError", "detail": "no"}}),
        errors.BadRequestError,
        1,
        (0.0, 1.0),
    ),
    # The network.
    "connection-refused": Case(fixed(), httpx.ConnectError, 4, (0.0, 2.0), refused=True),
    "connection-refused-no-retries": Case(
        fixed(), httpx.ConnectError, 1, (0.0, 1.0), retry_config=None, refused=True
    ),
    "dropped-then-ok": Case(fixed({"drop": True}), REAL, 2, (0.0, 1.5)),
    "dropped-forever": Case(
        fixed(*[{"drop": True}] * FOREVER), httpx.RemoteProtocolError, 4, (0.0, 2.0)
    ),
    "truncated-then-ok": Case(fixed({"items": 50, "truncate": True}), REAL, 2, (0.0, 1.5)),
    "truncated-forever": Case(
        fixed(*[{"items": 50, "truncate": True}] * FOREVER),
        httpx.RemoteProtocolError,
        4,
        (0.0, 2.0),
    ),
    # Answers 1.5 s late: each attempt ends at timeout_ms instead (the retry's real answer
    # has 200 ms to come).
    "read-timeout-then-ok": Case(fixed({"delay_ms": 1_500}), REAL, 2, (0.2, 1.2), timeout_ms=200),
    "read-timeout-forever": Case(
        fixed(*[{"delay_ms": 1_500}] * FOREVER),
        httpx.ReadTimeout,
        2,
        (0.3, 1.2),
        retry_config=ONE_RETRY,
        timeout_ms=150,
    ),
    # Every byte arrives well within the read timeout, but the whole body would take minutes:
    # the per-attempt deadline ends each attempt after timeout_ms.
    "dribbled-body": Case(
        fixed(*[{"items": 200, "dribble_ms": 20}] * FOREVER),
        httpx.ReadTimeout,
        2,
        (0.3, 1.2),
        retry_config=ONE_RETRY,
        timeout_ms=150,
    ),
    "dribbled-body-no-retries": Case(
        fixed({"items": 200, "dribble_ms": 20}),
        httpx.ReadTimeout,
        1,
        (0.15, 1.0),
        retry_config=None,
        timeout_ms=150,
    ),
    # Bodies that are not the answer.
    "html-200": Case(
        fixed({"body": "<html><body>Maintenance</body></html>", "content_type": "text/html"}),
        errors.ResponseValidationError,
        1,
        (0.0, 1.0),
        check=_validation("Response validation failed"),
    ),
    "plain-text-200": Case(
        fixed({"body": "OK"}),
        errors.ResponseValidationError,
        1,
        (0.0, 1.0),
        check=_validation("Response validation failed"),
    ),
    "html-502": Case(
        fixed(*[{"status": 502, "body": HTML_502, "content_type": "text/html"}] * FOREVER),
        errors.APIError,
        4,
        (0.0, 2.0),
        check=_html_502,
    ),
    "plain-text-502": Case(
        fixed(*[{"status": 502, "body": "upstream connect error"}] * FOREVER),
        errors.APIError,
        4,
        (0.0, 2.0),
        check=_text_502,
    ),
    "json-object-instead-of-array": Case(
        fixed({"json": {"items": []}}),
        errors.ResponseValidationError,
        1,
        (0.0, 1.0),
        check=_validation("array"),
    ),
    "json-item-missing-time-bucket": Case(
        fixed({"json": [{"cost": "1.0"}]}),
        errors.ResponseValidationError,
        1,
        (0.0, 1.0),
        check=_validation("'time_bucket'"),
    ),
    "json-cost-a-number": Case(
        fixed({"json": [{"time_bucket": "2026-11-01T00:00:00Z", "cost": 1.5}]}),
        errors.ResponseValidationError,
        1,
        (0.0, 1.0),
        check=_validation("'cost'"),
    ),
    "json-time-bucket-not-a-date": Case(
        fixed({"json": [{"time_bucket": "yesterday", "cost": "1"}]}),
        errors.ResponseValidationError,
        1,
        (0.0, 1.0),
        check=_validation("'time_bucket'"),
    ),
    # Extra keys may hold any JSON value (additionalProperties: true).
    "json-extra-values-of-every-type": Case(
        fixed({"json": [{"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "x": {}, "y": True}]}),
        1,
        1,
        (0.0, 1.0),
    ),
    # A very large answer decodes whole, in one attempt.
    "large-body": Case(fixed({"items": LARGE}), LARGE, 1, (0.0, 20.0)),
    # The default policy: 2 retries, 0.5 s doubling (jitter +-25 %), each wait checked.
    "default-config-503-forever": Case(
        fixed(*[{"status": 503}] * FOREVER),
        errors.APIError,
        3,
        (1.1, 3.5),
        retry_config=DEFAULT,
        check=_status(503),
        waits=((0.37, 0.63), (0.75, 1.25)),
    ),
    "default-config-dropped-then-ok": Case(
        fixed({"drop": True}), REAL, 2, (0.37, 2.0), retry_config=DEFAULT, waits=((0.37, 0.63),)
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_fault_matrix(name: str, local: LocalServer, usage: Usage, attempt_log: AttemptLog) -> None:
    case = CASES[name]
    actions = case.script()
    local.script(*actions)
    options: dict[str, Any] = {
        "server_url": closed_port_url() if case.refused else local.url,
        "debug_logger": attempt_log.logger,
    }
    if case.retry_config is not DEFAULT:
        options["retry_config"] = case.retry_config
    if case.timeout_ms is not None:
        options["timeout_ms"] = case.timeout_ms

    started, started_at = time.monotonic(), time.time()
    outcome: list[GetUsageResultItem] | BaseException
    try:
        outcome = usage(call=dict(QUERY), **options)
    except Exception as error:
        outcome = error
    elapsed = time.monotonic() - started

    if isinstance(case.outcome, int):
        assert isinstance(outcome, list), f"expected a result, got {outcome!r}"
        assert len(outcome) == case.outcome
    else:
        assert type(outcome) is case.outcome, f"expected {case.outcome.__name__}, got {outcome!r}"
        if case.check is not None:
            case.check(outcome)

    attempts = len(attempt_log.lines)
    low, high = (case.attempts, case.attempts) if isinstance(case.attempts, int) else case.attempts
    assert low <= attempts <= high, attempt_log.lines
    served = local.stats()["requests"]
    if case.last_cut and served == attempts - 1:  # the last one's request never got there
        assert "Timeout (attempt" in attempt_log.lines[-1], attempt_log.lines
    else:
        assert served == (0 if case.refused else attempts)
    assert case.wall[0] <= elapsed < case.wall[1], f"{elapsed:.3f}s outside {case.wall}"
    if case.waits is not None:  # each wait as announced, and the call took them all
        announced = [re.search(r"retrying in ([\d.]+)s\)$", line) for line in attempt_log.lines]
        waits = [float(found[1]) for found in announced if found]
        assert len(waits) == len(case.waits), attempt_log.lines
        for wait, (shortest, longest) in zip(waits, case.waits, strict=True):
            assert shortest <= wait <= longest, attempt_log.lines
        assert elapsed >= sum(waits) - 0.01 * len(waits), f"{elapsed:.3f}s, waits {waits}"
    due = retry_after_due(actions)
    if due is not None and isinstance(case.outcome, int):  # retried after the date, not before
        assert elapsed >= due - started_at - 0.02, f"{elapsed:.3f}s, due {due - started_at:.3f}s"


def test_large_body_decodes_to_the_same_values(local: LocalServer, usage: Usage) -> None:
    """100,000 items arrive whole and equal to what the server sent."""
    local.script({"items": LARGE}, {"items": LARGE})
    expected = httpx.get(f"{local.url}/analytics/usage").json()
    items = usage(server_url=local.url, retry_config=None)
    assert len(items) == len(expected) == LARGE

    @functools.cache  # few buckets, many items: each spelling parsed once
    def utc(text: str) -> dt.datetime:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)

    for item, want in zip(items, expected, strict=True):
        assert item.time_bucket == utc(want.pop("time_bucket"))
        assert item.cost == want.pop("cost")
        assert item.count == want.pop("count")
        assert item.additional_properties == want
    assert local.stats()["requests"] == 2


def test_per_call_retries_override_the_client_over_the_wire(
    local: LocalServer, usage: Usage
) -> None:
    local.script(*[{"status": 503}] * FOREVER)
    with pytest.raises(errors.APIError):
        usage(server_url=local.url, retry_config=FAST, call={"retries": None})
    assert local.stats()["requests"] == 1
