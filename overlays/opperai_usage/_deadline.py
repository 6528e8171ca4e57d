"""The deadline layer: each attempt's time budget kept as one deadline over connecting,
sending and reading the whole answer, not per read (httpx's own timeouts bound each read, so a
body dribbled a byte at a time would never trip them).

Sync attempts cannot be interrupted from outside, so their connections bound every read, write
and connect by the time left (`DeadlineBackend`, set on httpx's pools): those of the client
`Opper` makes (`transport_with_deadlines`), and those of a client of yours, from when you pass
it in (`keep_to_deadlines`: its httpx transports, mounted ones included, and the connections
they hold already). Only a transport of your own (not `httpx.HTTPTransport`) is out of reach:
there each read of the headers waits at most the whole budget, and the deadline is checked as
each chunk of the body arrives (`SyncDeadlineStream`). Async attempts need none of this: a
cancel scope ends them at the deadline (`_transport.send_async`), whatever the client.
"""

from __future__ import annotations

import contextvars
import ssl
import time
import typing
from collections.abc import Iterable, Iterator

import httpcore
import httpx

#: The running sync attempt's deadline (`time.monotonic()` seconds) and budget, for
#: `DeadlineBackend`'s streams; `None` outside an attempt.
DEADLINE: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar(
    "opperai_usage_deadline", default=None
)


def over_budget(budget: float) -> str:
    return (
        f"no complete answer within the attempt's time budget of {budget:.3f}s "
        "(timeout_ms, or what was left of the retries' max_elapsed_time)"
    )


_T = typing.TypeVar("_T")


def within_budget(
    operation: typing.Callable[[float | None], _T], timeout: float | None, error: type[Exception]
) -> _T:
    """`operation(timeout)`, given instead what the running attempt has left: httpx's own
    per-operation timeouts are set to the attempt's whole budget (`timeouts`), so what is
    left is never longer. When that runs out, `error` says it was the budget."""
    current = DEADLINE.get()
    if current is None:  # outside an attempt (nothing sends there today): httpx's timeout
        return operation(timeout)
    deadline, budget = current
    left = deadline - time.monotonic()
    if left <= 0:  # pragma: no mutate
        raise error(over_budget(budget))
    try:
        return operation(left)
    except error:
        raise error(over_budget(budget)) from None


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write waits no longer than the attempt has left."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        read = self._stream.read
        return within_budget(
            lambda bounded: read(max_bytes, bounded), timeout, httpcore.ReadTimeout
        )

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        write = self._stream.write
        within_budget(
            lambda bounded: write(buffer, bounded),  # pragma: no mutate
            timeout,  # pragma: no mutate
            httpcore.WriteTimeout,
        )

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        start_tls = self._stream.start_tls
        stream = within_budget(
            lambda bounded: start_tls(ssl_context, server_hostname, bounded),
            timeout,
            httpcore.ConnectTimeout,
        )
        return _DeadlineStream(stream)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's sync network backend, whose connections keep to the attempt's deadline."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        connect = self._backend.connect_tcp
        stream = within_budget(
            lambda bounded: connect(host, port, bounded, local_address, socket_options),
            timeout,
            httpcore.ConnectTimeout,
        )
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        connect = self._backend.connect_unix_socket
        stream = within_budget(
            lambda bounded: connect(path, bounded, socket_options),
            timeout,
            httpcore.ConnectTimeout,
        )
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def transport_with_deadlines(tls: ssl.SSLContext) -> httpx.HTTPTransport:
    """httpx's default transport (what `httpx.Client()` makes, with `tls` as its TLS settings),
    its connections kept to each attempt's deadline."""
    transport = httpx.HTTPTransport(verify=tls)  # pragma: no mutate
    _keep_pool_to_deadlines(transport)
    return transport


def keep_to_deadlines(client: httpx.Client) -> None:
    """Make a client of yours keep to each attempt's deadline as ours does: the pools of its
    httpx transports (the default one, and those mounted for proxies or hosts) connect
    through `DeadlineBackend`, and the connections they hold already read through it.
    Outside an attempt nothing changes: httpx's own timeouts apply, as before."""
    for transport in (client._transport, *client._mounts.values()):
        _keep_pool_to_deadlines(transport)


def _keep_pool_to_deadlines(transport: object) -> None:
    """httpx has no argument for httpcore's `network_backend`, so it is set on the pool httpx
    made; `tests/core/test_budgets.py` fails if a new httpx moves it."""
    pool = getattr(transport, "_pool", None)
    if not isinstance(pool, httpcore.ConnectionPool):
        return  # a transport of your own: only the body is checked (`SyncDeadlineStream`)
    if not isinstance(pool._network_backend, DeadlineBackend):
        pool._network_backend = DeadlineBackend(pool._network_backend)
    for connection in pool.connections:
        _keep_connection_to_deadlines(connection)


def _keep_connection_to_deadlines(connection: object) -> None:
    """An open connection reads through `_DeadlineStream` from now on. Its stream is held
    by httpcore's HTTP/1.1 or HTTP/2 connection, inside the pool's (and, through a proxy,
    inside the proxy connection's): looked for a few levels down."""
    for _ in range(4):
        stream = getattr(connection, "_network_stream", None)
        if isinstance(stream, httpcore.NetworkStream):
            if not isinstance(stream, _DeadlineStream):
                connection._network_stream = _DeadlineStream(stream)  # type: ignore[attr-defined]
            return
        connection = getattr(connection, "_connection", None)


class SyncDeadlineStream(httpx.SyncByteStream):
    """The body as it arrives, checked against the deadline at each chunk: the bound for
    connections that are not `DeadlineBackend`'s (a transport of your own)."""

    def __init__(
        self, stream: httpx.SyncByteStream, request: httpx.Request, deadline: tuple[float, float]
    ) -> None:
        self._stream, self._request = stream, request
        self._deadline, self._budget = deadline

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            if time.monotonic() > self._deadline:  # pragma: no mutate
                raise httpx.ReadTimeout(
                    over_budget(self._budget),
                    request=self._request,  # pragma: no mutate
                )
            yield chunk

    def close(self) -> None:
        self._stream.close()


def timeouts(budget: float) -> dict[str, float]:
    """httpx's per-operation timeouts for an attempt: none may outlast the attempt."""
    return {
        "connect": budget,
        "read": budget,
        "write": budget,  # pragma: no mutate (writes never wait here: tests/MUTANTS.md)
        "pool": budget,
    }
