"""`UsageServer`: a local, Opper-compatible usage server on a free loopback port.

It runs in background threads of the test's own process: one accepts connections, one serves
each open connection. Closing it ends them all, and closes every socket, before it returns.
"""

from __future__ import annotations

import contextlib
import functools
import selectors
import socket
import sys
import threading
import traceback
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import TYPE_CHECKING, NamedTuple

from ._aggregate import Aggregator
from ._dataset import DEFAULT_EVENTS, DEFAULT_SEED, WINDOW_DAYS
from ._handler import Context, UsageHandler
from ._script import ABSENT, scripted
from ._state import Clock, RecordedRequest, State

if TYPE_CHECKING:
    from typing_extensions import Self

UTC = timezone.utc

API_PATH = "/v2"
#: Connections the kernel queues before they are accepted: a burst of 1,000 is not refused.
BACKLOG = 1024
#: How long closing waits for each connection's thread, which is told to stop at once.
JOIN_TIMEOUT = 10.0
#: The longest `ingest_delay`.
MAX_INGEST_DELAY = timedelta(days=365)


@functools.lru_cache(maxsize=8)
def _aggregator(seed: int, events: int, first_day: int, delay: timedelta) -> Aggregator:
    """The answers for a seed, size, first day and delay: shared by every server that asks
    (answers over past ranges are cached), so a server per test starts in about a
    millisecond."""
    return Aggregator(seed, events, first_day, delay)


class _Listening(NamedTuple):
    """A started server's listening socket, accept thread and the socket pair that wakes it."""

    listener: socket.socket
    wake_reader: socket.socket
    wake_writer: socket.socket
    acceptor: threading.Thread


class UsageServer:
    """A local `GET /v2/analytics/usage` that answers like Opper's, for tests.

    ```python
    with UsageServer(seed=7) as server:
        with Opper(api_key="test", server_url=server.url) as opper:
            items = opper.analytics.get_usage(group_by=["model"])
    ```

    Its made-up usage events are a function of `seed` and of time only: about `events`
    every 60 days at random (and one at 00:00:00 of each UTC day), from 60 days before the
    day it starts with on. It really buckets, sums and counts them, and groups them by tag
    (`model`, `project.name`, `environment`, and `customer_id` on about 70 % of them). It
    answers 401 to a request without a bearer token, or, given `api_key`, with any other
    token; 422 (shaped like FastAPI's) to bad parameters; 404 to other paths. `enqueue()`
    scripts answers, `requests` lists what it received.

    An answer holds the events that have arrived by `now`: those whose time, plus a seeded
    share of `ingest_delay` (from none of it to all of it, per event; none by default), is
    at most `now`. `now` (an aware datetime in the years 2 to 9998; naive is UTC) fixes the
    moment the server takes as now, so its answers never change; a query without dates asks
    about that month. By default it follows the clock a day at a time: its now is the end of
    the current UTC day, so its answers change only at midnight. Setting `server.now` moves
    it: later reveals the events that happened or arrived since, and the past stays as it
    was. `host` and `port` say where to listen (by default a free port on 127.0.0.1);
    `verbose` logs every request to stderr.

    Limits, so that a test, or a web page or program on the same machine, cannot make it
    hold unbounded memory or threads: it reads request bodies up to 16 MiB (413 beyond,
    400 for a malformed Content-Length, and the connection closed); it keeps the newest
    100,000 requests or 64 MiB of them, header values cut to 4,096 characters (see
    `RecordedRequest`); closing stops answers still being built.
    """

    def __init__(
        self,
        *,
        seed: int = DEFAULT_SEED,
        api_key: str | None = None,
        now: datetime | None = None,
        events: int = DEFAULT_EVENTS,
        ingest_delay: timedelta | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        verbose: bool = False,
    ) -> None:
        if type(seed) is not int:
            raise TypeError(f"seed: must be an int, got {seed!r}")
        if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
            raise ValueError("api_key: must be a non-empty str, or None to accept any bearer")
        if now is not None and not isinstance(now, datetime):
            raise TypeError(f"now: must be a datetime, got {type(now).__name__}")
        if type(events) is not int or events < 0:
            raise ValueError(f"events: must be an int >= 0, got {events!r}")
        delay = timedelta(0) if ingest_delay is None else ingest_delay
        if not isinstance(delay, timedelta):
            raise TypeError(f"ingest_delay: must be a timedelta, got {type(delay).__name__}")
        if not timedelta(0) <= delay <= MAX_INGEST_DELAY:
            raise ValueError(f"ingest_delay: must be from 0 to 365 days, got {delay}")
        if type(port) is not int or not 0 <= port <= 65535:
            raise ValueError(f"port: must be from 0 to 65535, got {port!r}")
        self._seed, self._host, self._port = seed, host, port
        clock = Clock(now)
        start = clock.now()
        first_day = start.toordinal() - WINDOW_DAYS  # 0 is 0001-01-01: 59 days before start's
        self._state = State()
        self._context = Context(
            state=self._state,
            data=_aggregator(seed, events, first_day, delay),
            api_key=api_key,
            clock=clock,
            verbose=verbose,
            stopping=threading.Event(),
        )
        self._context.data.build(start)  # the days up to now, now rather than at the first call
        self._lock = threading.Lock()
        self._open: dict[threading.Thread, socket.socket] = {}
        self._base_url: str | None = None
        self._listening: _Listening | None = None

    # -- life cycle

    def start(self) -> Self:
        """Listen and serve in background threads; `with UsageServer() as server` calls it."""
        if self._base_url is not None or self._context.stopping.is_set():
            raise RuntimeError("a UsageServer starts once; make a new one")
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        listener = socket.create_server((self._host, self._port), family=family, backlog=BACKLOG)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        host = f"[{self._host}]" if family == socket.AF_INET6 else self._host
        self._base_url = f"http://{host}:{port}"
        wake_reader, wake_writer = socket.socketpair()
        acceptor = threading.Thread(
            target=self._accept,
            args=(listener, wake_reader),
            name=f"UsageServer:{port}",
            daemon=True,
        )
        self._listening = _Listening(listener, wake_reader, wake_writer, acceptor)
        acceptor.start()
        return self

    def close(self) -> None:
        """Stop: no new connections, open ones closed (waits, dribbles and answers being
        built cut short), every thread ended and every socket closed when this returns.
        Closing twice is harmless."""
        listening, already = self._listening, self._context.stopping.is_set()
        self._context.stopping.set()
        self._context.state.wake()  # delays end now
        if listening is None or already:
            return
        listening.wake_writer.send(b"x")
        listening.acceptor.join(JOIN_TIMEOUT)
        for sock in (listening.listener, listening.wake_reader, listening.wake_writer):
            sock.close()
        with self._lock:
            still_open = list(self._open.items())
        for _, connection in still_open:
            with contextlib.suppress(OSError):  # the client may have closed it already
                connection.shutdown(socket.SHUT_RDWR)
        for thread, _ in still_open:
            thread.join(JOIN_TIMEOUT)

    def __enter__(self) -> Self:
        """Start, unless `start()` was called already; `__exit__` closes."""
        return self if self._base_url is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self._base_url or "not started"
        return f"<UsageServer {where} seed={self._seed}>"

    # -- where it is

    @property
    def url(self) -> str:
        """The API's URL, what `Opper(server_url=...)` takes: `http://127.0.0.1:PORT/v2`."""
        return self.base_url + API_PATH

    @property
    def base_url(self) -> str:
        """The server's root, what `OPPER_BASE_URL` takes: `http://127.0.0.1:PORT`."""
        if self._base_url is None:
            raise RuntimeError("the server is not started: use `with UsageServer() as server`")
        return self._base_url

    # -- time

    @property
    def now(self) -> datetime:
        """The moment the server takes as now (UTC): the one given, or the end of today."""
        return self._context.clock.now()

    @now.setter
    def now(self, moment: datetime) -> None:
        """Take `moment` as now from here on (naive is UTC; in the years 2 to 9998)."""
        self._context.clock.set(moment)

    # -- scripting and inspecting

    def enqueue(
        self,
        *,
        status: int | None = None,
        json: object = ABSENT,
        body: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = None,
        delay: float = 0,
        drop: bool = False,
        truncate: bool = False,
        dribble: float = 0,
        items: int | None = None,
    ) -> None:
        """Script the answer to the next usage request not yet scripted; later calls script
        the ones after it. Once the queue is used up, the server answers from its data again.

        - `status`: this status (default 200), with an empty body unless `json` or `body`.
        - `json`: this value, as JSON (`application/json`).
        - `body`: these bytes, or this text (`text/plain; charset=utf-8`).
        - `headers`: these headers too (or instead of the server's, for the same name).
        - `content_type`: this Content-Type, whatever the answer (the real one too).
        - `delay`: seconds to wait before answering (or before dropping).
        - `drop`: close the connection without answering.
        - `truncate`: announce the whole body's length, send half of it, close the connection.
        - `dribble`: send the body one byte at a time, this many seconds apart.
        - `items`: a 200 of this many made-up items (for large answers).

        With none of them, it is the real answer, as if not scripted. A scripted answer is
        sent whatever the request's key or parameters. A wrong or conflicting setting raises
        ValueError or TypeError here, before anything is queued.
        """
        answer = scripted(
            status=status,
            json=json,
            body=body,
            headers=headers,
            content_type=content_type,
            delay=delay,
            drop=drop,
            truncate=truncate,
            dribble=dribble,
            items=items,
        )
        self._state.enqueue([answer])

    @property
    def pending(self) -> int:
        """Scripted answers not used yet: 0 once every one was asked for."""
        return self._state.pending

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received since the start or the last `reset()`, oldest first (a copy).

        A request is recorded as soon as it arrives, before it is answered: once a call to
        the server has returned, every attempt it made is here.
        """
        return self._state.records()

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """`requests`, once at least `count` have arrived since the last `reset()`; for code
        that calls the server from another thread or task. TimeoutError after `timeout` s."""
        return self._state.wait_for(count, timeout)

    @property
    def connections(self) -> int:
        """TCP connections accepted since the start or the last `reset()`."""
        return self._state.stats()["connections"]

    def reset(self) -> None:
        """Forget the scripted answers not yet used, the recorded requests and the counts."""
        self._state.reset()

    # -- threads

    def _accept(self, listener: socket.socket, wake: socket.socket) -> None:
        """Accept connections until `wake` is written to (by `close`)."""
        with selectors.DefaultSelector() as selector:
            selector.register(listener, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fileobj is wake:
                        return
                    # the client that made the listener readable gave up before it was accepted
                    with contextlib.suppress(BlockingIOError, ConnectionAbortedError):
                        self._serve(*listener.accept())

    def _serve(self, connection: socket.socket, address: tuple[str, int]) -> None:
        connection.setblocking(True)
        self._state.connected()
        thread = threading.Thread(
            target=self._handle,
            args=(connection, address),
            name=f"UsageServer:{connection.getsockname()[1]} from {address[1]}",
            daemon=True,
        )
        with self._lock:
            self._open[thread] = connection
        thread.start()

    def _handle(self, connection: socket.socket, address: tuple[str, int]) -> None:
        try:
            UsageHandler(connection, address, self._context)
        except OSError:  # the client hung up, or the server is closing
            if self._context.verbose:
                traceback.print_exc()
        except Exception:  # a bug here: say so, and keep serving the other connections
            print(f"UsageServer: error on a connection from {address}", file=sys.stderr)
            traceback.print_exc()
        finally:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_WR)  # flush what was sent, then close
            connection.close()
            with self._lock:
                del self._open[threading.current_thread()]
