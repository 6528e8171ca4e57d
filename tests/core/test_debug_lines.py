"""OPPER_DEBUG's lines, in this process: printed once, by the application's logging when it
prints them, else on stderr by the client's own handler (test_client.py runs the same as a
subprocess, with `logging.basicConfig()` called before, after or never)."""

from __future__ import annotations

import io
import logging
import re

import httpx
import pytest

from opperai_usage import Opper
from opperai_usage.utils import BackoffStrategy, RetryConfig
from tests.support import API_KEY
from tests.support.calls import Recorder
from tests.support.net import closed_port_url
from tests.support.servers import LocalServer

URL = "http://127.0.0.1:9/v2"
LINE = f"GET {URL}/analytics/usage -> 200 (attempt 1, "


@pytest.fixture(autouse=True)
def fresh_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    """The `opperai_usage` logger as the client first finds it, OPPER_DEBUG=1."""
    ours = logging.getLogger("opperai_usage")
    monkeypatch.setattr(ours, "handlers", [])
    monkeypatch.setattr(ours, "propagate", True)
    monkeypatch.setattr(ours, "level", logging.NOTSET)
    monkeypatch.setenv("OPPER_DEBUG", "1")


def one_call(*application: logging.Handler) -> None:
    """A call made while the root logger has only `application`'s handlers (none: a program
    that configured no logging). pytest's own capture handler is set aside meanwhile."""
    root = logging.getLogger()
    kept, root.handlers = root.handlers, list(application)
    try:
        recorder = Recorder(httpx.Response(200, json=[]))
        client = httpx.Client(transport=recorder.transport)
        with Opper(http_bearer=API_KEY, server_url=URL, client=client) as opper:
            opper.analytics.get_usage()
    finally:
        root.handlers = kept


def application_handler(level: int) -> tuple[logging.Handler, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(level)
    return handler, stream


def test_without_logging_configured_the_line_goes_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    one_call()
    err = capsys.readouterr().err
    assert err.count(LINE) == 1
    # The client's own format: the time, its name, the line.
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    assert re.fullmatch(rf"{stamp} opperai_usage {re.escape(LINE)}[\d.]+ ms\)\n", err), err
    assert API_KEY not in err


def test_an_application_handler_that_prints_debug_prints_it_instead(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`logging.basicConfig(level=logging.DEBUG)`: the application's handler prints the line,
    the client's does not print it again (a handler at exactly DEBUG prints DEBUG)."""
    handler, stream = application_handler(logging.DEBUG)
    one_call(handler)
    assert stream.getvalue().count(LINE) == 1
    assert LINE not in capsys.readouterr().err


def test_an_application_handler_that_skips_debug_leaves_it_to_ours(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`logging.basicConfig()` (WARNING): the application would not print a DEBUG line, so
    the client's handler does."""
    handler, stream = application_handler(logging.WARNING)
    one_call(handler)
    assert LINE not in stream.getvalue()
    assert capsys.readouterr().err.count(LINE) == 1


def test_a_logger_that_does_not_propagate_prints_it_itself(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`opperai_usage` set not to propagate: the application's handlers never see the line,
    whatever their level, so the client's prints it."""
    handler, stream = application_handler(logging.DEBUG)
    monkeypatch.setattr(logging.getLogger("opperai_usage"), "propagate", False)
    one_call(handler)
    assert LINE not in stream.getvalue()
    assert capsys.readouterr().err.count(LINE) == 1


@pytest.mark.parametrize("value", [None, "", "0", "false", "FALSE", "no", "No"])
def test_opper_debug_off_prints_nothing(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    value: str | None,
) -> None:
    if value is None:
        monkeypatch.delenv("OPPER_DEBUG")
    else:
        monkeypatch.setenv("OPPER_DEBUG", value)
    one_call()
    assert capsys.readouterr().err == ""
    assert logging.getLogger("opperai_usage").handlers == []


@pytest.mark.parametrize("value", ["1", "true", "yes", "debug"])
def test_opper_debug_on_adds_one_handler_however_many_clients(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    value: str,
) -> None:
    monkeypatch.setenv("OPPER_DEBUG", value)
    one_call()
    one_call()
    logger = logging.getLogger("opperai_usage")
    assert len(logger.handlers) == 1
    assert logger.level == logging.DEBUG
    assert capsys.readouterr().err.count(LINE) == 2  # one line per call, each once


def test_each_line_says_how_long_its_attempt_took(
    local: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A 503 answered after 0.3 s, then the data after 0.04 s: each line has its own
    attempt's time (not the call's, not seconds) and what comes next."""
    local.script(
        {"status": 503, "delay_ms": 300, "headers": {"Retry-After": "0"}}, {"delay_ms": 40}
    )
    logger = logging.getLogger("test.opperai.timing")
    quick = RetryConfig("backoff", BackoffStrategy(10, 10, 1.0, 60_000))  # Retry-After 0: 10 ms
    with (
        caplog.at_level(logging.DEBUG, logger=logger.name),
        Opper(
            http_bearer=API_KEY, server_url=local.url, debug_logger=logger, retry_config=quick
        ) as opper,
    ):
        opper.analytics.get_usage()
    lines = [r.getMessage() for r in caplog.records if r.name == logger.name]
    pattern = r"GET \S+ -> (\d+) \(attempt (\d), ([\d.]+) ms(, retrying in 0.01s)?\)"
    found = [re.fullmatch(pattern, line) for line in lines]
    assert all(found), lines
    (first, second) = [m.groups() for m in found if m]
    assert first[:2] == ("503", "1")
    assert first[3] == ", retrying in 0.01s"
    assert 295 <= float(first[2]) < 5_000
    assert second[:2] == ("200", "2")
    assert second[3] is None
    assert 38 <= float(second[2]) < 295  # the second attempt's own time, not the call's


def test_a_failed_attempt_is_named_by_its_error(caplog: pytest.LogCaptureFixture) -> None:
    """An attempt that got no answer says which error ended it, where a status would be."""
    logger = logging.getLogger("test.opperai.failed")
    url = closed_port_url()
    with (
        caplog.at_level(logging.DEBUG, logger=logger.name),
        Opper(http_bearer=API_KEY, server_url=url, debug_logger=logger, retry_config=None) as o,
        pytest.raises(httpx.ConnectError),
    ):
        o.analytics.get_usage()
    (line,) = [r.getMessage() for r in caplog.records if r.name == logger.name]
    assert re.fullmatch(
        rf"GET {url}/analytics/usage -> ConnectError \(attempt 1, [\d.]+ ms\)", line
    )
