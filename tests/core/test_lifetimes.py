"""One client, any event loop and any process (issue 12), and what it leaves behind.

- Async connections and the concurrency gate belong to the event loop that uses them:
  `asyncio.run` again and again, a new loop per test, trio, threads with loops of their own.
- A loop that ends closes its connections: no descriptors left after 1,000 `asyncio.run`.
- After `os.fork()` (and multiprocessing's fork start method), each child makes its own
  connections and never touches the inherited ones; answers are never crossed; the parent's
  pool keeps working.
- Cancelled calls (at the gate, on the network, in a retry sleep) hold nothing.
- An `Opper` dropped without `close()` closes what it made; clients you pass in stay yours.

Every call here goes over real sockets to the local server; each child process is waited
for with a deadline and killed past it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing
import os
import signal
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx
import psutil
import pytest

from opperai_usage import Opper, _connections
from opperai_usage.models import GetUsageResultItem
from opperai_usage.utils import BackoffStrategy, RetryConfig
from tests.support import API_KEY
from tests.support.net import open_connections
from tests.support.servers import LocalServer

QUERY: dict[str, Any] = {"granularity": "month", "fields": ["total_tokens"]}
#: Python 3.12+ warns when a process with threads forks; the test process has some (pytest's
#: and the test servers'), which the children never use. Forking is what these tests are about.
FORKING_WITH_THREADS = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning"
)


def local_ports(server: LocalServer) -> set[int]:
    return {connection.laddr.port for connection in open_connections(server.port)}


def answered(items: list[GetUsageResultItem], tag: str) -> bool:
    """Whether these are the items of a query grouped by `tag` (a tag no event has: every
    item carries it, as null), i.e. the answer to that query and no other."""
    return bool(items) and all(tag in item and item[tag] is None for item in items)


# -- event loops


def test_asyncio_run_again_and_again_on_one_client(local: LocalServer) -> None:
    """A client made once, at module level, used by one `asyncio.run` per job: each loop gets
    connections of its own, and closes them when it ends."""
    opper = Opper(http_bearer=API_KEY, server_url=local.url)
    assert opper.analytics.get_usage(**QUERY)  # sync calls go on alongside
    sync = local_ports(local)
    for _ in range(3):
        assert asyncio.run(opper.analytics.get_usage_async(**QUERY))
        assert local_ports(local) == sync  # the loop closed its connection as it ended
        assert opper.analytics.get_usage(**QUERY)
    assert len(sync) == 1  # the sync client's, kept alive throughout
    opper.close()
    assert open_connections(local.port) == []
    assert local.stats()["requests"] == 7


@pytest.mark.parametrize("finalized", [True, False], ids=["shutdown_asyncgens", "closed-bare"])
def test_a_new_loop_per_test_with_one_shared_client(local: LocalServer, finalized: bool) -> None:
    """As pytest-asyncio runs tests: a fresh loop each, closed after. A loop closed without
    `shutdown_asyncgens()` cannot close its connections (nothing can run on it any more):
    the next loop still works, and they go with the garbage collector."""
    opper = Opper(http_bearer=API_KEY, server_url=local.url)
    for _ in range(4):
        loop = asyncio.new_event_loop()
        try:
            assert loop.run_until_complete(opper.analytics.get_usage_async(**QUERY))
            if finalized:
                loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
        if finalized:
            assert open_connections(local.port) == []
        # Nothing is kept for a loop that is gone: a bare-closed one is let go on the next
        # loop's first call, or when the client closes.
        assert len(opper._connections._loops) <= 1
    assert local.stats()["requests"] == 4
    opper.close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # "unclosed transport", for bare ones
        gc.collect()
    assert open_connections(local.port) == []


def test_trio_and_asyncio_in_turn_on_one_client(local: LocalServer) -> None:
    opper = Opper(http_bearer=API_KEY, server_url=local.url)

    async def call() -> list[GetUsageResultItem]:
        return await opper.analytics.get_usage_async(**QUERY)

    for backend in ["trio", "asyncio", "trio", "asyncio"]:
        assert anyio.run(call, backend=backend)
        assert open_connections(local.port) == []
    assert local.stats()["requests"] == 4
    opper.close()


def test_threads_each_with_an_event_loop_share_one_client(local: LocalServer) -> None:
    """Four threads, each running its own loop with 20 concurrent calls, on one client."""
    opper = Opper(http_bearer=API_KEY, server_url=local.url)
    failures: list[BaseException] = []

    async def calls() -> None:
        results = await asyncio.gather(
            *(opper.analytics.get_usage_async(**QUERY) for _ in range(20))
        )
        assert all(results)

    def work() -> None:
        try:
            asyncio.run(calls())
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert local.stats()["requests"] == 80
    assert open_connections(local.port) == []
    opper.close()


def async_clients_alive() -> int:
    return sum(isinstance(o, httpx.AsyncClient) for o in gc.get_objects())


def test_a_thousand_event_loops_leave_no_descriptors(local: LocalServer) -> None:
    process = psutil.Process()
    opper = Opper(http_bearer=API_KEY, server_url=local.url)
    asyncio.run(opper.analytics.get_usage_async(**QUERY))  # warm: imports and caches
    gc.collect()
    fds = process.num_fds()
    clients = async_clients_alive()
    for _ in range(1_000):
        asyncio.run(opper.analytics.get_usage_async(**QUERY))
    gc.collect()
    assert process.num_fds() <= fds
    assert open_connections(local.port) == []
    assert opper._connections._loops == {}  # nothing kept for loops that are gone
    assert async_clients_alive() <= clients  # nor their clients: memory does not grow
    assert local.stats()["requests"] == 1_001
    opper.close()


# -- processes


def _wait(pid: int, timeout: float) -> int:
    """The child's exit status; killed (and the test failed) if it outlives `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"child {pid} hung")


def _child_calls(opper: Opper, tag: str, calls: int) -> dict[str, Any]:
    """In a child: sync and async calls grouped by `tag`; what it saw, for the parent."""
    query = {**QUERY, "group_by": [tag]}
    sync_ok = all(answered(opper.analytics.get_usage(**query), tag) for _ in range(calls))

    async def async_calls() -> bool:
        answers = await asyncio.gather(
            *(opper.analytics.get_usage_async(**query) for _ in range(calls))
        )
        return all(answered(items, tag) for items in answers)

    async_ok = asyncio.run(async_calls())
    return {"sync": sync_ok, "async": async_ok}


@FORKING_WITH_THREADS
def test_forked_children_make_their_own_connections(local: LocalServer) -> None:
    """A client used before `os.fork()`, then by the parent and 4 children at once, each with
    a query of its own: every answer is its own query's; the children open connections of
    their own and leave the inherited ones open and untouched; the parent's keep working."""
    process = psutil.Process()
    opper = Opper(http_bearer=API_KEY, server_url=local.url, retry_config=None, timeout_ms=10_000)
    parent_loop = asyncio.new_event_loop()  # kept running across the fork, as a server's is
    assert opper.analytics.get_usage(**QUERY)
    assert parent_loop.run_until_complete(opper.analytics.get_usage_async(**QUERY))
    inherited = local_ports(local)
    assert len(inherited) == 2  # the sync and the async pool's keep-alive connections
    fds = process.num_fds()

    children: dict[int, tuple[str, int]] = {}
    for worker in range(4):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report, then leave without running the parent's cleanup
            status = 1
            try:
                os.close(read)
                report = _child_calls(opper, f"worker{worker}", calls=10)
                report["inherited_still_open"] = inherited <= local_ports(local)
                report["own_connections"] = len(local_ports(local) - inherited)
                os.write(write, json.dumps(report).encode())
                status = 0
            finally:
                os._exit(status)
        os.close(write)
        children[pid] = (f"worker{worker}", read)

    # Meanwhile the parent calls too, on the connections it had before the fork.
    tag = "parent"
    for _ in range(10):
        assert answered(opper.analytics.get_usage(**QUERY, group_by=[tag]), tag)
        call = opper.analytics.get_usage_async(**QUERY, group_by=[tag])
        assert answered(parent_loop.run_until_complete(call), tag)

    for pid, (name, read) in children.items():
        assert _wait(pid, timeout=30) == 0, f"{name} failed"
        with os.fdopen(read) as pipe:
            report = json.loads(pipe.read())
        assert report == {
            "sync": True,
            "async": True,
            "inherited_still_open": True,  # abandoned, not closed
            "own_connections": 1,  # its sync pool's; its loop closed its async ones
        }, name
    assert local_ports(local) == inherited  # the parent's pool kept its connections
    assert local.stats()["requests"] == 2 + 20 + 4 * 20
    parent_loop.run_until_complete(opper.aclose())
    parent_loop.close()
    assert process.num_fds() <= fds
    assert open_connections(local.port) == []


_SHARED: Opper | None = None  # what a module-level client is, for the pool's workers


def _pool_task(task: int) -> dict[str, Any]:
    assert _SHARED is not None
    tag = f"task{task}"
    return {"task": task, "pid": os.getpid(), **_child_calls(_SHARED, tag, calls=3)}


@FORKING_WITH_THREADS
def test_multiprocessing_fork_workers_share_a_module_level_client(local: LocalServer) -> None:
    """gunicorn --preload, Celery's prefork pool: a client made and used in the parent, then
    4 forked workers using it for 16 tasks, each task with a query of its own."""
    global _SHARED
    _SHARED = Opper(http_bearer=API_KEY, server_url=local.url, retry_config=None, timeout_ms=10_000)
    try:
        assert _SHARED.analytics.get_usage(**QUERY)
        assert len(open_connections(local.port)) == 1
        context = multiprocessing.get_context("fork")
        with context.Pool(4) as pool:
            results = pool.map_async(_pool_task, range(16)).get(timeout=60)
        assert [result["task"] for result in results] == list(range(16))
        assert all(result["sync"] and result["async"] for result in results)
        assert len({result["pid"] for result in results}) > 1
        assert _SHARED.analytics.get_usage(**QUERY)  # the parent's connection still works
        assert local.stats()["requests"] == 2 + 16 * 6
    finally:
        _SHARED.close()
        _SHARED = None


@FORKING_WITH_THREADS
def test_clients_you_pass_in_are_yours_after_a_fork(local: LocalServer) -> None:
    """Yours stay as given (so their sockets are shared with the parent: make one per process,
    see the README); the ones Opper made are replaced."""
    client = httpx.Client()
    opper = Opper(http_bearer=API_KEY, server_url=local.url, client=client)
    ours = Opper(http_bearer=API_KEY, server_url=local.url)
    inherited = ours._get_client()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            same = [opper._get_client() is client, ours._get_client() is inherited]
            os.write(write, json.dumps(same).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    assert _wait(pid, timeout=30) == 0
    with os.fdopen(read) as pipe:
        assert json.loads(pipe.read()) == [True, False]
    opper.close()
    ours.close()
    assert not client.is_closed
    client.close()


@pytest.fixture
def fork_hook() -> Iterator[Callable[[], None]]:
    """What a child made by `os.fork()` runs first (the hook given to `os.register_at_fork`),
    to run in this process, where mutation testing sees it (it records nothing in children).
    Afterwards it closes what the hook set aside: here, unlike in a child, that is this
    process's own, and every client in the process was told to start afresh."""
    start = len(_connections._ABANDONED)
    yield _connections._after_fork_in_child
    set_aside = _connections._ABANDONED[start:]
    del _connections._ABANDONED[start:]
    for thing in set_aside:
        if isinstance(thing, httpx.Client):
            thing.close()


def test_after_a_fork_the_child_sets_aside_what_it_inherited(
    local: LocalServer, fork_hook: Callable[[], None]
) -> None:
    """The hook run inside a running loop, as in a child forked from a coroutine, while another
    thread holds the client's lock: nothing inherited is closed or used again (both stay open
    and referenced), the next calls open connections of their own, and a client you passed in
    is still the one used."""
    yours = httpx.Client()
    given = Opper(http_bearer=API_KEY, server_url=local.url, client=yours)
    opper = Opper(http_bearer=API_KEY, server_url=local.url, retry_config=None, timeout_ms=10_000)

    async def in_the_child() -> None:
        assert opper.analytics.get_usage(**QUERY)
        assert await opper.analytics.get_usage_async(**QUERY)
        assert given.analytics.get_usage(**QUERY)
        inherited = local_ports(local)
        assert len(inherited) == 3  # the sync, the async and your client's connections
        sync_client = weakref.ref(opper._get_client())
        (async_connections,) = opper._connections._loops.values()
        lock = opper._connections._lock
        lock.acquire()  # as if another thread of the parent held it at the fork
        try:
            fork_hook()
            gc.collect()
            parents = sync_client()
            assert parents is not None  # kept referenced
            assert not parents.is_closed  # and not closed
            assert local_ports(local) == inherited  # no inherited connection was closed

            answers: list[bool] = []
            sync_call = threading.Thread(
                target=lambda: answers.append(bool(opper.analytics.get_usage(**QUERY)))
            )
            sync_call.start()
            sync_call.join(timeout=10)
            assert answers == [True]  # the parent's lock is not the child's
            assert await opper.analytics.get_usage_async(**QUERY)
            assert given.analytics.get_usage(**QUERY)
        finally:
            lock.release()
        assert inherited < local_ports(local)
        assert len(local_ports(local) - inherited) == 2  # a sync and an async connection
        assert given._get_client() is yours
        assert not async_connections.client.is_closed  # kept, not closed
        await async_connections.client.aclose()  # here it is this process's own to close
        await opper.aclose()

    asyncio.run(in_the_child())
    assert local.stats()["requests"] == 6
    given.close()
    yours.close()


# -- cancellation

SLOW_NETWORK = 100  # calls that get a place at the gate and wait on the network


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_cancelled_calls_hold_nothing(local: LocalServer, backend: str) -> None:
    """150 calls cancelled while they wait (100 on the network, 50 at the gate), then 50 in a
    retry sleep: afterwards every place at the gate is free, no connection is left over, and
    a call takes as long as it did before."""
    local.script(*[{"delay_ms": 5_000}] * SLOW_NETWORK)
    patient = RetryConfig("backoff", BackoffStrategy(20_000, 20_000, 1, 60_000), max_retries=1)

    async def main() -> None:
        async with Opper(http_bearer=API_KEY, server_url=local.url) as opper:
            usage = opper.analytics.get_usage_async

            async def cancel_after(calls: Callable[[], Any], count: int, ready: int) -> None:
                async with anyio.create_task_group() as group:
                    for _ in range(count):
                        group.start_soon(calls)
                    while local.stats()["requests"] < ready:  # noqa: ASYNC110 - the server's
                        await anyio.sleep(0.05)
                    group.cancel_scope.cancel()

            with anyio.fail_after(30):
                await cancel_after(lambda: usage(**QUERY), 150, ready=SLOW_NETWORK)
            connections = await opper._loop_connections()
            assert connections.gate.value == 100  # every place given back
            local.reset()
            local.script(*[{"status": 503}] * 50)
            with anyio.fail_after(30):  # 50 calls asleep before their retry
                await cancel_after(lambda: usage(**QUERY, retries=patient), 50, ready=50)
            assert connections.gate.value == 100
            # At most the 50 that answered the 503s, idle for reuse: none of the 100 cancelled
            # in the middle of an answer is left open.
            assert len(open_connections(local.port)) <= 50
            local.reset()
            started = time.monotonic()
            with anyio.fail_after(10):
                assert await usage(**QUERY)
            assert time.monotonic() - started < 1.0
        assert open_connections(local.port) == []

    anyio.run(main, backend=backend)


# -- clients dropped without close()


@pytest.fixture
def resource_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """The ResourceWarnings raised during the test. Garbage that earlier tests left (a loop
    closed bare leaves its sockets to the collector, by design) is collected first."""
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield caught


def test_dropped_sync_clients_close_their_connections(
    local: LocalServer, resource_warnings: list[warnings.WarningMessage]
) -> None:
    for _ in range(20):
        assert Opper(http_bearer=API_KEY, server_url=local.url).analytics.get_usage(**QUERY)
    gc.collect()
    assert [str(w.message) for w in resource_warnings] == []
    assert open_connections(local.port) == []
    assert local.stats()["connections"] >= 20  # each did open one


def test_dropped_async_clients_are_closed_on_their_loop(
    local: LocalServer, resource_warnings: list[warnings.WarningMessage]
) -> None:
    """A finalizer cannot await: a dropped client's async connections are closed on their
    event loop, by the loop, as soon as it runs again."""

    async def main() -> None:
        for _ in range(20):
            opper = Opper(http_bearer=API_KEY, server_url=local.url)
            assert await opper.analytics.get_usage_async(**QUERY)
            del opper
        gc.collect()
        await asyncio.sleep(0.1)
        assert open_connections(local.port) == []

    asyncio.run(main())
    gc.collect()
    assert [str(w.message) for w in resource_warnings] == []


def test_clients_you_pass_in_are_never_closed_for_you(local: LocalServer) -> None:
    async def main() -> tuple[httpx.Client, httpx.AsyncClient]:
        client, async_client = httpx.Client(), httpx.AsyncClient()
        opper = Opper(
            http_bearer=API_KEY, server_url=local.url, client=client, async_client=async_client
        )
        assert opper.analytics.get_usage(**QUERY)
        assert await opper.analytics.get_usage_async(**QUERY)
        await opper.aclose()
        assert not client.is_closed
        assert not async_client.is_closed
        dropped = Opper(
            http_bearer=API_KEY, server_url=local.url, client=client, async_client=async_client
        )
        assert await dropped.analytics.get_usage_async(**QUERY)
        del dropped
        gc.collect()
        await asyncio.sleep(0.05)
        assert not client.is_closed
        assert not async_client.is_closed
        await async_client.aclose()
        return client, async_client

    client, _ = asyncio.run(main())
    client.close()


def test_closing_inside_a_trio_run_lets_the_run_close_its_connections(
    local: LocalServer,
) -> None:
    """`close()` (not `aclose()`) called in a trio run: what that run opened is closed as the
    run ends; trio has no asyncio loop to ask whether it is closed."""

    async def main() -> None:
        opper = Opper(http_bearer=API_KEY, server_url=local.url)
        assert await opper.analytics.get_usage_async(**QUERY)
        opper.close()

    anyio.run(main, backend="trio")
    assert open_connections(local.port) == []


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_aclose_on_a_loop_that_made_no_call(local: LocalServer, backend: str) -> None:
    """A client used only synchronously, closed with `async with`: its connections are
    closed, and it is closed for both kinds of call."""
    opper = Opper(http_bearer=API_KEY, server_url=local.url)
    assert opper.analytics.get_usage(**QUERY)

    async def main() -> None:
        async with opper:
            pass

    anyio.run(main, backend=backend)
    assert open_connections(local.port) == []
    with pytest.raises(RuntimeError):
        opper.analytics.get_usage(**QUERY)


def test_closed_clients_are_let_go(local: LocalServer) -> None:
    """Oppers made, used and closed one after another (a client per job): nothing keeps
    their httpx clients alive afterwards."""
    gc.collect()
    before = sum(isinstance(o, httpx.Client) for o in gc.get_objects())
    for _ in range(50):
        with Opper(http_bearer=API_KEY, server_url=local.url) as opper:
            assert opper.analytics.get_usage(**QUERY)
    del opper
    gc.collect()
    assert sum(isinstance(o, httpx.Client) for o in gc.get_objects()) <= before
    assert open_connections(local.port) == []
