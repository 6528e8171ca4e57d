"""The API key: where it comes from (arguments and environment variables, as both generations
of the official SDK name them), and the type that holds it so that no repr, `vars()`, log line
or pickle of the client shows it."""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable
from typing import NoReturn

from ._invalid import invalid
from ._warn import warn

#: The official SDK 2.x's variable, then 1.x's: the first one set (and not blank) is used.
ENV_VARIABLES = ("OPPER_API_KEY", "OPPER_HTTP_BEARER")

KeySource = str | Callable[[], str]


class ApiKey:
    """An API key, or a callable returning one (asked again for every request).

    The key itself is kept in a closure, not in an attribute: debuggers and error trackers that
    walk an object's attributes and print their reprs see `ApiKey(<hidden>)` and a function.
    """

    __slots__ = ("_read", "source")

    def __init__(self, key: KeySource, source: str) -> None:
        """`source` names where the key came from (`api_key`, `OPPER_API_KEY`, ...), for errors."""
        self.source = source
        if isinstance(key, str):
            checked = _checked(key, source)
            self._read: Callable[[], str] = lambda: checked
        elif callable(key):
            self._read = key
        else:
            raise invalid(source, "must be a string or a callable returning one")

    def value(self) -> str:
        """The key to send; a callable's answer is checked as a given key is."""
        key = self._read()
        if not isinstance(key, str):
            raise invalid(self.source, f"callable returned {type(key).__name__}, not a string")
        return _checked(key, self.source)

    def __repr__(self) -> str:
        return "ApiKey(<hidden>)"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("an API key is never pickled: give each process its own client")


_CONTROLS = {"\n": "a line feed", "\r": "a carriage return", "\t": "a tab"}


def _checked(key: str, source: str) -> str:
    """`key` without surrounding whitespace (a key read from a file often ends in a newline);
    refused, without quoting it, when it holds a character no HTTP header can carry."""
    key = key.strip()
    for position, char in enumerate(key, 1):
        if not " " <= char <= "~":
            name = _CONTROLS.get(char) or unicodedata.name(char, "a control character")
            raise invalid(
                source,
                f"holds {name} (U+{ord(char):04X}) at position {position} of {len(key)}, "
                "which cannot be sent in an HTTP header; check how the key was read",
            )
    return key


def resolve_api_key(api_key: KeySource | None, http_bearer: KeySource | None) -> ApiKey | None:
    """The key from the arguments (2.x's `api_key` or 1.x's `http_bearer`, not both), else from
    the environment; `None` when there is none (the server then answers 401)."""
    if api_key is not None and http_bearer is not None:
        raise invalid(
            "api_key",
            "and http_bearer were both given: pass the key once, as api_key (the official "
            "SDK 2.x's name) or http_bearer (1.x's)",
        )
    if api_key is not None:
        return ApiKey(api_key, "api_key") if api_key != "" else None
    if http_bearer is not None:
        return ApiKey(http_bearer, "http_bearer") if http_bearer != "" else None
    found = {name: value for name in ENV_VARIABLES if (value := os.environ.get(name, "").strip())}
    if len(set(found.values())) > 1:
        first, second = ENV_VARIABLES
        warn(f"{first} and {second} are both set and differ; using {first}", UserWarning)
    if not found:
        return None
    name = next(iter(found))  # the first in ENV_VARIABLES' order
    return ApiKey(found[name], name)
