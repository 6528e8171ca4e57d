"""Load and lifetime: many calls on one client against the local server, with no errors, no
sockets or file descriptors beyond the connection pool, and memory back to its level after.

The two heavy tests are marked `load` (`nox -s load`); the lifetime tests (close releases every
connection, a closed client refuses calls, 16 threads share one client) run with the rest.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import psutil
import pytest

from opperai_usage import Opper
from opperai_usage.models import GetUsageResultItem
from tests.support import API_KEY
from tests.support.net import open_connections
from tests.support.servers import LocalServer

#: A cheap query with a fixed answer: one item, the current month (the server caches it).
QUERY: dict[str, Any] = {"granularity": "month", "fields": ["total_tokens"]}
SEQUENTIAL = 10_000
CONCURRENT = 1_000
ROUNDS = 3
POOL = 100  # httpx's default max_connections
#: Memory a call may leave behind, on average, once the client is warm (bytes).
LEAK_PER_CALL = 64


async def open_after_closing(server: LocalServer) -> int:
    """How many connections to `server` are still open, given up to 2 s to reach none:
    asyncio closes a transport's socket a loop iteration or more after `close()`."""
    deadline = time.monotonic() + 2
    while open_connections(server.port) and time.monotonic() < deadline:  # noqa: ASYNC110 (an OS count: no event)
        await asyncio.sleep(0.01)
    return len(open_connections(server.port))


def traced(run: Callable[[], None]) -> int:
    """Bytes still allocated after `run()` (and a full collection) that were not before."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        run()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def check_answer(items: list[GetUsageResultItem]) -> None:
    assert len(items) == 1
    assert isinstance(items[0].additional_properties["total_tokens"], int)


@pytest.mark.load
@pytest.mark.timeout(300)
def test_ten_thousand_sequential_calls_on_one_client(local: LocalServer) -> None:
    process = psutil.Process()
    with Opper(http_bearer=API_KEY, server_url=local.url) as opper:
        for _ in range(200):  # warm: the connection is open, caches and imports are filled
            check_answer(opper.analytics.get_usage(**QUERY))
        fds, rss = process.num_fds(), process.memory_info().rss
        failures: list[BaseException] = []
        peak_fds = fds

        def calls(count: int) -> None:
            nonlocal peak_fds
            for index in range(count):
                try:
                    check_answer(opper.analytics.get_usage(**QUERY))
                except Exception as error:
                    failures.append(error)
                if index % 500 == 0:
                    peak_fds = max(peak_fds, process.num_fds())

        started = time.monotonic()
        calls(SEQUENTIAL - 2_000)
        leaked = traced(lambda: calls(2_000))  # the last 2,000 under tracemalloc
        elapsed = time.monotonic() - started

        assert failures == [], f"{len(failures)} failures, the first: {failures[:1]!r}"
        assert peak_fds == fds, "file descriptors grew during the run"
        assert process.num_fds() == fds
        assert len(open_connections(local.port)) == 1  # the one pooled keep-alive connection
        assert leaked < 2_000 * LEAK_PER_CALL, f"{leaked} bytes left behind by 2,000 calls"
        assert process.memory_info().rss - rss < 32 * 2**20
    assert open_connections(local.port) == []
    stats = local.stats()
    assert stats["requests"] == SEQUENTIAL + 200
    assert stats["connections"] <= 3  # ours (reused throughout) and the control calls
    assert elapsed < 90, f"{SEQUENTIAL} calls took {elapsed:.1f}s"


@pytest.mark.load
@pytest.mark.timeout(300)
def test_a_thousand_concurrent_async_calls_on_one_client(local: LocalServer) -> None:
    """Three bursts of 1,000 calls, the first on a cold client, with a 10 s per-attempt budget
    that a loopback call needs a thousandth of: no call may fail or wait that long."""
    process = psutil.Process()

    async def main() -> None:
        fds = process.num_fds()  # the event loop's own descriptors included
        peak = 0
        async with Opper(http_bearer=API_KEY, server_url=local.url, timeout_ms=10_000) as opper:

            async def watch() -> None:
                nonlocal peak
                while True:
                    peak = max(peak, len(open_connections(local.port)))
                    await asyncio.sleep(0.05)

            watcher = asyncio.create_task(watch())
            memory: list[int] = []
            for round_ in range(ROUNDS):
                started = time.monotonic()
                calls = [opper.analytics.get_usage_async(**QUERY) for _ in range(CONCURRENT)]
                results = await asyncio.gather(*calls, return_exceptions=True)
                elapsed = time.monotonic() - started
                failures = [result for result in results if isinstance(result, BaseException)]
                assert failures == [], (
                    f"round {round_}: {len(failures)} of {CONCURRENT} calls failed in "
                    f"{elapsed:.1f}s, the first: {failures[0]!r}"
                )
                assert elapsed < 15, f"round {round_}: {CONCURRENT} calls took {elapsed:.1f}s"
                for result in results:
                    assert not isinstance(result, BaseException)
                    check_answer(result)
                del results
                gc.collect()
                memory.append(sys.getallocatedblocks())
                # Nothing piles up between bursts: no more descriptors than the pool's. (Idle
                # connections are not held to the keep-alive limit of 20: httpcore 1.0.9
                # prunes them only as a request ends; 26 and 30 were seen on 1 December.)
                assert process.num_fds() <= fds + POOL
            watcher.cancel()
            assert 0 < peak <= POOL
            # Rounds after the first (which fills the pool and caches) leave nothing behind:
            # fewer live memory blocks than calls made since.
            assert memory[-1] - memory[0] < CONCURRENT, memory
        assert await open_after_closing(local) == 0
        assert process.num_fds() <= fds

    asyncio.run(main())
    assert local.stats()["requests"] >= ROUNDS * CONCURRENT


def test_sixteen_threads_share_one_client(local: LocalServer) -> None:
    """All threads start at once, so they also race to make the client's httpx client: a
    second one made and lost would leave its connection open after close()."""
    threads, calls = 16, 50
    start = threading.Barrier(threads)
    failures: list[BaseException] = []
    answers: list[list[dict[str, Any]]] = []
    lock = threading.Lock()

    with Opper(http_bearer=API_KEY, server_url=local.url) as opper:

        def work() -> None:
            start.wait()
            try:
                for _ in range(calls):
                    items = opper.analytics.get_usage(**QUERY)
                    with lock:
                        answers.append([item.model_dump() for item in items])
            except BaseException as error:
                with lock:
                    failures.append(error)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert not any(worker.is_alive() for worker in workers)
        assert failures == []
        assert len(answers) == threads * calls
        assert all(answer == answers[0] for answer in answers)
        assert len(open_connections(local.port)) <= threads
    assert open_connections(local.port) == []
    stats = local.stats()
    assert stats["requests"] == threads * calls
    assert stats["connections"] <= threads + 2


def test_closing_releases_every_connection(local: LocalServer) -> None:
    fds = psutil.Process().num_fds()

    async def main() -> None:
        opper = Opper(http_bearer=API_KEY, server_url=local.url)
        opper.analytics.get_usage(**QUERY)
        await asyncio.gather(*(opper.analytics.get_usage_async(**QUERY) for _ in range(10)))
        assert len(open_connections(local.port)) >= 2  # the sync pool's and the async pool's
        await opper.aclose()
        assert open_connections(local.port) == []

    asyncio.run(main())
    with Opper(http_bearer=API_KEY, server_url=local.url) as opper:
        opper.analytics.get_usage(**QUERY)
        assert len(open_connections(local.port)) == 1
    assert open_connections(local.port) == []
    assert psutil.Process().num_fds() <= fds


def _call(opper: Opper, mode: str) -> list[GetUsageResultItem]:
    if mode == "sync":
        return opper.analytics.get_usage(**QUERY)
    return asyncio.run(opper.analytics.get_usage_async(**QUERY))


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("close", ["close", "aclose", "with", "async with"])
def test_a_closed_client_refuses_calls_clearly(local: LocalServer, mode: str, close: str) -> None:
    opper = Opper(http_bearer=API_KEY, server_url=local.url)
    opper.analytics.get_usage(**QUERY)  # it worked while open
    if close == "close":
        opper.close()
    elif close == "aclose":
        asyncio.run(opper.aclose())
    elif close == "with":
        with opper:
            pass
    else:

        async def enter_and_leave() -> None:
            async with opper:
                pass

        asyncio.run(enter_and_leave())
    for _ in range(2):
        with pytest.raises(RuntimeError, match="closed"):
            _call(opper, mode)
    assert local.stats()["requests"] == 1  # nothing was sent after closing
    assert open_connections(local.port) == []
