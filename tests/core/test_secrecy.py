"""The API key stays secret: not in any repr/str of the client or its configuration, not in any
error (pickled ones and their requests included), not in debug logs, not forwarded to another
origin on a redirect; and sending it over plain http to a remote host warns, once."""

from __future__ import annotations

import asyncio
import logging
import pickle
import pprint
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from opperai_usage import InsecureTransportWarning, Opper, errors
from opperai_usage.utils import BackoffStrategy, RetryConfig
from tests.support.calls import Usage
from tests.support.net import TLS, closed_port_url, error_chain
from tests.support.servers import LocalServer, TLSServer, serving

SECRET = "sk-opper-" + uuid.uuid4().hex  # distinctive: any occurrence is a leak
FAST = RetryConfig(
    "backoff", BackoffStrategy(10, 50, 2.0, 5_000), retry_connection_errors=True, max_retries=1
)


def assert_secret_absent(*texts: str | bytes) -> None:
    for text in texts:
        if isinstance(text, bytes):
            assert SECRET.encode() not in text
        else:
            assert SECRET not in text


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def call(mode: str, *, follow_redirects: bool = False, **options: Any) -> list[Any]:
    """One get_usage on a fresh Opper, sync or async, over an httpx client made (and closed)
    here, in the event loop that uses it."""
    options.setdefault("http_bearer", SECRET)
    if mode == "sync":
        with (
            httpx.Client(follow_redirects=follow_redirects, verify=TLS) as client,
            Opper(client=client, **options) as opper,
        ):
            return opper.analytics.get_usage()

    async def run() -> list[Any]:
        async with (
            httpx.AsyncClient(follow_redirects=follow_redirects, verify=TLS) as client,
            Opper(async_client=client, **options) as opper,
        ):
            return await opper.analytics.get_usage_async()

    return asyncio.run(run())


# -- repr and str


@pytest.mark.parametrize("bearer", [SECRET, lambda: SECRET], ids=["string", "callable"])
def test_client_and_configuration_reprs_hide_the_key(
    local: LocalServer, bearer: str | Callable[[], str]
) -> None:
    async def run() -> None:
        async with Opper(http_bearer=bearer, server_url=local.url, retry_config=FAST) as opper:
            opper.analytics.get_usage()
            await opper.analytics.get_usage_async()
            shown = [repr(opper), str(opper), f"{opper!r}", repr(opper.analytics)]
            shown += [pprint.pformat(vars(opper.analytics))]
            # Every piece of configuration the client holds, the key's holder included, and
            # the httpx clients it made (the async one for this event loop).
            held = [*vars(opper).values(), *vars(opper._connections).values()]
            held += [connections.client for connections in opper._connections._loops.values()]
            for value in held:
                shown += [repr(value), str(value)]
            clients: list[httpx.Client | httpx.AsyncClient] = [
                value for value in held if isinstance(value, httpx.Client | httpx.AsyncClient)
            ]
            assert len(clients) == 2  # both were made, and are checked
            for client in clients:
                shown += [repr(client.headers), repr(dict(client.headers))]
            assert_secret_absent(*shown)
            assert "hidden" in repr(opper)

    asyncio.run(run())


# -- errors


SAME_ORIGIN_302 = {"status": 302, "headers": {"Location": "/v2/analytics/usage?page=2"}}
LOOP_302 = {"status": 302, "headers": {"Location": "/v2/analytics/usage"}}
Options = Callable[[TLSServer], dict[str, Any]]


def same(_: TLSServer) -> dict[str, Any]:
    return {}


#: (script for the local server, extra options, the error class expected): every class of
#: error a call can raise once a request exists (InvalidArgumentError and the closed client's
#: RuntimeError are raised before: see below).
ERROR_CASES: dict[str, tuple[list[dict[str, Any]], Options, type]] = {
    "400": ([{"status": 400, "json": {"detail": "bad range"}}], same, errors.BadRequestError),
    "401": (
        [{"status": 401, "json": {"type": "UnauthorizedError", "detail": "bad key"}}],
        same,
        errors.UnauthorizedError,
    ),
    "404": ([{"status": 404, "json": {"detail": None}}], same, errors.NotFoundError),
    "422": ([{"status": 422, "json": {"detail": []}}], same, errors.RequestValidationError),
    "500": ([{"status": 500, "body": "boom"}] * 2, same, errors.APIError),
    "html-200": (
        [{"body": "<html></html>", "content_type": "text/html"}],
        same,
        errors.ResponseValidationError,
    ),
    "200-wrong-shape": ([{"json": [{"cost": 1}]}], same, errors.ResponseValidationError),
    # A redirect not followed: httpx puts the next (authorized) request on the response.
    "302-not-followed": ([SAME_ORIGIN_302], same, errors.APIError),
    # A redirect followed on the same origin: the first response, and its authorized
    # request, are in the final response's `history`.
    "302-followed-then-500": (
        [SAME_ORIGIN_302, {"status": 500, "body": "boom"}] * 2,
        lambda _: {"follow_redirects": True},
        errors.APIError,
    ),
    # A redirect loop: httpx's error keeps the next (authorized) request.
    "too-many-redirects": (
        [LOOP_302] * 25,
        lambda _: {"follow_redirects": True},
        httpx.TooManyRedirects,
    ),
    # A 200 that says gzip and is not: httpx's error keeps the request.
    "gzip-that-is-not": (
        [{"body": "not gzip at all", "headers": {"Content-Encoding": "gzip"}}],
        same,
        httpx.DecodingError,
    ),
    "dropped": ([{"drop": True}] * 2, same, httpx.RemoteProtocolError),
    "read-timeout": ([{"delay_ms": 1_000}] * 2, lambda _: {"timeout_ms": 50}, httpx.ReadTimeout),
    "over-budget": (
        [{"body": "[]        ", "dribble_ms": 25}] * 2,
        lambda _: {"timeout_ms": 100},
        httpx.ReadTimeout,
    ),
    "connection-refused": ([], lambda _: {"server_url": closed_port_url()}, httpx.ConnectError),
    "tls-untrusted": ([], lambda tls: {"server_url": tls.url}, httpx.ConnectError),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors_never_carry_the_key(
    local: LocalServer, tls_server: TLSServer, mode: str, case: str
) -> None:
    """repr, str, traceback (with its chained causes) and pickle of every kind of error."""
    script, options, expected = ERROR_CASES[case]
    if script:
        local.script(*script)
    settings: dict[str, Any] = {
        "server_url": local.url,
        "retry_config": FAST,
        **options(tls_server),
    }
    with pytest.raises(expected) as raised:
        call(mode, **settings)
    error = raised.value
    assert type(error) is expected
    pickled = pickle.dumps(error)
    traceback_text = "".join(traceback.format_exception(error))
    assert_secret_absent(repr(error), str(error), traceback_text, pickled)
    for link in error_chain(error):
        assert_secret_absent(
            repr(link), str(link), repr(vars(link)) if hasattr(link, "__dict__") else ""
        )
    restored: Any = pickle.loads(pickled)
    assert type(restored) is expected
    assert str(restored) == str(error)
    if isinstance(error, httpx.RequestError):
        request: httpx.Request = error.request  # the request the error keeps: redacted
        assert request.headers["authorization"] == "<redacted>"
        assert isinstance(restored, httpx.RequestError)
        assert restored.request.url == request.url
        assert restored.request.headers["authorization"] == "<redacted>"
    if isinstance(error, errors.OpperError):
        assert isinstance(restored, errors.OpperError)
        response = error.raw_response
        assert_secret_absent(repr(response), repr(response.request), repr(response.request.headers))
        assert restored.raw_response.request.headers["authorization"] == "<redacted>"
        assert restored.raw_response.request.url == response.request.url
        assert restored.status_code == error.status_code


@pytest.mark.parametrize(
    ("options", "call_options"),
    [
        ({"api_key": SECRET[:12] + "\n" + SECRET[12:]}, {}),
        ({"api_key": SECRET + "\u00a0x"}, {}),
        ({"api_key": lambda: SECRET[:12] + "\x00" + SECRET[12:]}, {}),
        ({}, {"http_headers": {"X-Api-Key": SECRET + "\n"}}),
        ({}, {"http_headers": {"Authorization": f"Bearer {SECRET}\u00e9"}}),
        ({}, {"group_by": [SECRET] * 2_000}),
    ],
    ids=[
        "key-newline",
        "key-nbsp",
        "callable-key-nul",
        "header-newline",
        "header-latin1",
        "too-long",
    ],
)
def test_refused_arguments_never_show_the_key(
    local: LocalServer, mode: str, options: dict[str, Any], call_options: dict[str, Any]
) -> None:
    """Keys and headers no HTTP header can carry, a query too long to send: refused with
    InvalidArgumentError before anything is sent, never httpx's LocalProtocolError or
    UnicodeEncodeError (which quote the value)."""
    settings = {"http_bearer": SECRET, **options, "server_url": local.url}

    def attempt() -> None:
        if mode == "sync":
            with Opper(**settings) as opper:
                opper.analytics.get_usage(**call_options)
            return

        async def run() -> None:
            async with Opper(**settings) as opper:
                await opper.analytics.get_usage_async(**call_options)

        asyncio.run(run())

    with pytest.raises(errors.InvalidArgumentError) as raised:
        attempt()
    error = raised.value
    texts = [repr(error), str(error), "".join(traceback.format_exception(error))]
    for text in texts:
        assert SECRET[:12] not in text
        assert SECRET[12:] not in text
    assert SECRET.encode()[12:] not in pickle.dumps(error)
    assert local.requests() == []


def test_invalid_argument_errors_carry_no_request() -> None:
    with Opper(http_bearer=SECRET) as opper, pytest.raises(errors.InvalidArgumentError) as raised:
        opper.analytics.get_usage(granularity="week")
    assert_secret_absent(repr(raised.value), str(raised.value), pickle.dumps(raised.value))


# -- debug logs


def test_debug_logs_never_show_the_key(
    local: LocalServer,
    usage: Usage,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """OPPER_DEBUG's logger, and httpx's and httpcore's own debug lines, over success,
    retries, an error answer and a network failure."""
    monkeypatch.setenv("OPPER_DEBUG", "1")
    logger = logging.getLogger("opperai_usage")
    level, handlers = logger.level, list(logger.handlers)
    caplog.set_level(logging.DEBUG)  # every logger: opperai_usage, httpx, httpcore
    try:
        local.script({"status": 503})
        usage(http_bearer=SECRET, server_url=local.url, retry_config=FAST)
        local.script({"status": 401, "json": {"detail": "no"}})
        with pytest.raises(errors.UnauthorizedError):
            usage(http_bearer=SECRET, server_url=local.url, retry_config=FAST)
        with pytest.raises(httpx.ConnectError):
            usage(http_bearer=SECRET, server_url=closed_port_url(), retry_config=FAST)
    finally:  # the default logger's handler and level are process-wide: put them back
        logger.setLevel(level)
        logger.handlers[:] = handlers
    ours = [record for record in caplog.records if record.name == "opperai_usage"]
    assert len(ours) == 5  # one line per attempt: 503, 200, 401, refused twice
    assert {record.name.split(".")[0] for record in caplog.records} >= {"opperai_usage", "httpcore"}
    for record in caplog.records:
        assert_secret_absent(record.getMessage(), repr(record.args), repr(record.__dict__))
    assert_secret_absent(caplog.text)


# -- redirects


class Recording(BaseHTTPRequestHandler):
    """Another origin: records the headers it gets, answers an empty usage list."""

    protocol_version = "HTTP/1.1"
    seen: list[dict[str, str]]

    def do_GET(self) -> None:
        self.seen.append({name.lower(): value for name, value in self.headers.items()})
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(params=["127.0.0.2", "127.0.0.1"], ids=["other-host", "other-port"])
def other_origin(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A second loopback origin: (its base URL, the headers of each request it got)."""
    seen: list[dict[str, str]] = []
    handler = type("Handler", (Recording,), {"seen": seen})
    with serving(ThreadingHTTPServer((request.param, 0), handler)) as server:
        yield f"http://{request.param}:{server.server_port}", seen


def test_authorization_is_not_forwarded_to_another_origin(
    local: LocalServer, mode: str, other_origin: tuple[str, list[dict[str, str]]]
) -> None:
    base, seen = other_origin
    local.script({"status": 302, "headers": {"Location": f"{base}/v2/analytics/usage"}})
    assert call(mode, follow_redirects=True, server_url=local.url, retry_config=None) == []
    assert len(seen) == 1
    assert "authorization" not in seen[0]
    assert_secret_absent(repr(seen))
    (first,) = local.requests()
    assert first["headers"]["authorization"] == "<redacted>"  # it was sent to the first host


def test_authorization_is_kept_on_a_same_origin_redirect(local: LocalServer, mode: str) -> None:
    """The control for the test above: the header is there when it should be."""
    local.script({"status": 302, "headers": {"Location": "/v2/analytics/usage?granularity=year"}})
    assert call(mode, follow_redirects=True, server_url=local.url, retry_config=None)
    first, second = local.requests()
    assert second["raw_query"] == "granularity=year"
    assert first["headers"]["authorization"] == second["headers"]["authorization"] == "<redacted>"


def test_the_default_clients_follow_redirects_but_not_with_the_key(
    local: LocalServer, usage: Usage, other_origin: tuple[str, list[dict[str, str]]]
) -> None:
    """The clients Opper makes follow redirects, as the official SDK's do; the key stays."""
    base, seen = other_origin
    local.script({"status": 302, "headers": {"Location": f"{base}/v2/analytics/usage"}})
    assert usage(http_bearer=SECRET, server_url=local.url, retry_config=None) == []
    assert len(seen) == 1
    assert "authorization" not in seen[0]


# -- plain http


def _remote_http_url() -> str:
    """A plain-http URL on a host no other test has used (the warning is once per host)."""
    return f"http://usage-{uuid.uuid4().hex[:12]}.example.test/v2"


def _mock_clients(sent: list[httpx.Request] | None = None) -> dict[str, Any]:
    """Clients that answer `[]` without a network, recording each request into `sent`."""

    def answer(request: httpx.Request) -> httpx.Response:
        if sent is not None:
            sent.append(request)
        return httpx.Response(200, json=[])

    transport = httpx.MockTransport(answer)
    return {
        "client": httpx.Client(transport=transport),
        "async_client": httpx.AsyncClient(transport=transport),
    }


def test_plain_http_to_a_remote_host_warns_once() -> None:
    url = _remote_http_url()
    host = httpx.URL(url).host

    async def calls() -> None:
        async with Opper(http_bearer=SECRET, server_url=url, **_mock_clients()) as opper:
            for _ in range(3):
                opper.analytics.get_usage()
                await opper.analytics.get_usage_async()
        async with Opper(http_bearer=SECRET, server_url=url, **_mock_clients()) as again:
            await again.analytics.get_usage_async()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # so that only the client can make it "once"
        asyncio.run(calls())
    (warning,) = [w for w in caught if issubclass(w.category, InsecureTransportWarning)]
    assert host in str(warning.message)
    assert_secret_absent(str(warning.message))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_warning_points_at_the_callers_line(mode: str) -> None:
    opper = Opper(http_bearer=SECRET, server_url=_remote_http_url(), **_mock_clients())

    async def call_async() -> None:
        await opper.analytics.get_usage_async()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if mode == "sync":
            opper.analytics.get_usage()
        else:
            asyncio.run(call_async())
    asyncio.run(opper.aclose())
    (warning,) = caught
    assert warning.category is InsecureTransportWarning
    assert warning.filename == __file__


@pytest.mark.parametrize(
    ("url", "bearer"),
    [
        ("https://usage.example.test/v2", SECRET),
        ("http://127.0.0.1:8080/v2", SECRET),
        ("http://127.200.0.1:8080/v2", SECRET),
        ("http://localhost:8080/v2", SECRET),
        ("http://[::1]:8080/v2", SECRET),
        ("http://usage-without-key.example.test/v2", ""),
    ],
    ids=["https", "loopback", "loopback-127/8", "localhost", "loopback-v6", "no-key"],
)
def test_no_warning_for_https_loopback_or_no_key(
    url: str, bearer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No warning, and the key goes (as a bearer token) wherever one is given: https included."""
    monkeypatch.delenv("OPPER_HTTP_BEARER", raising=False)
    sent: list[httpx.Request] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Opper(http_bearer=bearer, server_url=url, **_mock_clients(sent)) as opper:
            assert opper.analytics.get_usage() == []
    (request,) = sent
    assert request.headers.get("authorization") == (f"Bearer {bearer}" if bearer else None)
