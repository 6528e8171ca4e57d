"""Answers a hostile server or proxy can send, over real sockets, sync and async: one that
echoes the request's `Authorization` back (the key must not reach the error), a gzip bomb (the
decoded body is bounded by `max_response_bytes`), and `Retry-After: 0` (no retry storm)."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import gzip
import html
import itertools
import json
import pickle
import socket
import threading
import time
import traceback
import tracemalloc
import uuid
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
import pytest

from opperai_usage import Opper, _decode, errors
from opperai_usage._client import DEFAULT_MAX_RESPONSE_BYTES
from opperai_usage.utils import BackoffStrategy, RetryConfig
from tests.support.net import error_chain
from tests.support.servers import serving

MARK = uuid.uuid4().hex  # in every key below, and unchanged by every encoding: a leak shows it
#: Keys with what JSON, URLs, HTML or a whitespace-collapsing proxy spell another way
#: (non-ASCII keys are refused before anything is sent).
KEYS = {
    "quote-backslash": f'sk-{MARK}-"quoted"-back\\slash',
    "two-spaces": f"sk-{MARK}  two  spaces",
    "slash-plus": f"sk-{MARK}/slash+plus=",
}


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def call(mode: str, **options: Any) -> list[Any]:
    """One get_usage on a fresh Opper with the clients it makes itself, sync or async."""
    call_options = options.pop("call", {})
    if mode == "sync":
        with Opper(**options) as opper:
            return opper.analytics.get_usage(**call_options)

    async def run() -> list[Any]:
        async with Opper(**options) as opper:
            return await opper.analytics.get_usage_async(**call_options)

    return asyncio.run(run())


class Handler(BaseHTTPRequestHandler):
    """Answers each GET with `answer(request headers)`: (status, headers, body); counts them."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # the body is not held back 40 ms after the headers
    answer: ClassVar[Callable[[Any], tuple[int, dict[str, str], bytes]]]
    count: ClassVar[list[float]]

    def do_GET(self) -> None:
        self.count.append(time.monotonic())
        status, headers, body = type(self).answer(self.headers)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers and headers.get("Connection") != "close":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def answering(
    answer: Callable[[Any], tuple[int, dict[str, str], bytes]],
) -> Iterator[tuple[str, list[float]]]:
    """A loopback server answering with `answer`: (the URL for server_url, request times)."""
    count: list[float] = []
    handler = type("Answering", (Handler,), {"answer": staticmethod(answer), "count": count})

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that stopped reading the body (the tests' point, at times)

    with serving(Server(("127.0.0.1", 0), handler)) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/v2", count


# -- the key echoed back


JSON = {"Content-Type": "application/json"}
TEXT = {"Content-Type": "text/plain; charset=utf-8"}
HTML = {"Content-Type": "text/html; charset=utf-8"}


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


#: How a server or proxy may quote the `Authorization` it got (`a`), and the error expected.
Echo = Callable[[str], tuple[int, dict[str, str], bytes]]
ECHOES: dict[str, tuple[Echo, type[errors.OpperError]]] = {
    "500-json": (lambda a: (500, JSON, _json({"detail": f"you sent {a}"})), errors.APIError),
    "401-text": (lambda a: (401, TEXT, f"bad credentials: {a}".encode()), errors.APIError),
    "401-json-message": (
        lambda a: (
            401,
            JSON,
            _json({"type": "Unauthorized", "message": f"bad: {a}", "detail": None}),
        ),
        errors.UnauthorizedError,
    ),
    "400-json-detail-object": (
        lambda a: (400, JSON, _json({"message": "no", "detail": {"authorization": a}})),
        errors.BadRequestError,
    ),
    "404-json-not-ascii-escaped": (
        lambda a: (404, JSON, json.dumps({"detail": f"\u00e9 {a}"}, ensure_ascii=False).encode()),
        errors.NotFoundError,
    ),
    "422-json-detail-list": (
        lambda a: (422, JSON, _json({"detail": [{"loc": ["header"], "msg": "bad", "input": a}]})),
        errors.RequestValidationError,
    ),
    "502-html-escaped": (
        lambda a: (502, HTML, f"<p>Authorization: {html.escape(a)}</p>".encode()),
        errors.APIError,
    ),
    "503-url-encoded": (
        lambda a: (503, TEXT, f"see https://proxy.test/deny?auth={quote(a, safe='')}".encode()),
        errors.APIError,
    ),
    "500-whitespace-collapsed": (
        lambda a: (500, TEXT, f"you sent {' '.join(a.split())}".encode()),
        errors.APIError,
    ),
    "500-in-headers": (
        lambda a: (500, {**TEXT, "X-Request-Id": a, "X-Seen": quote(a)}, b"down"),
        errors.APIError,
    ),
    "200-not-json": (
        lambda a: (200, HTML, f"<html>{html.escape(a)} {a}</html>".encode()),
        errors.ResponseValidationError,
    ),
    "200-broken-json": (  # json's error keeps the whole document it could not read
        lambda a: (200, JSON, _json([{"echo": a}])[:-1]),
        errors.ResponseValidationError,
    ),
    "200-wrong-shape": (
        lambda a: (200, JSON, _json([{"time_bucket": a.removeprefix("Bearer "), "cost": "1"}])),
        errors.ResponseValidationError,
    ),
}


def _echo(echo: Echo) -> Callable[[Any], tuple[int, dict[str, str], bytes]]:
    return lambda headers: echo(headers.get("Authorization", ""))


@pytest.mark.parametrize("key", list(KEYS))
@pytest.mark.parametrize("case", list(ECHOES))
def test_a_key_echoed_back_never_reaches_the_error(mode: str, case: str, key: str) -> None:
    """The key, as the server quoted it, reads `<redacted>` in everything the error holds:
    str, repr, message, body, headers, request id, decoded data, raw response, cause,
    traceback and pickle. The rest of the server's text is kept."""
    echo, expected = ECHOES[case]
    with answering(_echo(echo)) as (url, requests), pytest.raises(expected) as raised:
        call(mode, api_key=KEYS[key], server_url=url, retry_config=None)
    assert len(requests) == 1
    error = raised.value
    assert type(error) is expected
    data = getattr(error, "data", None)
    shown = [str(error), repr(error), error.message, error.body, repr(error.headers)]
    shown += [str(error.request_id), error.raw_response.text, repr(vars(error))]
    shown += [repr(data), repr(data.to_dict()) if data is not None else ""]
    shown += ["".join(traceback.format_exception(error))]
    shown += [repr(link.args) for link in error_chain(error)]
    shown += [repr(vars(link)) for link in error_chain(error) if hasattr(link, "__dict__")]
    for text in shown:
        assert MARK not in text, text
    pickled = pickle.dumps(error)
    assert MARK.encode() not in pickled
    restored = pickle.loads(pickled)
    assert str(restored) == str(error)
    if not case.startswith("200-"):  # a valid answer would not quote anything
        assert "<redacted>" in error.body + repr(error.headers), error.body
    if case in ("500-json", "500-whitespace-collapsed"):
        assert "you sent Bearer <redacted>" in str(error)
    if case == "401-json-message":
        assert data is not None
        assert str(error) == data.message == "bad: Bearer <redacted>"
    if case == "500-in-headers":
        assert str(error).endswith("(request id Bearer <redacted>)")
        assert error.headers["x-seen"] == "Bearer%20<redacted>"


def test_a_key_that_broke_the_json_it_was_pasted_in_is_kept_out_of_the_cause(mode: str) -> None:
    """An answer that is not JSON only because the key was pasted into it raw (its quote and
    backslash end the string early): without the key it reads, so the cause given is the
    first reading's own error (a position, never the text), with the key taken out."""
    key = KEYS["quote-backslash"]
    row = '{"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "echo": "Bearer %s"}'
    body = f"[{row % key}]".encode()
    try:
        _decode.decode_items(body)
    except ValueError as error:  # JSON's error, whichever decoder read it
        first = str(error)
    else:
        pytest.fail("with the key in it, the answer must not read")
    with (
        answering(lambda _: (200, JSON, body)) as (url, _),
        pytest.raises(errors.ResponseValidationError) as raised,
    ):
        call(mode, api_key=key, server_url=url, retry_config=None)
    assert raised.value.raw_response.content == f"[{row % '<redacted>'}]".encode()
    assert type(raised.value.__cause__) is _decode.SchemaMismatch
    assert str(raised.value.__cause__) == first
    assert MARK not in first


def test_an_answer_that_quotes_no_key_is_left_as_it_is(mode: str) -> None:
    """The control: a body without the key is kept byte for byte, words like "Bearer" too."""
    body = _json({"detail": "Bearer token missing: send Authorization"})
    with answering(lambda _: (500, JSON, body)) as (url, _), pytest.raises(errors.APIError) as e:
        call(mode, api_key=KEYS["slash-plus"], server_url=url, retry_config=None)
    assert e.value.body == body.decode()
    assert e.value.raw_response.content == body


@contextlib.contextmanager
def raw_answers(answer: Callable[[bytes], bytes]) -> Iterator[str]:
    """A loopback server that writes `answer(request head)`, as bytes, then hangs up."""
    stop = threading.Event()

    def serve(listener: socket.socket) -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                head = b""
                while b"\r\n\r\n" not in head:
                    data = connection.recv(65536)
                    if not data:
                        break
                    head += data
                with contextlib.suppress(OSError):
                    connection.sendall(answer(head))

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        thread = threading.Thread(target=serve, args=(listener,), daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{listener.getsockname()[1]}/v2"
        finally:
            stop.set()
            listener.shutdown(socket.SHUT_RDWR)
            listener.close()
            thread.join(timeout=10)


def _authorization(head: bytes) -> bytes:
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"authorization:"):
            return line
    return b""


@pytest.mark.parametrize("key", list(KEYS))
def test_a_malformed_header_line_quoting_the_key_does_not_carry_it(mode: str, key: str) -> None:
    """h11 quotes a header line it cannot parse in its error: where the server put the key
    there, httpx's RemoteProtocolError reads `<redacted>` and drops the exceptions it came
    from, which quote it too."""

    def answer(head: bytes) -> bytes:
        return b"HTTP/1.1 500 Oops\r\necho " + _authorization(head) + b"\r\n\r\n"

    with raw_answers(answer) as url, pytest.raises(httpx.RemoteProtocolError) as raised:
        call(mode, api_key=KEYS[key], server_url=url, retry_config=None)
    error = raised.value
    assert str(error) == (
        "illegal header line: bytearray(b'echo Authorization: Bearer <redacted>')"
    )
    shown = [str(error), repr(error), "".join(traceback.format_exception(error))]
    shown += [repr(link.args) for link in error_chain(error)]
    for text in shown:
        assert MARK not in text, text
    assert MARK.encode() not in pickle.dumps(error)


# -- a gzip bomb


LIMIT = 1024 * 1024


@functools.cache
def bomb(decoded_mib: int, wbits: int = 31) -> bytes:
    """`decoded_mib` MiB of zeros, gzip-compressed (wbits 31; 15 is deflate): 1/1000 of it."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    zeros = bytes(1024 * 1024)
    return b"".join(compressor.compress(zeros) for _ in range(decoded_mib)) + compressor.flush()


@pytest.mark.parametrize(("encoding", "wbits"), [("gzip", 31), ("deflate", 15)])
def test_a_gzip_bomb_stops_at_max_response_bytes(mode: str, encoding: str, wbits: int) -> None:
    """64 KB that inflate to 64 MiB, with `max_response_bytes` at 1 MiB: the call ends with
    ResponseTooLargeError, naming the limit, after one attempt (retries on), having held a
    few MiB at most (the limit, and a decoded piece), not 64 (or twice that, joined). The
    first call warms up (imports, TLS settings); the second is measured."""
    body = bomb(64, wbits)
    headers = {**JSON, "Content-Encoding": encoding}
    options = {"api_key": KEYS["slash-plus"], "max_response_bytes": LIMIT}
    with answering(lambda _: (200, headers, body)) as (url, requests):
        with pytest.raises(errors.ResponseTooLargeError):
            call(mode, server_url=url, **options)
        tracemalloc.start()
        try:
            with pytest.raises(errors.ResponseTooLargeError) as raised:
                call(mode, server_url=url, **options)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 6 * LIMIT, f"{peak:,} bytes at the peak"
    assert len(requests) == 2  # the default retries are on: such an answer is not retried
    error = raised.value
    assert isinstance(error, errors.OpperError)
    assert not isinstance(error, errors.ResponseValidationError)
    assert (error.status_code, error.limit, error.body) == (200, LIMIT, "")
    assert str(error) == (
        f"Status 200: the answer's body, decoded from {encoding}, is larger than "
        "max_response_bytes (1,048,576 bytes), so it was not read; "
        "Opper(max_response_bytes=...) allows larger answers"
    )
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is errors.ResponseTooLargeError
    assert (str(restored), restored.limit) == (str(error), LIMIT)


def _items(size: int) -> bytes:
    """A valid answer of exactly `size` bytes: `[]` and spaces."""
    return b"[" + b" " * (size - 2) + b"]"


@pytest.mark.parametrize("framing", ["content-length", "read-to-close", "gzip"])
def test_an_answer_of_exactly_max_response_bytes_is_read(mode: str, framing: str) -> None:
    """The limit is the largest answer read: that size passes, one byte more does not,
    whether the length is announced, not (the body ends when the connection does), or
    known only once decoded."""
    for size, fits in ((LIMIT, True), (LIMIT + 1, False)):
        body, headers = _items(size), dict(JSON)
        if framing == "read-to-close":
            headers["Connection"] = "close"  # and no Content-Length
        if framing == "gzip":
            body, headers["Content-Encoding"] = gzip.compress(body), "gzip"

        def answer(_: Any, body: bytes = body, headers: dict[str, str] = headers) -> Any:
            return 200, headers, body

        with answering(answer) as (url, _):
            options = {"api_key": KEYS["slash-plus"], "server_url": url, "retry_config": None}
            if fits:
                assert call(mode, max_response_bytes=LIMIT, **options) == []
            else:
                with pytest.raises(errors.ResponseTooLargeError):
                    call(mode, max_response_bytes=LIMIT, **options)


def test_an_error_answer_too_large_is_not_retried_either(mode: str) -> None:
    """A 503 (retried, as a rule) whose body is over the limit: one attempt, then the error,
    which has the answer's status and request id."""
    headers = {**TEXT, "X-Request-Id": "req-1"}
    with (
        answering(lambda _: (503, headers, bytes(LIMIT + 1))) as (url, requests),
        pytest.raises(errors.ResponseTooLargeError) as raised,
    ):
        call(mode, api_key=KEYS["slash-plus"], server_url=url, max_response_bytes=LIMIT)
    assert len(requests) == 1
    assert raised.value.status_code == 503
    assert str(raised.value).endswith("allows larger answers (request id req-1)")


def test_a_key_echoed_by_an_answer_too_large_never_reaches_the_error(mode: str) -> None:
    """An answer over the limit whose headers quote the key: the error's headers, its raw
    response, repr and traceback read `<redacted>`."""
    key = KEYS["slash-plus"]
    headers = {**TEXT, "X-Request-Id": key, "X-Seen": key}
    with (
        answering(lambda _: (200, headers, bytes(LIMIT + 1))) as (url, _),
        pytest.raises(errors.ResponseTooLargeError) as raised,
    ):
        call(mode, api_key=key, server_url=url, retry_config=None, max_response_bytes=LIMIT)
    error = raised.value
    shown = [str(error), repr(error), repr(error.headers), repr(error.raw_response.headers)]
    shown += [repr(vars(error)), "".join(traceback.format_exception(error))]
    for text in shown:
        assert MARK not in text, text
    assert error.headers["x-seen"] == "<redacted>"


def test_the_default_limit_is_256_mib(mode: str) -> None:
    """An answer that announces one byte over 256 MiB is refused before any of it is read
    (the server sends none of it)."""
    assert DEFAULT_MAX_RESPONSE_BYTES == 256 * 1024 * 1024
    headers = {**JSON, "Content-Length": str(DEFAULT_MAX_RESPONSE_BYTES + 1)}
    with (
        answering(lambda _: (200, headers, b"")) as (url, _),
        pytest.raises(errors.ResponseTooLargeError) as raised,
    ):
        call(mode, api_key=KEYS["slash-plus"], server_url=url, retry_config=None)
    assert raised.value.limit == DEFAULT_MAX_RESPONSE_BYTES
    assert "max_response_bytes (268,435,456 bytes)" in str(raised.value)


def test_a_small_gzip_answer_is_judged_by_its_decoded_size(mode: str) -> None:
    """`[]` gzip-compressed is 22 bytes, more than the 2 it decodes to: with
    `max_response_bytes` at 16, the announced length of a compressed answer says nothing,
    so it is read, and fits."""
    body = gzip.compress(b"[]")
    assert len(body) > 16
    headers = {**JSON, "Content-Encoding": "gzip"}
    with answering(lambda _: (200, headers, body)) as (url, _):
        options = {"api_key": KEYS["slash-plus"], "server_url": url, "retry_config": None}
        assert call(mode, max_response_bytes=16, **options) == []


def test_the_smallest_max_response_bytes_is_one(mode: str) -> None:
    """1 is allowed, and is the limit: `[]`, two bytes, is over it."""
    options = {"api_key": KEYS["slash-plus"], "retry_config": None, "max_response_bytes": 1}
    with (
        answering(lambda _: (200, JSON, b"[]")) as (url, _),
        pytest.raises(errors.ResponseTooLargeError) as raised,
    ):
        call(mode, server_url=url, **options)
    assert raised.value.limit == 1


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "1000", 2**20 + 0.0])
def test_max_response_bytes_must_be_a_positive_int(value: object) -> None:
    with pytest.raises(errors.InvalidArgumentError) as raised:
        Opper(api_key=KEYS["slash-plus"], max_response_bytes=value)  # type: ignore[arg-type]
    assert str(raised.value) == f"max_response_bytes must be None or an int >= 1, not {value!r}"


# -- Retry-After: 0


def _past() -> str:
    return email.utils.formatdate(time.time() - 60, usegmt=True)


@pytest.mark.parametrize("retry_after", [lambda: "0", _past], ids=["zero", "a-date-gone-by"])
def test_retry_after_zero_waits_the_initial_interval(
    mode: str, retry_after: Callable[[], str]
) -> None:
    """A server that always answers 503 with `Retry-After: 0`, to a client allowed any
    number of retries for 0.5 s with a backoff starting at 50 ms: at most 11 attempts, one
    per 50 ms (not hundreds), then the 503."""
    config = RetryConfig("backoff", BackoffStrategy(50, 50, 1.0, 500))
    headers = {**TEXT, "Retry-After": retry_after()}
    with (
        answering(lambda _: (503, headers, b"busy")) as (url, requests),
        pytest.raises(errors.APIError) as raised,
    ):
        call(mode, api_key=KEYS["slash-plus"], server_url=url, retry_config=config)
    assert raised.value.status_code == 503
    assert 5 <= len(requests) <= 11, len(requests)
    gaps = [later - earlier for earlier, later in itertools.pairwise(requests)]
    assert min(gaps) >= 0.045, gaps
