"""At most 100 async attempts in flight per client and event loop, and no fewer: measured at
the server, which holds every request until the test lets them go and counts how many it holds.

httpx's own pool stops at 100 connections too, so the gate's size shows only with a client
whose pool is larger: `async_client=` with room for 300.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from opperai_usage import Opper
from tests.support import API_KEY
from tests.support.net import open_connections
from tests.support.servers import answer_empty_list, serving

CALLS = 130
GATE = 100


class HoldingServer(ThreadingHTTPServer):
    """Answers `[]` to every request, but only once `release` is set; counts the requests it
    holds (`held`) and the most it held at once (`peak`)."""

    daemon_threads = True
    request_queue_size = 512  # 130 connections at once: no SYN is dropped and retried

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Hold)
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.held = 0
        self.peak = 0
        self.arrived = 0
        self.connections = 0
        #: Let every held request go once this many are held (None: only when told).
        self.release_when: int | None = None
        self.last_arrival = time.monotonic()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/v2"

    def get_request(self) -> tuple[socket.socket, Any]:
        accepted = super().get_request()
        with self.lock:
            self.connections += 1
        return accepted

    def settled(self, quiet: float = 0.5, limit: float = 20.0) -> int:
        """The number held once `GATE` are and no more has arrived for `quiet` seconds (or at
        once when more than `GATE` are held); at most `limit` seconds. Fewer than `GATE` is
        waited on to the limit: on a loaded machine 130 connections may take seconds to open,
        with pauses longer than `quiet` between them."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            with self.lock:
                quiet_now = time.monotonic() - self.last_arrival > quiet
                if self.held > GATE or (self.held == GATE and quiet_now):
                    return self.held
            time.sleep(0.02)
        with self.lock:
            return self.held


class _Hold(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HoldingServer

    def do_GET(self) -> None:
        server = self.server
        with server.lock:
            server.held += 1
            server.arrived += 1
            server.peak = max(server.peak, server.held)
            server.last_arrival = time.monotonic()
            if server.release_when is not None and server.held >= server.release_when:
                server.release.set()
        server.release.wait(timeout=30)
        with server.lock:
            server.held -= 1
        answer_empty_list(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def holding() -> Iterator[HoldingServer]:
    server = HoldingServer()
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    with serving(server):
        try:
            yield server
        finally:
            server.release.set()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("client", ["ours", "yours, with a pool of 300"])
def test_at_most_100_attempts_are_in_flight_and_no_fewer(
    holding: HoldingServer, client: str
) -> None:
    """130 calls at once: the server holds exactly 100 (not 1, not 101 or more) until it lets
    them go; then the other 30 get their turn and every call succeeds."""

    async def main() -> tuple[int, int]:
        given = (
            httpx.AsyncClient(limits=httpx.Limits(max_connections=300))
            if client != "ours"
            else None
        )
        async with Opper(
            http_bearer=API_KEY, server_url=holding.url, async_client=given, retry_config=None
        ) as opper:
            calls = [
                asyncio.create_task(opper.analytics.get_usage_async(timeout_ms=60_000))
                for _ in range(CALLS)
            ]
            held = await asyncio.to_thread(holding.settled)
            holding.release.set()
            results = await asyncio.wait_for(asyncio.gather(*calls), timeout=60)
        if given is not None:
            await given.aclose()
        assert all(result == [] for result in results)
        return held, holding.peak

    held, peak = asyncio.run(main())
    assert held == GATE
    assert peak == GATE
    assert holding.arrived == CALLS


@pytest.mark.timeout(120)
def test_a_burst_reuses_the_connections_of_the_one_before(holding: HoldingServer) -> None:
    """As many idle connections are kept as may be busy (100): a second burst of 100 calls
    finds them open, instead of connecting again for most of its calls (httpx keeps 20).
    The server holds each burst's requests until all 100 are in, so that each needs 100
    connections at once."""
    holding.release_when = GATE

    async def main() -> tuple[int, int, int]:
        async with Opper(http_bearer=API_KEY, server_url=holding.url, retry_config=None) as o:

            async def burst() -> int:
                calls = [o.analytics.get_usage_async(timeout_ms=60_000) for _ in range(GATE)]
                await asyncio.wait_for(asyncio.gather(*calls), timeout=60)
                holding.release.clear()
                return holding.connections

            first = await burst()
            kept = [c for c in open_connections(holding.server_port) if c.status == "ESTABLISHED"]
            return first, len(kept), await burst()

    first, kept, both = asyncio.run(main())
    assert first == GATE  # the first burst needed 100 at once
    assert kept == GATE  # and all 100 were kept open for the next (httpx keeps 20)
    # The second burst reused more than httpx's 20 could give it (with those it opens at
    # least 80 anew). Not all 100: httpcore 1.0.9 can hand one idle connection to two new
    # requests at once, and the loser may close another idle one to connect afresh (29 new
    # were seen in CI, about 60 beside another pytest worker on 2 busy cores).
    assert both - first < GATE - 20
