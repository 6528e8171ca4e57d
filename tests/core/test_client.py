"""The client object: configuration, lifetime, timeouts, custom httpx clients, debug lines."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from opperai_usage import InsecureTransportWarning, Opper, _client, errors
from opperai_usage._client import DEFAULT_SERVER_URL, DEFAULT_TIMEOUT_MS
from tests.support import API_KEY
from tests.support.calls import ITEMS, Recorder, Usage
from tests.support.servers import LocalServer

URL = "http://127.0.0.1:9/v2"


def test_defaults() -> None:
    opper = Opper(http_bearer=API_KEY)
    assert DEFAULT_SERVER_URL == "https://api.opper.ai/v2"
    assert DEFAULT_TIMEOUT_MS == 60_000
    assert "https://api.opper.ai/v2" in repr(opper)


def test_repr_never_shows_the_key() -> None:
    opper = Opper(http_bearer=API_KEY, server_url=URL)
    assert API_KEY not in repr(opper)
    assert API_KEY not in str(opper)
    assert "hidden" in repr(opper)


def test_sync_context_manager_closes_its_own_client() -> None:
    with Opper(http_bearer=API_KEY) as opper:
        client = opper._get_client()
    assert client.is_closed
    with pytest.raises(RuntimeError) as raised:
        opper.analytics.get_usage()
    assert str(raised.value) == ("this Opper client is closed; create a new one to make more calls")


def test_async_context_manager_closes_its_own_clients() -> None:
    async def run() -> tuple[httpx.AsyncClient, Opper]:
        async with Opper(http_bearer=API_KEY) as opper:
            return (await opper._loop_connections()).client, opper

    client, opper = asyncio.run(run())
    assert client.is_closed
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(opper.analytics.get_usage_async())


@pytest.mark.parametrize("ending", ["with", "close()"])
def test_a_client_passed_in_is_used_and_left_open(ending: str) -> None:
    recorder = Recorder(httpx.Response(200, json=ITEMS))
    sync_client = httpx.Client(transport=recorder.transport)
    opper = Opper(http_bearer=API_KEY, server_url=URL, client=sync_client)
    if ending == "with":
        with opper:
            assert len(opper.analytics.get_usage()) == 2
    else:
        assert len(opper.analytics.get_usage()) == 2
        opper.close()
    assert not sync_client.is_closed
    assert sync_client.get(URL).status_code == 200  # still usable: yours to go on with
    assert len(recorder.requests) == 2
    sync_client.close()


@pytest.mark.parametrize("ending", ["async with", "aclose()", "close()"])
def test_an_async_client_passed_in_is_used_and_left_open(ending: str) -> None:
    recorder = Recorder(httpx.Response(200, json=ITEMS))

    async_client = httpx.AsyncClient(transport=recorder.transport)

    async def main() -> None:
        opper = Opper(http_bearer=API_KEY, server_url=URL, async_client=async_client)
        if ending == "async with":
            async with opper:
                assert len(await opper.analytics.get_usage_async()) == 2
        else:
            assert len(await opper.analytics.get_usage_async()) == 2
            await opper.aclose() if ending == "aclose()" else opper.close()
        assert not async_client.is_closed

    asyncio.run(main())  # its end runs what close() left to the loop
    assert not async_client.is_closed

    async def go_on() -> None:
        assert (await async_client.get(URL)).status_code == 200
        await async_client.aclose()

    asyncio.run(go_on())
    assert len(recorder.requests) == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_httpx_client_settings_apply(mode: str) -> None:
    recorder = Recorder(httpx.Response(200, json=[]))
    settings: dict[str, Any] = {"transport": recorder.transport, "headers": {"X-Team": "data"}}
    if mode == "sync":
        with (
            httpx.Client(**settings) as client,
            Opper(http_bearer=API_KEY, server_url=URL, client=client) as opper,
        ):
            opper.analytics.get_usage()
    else:

        async def main() -> None:
            async with (
                httpx.AsyncClient(**settings) as client,
                Opper(http_bearer=API_KEY, server_url=URL, async_client=client) as opper,
            ):
                await opper.analytics.get_usage_async()

        asyncio.run(main())
    (request,) = recorder.requests
    assert request.headers["x-team"] == "data"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"


def test_timeouts_reach_the_request(usage: Usage) -> None:
    recorder = Recorder(httpx.Response(200, json=[]))
    usage(server_url=URL, transport=recorder.transport, timeout_ms=1_500)
    usage(server_url=URL, transport=recorder.transport, timeout_ms=1_500, call={"timeout_ms": 250})
    usage(server_url=URL, transport=recorder.transport)
    budgets = [r.extensions["timeout"]["read"] for r in recorder.requests]
    assert budgets == [1.5, 0.25, DEFAULT_TIMEOUT_MS / 1000]


def test_debug_logger_gets_one_line_per_attempt(
    usage: Usage, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("test.opperai")
    recorder = Recorder(
        httpx.Response(503, headers={"retry-after": "0"}), httpx.Response(200, json=[])
    )
    with caplog.at_level(logging.DEBUG, logger="test.opperai"):
        usage(server_url=URL, transport=recorder.transport, debug_logger=logger)
    lines = [r.getMessage() for r in caplog.records if r.name == "test.opperai"]
    assert len(lines) == 2
    assert lines[0].startswith(f"GET {URL}/analytics/usage -> 503 (attempt 1, ")
    assert "retrying in 0.50s" in lines[0]
    assert lines[1].startswith(f"GET {URL}/analytics/usage -> 200 (attempt 2, ")
    assert all(API_KEY not in line for line in lines)


DEBUG_SCRIPT = """
import logging, sys
from opperai_usage import Opper
from opperai_usage.utils import BackoffStrategy, RetryConfig

url, when = sys.argv[1], sys.argv[2]
if when == "before":
    logging.basicConfig()
elif when == "before-debug":
    logging.basicConfig(level=logging.DEBUG)
retries = RetryConfig("backoff", BackoffStrategy(1, 5, 2.0, 5_000), max_retries=1)
with Opper(http_bearer=sys.argv[3], server_url=url, retry_config=retries) as opper:
    if when == "after":  # logging configured after the client was made
        logging.basicConfig()
    opper.analytics.get_usage()
"""


@pytest.mark.parametrize("logging_setup", ["none", "before", "before-debug", "after"])
def test_opper_debug_prints_each_line_once(local: LocalServer, logging_setup: str) -> None:
    """OPPER_DEBUG=1 prints one line per attempt on stderr, once, whether or not (and whenever)
    the application calls logging.basicConfig(): then its root handler prints the line."""
    local.script({"status": 503})
    done = subprocess.run(
        [sys.executable, "-c", DEBUG_SCRIPT, local.url, logging_setup, API_KEY],
        env={**os.environ, "OPPER_DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    ours = [line for line in done.stderr.splitlines() if "/analytics/usage -> " in line]
    assert len(ours) == 2, done.stderr
    assert f"GET {local.url}/analytics/usage -> 503 (attempt 1, " in ours[0]
    assert f"GET {local.url}/analytics/usage -> 200 (attempt 2, " in ours[1]
    assert API_KEY not in done.stderr
    assert local.stats()["requests"] == 2


def test_plain_http_to_a_remote_host_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Once per host and process: as if this process had not warned about it yet.
    monkeypatch.setattr(_client, "_warned_hosts", set())
    recorder = Recorder(httpx.Response(200, json=[]))
    client = httpx.Client(transport=recorder.transport)
    with Opper(
        http_bearer=API_KEY, server_url="http://usage.example.test/v2", client=client
    ) as opper:
        with pytest.warns(InsecureTransportWarning, match="usage.example.test"):
            opper.analytics.get_usage()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            opper.analytics.get_usage()


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/v2", "http://localhost:9/v2", "https://usage.example.test/v2"]
)
def test_loopback_or_https_does_not_warn(url: str) -> None:
    recorder = Recorder(httpx.Response(200, json=[]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Opper(
            http_bearer=API_KEY, server_url=url, client=httpx.Client(transport=recorder.transport)
        ) as opper:
            opper.analytics.get_usage()
    assert recorder.requests[0].headers["authorization"] == f"Bearer {API_KEY}"


def test_a_deadline_bounds_a_slow_body(usage: Usage) -> None:
    class Dribble(httpx.SyncByteStream, httpx.AsyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            for _ in range(50):
                time.sleep(0.02)
                yield b" "

        async def __aiter__(self) -> AsyncIterator[bytes]:
            for _ in range(50):
                await asyncio.sleep(0.02)
                yield b" "

    transport = httpx.MockTransport(lambda _: httpx.Response(200, stream=Dribble()))
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        usage(server_url=URL, transport=transport, timeout_ms=200, retry_config=None)
    assert time.monotonic() - started < 0.6


BAD_OPTIONS = [
    ({"server_url": "api.opper.ai/v2"}, "server_url", "http(s) URL"),
    ({"server_url": "ftp://api.opper.ai"}, "server_url", "http(s) URL"),
    ({"timeout_ms": 0}, "timeout_ms", "positive number of milliseconds"),
    ({"timeout_ms": "60000"}, "timeout_ms", "positive number of milliseconds"),
    ({"timeout_ms": True}, "timeout_ms", "positive number of milliseconds"),
    ({"server_url": 5}, "server_url", "http(s) URL such as 'https://api.opper.ai/v2', not 5"),
    ({"server_url": b"https://api.opper.ai/v2"}, "server_url", "http(s) URL"),
    ({"retry_config": {"strategy": "backoff"}}, "retry_config", "RetryConfig"),
    ({"client": httpx.AsyncClient()}, "client", "httpx.Client, not AsyncClient"),
    ({"async_client": httpx.Client()}, "async_client", "httpx.AsyncClient, not Client"),
    ({"http_bearer": 1234}, "http_bearer", "string or a callable"),
]


@pytest.mark.parametrize(("options", "named", "allowed"), BAD_OPTIONS)
def test_bad_client_options_fail_at_construction(
    options: dict[str, object], named: str, allowed: str
) -> None:
    with pytest.raises(errors.InvalidArgumentError) as raised:
        Opper(**options)  # type: ignore[arg-type]
    assert raised.value.parameter == named
    assert str(raised.value).startswith(named)
    assert allowed in str(raised.value)


@pytest.mark.parametrize(
    ("call", "named"),
    [
        ({"server_url": "not a url"}, "server_url"),
        ({"timeout_ms": -1}, "timeout_ms"),
        ({"retries": "none"}, "retries"),
    ],
)
def test_bad_call_options_fail_before_any_request(
    usage: Usage, call: dict[str, object], named: str
) -> None:
    recorder = Recorder(httpx.Response(200, json=[]))
    with pytest.raises(errors.InvalidArgumentError, match=f"^{named} "):
        usage(server_url=URL, transport=recorder.transport, call=call)
    assert recorder.requests == []


def test_a_fraction_of_a_millisecond_is_a_timeout_too(usage: Usage) -> None:
    recorder = Recorder(httpx.Response(200, json=[]))
    usage(server_url=URL, transport=recorder.transport, timeout_ms=0.5, retry_config=None)
    assert recorder.requests[0].extensions["timeout"]["read"] == 0.0005


@pytest.mark.parametrize(
    ("server_url", "sent_to"),
    [
        ("http://127.0.0.1:9/v2/", "http://127.0.0.1:9/v2/analytics/usage"),
        ("http://127.0.0.1:9/apiX//", "http://127.0.0.1:9/apiX/analytics/usage"),
    ],
)
def test_a_trailing_slash_on_server_url_is_dropped(
    usage: Usage, server_url: str, sent_to: str
) -> None:
    recorder = Recorder(httpx.Response(200, json=[]))
    usage(server_url=server_url, transport=recorder.transport)
    assert str(recorder.requests[0].url) == sent_to
