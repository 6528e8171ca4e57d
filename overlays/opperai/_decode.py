"""Answers to results or typed errors.

Items are decoded on a fast path that equals the generated `from_dict` (a test holds it to
that) while also checking what `from_dict` takes on trust: the JSON types `openapi.yaml` gives.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable
from typing import Any, cast

import httpx
from opperai_usage_generated.api.analytics import usage_analytics_usage_get as endpoint

from .errors import APIError, ResponseValidationError, _DataError, typed_error_for
from .models import GetUsageResultItem

loads: Callable[[bytes], Any]
try:  # the optional `fast` extra: the same values, decoded 2-3x faster
    import orjson

    loads = orjson.loads
except ImportError:  # pragma: no cover - exercised by the tests' plain-path comparison
    loads = json.loads

_EXTRA_VALUE_TYPES = frozenset({int, float, str, type(None)})
_new = object.__new__
# The slots' own setters: what attrs' __init__ ends up calling, without the call around it.
_set_time_bucket = GetUsageResultItem.time_bucket.__set__  # type: ignore[misc, attr-defined]
_set_cost = GetUsageResultItem.cost.__set__  # type: ignore[misc, attr-defined]
_set_extras = GetUsageResultItem.additional_properties.__set__  # type: ignore[misc, attr-defined]


class SchemaMismatch(ValueError):
    """The JSON parsed, but does not have the shape `openapi.yaml` gives."""


_MISSING: Any = object()


def _kind(value: object) -> str:
    if type(value) is str and len(value) < 40:
        return repr(value)
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def decode_items(content: bytes, loads: Callable[[bytes], Any] = loads) -> list[GetUsageResultItem]:
    """The 200 answer's items; raises `ValueError` (or `SchemaMismatch`) when it does not fit."""
    data = loads(content)
    if type(data) is not list:
        raise SchemaMismatch(f"expected an array of items, got {_kind(data)}")
    times: dict[str, Any] = {}  # buckets repeat across groups: parse each once
    items = []
    for index, fields in enumerate(data):
        if type(fields) is not dict:
            raise SchemaMismatch(f"item {index}: expected an object, got {_kind(fields)}")
        time_bucket = fields.pop("time_bucket", _MISSING)
        cost = fields.pop("cost", _MISSING)
        when = times.get(time_bucket) if type(time_bucket) is str else None
        if when is None:
            when = times[time_bucket] = _check_time(index, time_bucket)
        if type(cost) is not str:
            raise _mismatch(index, "cost", cost, "a string")
        if not _EXTRA_VALUE_TYPES.issuperset(map(type, fields.values())):
            _raise_bad_extra(index, fields)
        item = _new(GetUsageResultItem)
        _set_time_bucket(item, when)
        _set_cost(item, cost)
        _set_extras(item, fields)
        items.append(item)
    return items


def _mismatch(index: int, key: str, value: object, expected: str) -> SchemaMismatch:
    if value is _MISSING:
        return SchemaMismatch(f"item {index}: required key {key!r} is missing")
    return SchemaMismatch(f"item {index}: {key!r} must be {expected}, got {_kind(value)}")


def _check_time(index: int, value: object) -> dt.datetime:
    if type(value) is not str:
        raise _mismatch(index, "time_bucket", value, "a date-time string")
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise _mismatch(index, "time_bucket", value, "an ISO 8601 date-time") from None


def _raise_bad_extra(index: int, fields: dict[str, Any]) -> None:
    for key, value in fields.items():
        if type(value) not in _EXTRA_VALUE_TYPES:
            raise _mismatch(index, key, value, "a number, a string or null")


@functools.cache
def _typed_errors() -> dict[int, type[_DataError[Any]]]:
    """Which statuses `openapi.yaml` documents with a typed error, asked of the generated parser.

    Every error schema accepts this body, so the model the parser picks for a status tells
    which response the spec gives it; the default response has no typed error.
    """
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
    content_type: str = response.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def result_or_raise(response: httpx.Response) -> list[GetUsageResultItem]:
    """The items of a successful answer; otherwise the error that describes the answer."""
    status = response.status_code
    if 200 <= status < 300:
        try:
            return decode_items(response.content)
        except ValueError as error:  # JSON syntax errors are ValueErrors too
            raise ResponseValidationError("Response validation failed", response, error) from error
    typed = _typed_errors().get(status)
    if typed is not None and _is_json(response):
        try:
            body = loads(response.content)
            if type(body) is not dict:
                raise SchemaMismatch(f"expected an error object, got {_kind(body)}")
            data = typed.data_model.from_dict(body)
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
