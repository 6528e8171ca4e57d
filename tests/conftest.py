"""The tests' fixtures: the local Opper-compatible server and Prism as real processes on
loopback, a TLS server, and `usage`, which makes one call the sync or the async way (tests run
both). Helpers live in `tests/support`."""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from opperai_usage import Opper
from opperai_usage.models import GetUsageResultItem
from tests.support import API_KEY, ROOT
from tests.support.calls import Usage
from tests.support.net import free_port
from tests.support.order import spread
from tests.support.servers import (
    LocalServer,
    TLSServer,
    answer_empty_list,
    serving,
    start_process,
    stop_process,
)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown() -> Iterator[None]:
    """Under mutmut's first run only (`MUTANT_UNDER_TEST=stats`): no automatic garbage
    collection while mutmut's teardown hook reads the set of functions the test reached,
    since a finalizer run then (a dropped client's `__del__`, itself traced) adds to that set
    as it is read ("Set changed size during iteration"). A threshold of 0 stops it and leaves
    `gc.isenabled()` alone, which the decoder's tests check."""
    if os.environ.get("MUTANT_UNDER_TEST") != "stats":
        return (yield)
    thresholds = gc.get_threshold()
    gc.set_threshold(0)
    try:
        return (yield)
    finally:
        gc.set_threshold(*thresholds)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fails the grouped tests of a run whose `--dist loadgroup` does not group: each group
    exists so that its costly fixture (Chromium, Prism, the official SDK's runs, a sync's
    imports) is made once, and with pytest 9.2, which xdist 3.8 does not yet know, grouping is
    silently lost (pytest-xdist#1386; pyproject.toml pins pytest below it)."""
    grouped = getattr(item.config.option, "loadgroup", False)  # set on xdist's workers
    if grouped and item.get_closest_marker("xdist_group") and "@" not in item.nodeid:
        pytest.fail("--dist loadgroup did not group this test: see pytest-xdist#1386")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each folder's modules spread over the run (`tests.support.order`); under `nox -s
    mutants` (tests/MUTANTS.md), the quickest tests first, as timed by mutmut's first run, so
    that a mutant a quick test catches is caught in seconds (mutmut stops at the first
    failure)."""
    items[:] = spread(items)
    if "__mutmut_" not in os.environ.get("MUTANT_UNDER_TEST", ""):
        return
    import json

    stats = Path("mutmut-stats.json")  # mutmut runs the tests in its mutants/ folder
    if stats.exists():
        durations: dict[str, float] = json.loads(stats.read_text())["duration_by_test"]
        items.sort(key=lambda item: durations.get(item.nodeid, 0.0))


@pytest.fixture(scope="session")
def server() -> Iterator[LocalServer]:
    """The testing kit's server as a process of its own (`python -m opperai_usage.testing`),
    once per test run, scripted and inspected over HTTP (`/_control/`)."""
    proc, base = start_process(
        [sys.executable, "-m", "opperai_usage.testing", "--host", "127.0.0.1", "--port", "0"],
        lambda line: (
            line.strip().removeprefix("listening on ") if line.startswith("listening on ") else None
        ),
        timeout=30,
    )
    try:
        yield LocalServer(base)
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def keyed() -> Iterator[LocalServer]:
    """A server process like `server`, but one that accepts the bearer token `API_KEY` and no
    other (`--api-key`): a call that succeeds sent exactly that key; any other gets a 401."""
    proc, base = start_process(
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
        stop_process(proc)


@pytest.fixture
def local(server: LocalServer) -> LocalServer:
    """The server with an empty fault script and no recorded requests."""
    server.reset()
    return server


@pytest.fixture(scope="session")
def prism() -> Iterator[str]:
    """A Prism mock built from openapi.yaml; it rejects requests that do not fit the spec."""
    binary = os.environ.get("PRISM_BIN") or shutil.which("prism")
    if not binary:
        pytest.fail("Prism is needed: run the tests through `nox -s tests`, or set PRISM_BIN")
    port = free_port()
    proc, _ = start_process(
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
        stop_process(proc)


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

    with serving(Server(("127.0.0.1", 0), Answer)) as server:
        yield TLSServer(f"https://127.0.0.1:{server.server_port}/v2", certificate, accepted)
