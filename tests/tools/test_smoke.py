"""tools/smoke.py: the local server nox's sessions start, and the call `nox -s build` makes
through the installed wheel, against a real server process on loopback."""

from __future__ import annotations

import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from opperai_usage import __version__
from tests.support import ROOT
from tests.support.servers import answer_empty_list, serving
from tools import smoke


def test_the_call_against_the_local_server_says_what_came_back(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with smoke.local_server(sys.executable, ROOT) as url:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v2", url)
        assert smoke.main([url]) == 0
    said = capsys.readouterr().out
    assert re.fullmatch(
        rf"opperai-usage {re.escape(__version__)}: [1-9]\d* items from {re.escape(url)}\n", said
    )


def test_a_server_that_does_not_start_is_an_error(tmp_path: Path) -> None:
    not_python = tmp_path / "python"
    not_python.write_text("#!/bin/sh\necho 'No module named opperai_usage'\n")
    not_python.chmod(0o755)
    with (
        pytest.raises(RuntimeError, match="the local server did not start: 'No module named"),
        smoke.local_server(str(not_python), tmp_path),
    ):
        pass


def test_no_items_fail_the_call() -> None:
    class Empty(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answer_empty_list(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Empty)) as server:
        url = f"http://127.0.0.1:{server.server_address[1]}/v2"
        with pytest.raises(AssertionError, match="no items from"):
            smoke.call(url)
