"""TLS failures that no later attempt can get past are not retried: a certificate the client
does not trust, TLS spoken to a port that speaks plain HTTP. Over real loopback sockets, with
retries on (connection errors included), sync and async."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import httpx
import pytest

from opperai_usage import Opper
from opperai_usage.utils import BackoffStrategy, RetryConfig
from tests.support import API_KEY
from tests.support.net import closed_port_url, error_chain
from tests.support.servers import LocalServer, TLSServer

#: Retries on, connection errors included, small waits: anything retried shows at once.
RETRYING = RetryConfig(
    "backoff", BackoffStrategy(10, 50, 2.0, 5_000), retry_connection_errors=True, max_retries=3
)


def call(mode: str, **options: Any) -> list[Any]:
    options = {"http_bearer": API_KEY, "retry_config": RETRYING, **options}
    if mode == "sync":
        with Opper(**options) as opper:
            return opper.analytics.get_usage()

    async def run() -> list[Any]:
        async with Opper(**options) as opper:
            return await opper.analytics.get_usage_async()

    return asyncio.run(run())


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_an_untrusted_certificate_is_tried_once(tls_server: TLSServer, mode: str) -> None:
    before = tls_server.connections
    with pytest.raises(httpx.ConnectError) as raised:
        call(mode, server_url=tls_server.url)
    assert any(isinstance(link, ssl.SSLCertVerificationError) for link in error_chain(raised.value))
    assert tls_server.connections - before == 1


def test_the_same_server_trusted_answers(tls_server: TLSServer, mode: str) -> None:
    """The control: with its certificate trusted, the server does answer."""
    context = tls_server.trusting_context()
    if mode == "sync":
        with httpx.Client(verify=context) as client:
            assert call(mode, server_url=tls_server.url, client=client) == []
        return

    async def run() -> list[Any]:
        async with (
            httpx.AsyncClient(verify=context) as client,
            Opper(http_bearer=API_KEY, server_url=tls_server.url, async_client=client) as opper,
        ):
            return await opper.analytics.get_usage_async()

    assert asyncio.run(run()) == []


def test_tls_spoken_to_a_plain_http_port_is_tried_once(local: LocalServer, mode: str) -> None:
    """https:// to the plain-HTTP local server: the handshake fails the same way each time."""
    url = local.url.replace("http://", "https://")
    with pytest.raises(httpx.ConnectError) as raised:
        call(mode, server_url=url)
    assert any(isinstance(link, ssl.SSLError) for link in error_chain(raised.value))
    assert local.stats()["connections"] == 2  # ours, and the one asking for these stats


def test_a_refused_connection_is_still_retried(mode: str) -> None:
    """The control for the two above: connection errors as such are retried."""
    with pytest.raises(httpx.ConnectError) as raised:
        call(mode, server_url=closed_port_url())
    assert not any(isinstance(link, ssl.SSLError) for link in error_chain(raised.value))


def test_ssl_cert_file_is_trusted_by_the_clients_opper_makes(
    tls_server: TLSServer, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx's defaults, as the README says: SSL_CERT_FILE (a company's CA, say) is trusted,
    sync and async, without a client of your own."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_server.certificate))
    assert call(mode, server_url=tls_server.url) == []
