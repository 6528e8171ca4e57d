"""The API key: where it comes from (arguments and environment variables, as both generations
of the official SDK name them), and the type that holds it so that no repr, `vars()`, log line
or pickle of the client shows it."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NoReturn

from ._validation import checked_key, invalid
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
            checked = checked_key(key, source)
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
        return checked_key(key, self.source)

    def __repr__(self) -> str:
        return "ApiKey(<hidden>)"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("an API key is never pickled: give each process its own client")


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
