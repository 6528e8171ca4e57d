"""Loopback sockets and errors as the tests look at them."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import psutil

from opperai_usage._connections import default_tls_context

#: The CAs the tests' own httpx clients trust: the ones Opper's clients share, loaded once per
#: process; each client would load them itself (about 20 ms of CPU), and the suite makes hundreds.
TLS = default_tls_context()


def free_port() -> int:
    """A loopback port nothing listens on (once this returns)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def closed_port_url(path: str = "/v2") -> str:
    """A loopback URL nobody listens on: connecting is refused at once."""
    return f"http://127.0.0.1:{free_port()}{path}"


def open_connections(port: int) -> list[Any]:
    """This process's TCP connections to `port` on loopback that are still open."""
    return [
        connection
        for connection in psutil.Process().net_connections(kind="tcp")
        if connection.raddr and connection.raddr.port == port
    ]


def error_chain(error: BaseException) -> list[BaseException]:
    """`error` and its causes and contexts, as a formatted traceback shows them."""
    found: list[BaseException] = []
    seen: BaseException | None = error
    while seen is not None and len(found) < 10:
        found.append(seen)
        seen = seen.__cause__ or seen.__context__
    return found


class Passing(httpx.BaseTransport):
    """A transport of your own (logging, say) around httpx's: Opper cannot see inside it."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class AsyncPassing(httpx.AsyncBaseTransport):
    """`Passing` for async clients."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
