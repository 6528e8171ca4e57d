"""TLS failures that no later attempt can get past are not retried: a certificate the client
does not trust, TLS spoken to a port that speaks plain HTTP. Over real loopback sockets, with
retries on (connection errors included), sync and async."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path
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


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "SSL_CERT_DIR"])
def test_the_cas_ssl_cert_file_or_dir_name_are_trusted_by_the_clients_opper_makes(
    tls_server: TLSServer,
    mode: str,
    variable: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """httpx's defaults, as the README says: SSL_CERT_FILE or SSL_CERT_DIR (a company's CA,
    say) is trusted, sync and async, without a client of your own, also when set after an
    `Opper` made without it (the CAs are loaded once per process and value of the two)."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with pytest.raises(httpx.ConnectError):
        call(mode, server_url=tls_server.url)
    if variable == "SSL_CERT_FILE":
        monkeypatch.setenv(variable, str(tls_server.certificate))
    else:  # a folder as c_rehash makes it: the certificate under its subject's hash
        named = subprocess.run(
            ["openssl", "x509", "-hash", "-noout", "-in", str(tls_server.certificate)],
            check=True, capture_output=True, text=True, timeout=30,
        ).stdout.strip()  # fmt: skip
        (tmp_path / f"{named}.0").write_bytes(tls_server.certificate.read_bytes())
        monkeypatch.setenv(variable, str(tmp_path))
    assert call(mode, server_url=tls_server.url) == []


def test_the_cas_are_loaded_once_for_every_opper_in_a_process(
    tls_server: TLSServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Loading the CAs costs about 20 ms of CPU: a program that makes an `Opper` per job, or
    runs an event loop per job, pays it once."""
    made: list[bool] = []
    create = httpx.create_ssl_context

    def counted(**options: Any) -> ssl.SSLContext:
        made.append(True)
        return create(**options)

    monkeypatch.setattr(httpx, "create_ssl_context", counted)
    certificate = tmp_path / "ca.pem"  # a name no other test used: loaded here, not before
    certificate.write_bytes(tls_server.certificate.read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate))
    for mode in ["sync", "async", "sync", "async"]:
        assert call(mode, server_url=tls_server.url) == []
    assert made == [True]
