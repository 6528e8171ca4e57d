"""Answers to results or typed errors.

Items are decoded on a fast path that equals the generated `from_dict` (a test holds it to
that) while also checking what `from_dict` takes on trust: the JSON types `openapi.yaml` gives
`time_bucket`, `cost` and `count` (optional). The extra keys may hold any JSON value
(`additionalProperties: true`).

With the optional `fast` extra, msgspec parses the answer (and checks that it is a list of
objects); without it, or for what only the standard library reads, `json.loads` does. Anything
unexpected sends the answer through the plain item-by-item path, which names the problem.
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import json
import sys
from collections.abc import Callable
from typing import Any, cast

import httpx
from dateutil.parser import isoparse

from ._generated.types import UNSET
from ._redact import redact
from .errors import (
    APIError,
    ResponseValidationError,
    _DataError,
    secrets_sent,
    typed_error_for,
    without_secrets,
)
from .models import GetUsageResultItem

_typed_loads: Callable[[bytes], list[dict[str, Any]]] | None
try:  # the optional `fast` extra
    import msgspec

    _typed_loads = msgspec.json.Decoder(list[dict[str, Any]]).decode
except ImportError:  # pragma: no cover - the tests' stdlib runs take the same path
    _typed_loads = None

#: The C parser from 3.11 on; 3.10's reads only what isoformat() writes (no "Z"), so there
#: the generated code's own parser.
parse_datetime: Callable[[str], dt.datetime] = (
    dt.datetime.fromisoformat if sys.version_info >= (3, 11) else isoparse
)

#: Answers from this size on are decoded with the cyclic GC paused (see `decode_items`).
_GC_PAUSE_BYTES = 64 * 1024
_new = object.__new__


class SchemaMismatch(ValueError):
    """The JSON parsed, but does not have the shape `openapi.yaml` gives."""


_MISSING: Any = object()


def _kind(value: object) -> str:
    if type(value) is str and len(value) < 40:
        return repr(value)
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def decode_items(content: bytes, *, fast: bool = True) -> list[GetUsageResultItem]:
    """The 200 answer's items; raises `ValueError` (or `SchemaMismatch`) when it does not fit.

    `fast=False` skips msgspec (the tests compare both paths). A large answer is decoded with
    the cyclic GC paused: the items form no reference cycles, so it could free nothing among
    them, but, triggered by their allocation, it would walk the heap several times while they
    are made (10-15% of the decode time). It is switched back on on the way out (unless it was
    off already).
    """
    if len(content) < _GC_PAUSE_BYTES or not gc.isenabled():  # pragma: no mutate
        return _decode(content, fast)
    gc.disable()
    try:
        return _decode(content, fast)
    finally:
        gc.enable()


def _typed(content: bytes) -> list[dict[str, Any]] | None:
    """msgspec's reading: a list of objects; `None` for anything else, including what only
    `json.loads` takes (NaN, 1e400, a lone surrogate, a BOM, UTF-16...), so the extra never
    changes what is accepted or how it is reported."""
    if _typed_loads is None:
        return None
    try:
        return _typed_loads(content)
    except (msgspec.DecodeError, ValueError, RecursionError):  # ValueError: bad UTF-8, say
        return None


def _loads(content: bytes) -> Any:
    try:
        return json.loads(content)
    except RecursionError:  # arrays or objects nested thousands deep
        raise SchemaMismatch("the JSON is nested deeper than it can be read") from None


def _decode(content: bytes, fast: bool) -> list[GetUsageResultItem]:
    data = _typed(content) if fast else None
    if data is None:
        data = _loads(content)
        if type(data) is not list:
            raise SchemaMismatch(f"expected an array of items, got {_kind(data)}")
    try:
        return _build(data)
    except (ValueError, KeyError, TypeError, AttributeError):
        # Something does not fit (a missing key, a wrong type): the plain path says what.
        raise _first_misfit(_loads(content)) from None


class _Buckets(dict[str, dt.datetime]):
    """Time bucket strings to datetimes, each parsed once: buckets repeat across groups."""

    def __missing__(self, key: str) -> dt.datetime:
        if type(key) is not str:
            raise TypeError  # `_first_misfit` says what
        when = self[key] = parse_datetime(key)
        return when


def _build(data: list[Any]) -> list[GetUsageResultItem]:
    """The items, their slots filled directly (as attrs' `__init__` does, without the call).

    Raises (`ValueError`, `KeyError`, `TypeError` or `AttributeError`) at the first item that
    is not an object with a date-time string `time_bucket`, a string `cost` and, if it has one,
    a `count` that is a whole number, 0 or more.
    """
    buckets = _Buckets()
    items: list[GetUsageResultItem] = []
    append = items.append
    new, model = _new, GetUsageResultItem
    for fields in data:
        item = new(model)
        item.time_bucket = buckets[fields.pop("time_bucket")]
        cost = fields.pop("cost")
        if type(cost) is not str:
            raise TypeError  # `_first_misfit` says what
        item.cost = cost
        count = fields.pop("count", UNSET)
        if count is not UNSET and (type(count) is not int or count < 0):
            raise TypeError  # `_first_misfit` says what
        item.count = count
        item.additional_properties = fields
        append(item)
    return items


def _first_misfit(data: list[Any]) -> SchemaMismatch:
    """Why `_build` refused an answer, said plainly: the first item that does not fit, named,
    and what is wrong with it. Checks no more and no less than `_build` does."""
    for index, fields in enumerate(data):
        if type(fields) is not dict:
            return SchemaMismatch(f"item {index}: expected an object, got {_kind(fields)}")
        time_bucket = fields.get("time_bucket", _MISSING)
        if type(time_bucket) is not str:
            return _mismatch(index, "time_bucket", time_bucket, "a date-time string")
        try:
            parse_datetime(time_bucket)
        except ValueError:
            return _mismatch(index, "time_bucket", time_bucket, "an ISO 8601 date-time")
        cost = fields.get("cost", _MISSING)
        if type(cost) is not str:
            return _mismatch(index, "cost", cost, "a string")
        count = fields.get("count", UNSET)
        if count is not UNSET and (type(count) is not int or count < 0):
            return _mismatch(index, "count", count, "a whole number, 0 or more")
    # Not reached while both check the same; if they ever differ, still a typed error.
    return SchemaMismatch("the answer does not fit the schema")  # pragma: no mutate


def _mismatch(index: int, key: str, value: object, expected: str) -> SchemaMismatch:
    if value is _MISSING:
        return SchemaMismatch(f"item {index}: required key {key!r} is missing")
    return SchemaMismatch(f"item {index}: {key!r} must be {expected}, got {_kind(value)}")


@functools.cache
def _typed_errors() -> dict[int, type[_DataError[Any]]]:
    """Which statuses `openapi.yaml` documents with a typed error, asked of the generated parser.

    Every error schema accepts this body, so the model the parser picks for a status tells
    which response the spec gives it; the default response has no typed error.
    """
    from ._generated.api.analytics import usage_analytics_usage_get as endpoint

    body = b'{"type": "", "message": "", "detail": null}'
    found: dict[int, type[_DataError[Any]]] = {}
    for status in range(400, 600):
        probe = httpx.Response(status, content=body)
        model = type(endpoint._parse_response(client=cast(Any, None), response=probe))
        typed = typed_error_for(model)
        if typed is not None:
            found[status] = typed
    return found


def _is_json(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")  # pragma: no mutate
    media_type = content_type.split(";", 1)[0].strip().lower()  # pragma: no mutate
    return media_type == "application/json" or media_type.endswith("+json")


def result_or_raise(response: httpx.Response) -> list[GetUsageResultItem]:
    """The items of a successful answer; otherwise the error that describes the answer, made
    from it with the credentials the request sent taken out wherever the server quoted them
    (`without_secrets`): a server or a proxy may echo `Authorization` back."""
    status = response.status_code
    if 200 <= status < 300:
        try:
            return decode_items(response.content)
        except ValueError as error:  # JSON syntax errors are ValueErrors too
            cause = error
        # Raised out here, so that the error does not chain the first cause (which may hold
        # the whole body: json's `doc`, say).
        secrets = secrets_sent(response)
        answer = without_secrets(response, secrets)
        if answer is not response:  # the key was in it: say why from the answer without it
            cause = _misfit(answer.content) or SchemaMismatch(redact(str(cause), secrets))
        raise ResponseValidationError("Response validation failed", answer, cause)
    response = without_secrets(response, secrets_sent(response))
    typed = _typed_errors().get(status)
    if typed is not None and _is_json(response):
        try:
            body = _loads(response.content)
            if type(body) is not dict:
                raise SchemaMismatch(f"expected an error object, got {_kind(body)}")
            data = typed.data_model.from_dict(body)
            data._fill_defaults()
        except KeyError as missing:
            mismatch = SchemaMismatch(f"required key {missing} is missing")
            raise ResponseValidationError(
                "Response validation failed", response, mismatch
            ) from mismatch
        except ValueError as error:
            raise ResponseValidationError("Response validation failed", response, error) from error
        raise typed(data, response)
    reason = "API error occurred" if status >= 400 else "Unexpected response received"
    raise APIError(reason, response)


def _misfit(content: bytes) -> ValueError | None:
    """Why `content` is not a valid answer; `None` if it is one."""
    try:
        decode_items(content)
    except ValueError as error:
        return error
    return None
