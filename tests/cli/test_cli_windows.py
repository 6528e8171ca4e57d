"""`opper-usage` over a range of more than one window (`iter_usage`): the same rows as one
call, the windows counted in the progress line, a failure naming its window. Against the kit
as a process with a fixed `now` (data from 2027-11-22 to 2028-01-20)."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from opperai_usage import Opper
from tests.support import API_KEY
from tests.support.command_line import run, run_in_terminal
from tests.support.fixed_kit import kit_at
from tests.support.servers import LocalServer

#: 62 days by hour: 1,488 buckets, two windows of at most 1,440.
RANGE = ["--from", "2027-11-20", "--to", "2028-01-21", "--granularity", "hour"]
QUERY = ["--group-by", "model", "--field", "total_tokens"]


@pytest.fixture(scope="module")
def kit() -> Iterator[LocalServer]:
    with kit_at(dt.datetime(2028, 1, 20, 12, tzinfo=dt.timezone.utc)) as server:
        yield server


@pytest.fixture
def fixed(kit: LocalServer) -> LocalServer:
    kit.reset()
    return kit


def test_a_long_range_gives_one_calls_rows(fixed: LocalServer, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    result = run(
        "--server-url", fixed.url, *RANGE, *QUERY, "--format", "json", "--html", str(report)
    )
    assert (result.code, result.err) == (0, "")
    windows = sorted((r["query"]["from_date"], r["query"]["to_date"]) for r in fixed.requests())
    assert windows == [
        (["2027-11-20T00:00:00Z"], ["2028-01-19T00:00:00Z"]),
        (["2028-01-19T00:00:00Z"], ["2028-01-21T00:00:00Z"]),
    ]
    with Opper(api_key=API_KEY, server_url=fixed.url) as opper:
        items = opper.analytics.get_usage(
            from_date="2027-11-20", to_date="2028-01-21", granularity="hour",
            group_by=["model"], fields=["total_tokens"],
        )  # fmt: skip
    expected = [
        {
            "time_bucket": item.time_bucket.isoformat().replace("+00:00", "Z"),
            "model": item["model"],
            "total_tokens": item["total_tokens"],
            "count": item.get("count"),
            "cost": item.cost,
        }
        for item in items
    ]
    assert len(expected) > 1_000
    assert json.loads(result.out) == expected
    assert "2027-11-20T00%3A00%3A00Z" in report.read_text()
    assert "(the first of 2 windows)" in report.read_text()


def test_progress_counts_the_windows_on_a_terminal(fixed: LocalServer, tmp_path: Path) -> None:
    fixed.script({"delay_ms": 900})  # one window's answer, late enough for the line to show
    out = tmp_path / "usage.csv"  # not a pipe: the test reads the terminal until the end
    code, terminal, _ = run_in_terminal(
        ["--server-url", fixed.url, *RANGE, *QUERY, "--format", "csv", "-o", str(out)], "stderr"
    )
    assert code == 0
    shown = re.findall(rb"waiting for the usage API: ([012]) of 2 windows \d+\.\d s", terminal)
    assert shown, terminal
    assert shown == sorted(shown)
    assert terminal.endswith(b"\r\x1b[K")
    assert out.read_bytes().startswith(b"time_bucket,model,total_tokens,count,cost\r\n")


def test_a_failed_window_is_named(fixed: LocalServer) -> None:
    gone = {"status": 404, "json": {"type": "NotFoundError", "message": "gone", "detail": "x"}}
    fixed.script(gone, gone)  # both windows, whichever asks first
    result = run("--server-url", fixed.url, *RANGE, *QUERY)
    assert (result.code, result.out) == (1, "")
    assert re.fullmatch(
        r"opper-usage: NotFoundError: status 404: gone: x \(request id req_\w+\) "
        r"in the window 2027-11-20T00:00:00Z to 2028-01-19T00:00:00Z\n",
        result.err,
    )
