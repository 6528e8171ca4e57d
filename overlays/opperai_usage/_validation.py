"""Every check of what the caller passes, made before any request is sent: server URLs,
timeouts, retry settings, extra headers, the API key, and the two fields every item carries.
Each raises `InvalidArgumentError` naming the argument; none quotes a header value or a key,
which may be credentials.

Checking costs no imports beyond httpx, which the client has loaded already: arguments are
refused before the generated code is loaded.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any

import httpx


class InvalidArgumentError(ValueError):
    """An argument was rejected before any request was sent; `parameter` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its own arguments, so it pickles and copies (multiprocessing, task
        # queues) like any ValueError.
        return type(self), (self.parameter, str(self)), self.__dict__


InvalidArgumentError.__module__ = "opperai_usage.errors"  # where users import it from


def invalid(parameter: str, message: str) -> InvalidArgumentError:
    """The error for `parameter`, its message starting with the parameter's name."""
    return InvalidArgumentError(parameter, f"{parameter} {message}")


def unsendable(text: str, *, tab: bool) -> tuple[int, str] | None:
    """The first character of `text` that an HTTP header cannot carry, with its 1-based
    position: anything but printable ASCII (and a tab, where `tab` allows it)."""
    for position, char in enumerate(text, 1):
        if not (" " <= char <= "~" or (tab and char == "\t")):
            return position, char
    return None


def fields_to_send(fields: list[str]) -> list[str]:
    """`fields` as the API takes them. Every item carries `count` and `cost`: the API refuses
    `count` as a field (refused here, before sending) and ignores `cost` (left out)."""
    if "count" in fields:
        raise invalid(
            "fields",
            "must not include 'count': every item carries it already (item.count), "
            "and the API refuses it as a field",
        )
    return [name for name in fields if name != "cost"]


def check_server_url(name: str, value: object, example: str) -> None:
    """An http(s) URL with a host and no user name or password, or `None`."""
    if value is None:
        return
    try:
        url = httpx.URL(value) if isinstance(value, str) else None
    except httpx.InvalidURL:
        url = None
    if url is not None and url.userinfo:
        # httpx would turn it into Basic auth (and never send the key), and it would show in
        # reprs and debug lines: refused, without quoting the password.
        shown = url.copy_with(userinfo=b"")
        raise invalid(
            name,
            f"must not hold a user name or password ({str(shown)!r} without them); "
            "the API key goes in api_key",
        )
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise invalid(name, f"must be an http(s) URL such as {example!r}, not {value!r}")


def check_timeout_ms(name: str, value: object) -> None:
    """A positive number of milliseconds, or `None`."""
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not value > 0
    ):
        raise invalid(name, f"must be a positive number of milliseconds, not {value!r}")


def check_count(name: str, value: object, what: str) -> None:
    """An int of at least 1 (not a bool, which is an int to Python but never a count)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise invalid(name, f"must be an int >= 1 ({what}), not {value!r}")


def check_retries(name: str, value: object) -> None:
    """A `RetryConfig`, `None` (no retries) or `UNSET` (the client's)."""
    from ._retries import RetryConfig  # it imports this module
    from .types import Unset

    if not isinstance(value, RetryConfig | Unset | None):
        raise invalid(name, f"must be a RetryConfig, None (no retries) or UNSET, not {value!r}")


def check_headers(headers: object) -> None:
    """`http_headers`: names and values must be strings an HTTP header can carry. Checked
    here, naming the header but never showing the value (it may be a credential): httpx
    would raise `UnicodeEncodeError` or `LocalProtocolError` with the value in it."""
    if not isinstance(headers, Mapping):
        raise invalid("http_headers", f"must map header names to values, not {headers!r}")
    for name, value in headers.items():
        if not isinstance(name, str) or not name or not all(" " < c <= "~" for c in name):
            raise invalid("http_headers", f"has a name that is not a header name: {name!r}")
        if not isinstance(value, str):
            kind = type(value).__name__
            raise invalid("http_headers", f"[{name!r}] must be a string, not {kind}")
        found = unsendable(value, tab=True)
        if found is not None:
            position, char = found
            raise invalid(
                "http_headers",
                f"[{name!r}] holds U+{ord(char):04X} at position {position} of "
                f"{len(value)}, which cannot be sent in an HTTP header",
            )


_CONTROLS = {"\n": "a line feed", "\r": "a carriage return", "\t": "a tab"}


def checked_key(key: str, source: str) -> str:
    """`key` without surrounding whitespace (a key read from a file often ends in a newline);
    refused, without quoting it, when it holds a character no HTTP header can carry (a tab
    included: no key has one, so it is a reading mistake). `source` names where it came from."""
    key = key.strip()
    found = unsendable(key, tab=False)
    if found is not None:
        position, char = found
        name = _CONTROLS.get(char) or unicodedata.name(char, "a control character")
        raise invalid(
            source,
            f"holds {name} (U+{ord(char):04X}) at position {position} of {len(key)}, "
            "which cannot be sent in an HTTP header; check how the key was read",
        )
    return key
