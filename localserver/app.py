"""The HTTP side: routing, bearer auth, scripted faults and the serve loop.

Tests script faults through `/_control/`: each `GET /v2/analytics/usage` consumes the
next queued action (a delay, a dropped connection, a canned answer, a truncated or
dribbled body, a synthetic item list), so a client's retries and error handling can be
driven deterministically over real sockets.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import secrets
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from localserver.aggregate import Aggregator, QueryError, parse_query, synthetic_items
from localserver.dataset import DEFAULT_EVENTS, DEFAULT_SEED, generate

UTC = timezone.utc

USAGE_PATH = "/v2/analytics/usage"
MAX_RECORDS = 100_000
_UNAUTHORIZED = {
    "type": "UnauthorizedError",
    "message": "The request is unauthorized",
    "detail": "Missing or invalid bearer token",
}
_ACTION_TYPES: dict[str, type | tuple[type, ...]] = {
    "delay_ms": (int, float),
    "drop": bool,
    "status": int,
    "headers": dict,
    "body": str,
    "json": object,
    "content_type": str,
    "truncate": bool,
    "dribble_ms": (int, float),
    "items": int,
}

_NUMBERS = {"delay_ms", "status", "dribble_ms", "items"}

Action = dict[str, Any]
Answer = tuple[int, bytes, str, dict[str, str]]


def validate_actions(payload: Any) -> list[Action]:
    """Check a scripted action list up front, so a typo fails the test that wrote it."""
    if not isinstance(payload, list):
        raise ValueError("expected a JSON array of action objects")
    for action in payload:
        if not isinstance(action, dict):
            raise ValueError("every action must be a JSON object")
        for key, value in action.items():
            expected = _ACTION_TYPES.get(key)
            if expected is None:
                raise ValueError(f"unknown action key {key!r}")
            negative = key in _NUMBERS and (isinstance(value, bool) or value < 0)
            if not isinstance(value, expected) or negative:
                raise ValueError(f"bad value for {key!r}: {value!r}")
    return payload


class Controls:
    """Thread-safe fault queue, request records and counters behind `/_control/`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Action] = deque()
        self._records: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDS)
        self._requests = 0
        self._connections = 0

    def reset(self) -> None:
        """Forget queued actions, records and counts."""
        with self._lock:
            self._queue.clear()
            self._records.clear()
            self._requests = self._connections = 0

    def add(self, actions: list[Action]) -> int:
        """Append actions to the queue; return its new length."""
        with self._lock:
            self._queue.extend(actions)
            return len(self._queue)

    def connected(self) -> None:
        """Count one accepted TCP connection."""
        with self._lock:
            self._connections += 1

    def record(self, request: dict[str, Any]) -> Action | None:
        """Record one usage request and hand back the action it consumes, if any."""
        with self._lock:
            self._requests += 1
            self._records.append(request)
            return self._queue.popleft() if self._queue else None

    def stats(self) -> dict[str, int]:
        """Counts since the last reset."""
        with self._lock:
            return {"requests": self._requests, "connections": self._connections}

    def records(self) -> list[dict[str, Any]]:
        """The usage requests recorded since the last reset, oldest first."""
        with self._lock:
            return list(self._records)


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class UsageHandler(BaseHTTPRequestHandler):
    """One connection: keep-alive HTTP/1.1, always with a Content-Length."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes: without this, each answer waits ~40 ms for the
    # client's delayed ACK.
    disable_nagle_algorithm = True
    timeout = 120  # reap idle keep-alive connections so their threads end
    server: UsageServer

    def setup(self) -> None:
        """Count the connection as soon as it is accepted."""
        super().setup()
        self.server.controls.connected()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet unless --verbose: load tests make tens of thousands of requests."""
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        """Route a GET."""
        self._dispatch()

    def do_POST(self) -> None:
        """Route a POST."""
        self._dispatch()

    def _dispatch(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.send_error(400, "Bad Content-Length")
            return
        try:
            body = self.rfile.read(length)
            path, _, raw_query = self.path.partition("?")
            route = (self.command, path)
            controls = self.server.controls
            if route == ("GET", USAGE_PATH):
                self._usage(path, raw_query)
            elif route == ("POST", "/_control/script"):
                try:
                    queued = controls.add(validate_actions(json.loads(body or b"null")))
                except ValueError as problem:  # JSONDecodeError is a ValueError too
                    self._send(400, _json({"error": str(problem)}), "application/json")
                else:
                    self._send(200, _json({"queued": queued}), "application/json")
            elif route == ("POST", "/_control/reset"):
                controls.reset()
                self._send(200, _json({"ok": True}), "application/json")
            elif route == ("GET", "/_control/stats"):
                self._send(200, _json(controls.stats()), "application/json")
            elif route == ("GET", "/_control/requests"):
                self._send(200, _json(controls.records()), "application/json")
            else:
                not_found = {
                    "type": "NotFoundError",
                    "message": "The resource was not found",
                    "detail": f"No route for {self.command} {path}",
                }
                self._send(404, _json(not_found), "application/json")
        except OSError:  # the client went away mid-answer: nothing left to tell it
            self.close_connection = True

    def _usage(self, path: str, raw_query: str) -> None:
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if "authorization" in headers:
            headers["authorization"] = "<redacted>"
        record = {"method": self.command, "path": path, "raw_query": raw_query, "headers": headers}
        action = self.server.controls.record(record) or {}
        if action.get("delay_ms"):
            time.sleep(action["delay_ms"] / 1000)
        if action.get("drop"):
            self._drop()
            return
        status, body, content_type, extra = self._answer(action, raw_query)
        extra.update(action.get("headers", {}))
        content_type = action.get("content_type", content_type)
        truncate, dribble_ms = action.get("truncate", False), action.get("dribble_ms", 0)
        self._send(status, body, content_type, extra, truncate=truncate, dribble_ms=dribble_ms)

    def _answer(self, action: Action, raw_query: str) -> Answer:
        """The canned, synthetic or real answer for one usage request."""
        if "json" in action:
            return action.get("status", 200), _json(action["json"]), "application/json", {}
        if "body" in action or "status" in action:
            body = action.get("body", "").encode()
            return action.get("status", 200), body, "text/plain; charset=utf-8", {}
        if "items" in action:
            return 200, synthetic_items(action["items"]), "application/json", {}
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        token, key = token.strip(), self.server.api_key
        if (
            scheme.lower() != "bearer"
            or not token
            or not (key is None or hmac.compare_digest(token.encode(), key.encode()))
        ):
            return 401, _json(_UNAUTHORIZED), "application/json", {"WWW-Authenticate": "Bearer"}
        try:
            query = parse_query(raw_query, datetime.now(UTC))
        except QueryError as error:
            return error.status, _json(error.body), "application/json", {}
        return 200, self.server.aggregator.encoded(query), "application/json", {}

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Mapping[str, Any] | None = None,
        *,
        truncate: bool = False,
        dribble_ms: float = 0,
    ) -> None:
        """Write one answer; `truncate` and `dribble_ms` are the scripted body faults."""
        merged = {"content-type": ("Content-Type", content_type)}
        merged["x-request-id"] = ("x-request-id", f"req_{secrets.token_hex(8)}")
        for name, value in (headers or {}).items():
            merged[name.lower()] = (name, str(value))
        merged["content-length"] = ("Content-Length", str(len(body)))
        self.send_response(status)
        for name, value in merged.values():
            self.send_header(name, value)
        self.end_headers()
        if truncate:
            body = body[: len(body) // 2]
        if dribble_ms:
            for index in range(len(body)):
                if index:
                    time.sleep(dribble_ms / 1000)
                self.wfile.write(body[index : index + 1])
        else:
            self.wfile.write(body)
        if truncate:
            self._drop()

    def _drop(self) -> None:
        """Close the connection at once, so the client sees a disconnect."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class UsageServer(ThreadingHTTPServer):
    """The Opper-compatible usage server; one daemon thread per connection."""

    daemon_threads = True
    request_queue_size = 1024  # so a burst of 1,000 connects is queued, not refused

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        seed: int = DEFAULT_SEED,
        events: int = DEFAULT_EVENTS,
        verbose: bool = False,
    ) -> None:
        self.api_key = api_key
        self.verbose = verbose
        self.aggregator = Aggregator(generate(seed, events))
        self.controls = Controls()
        super().__init__((host, port), UsageHandler)
        self.url = f"http://{host}:{self.server_port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Print tracebacks of real bugs; a client hanging up only with --verbose."""
        if self.verbose or not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    api_key: str | None = None,
    seed: int = DEFAULT_SEED,
    events: int = DEFAULT_EVENTS,
    verbose: bool = False,
) -> int:
    """Serve until SIGTERM or SIGINT; announce readiness with one `listening on` line."""
    server = UsageServer(host, port, api_key=api_key, seed=seed, events=events, verbose=verbose)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    loop = threading.Thread(target=server.serve_forever, name="usage-server", daemon=True)
    loop.start()
    print(f"listening on {server.url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.shutdown()
        server.server_close()
    return 0
