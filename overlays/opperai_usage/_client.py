"""`Opper`: configuration, the httpx clients it owns, and how each request is put together."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

import httpx

from ._connections import Connections, LoopConnections
from ._credentials import KeySource, resolve_api_key
from ._retries import DEFAULT_RETRY_CONFIG, RetryConfig, RetryPolicy
from ._validation import (
    InvalidArgumentError,
    check_headers,
    check_retries,
    check_server_url,
    check_timeout_ms,
    invalid,
)
from ._version import __version__
from ._warn import warn
from .types import UNSET, Unset

if TYPE_CHECKING:
    from typing_extensions import Self

    from ._analytics import Analytics

#: `servers[0]` of openapi.yaml (a contract test keeps the two equal).
DEFAULT_SERVER_URL = "https://api.opper.ai/v2"
#: The official SDK 2.x's variable for the API's host root; this API lives under `/v2` there.
ENV_BASE_URL = "OPPER_BASE_URL"
API_VERSION_PATH = "/v2"
#: Each attempt's time budget: connecting, sending and reading the whole answer.
DEFAULT_TIMEOUT_MS = 60_000
#: The most bytes of an answer's body read, once decoded (gzip may inflate 1 MB to 1 GB): about
#: 1.8 million items of 145 bytes, which take some 1.2 GiB of memory once decoded.
DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024 * 1024
#: The longest request URL httpx sends (`httpx.InvalidURL: URL too long` beyond it).
MAX_URL_LENGTH = 65_536
USER_AGENT = (
    f"opperai-usage/{__version__} python/{'.'.join(map(str, sys.version_info[:3]))}"
    f" httpx/{httpx.__version__}"
)

_warned_hosts: set[str] = set()


class InsecureTransportWarning(UserWarning):
    """The API key is about to travel unencrypted to a host that is not this machine."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    import ipaddress  # only when a key goes over plain http

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _printed_by_the_root_logger(record: logging.LogRecord) -> bool:
    """Whether a handler of the root logger (`logging.basicConfig()`, a framework's logging
    configuration) will print `record` too, as it propagates."""
    if not logging.getLogger("opperai_usage").propagate:
        return False
    return any(record.levelno >= handler.level for handler in logging.getLogger().handlers)


def _default_logger() -> logging.Logger | None:
    """`OPPER_DEBUG` set (and not 0/false) turns on debug lines: on stderr, unless the
    application's logging prints them already (then once, its way)."""
    if os.environ.get("OPPER_DEBUG", "").lower() in ("", "0", "false", "no"):
        return None
    logger = logging.getLogger("opperai_usage")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s opperai_usage %(message)s"))
        handler.addFilter(lambda record: not _printed_by_the_root_logger(record))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return logger


def _server_url_from_environment() -> str | None:
    """`OPPER_BASE_URL` (the official SDK 2.x's host root, e.g. https://api.opper.ai) plus
    this API's version path, or `None` when it is not set."""
    base = os.environ.get(ENV_BASE_URL, "").strip()
    if not base:
        return None
    check_server_url(ENV_BASE_URL, base, DEFAULT_SERVER_URL.removesuffix(API_VERSION_PATH))
    return base.rstrip("/") + API_VERSION_PATH


class Opper:
    """The client. Use it as a (sync or async) context manager, or call `close()`.

    The API key is `api_key` (the official SDK 2.x's name) or `http_bearer` (1.x's), a string
    or a callable returning one (asked for every request); without either, `OPPER_API_KEY`,
    then `OPPER_HTTP_BEARER`, is read. `server_url` defaults to `OPPER_BASE_URL` + `/v2`, then
    to the public API. `client`/`async_client` are yours to configure (proxies, transports,
    limits) and yours to close; `timeout_ms` is each attempt's deadline with them as with ours
    (`_deadline` says what a sync transport of your own changes). `max_response_bytes` bounds
    an answer's body, decoded (`ResponseTooLargeError` past it).
    """

    def __init__(
        self,
        http_bearer: KeySource | None = None,
        server_url: str | None = None,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
        retry_config: RetryConfig | Unset | None = UNSET,
        timeout_ms: int | float | None = None,
        debug_logger: logging.Logger | None = None,
        *,
        api_key: KeySource | None = None,
        max_response_bytes: int | None = None,
    ) -> None:
        self._api_key = resolve_api_key(api_key, http_bearer)
        _check_max_response_bytes(max_response_bytes)
        check_server_url("server_url", server_url, DEFAULT_SERVER_URL)
        check_timeout_ms("timeout_ms", timeout_ms)
        check_retries("retry_config", retry_config)
        if not isinstance(client, httpx.Client | None):
            raise invalid("client", f"must be an httpx.Client, not {type(client).__name__}")
        if not isinstance(async_client, httpx.AsyncClient | None):
            kind = type(async_client).__name__
            raise invalid("async_client", f"must be an httpx.AsyncClient, not {kind}")
        self._server_url = server_url or _server_url_from_environment() or DEFAULT_SERVER_URL
        self._retry_config = (
            DEFAULT_RETRY_CONFIG if isinstance(retry_config, Unset) else retry_config
        )
        self._timeout_ms = timeout_ms or DEFAULT_TIMEOUT_MS
        self._max_response_bytes = max_response_bytes or DEFAULT_MAX_RESPONSE_BYTES
        self._logger = debug_logger or _default_logger()
        self._connections = Connections(client, async_client)
        self._closed = False

    @functools.cached_property
    def analytics(self) -> Analytics:
        """Usage analytics. Loaded on first use, with the generated code it stands on, so that
        `import opperai_usage` costs little more than `import httpx`."""
        from ._analytics import Analytics

        return Analytics(self)

    def __repr__(self) -> str:
        key = "<hidden>" if self._api_key else "<unset>"
        return f"Opper(server_url={self._server_url!r}, api_key={key})"

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "an Opper client cannot be pickled: it holds an API key and open connections; "
            "create one in each process"
        )

    # -- the httpx clients: created on first use, so an async-only user never opens a sync one;
    # per process, and the async ones per event loop (see _connections.py)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this Opper client is closed; create a new one to make more calls")

    def _get_client(self) -> httpx.Client:
        self._check_open()
        return self._connections.sync_client()

    async def _loop_connections(self) -> LoopConnections:
        self._check_open()
        return await self._connections.for_this_loop()

    def close(self) -> None:
        """Release the connections of the clients this object made (not of yours). An async
        client made for an event loop that is still running is closed on that loop, as soon as
        it runs again; `aclose()` closes the running loop's before it returns."""
        self._closed = True
        self._connections.close()

    async def aclose(self) -> None:
        """`close()`, with the running event loop's async client closed before it returns."""
        self._closed = True
        await self._connections.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- one call's settings

    def _build_request(
        self,
        client: httpx.Client | httpx.AsyncClient,
        method: str,
        path: str,
        params: Mapping[str, Any],
        server_url: str | None,
        timeout_ms: int | float | None,
        http_headers: Mapping[str, str] | None,
    ) -> tuple[httpx.Request, float]:
        """The request, with credentials and headers, and its per-attempt time budget (s)."""
        url = self._checked_url(path, params, server_url, timeout_ms, http_headers)
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        key = self._api_key.value() if self._api_key is not None else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
            if url.startswith("http:"):
                self._warn_if_plain_http(httpx.URL(url))
        if http_headers:  # replacing ours whatever their case: header names are not cased
            replaced = {name.lower() for name in http_headers}
            headers = {n: v for n, v in headers.items() if n.lower() not in replaced}
            headers.update(http_headers)
        timeout_s = (timeout_ms or self._timeout_ms) / 1000
        # no timeout= here: each attempt sets its own (see _transport), from timeout_s
        return client.build_request(method, url, headers=headers), timeout_s

    def _checked_url(
        self,
        path: str,
        params: Mapping[str, Any],
        server_url: str | None,
        timeout_ms: int | float | None,
        http_headers: Mapping[str, str] | None,
    ) -> str:
        """The request's URL, once the per-call settings are checked (and it is not too long)."""
        check_server_url("server_url", server_url, DEFAULT_SERVER_URL)
        check_timeout_ms("timeout_ms", timeout_ms)
        if http_headers is not None:
            check_headers(http_headers)
        url = (server_url or self._server_url).rstrip("/") + path
        if params:  # encoded here: httpx's params= merging costs more than the rest of a call
            url += "?" + str(httpx.QueryParams(params))
            if len(url) > MAX_URL_LENGTH:
                raise _too_long(url, params)
        return url

    def _retry_policy(self, retries: RetryConfig | Unset | None) -> RetryPolicy:
        check_retries("retries", retries)
        return RetryPolicy(self._retry_config if isinstance(retries, Unset) else retries)

    @staticmethod
    def _warn_if_plain_http(url: httpx.URL) -> None:
        if url.scheme == "http" and not _is_loopback(url.host) and url.host not in _warned_hosts:
            _warned_hosts.add(url.host)
            warn(
                f"sending the API key unencrypted (plain http) to {url.host}; use https",
                InsecureTransportWarning,
            )


def _check_max_response_bytes(value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise invalid("max_response_bytes", f"must be None or an int >= 1, not {value!r}")


def _too_long(url: str, params: Mapping[str, Any]) -> InvalidArgumentError:
    """The error for a URL httpx would refuse, naming the parameter that takes the most room."""
    sizes = {name: len(str(httpx.QueryParams({name: value}))) for name, value in params.items()}
    name = max(sizes, key=sizes.__getitem__)
    return invalid(
        name,
        f"makes the request URL {len(url):,} characters long ({sizes[name]:,} of them its own); "
        f"the longest URL that can be sent is {MAX_URL_LENGTH:,}: ask for fewer or shorter "
        "entries, over several calls if need be",
    )
