"""The deadline layer: each attempt's time budget kept as one deadline over connecting,
sending and reading the whole answer, not per read (httpx's own timeouts bound each read, so a
body dribbled a byte at a time would never trip them).

Sync attempts cannot be interrupted from outside, so the connections of the clients `Opper`
makes bound every read, write and connect by the time left (`DeadlineBackend`, set on httpx's
pool by `transport_with_deadlines`); with a client of yours, the deadline is checked as each
chunk of the body arrives (`SyncDeadlineStream`). Async attempts need none of this: a cancel
scope ends them at the deadline (`_transport.send_async`).
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
    if left <= 0:
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
        within_budget(lambda bounded: write(buffer, bounded), timeout, httpcore.WriteTimeout)

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
    """httpcore's sync network backend, whose connections keep to the attempt's deadline.
    TCP only: the transport it serves (`transport_with_deadlines`) has no Unix socket."""

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

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def transport_with_deadlines(tls: ssl.SSLContext) -> httpx.HTTPTransport:
    """httpx's default transport (what `httpx.Client()` makes, with `tls` as its TLS settings),
    its connections kept to each attempt's deadline. httpx has no argument for httpcore's
    `network_backend`, so it is set on the pool httpx made; `tests/test_budgets.py` fails if
    a new httpx moves it."""
    transport = httpx.HTTPTransport(verify=tls)
    pool = getattr(transport, "_pool", None)
    if isinstance(pool, httpcore.ConnectionPool):
        pool._network_backend = DeadlineBackend(pool._network_backend)
    return transport


class SyncDeadlineStream(httpx.SyncByteStream):
    """The body as it arrives, checked against the deadline at each chunk: the bound for
    clients whose connections are not `DeadlineBackend`'s."""

    def __init__(
        self, stream: httpx.SyncByteStream, request: httpx.Request, deadline: tuple[float, float]
    ) -> None:
        self._stream, self._request = stream, request
        self._deadline, self._budget = deadline

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            if time.monotonic() > self._deadline:
                raise httpx.ReadTimeout(over_budget(self._budget), request=self._request)
            yield chunk

    def close(self) -> None:
        self._stream.close()


def timeouts(budget: float) -> dict[str, float]:
    """httpx's per-operation timeouts for an attempt: none may outlast the attempt."""
    return {"connect": budget, "read": budget, "write": budget, "pool": budget}
