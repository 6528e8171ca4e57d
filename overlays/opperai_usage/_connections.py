"""Which connections a call may use: those of the process it runs in and, for async calls, of
the event loop that runs it.

- Sync calls share one `httpx.Client` per process (httpx's clients are thread-safe).
- Async calls get an `httpx.AsyncClient` and a concurrency gate per event loop: a loop cannot
  use another loop's connections ("Event loop is closed"). A loop closes its own, on itself,
  when it shuts down: each loop's client is held open by a suspended async generator, which
  the loop finalizes then (asyncio's `shutdown_asyncgens`, run by `asyncio.run` and
  `anyio.run`; the end of a trio run), or soon after nothing refers to it any more.
- In a child made by `os.fork()` (multiprocessing, gunicorn `--preload`, Celery's prefork
  pool), the connections inherited from the parent are the parent's, still in use there: the
  child never reads, writes or closes them (closing a TLS connection writes to it). It keeps
  them referenced, abandoned, and opens its own.
- Clients passed in (`client=`, `async_client=`) are used as given, in every loop and every
  process: that is theirs to manage (README, "Threads, event loops and processes"). A sync
  one's connections are made to keep to each attempt's deadline, as ours do (`_deadline`).
"""

from __future__ import annotations

import contextlib
import os
import ssl
import sys
import threading
import weakref
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    import anyio

#: Async attempts in flight at once per client and loop (httpx's default pool size); more
#: wait their turn, since httpcore's pool slows down with the square of the requests queued.
ASYNC_CONCURRENCY = 100
#: As many idle connections kept as may be busy: with httpx's default of 20, a burst of calls
#: closes most connections as each answer ends and opens new ones for the calls still waiting.
_ASYNC_LIMITS = httpx.Limits(
    max_connections=ASYNC_CONCURRENCY, max_keepalive_connections=ASYNC_CONCURRENCY
)

# What was made here and is not closed yet: the sync clients, and each loop's connections
# with the async generator that closes them on their loop (`_close_with_the_loop`). Held
# here, and not only by their `Opper`, so that an `Opper` collected in a reference cycle
# cannot take them with it unclosed: the garbage collector finalizes everything in a cycle
# at once (their sockets included) before `Connections.__del__` could close them in order.
_OPEN_CLIENTS: set[httpx.Client] = set()
_OPEN_LOOPS: dict[LoopConnections, AsyncGenerator[None, None]] = {}
#: What forked children inherited from their parents: kept referenced, never used or closed.
_ABANDONED: list[object] = []
_LIVE: weakref.WeakSet[Connections] = weakref.WeakSet()


def _running_loop() -> object:
    """The running event loop, as a key: the asyncio loop, or the trio run's token."""
    asyncio = sys.modules.get("asyncio")  # not imported here: a trio program may not need it
    if asyncio is not None:
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            pass
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            return trio.lowlevel.current_trio_token()
        except RuntimeError:
            pass
    raise RuntimeError("get_usage_async must be awaited in a running asyncio or trio event loop")


def _is_closed(loop: object) -> bool:
    """Whether `loop` is an asyncio loop closed without finalizing its async generators (a
    trio run always finalizes them, and an asyncio loop that did has forgotten this one)."""
    is_closed = getattr(loop, "is_closed", None)
    return bool(is_closed is not None and is_closed())


class LoopConnections:
    """One event loop's async client and concurrency gate."""

    __slots__ = ("client", "done", "gate", "owned")

    def __init__(self, client: httpx.AsyncClient, owned: bool, gate: anyio.Semaphore) -> None:
        self.client, self.owned, self.gate = client, owned, gate
        #: Closed, or abandoned: nothing is left for the closer to do.
        self.done = False  # pragma: no mutate

    def let_its_loop_close(self) -> None:
        """Let go of the closer: its loop finalizes it, on the loop, which closes the client
        (at once if it is the running loop, else when that loop next runs)."""
        _OPEN_LOOPS.pop(self, None)

    def finish_here(self) -> None:
        """End the closer without awaiting anything, for a loop that can no longer run it;
        the client is left as it is."""
        self.done = True
        closer = _OPEN_LOOPS.pop(self, None)
        if closer is not None:
            step = closer.aclose()
            try:
                step.send(None)
            except StopIteration:
                return
            step.close()  # pragma: no cover - it awaits only when not done


async def _close_with_the_loop(
    connections: LoopConnections, registry: dict[object, LoopConnections], loop: object
) -> AsyncGenerator[None, None]:
    """Suspended for as long as `connections` are in use; finalized by their loop, on it.
    (It refers to them, they do not refer to it: no cycle holds it back from finalization.)"""
    try:
        yield
    finally:
        if registry.get(loop) is connections:
            registry.pop(loop, None)
        _OPEN_LOOPS.pop(connections, None)
        if connections.owned and not connections.done:
            connections.done = True
            await connections.client.aclose()


_TLS_CONTEXTS: dict[tuple[str | None, str | None], ssl.SSLContext] = {}
_TLS_LOCK = threading.Lock()


def default_tls_context() -> ssl.SSLContext:
    """httpx's default TLS settings (certifi's CAs, or those SSL_CERT_FILE or SSL_CERT_DIR
    name), made once per process for each value of those two and shared by every `Opper`:
    loading the CAs costs about 20 ms of CPU, and a program may make an `Opper` per job."""
    where = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    with _TLS_LOCK:
        context = _TLS_CONTEXTS.get(where)
        if context is None:
            context = _TLS_CONTEXTS[where] = httpx.create_ssl_context(trust_env=True)
    return context


class Connections:
    """The httpx clients of one `Opper`: made on first use, per process and per event loop."""

    def __init__(self, client: httpx.Client | None, async_client: httpx.AsyncClient | None):
        self._given_client, self._given_async_client = client, async_client
        if client is not None:
            from ._deadline import keep_to_deadlines

            keep_to_deadlines(client)
        self._client = client
        self._loops: dict[object, LoopConnections] = {}
        self._lock = threading.Lock()
        _LIVE.add(self)

    def sync_client(self) -> httpx.Client:
        """This process's sync client, made on its first call (once, whichever thread asks)."""
        with self._lock:
            if self._client is None:
                from ._deadline import transport_with_deadlines

                tls = default_tls_context()  # pragma: no mutate
                transport = transport_with_deadlines(tls)  # pragma: no mutate
                self._client = httpx.Client(
                    follow_redirects=True,
                    verify=tls,  # pragma: no mutate
                    transport=transport,
                )
                _OPEN_CLIENTS.add(self._client)
            return self._client

    async def for_this_loop(self) -> LoopConnections:
        """The running loop's connections, made on its first call."""
        loop = _running_loop()
        found = self._loops.get(loop)
        if found is not None:
            return found
        for other, connections in self._loops.copy().items():  # other threads' loops add theirs
            if _is_closed(other):
                self._loops.pop(other, None)
                connections.finish_here()  # its sockets go with the garbage collector
        import anyio

        given = self._given_async_client
        client = given or httpx.AsyncClient(
            follow_redirects=True,
            verify=default_tls_context(),  # pragma: no mutate
            limits=_ASYNC_LIMITS,
        )
        connections = LoopConnections(client, given is None, anyio.Semaphore(ASYNC_CONCURRENCY))
        closer = _close_with_the_loop(connections, self._loops, loop)
        self._loops[loop] = connections
        _OPEN_LOOPS[connections] = closer
        await closer.asend(None)  # its first step, in this loop: the loop finalizes it
        return connections

    def close(self) -> None:
        """Close the sync client made here; let each loop close the async client made for it
        (at once for the running loop, when it next runs for another)."""
        if self._given_client is None and self._client is not None:
            self._client.close()
            _OPEN_CLIENTS.discard(self._client)
        loops, self._loops = self._loops, {}
        for loop, connections in loops.copy().items():  # finish_here() takes it out of loops
            if _is_closed(loop):
                connections.finish_here()
            else:
                connections.let_its_loop_close()

    async def aclose(self) -> None:
        """`close()`, and the running loop's async client closed before returning."""
        try:
            mine = self._loops.pop(_running_loop(), None)
        except RuntimeError:
            mine = None
        self.close()
        if mine is not None:
            if mine.owned and not mine.done:
                mine.done = True
                await mine.client.aclose()
            mine.finish_here()

    def start_afresh_after_fork(self) -> None:
        """In a forked child: forget what the parent opened (`_after_fork_in_child` has set
        it aside), so that the next call makes connections of this process's own."""
        self._lock = threading.Lock()  # another thread of the parent may have held it
        if self._given_client is None:
            self._client = None
        self._loops = {}

    def __del__(self) -> None:
        # An `Opper` dropped without close(): release what it made, as close() does.
        with contextlib.suppress(Exception):  # a finalizer has no one to report to
            self.close()


def _after_fork_in_child() -> None:
    """Set aside, never to use or close, every connection the parent opened (all of them are
    in `_OPEN_CLIENTS` and `_OPEN_LOOPS` until closed), then let each client start afresh."""
    _ABANDONED.extend(_OPEN_CLIENTS)
    _OPEN_CLIENTS.clear()
    for connections in list(_OPEN_LOOPS):
        connections.finish_here()
        _ABANDONED.append(connections)
    for live in list(_LIVE):
        live.start_afresh_after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
