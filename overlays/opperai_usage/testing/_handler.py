"""The HTTP side of one connection: routing, bearer auth, scripted answers and faults.

Each request to the usage endpoint uses up the next scripted answer, if one is queued (a
delay, a dropped connection, a canned answer, a truncated or dribbled body, made-up items);
otherwise it gets the real answer from the data set, as of the server's now. `/_control/` lets
another process script and inspect a server run with `python -m opperai_usage.testing`, and
move its now.

`/_control/` is for programs, not for web pages open in a browser on the same machine: it
answers only requests whose `Host` is a loopback address, `localhost` or the address the kit
was reached at (a page that rebinds its own domain to 127.0.0.1 sends that domain), that carry
no `Origin` but their own (browsers send one with every cross-origin request and every POST),
and, for a POST with a body, `Content-Type: application/json` (which a page can only send
cross-origin after a CORS preflight the kit never allows). A refusal is a 403 or 415.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import re
import secrets
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from ._aggregate import (
    Aggregator,
    Interrupted,
    QueryError,
    parse_datetime,
    parse_query,
    synthetic_items,
)
from ._script import JSON, Scripted, from_action
from ._state import Clock, RecordedRequest, State, recorded_headers

USAGE_PATH = "/v2/analytics/usage"
CONTROL = "/_control/"
_UNAUTHORIZED = {
    "type": "UnauthorizedError",
    "message": "The request is unauthorized",
    "detail": "Missing or invalid bearer token",
}
_NO_ANSWER = Scripted()
#: The largest request body the server reads (a `/_control/script` payload, in practice). A
#: longer `Content-Length` is answered 413, a malformed one 400, and the connection closed
#: unread.
MAX_BODY = 16 * 2**20
_DIGITS = re.compile(r"[0-9]+")
#: `host` or `host:port`, as a Host header spells it.
_AUTHORITY = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[0-9A-Za-z.\-]+)(?::[0-9]{1,5})?")


@dataclass(frozen=True, slots=True)
class Context:
    """What every connection of one server shares."""

    state: State
    data: Aggregator
    api_key: str | None
    clock: Clock
    verbose: bool
    stopping: threading.Event  # set when the server closes: waits end early


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _iso(moment: datetime) -> str:
    """A UTC moment as `/_control/now` spells it: `2026-11-15T12:00:00Z`."""
    return moment.replace(tzinfo=None).isoformat() + "Z"


def _moment(body: bytes) -> datetime:
    """The moment a `POST /_control/now` body names, `{"now": "2026-11-15T12:00:00Z"}` (ISO
    8601 like the API's dates; naive is UTC); ValueError saying what is wrong."""
    payload = json.loads(body or b"null")
    text = payload.get("now") if isinstance(payload, dict) else None
    if not isinstance(payload, dict) or set(payload) != {"now"} or not isinstance(text, str):
        raise ValueError('expected {"now": "<ISO 8601 date and time>"}')
    parsed = parse_datetime(text)
    if isinstance(parsed, str):
        raise ValueError(f"now: not a date or time: {text!r} ({parsed})")
    return parsed


class UsageHandler(BaseHTTPRequestHandler):
    """One connection: keep-alive HTTP/1.1, always with a Content-Length."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes: without this, each answer waits ~40 ms for the
    # client's delayed ACK.
    disable_nagle_algorithm = True
    timeout = 120  # end idle keep-alive connections, and their threads, in the end

    def __init__(
        self, connection: socket.socket, address: tuple[str, int], context: Context
    ) -> None:
        self.context = context
        # Run by the server's own accept loop, not socketserver: nothing reads `.server`.
        super().__init__(connection, address, None)  # type: ignore[arg-type]

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet unless verbose: load tests make tens of thousands of requests."""
        if self.context.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        """Route a GET."""
        self._dispatch()

    def do_POST(self) -> None:
        """Route a POST."""
        self._dispatch()

    def _dispatch(self) -> None:
        try:
            length = self._content_length()
            if length is None:
                return
            body = self.rfile.read(length)
            if len(body) < length:  # the client hung up mid-body
                self.close_connection = True
                return
            path, _, raw_query = self.path.partition("?")
            if path.startswith(CONTROL):
                self._control(path, body)
            else:
                self._api(path, raw_query)
        except OSError:  # the client went away mid-answer: nothing left to tell it
            self.close_connection = True

    def _content_length(self) -> int | None:
        """The body's length; None once a request whose body the server will not read (no
        or several lengths, negative, not a number, over MAX_BODY, chunked) was refused."""
        lengths = self.headers.get_all("Content-Length") or ["0"]
        text = lengths[0].strip()
        if "Transfer-Encoding" in self.headers:
            self._refuse(400, "Transfer-Encoding is not supported: send a Content-Length")
        elif not _DIGITS.fullmatch(text) or any(other.strip() != text for other in lengths):
            self._refuse(400, "Content-Length must be one whole number of bytes")
        elif len(text) > 9 or int(text) > MAX_BODY:  # int() of 5,000 digits raises
            self._refuse(413, f"the body is over the kit's limit of {MAX_BODY} bytes")
        else:
            return int(text)
        return None

    def _refuse(self, status: int, problem: str) -> None:
        """Answer a request the server will not serve, and close the connection."""
        self._send(status, _json({"error": problem}), JSON, {"Connection": "close"})
        self.close_connection = True

    def _control(self, path: str, body: bytes) -> None:
        refusal = self._control_refusal(body)
        if refusal is not None:
            self._refuse(*refusal)
            return
        state = self.context.state
        route = (self.command, path.removeprefix(CONTROL))
        if route == ("POST", "script"):
            try:
                payload = json.loads(body or b"null")
                if not isinstance(payload, list):
                    raise ValueError("expected a JSON array of action objects")
                queued = state.enqueue([from_action(action) for action in payload])
            except ValueError as problem:  # JSONDecodeError is a ValueError too
                self._send(400, _json({"error": str(problem)}), JSON)
            else:
                self._send(200, _json({"queued": queued}), JSON)
        elif route == ("POST", "reset"):
            state.reset()
            self._send(200, _json({"ok": True}), JSON)
        elif route == ("GET", "stats"):
            self._send(200, _json(state.stats()), JSON)
        elif route == ("GET", "requests"):
            self._send(200, _json([record.to_json() for record in state.records()]), JSON)
        elif route == ("GET", "now"):
            self._send(200, _json({"now": _iso(self.context.clock.now())}), JSON)
        elif route == ("POST", "now"):
            try:
                moment = self.context.clock.set(_moment(body))
            except ValueError as problem:
                self._send(400, _json({"error": str(problem)}), JSON)
            else:
                self._send(200, _json({"now": _iso(moment)}), JSON)
        else:
            self._not_found(path)

    def _control_refusal(self, body: bytes) -> tuple[int, str] | None:
        """Why a `/_control/` request may have come from a web page, if it may (see above)."""
        host = self.headers.get("Host", "")
        if not self._is_local(host):
            return 403, "/_control/ answers only Host: 127.0.0.1, localhost or [::1]"
        origin = self.headers.get("Origin")
        if origin is not None and origin.lower() != f"http://{host.lower()}":
            return 403, "/_control/ answers no requests from web pages (an Origin was sent)"
        media = self.headers.get("Content-Type", "").partition(";")[0].strip().lower()
        if self.command == "POST" and (body or media) and media != "application/json":
            return 415, "/_control/ takes JSON: send Content-Type: application/json"
        return None

    def _is_local(self, authority: str) -> bool:
        """`authority` (a Host header) names a loopback address, `localhost` or the address
        this connection came in on: what a DNS name rebound to 127.0.0.1 cannot be. Any port,
        for a kit behind a port mapping (a container's `-p 8080:80`)."""
        match = _AUTHORITY.fullmatch(authority)
        if match is None:
            return False
        name = match.group(1).lower().strip("[]")
        if name == "localhost":
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False
        return address.is_loopback or address == ipaddress.ip_address(
            self.connection.getsockname()[0]
        )

    def _api(self, path: str, raw_query: str) -> None:
        headers = recorded_headers(self.headers.items())
        query = parse_qs(raw_query, keep_blank_values=True)
        record = RecordedRequest(self.command, path, query, headers, raw_query)
        is_usage = (self.command, path) == ("GET", USAGE_PATH)
        answer = self.context.state.record(record, scripted=is_usage) or _NO_ANSWER
        if not is_usage:
            self._not_found(path)
            return
        if answer.delay:
            self.context.state.hold(answer.delay, self.context.stopping)
        if self.context.stopping.is_set():
            answer = Scripted(drop=True)  # the server is closing: do not keep it waiting
        if answer.drop:
            self._drop()
            return
        try:
            status, body, content_type, extra = self._answer(answer, raw_query)
        except Interrupted:  # the server is closing
            self._drop()
            return
        extra.update(answer.headers)
        self._send(
            status,
            body,
            answer.content_type or content_type,
            extra,
            truncate=answer.truncate,
            dribble=answer.dribble,
        )

    def _answer(self, answer: Scripted, raw_query: str) -> tuple[int, bytes, str, dict[str, str]]:
        """The canned, made-up or real answer to one usage request."""
        if answer.canned is not None:
            status, body, content_type = answer.canned
            return status, body, content_type, {}
        if answer.items is not None:
            return 200, synthetic_items(answer.items, self.context.stopping), JSON, {}
        if not self._authorized():
            return 401, _json(_UNAUTHORIZED), JSON, {"WWW-Authenticate": "Bearer"}
        now = self.context.clock.now()
        try:
            query = parse_query(raw_query, now)
        except QueryError as error:
            return error.status, _json(error.body), JSON, {}
        return 200, self.context.data.encoded(query, now, self.context.stopping), JSON, {}

    def _authorized(self) -> bool:
        """A bearer token is present, and is the server's key if it has one."""
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        token, key = token.strip(), self.context.api_key
        if scheme.lower() != "bearer" or not token:
            return False
        return key is None or hmac.compare_digest(token.encode(), key.encode())

    def _not_found(self, path: str) -> None:
        body = {
            "type": "NotFoundError",
            "message": "The resource was not found",
            "detail": f"No route for {self.command} {path}",
        }
        self._send(404, _json(body), JSON)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
        *,
        truncate: bool = False,
        dribble: float = 0,
    ) -> None:
        """Write one answer; `truncate` and `dribble` (seconds a byte) are the body faults."""
        merged = {"content-type": ("Content-Type", content_type)}
        merged["x-request-id"] = ("x-request-id", f"req_{secrets.token_hex(8)}")
        for name, value in (headers or {}).items():
            merged[name.lower()] = (name, value)
        merged["content-length"] = ("Content-Length", str(len(body)))
        self.send_response(status)
        for name, value in merged.values():
            self.send_header(name, value)
        self.end_headers()
        if truncate:
            body = body[: len(body) // 2]
        if dribble:
            for index in range(len(body)):
                if index and self.context.stopping.wait(dribble):
                    break
                self.wfile.write(body[index : index + 1])
        else:
            self.wfile.write(body)
        if truncate or self.context.stopping.is_set():
            self._drop()

    def _drop(self) -> None:
        """Close the connection at once, so the client sees a disconnect."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
