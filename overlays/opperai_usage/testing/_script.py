"""Scripted answers: what `UsageServer.enqueue()` and `POST /_control/script` queue.

Each answer is checked when it is queued, so a mistake fails the test that wrote it, at the
line that wrote it, instead of surfacing as a puzzling answer to some later request.
"""

from __future__ import annotations

import json as jsonlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

#: An HTTP header name (RFC 9110's `token`).
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
TEXT = "text/plain; charset=utf-8"
JSON = "application/json"


class _Absent:
    """The default of `json=`, since `None` is a JSON value (`null`) one may want to send."""

    def __repr__(self) -> str:
        return "<absent>"


ABSENT: Final = _Absent()


@dataclass(frozen=True, slots=True)
class Scripted:
    """One queued answer, checked and encoded. `canned` is `(status, body, content type)` for a
    made-up answer; `None` means the real one (or `items` made-up items)."""

    canned: tuple[int, bytes, str] | None = None
    items: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str | None = None
    delay: float = 0.0
    drop: bool = False
    truncate: bool = False
    dribble: float = 0.0


def scripted(
    *,
    status: int | None = None,
    json: object = ABSENT,
    body: str | bytes | None = None,
    headers: Mapping[str, str] | None = None,
    content_type: str | None = None,
    delay: float = 0,
    drop: bool = False,
    truncate: bool = False,
    dribble: float = 0,
    items: int | None = None,
) -> Scripted:
    """Check one answer's settings (see `UsageServer.enqueue`); raise ValueError or TypeError
    naming the setting that is wrong."""
    if status is not None and (type(status) is not int or not 200 <= status <= 999):
        raise ValueError(f"status: must be an HTTP status from 200 to 999, got {status!r}")
    if json is not ABSENT and body is not None:
        raise ValueError("json and body: give one of them, not both")
    if body is not None and not isinstance(body, str | bytes):
        raise TypeError(f"body: must be str or bytes, got {type(body).__name__}")
    if items is not None:
        if type(items) is not int or items < 0:
            raise ValueError(f"items: must be a count (an int >= 0), got {items!r}")
        if status is not None or json is not ABSENT or body is not None:
            raise ValueError(
                "items: sends a 200 of made-up items; it takes no status, json or body"
            )
    for name, value in (("delay", delay), ("dribble", dribble)):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise TypeError(f"{name}: must be a number of seconds, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name}: must be a number of seconds >= 0, got {value!r}")
    for name, flag in (("drop", drop), ("truncate", truncate)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name}: must be True or False, got {flag!r}")
    if content_type is not None:
        _check_header("content_type", "Content-Type", content_type)
    checked = tuple(_checked_headers(headers))
    if drop:
        sent = {
            "status": status is not None,
            "json": json is not ABSENT,
            "body": body is not None,
            "headers": bool(checked),
            "content_type": content_type is not None,
            "truncate": truncate,
            "dribble": dribble > 0,
            "items": items is not None,
        }
        if any(sent.values()):
            given = ", ".join(name for name, is_set in sent.items() if is_set)
            raise ValueError(f"drop: closes the connection without answering; drop {given}")
    canned = None
    if json is not ABSENT:
        try:
            encoded = jsonlib.dumps(json, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as problem:
            raise ValueError(f"json: cannot be sent as JSON ({problem}); use body=") from None
        canned = (status or 200, encoded, JSON)
    elif body is not None or status is not None:
        raw = body.encode() if isinstance(body, str) else body or b""
        canned = (status or 200, raw, TEXT)
    return Scripted(canned, items, checked, content_type, delay, drop, truncate, dribble)


def _check_header(setting: str, name: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{setting}: the value of {name!r} must be a str, got {value!r}")
    if "\r" in value or "\n" in value:
        raise ValueError(f"{setting}: the value of {name!r} holds a line break")


def _checked_headers(headers: Mapping[str, str] | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if not isinstance(headers, Mapping):
        raise TypeError(f"headers: must be a mapping of names to values, got {headers!r}")
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"headers: {name!r} is not an HTTP header name")
        _check_header("headers", name, value)
    return list(headers.items())


#: `POST /_control/script` action keys: the JSON spelling of `scripted`'s arguments, with
#: milliseconds where the Python API takes seconds.
_MILLISECONDS = {"delay_ms": "delay", "dribble_ms": "dribble"}
_SAME = ("status", "json", "body", "headers", "content_type", "drop", "truncate", "items")
ACTION_KEYS = (*_SAME, *_MILLISECONDS)


def from_action(action: object) -> Scripted:
    """One JSON action object, e.g. `{"status": 503, "delay_ms": 200}`, checked like
    `scripted`; ValueError says what is wrong."""
    if not isinstance(action, dict):
        raise ValueError(f"every action must be a JSON object, got {action!r}")
    arguments: dict[str, Any] = {}
    for key, value in action.items():
        if key in _MILLISECONDS:
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{key}: must be a number of milliseconds >= 0, got {value!r}")
            arguments[_MILLISECONDS[key]] = value / 1000
        elif key in _SAME:
            arguments[key] = value
        else:
            raise ValueError(f"unknown action key {key!r} (known: {', '.join(ACTION_KEYS)})")
    try:
        return scripted(**arguments)
    except TypeError as problem:
        raise ValueError(str(problem)) from None
