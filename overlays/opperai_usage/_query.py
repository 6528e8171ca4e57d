"""Arguments to query parameters: each checked and converted by the type the generated code
declares for it, then encoded by the generated `_get_kwargs`, so the spec stays the only list."""

from __future__ import annotations

import datetime as dt
import enum
import functools
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._generated.api.analytics import usage_analytics_usage_get as endpoint
from ._generated.types import Unset as GeneratedUnset
from ._validation import InvalidArgumentError, fields_to_send
from .types import Unset

Coercer = Callable[[str, object], object]


def _as_datetime(name: str, value: object) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return _whole_minute_offset(name, value)
    if isinstance(value, dt.date):  # a day means its naive midnight, as the official SDK sends it
        return dt.datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        from dateutil.parser import isoparse  # only when a string is given: keeps imports fast

        try:
            parsed: dt.datetime = isoparse(value)
        except (ValueError, OverflowError):
            pass
        else:
            return _whole_minute_offset(name, parsed)
    raise InvalidArgumentError(
        name, f"{name} must be a datetime, a date or an ISO 8601 string, not {value!r}"
    )


def _whole_minute_offset(name: str, value: dt.datetime) -> dt.datetime:
    """RFC 3339 offsets are whole minutes; one with seconds (old local mean times such as
    Amsterdam's +00:19:32) is sent as the same instant in UTC."""
    offset = value.utcoffset()
    if offset is None or not offset % dt.timedelta(minutes=1):
        return value
    try:
        return value.astimezone(dt.timezone.utc)
    except OverflowError:
        raise InvalidArgumentError(name, f"{name} is out of range in UTC: {value!r}") from None


def as_utc(name: str, value: object) -> dt.datetime:
    """A date argument as the aware UTC instant the API reads it as (no offset: UTC)."""
    moment = _as_datetime(name, value)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.timezone.utc)
    try:
        return moment.astimezone(dt.timezone.utc)
    except OverflowError:
        raise InvalidArgumentError(name, f"{name} is out of range in UTC: {value!r}") from None


def _as_enum(enum_type: type[enum.Enum], name: str, value: object) -> enum.Enum:
    if isinstance(value, enum_type):
        return value
    if isinstance(value, str):
        try:
            return enum_type(value)
        except ValueError:
            pass
    allowed = ", ".join(repr(member.value) for member in enum_type)
    raise InvalidArgumentError(
        name, f"{name} must be one of {allowed} (or a {enum_type.__name__} member), not {value!r}"
    )


def _as_str_list(name: str, value: object) -> list[str]:
    if isinstance(value, str | bytes | bytearray):
        raise InvalidArgumentError(
            name, f"{name} must be a list of strings, not a bare string: did you mean [{value!r}]?"
        )
    if not isinstance(value, Sequence):  # a set has no order: the query would change
        raise InvalidArgumentError(
            name, f"{name} must be a list of strings (or another sequence of them), not {value!r}"
        )
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise InvalidArgumentError(
                name, f"{name}[{index}] must be a string, not {item!r} ({type(item).__name__})"
            )
    return list(value)


def _coercer_for(name: str, hint: object) -> Coercer:
    """The check for one parameter, chosen by its generated type (`X | None | Unset`)."""
    kinds = [t for t in typing.get_args(hint) if t not in (type(None), GeneratedUnset)]
    if dt.datetime in kinds:  # its `str` alternative is a date-time spelled without an offset
        return _as_datetime
    (declared,) = kinds
    if isinstance(declared, type) and issubclass(declared, enum.Enum):
        return functools.partial(_as_enum, declared)
    if typing.get_origin(declared) is list and typing.get_args(declared) == (str,):
        return _as_str_list
    raise TypeError(f"query parameter {name!r} has a type the overlay cannot check yet: {hint}")


#: Every query parameter of the operation, with its check, read from the generated code.
PARAMETERS: dict[str, Coercer] = {
    name: _coercer_for(name, hint)
    for name, hint in typing.get_type_hints(endpoint._get_kwargs).items()
    if name != "return"
}
_DATETIMES = frozenset(name for name, check in PARAMETERS.items() if check is _as_datetime)


def build_query(arguments: Mapping[str, object]) -> tuple[str, str, dict[str, Any]]:
    """Method, path and query parameters for these arguments; raises before any I/O."""
    checked = {  # an UNSET argument is not passed on: the generated default is UNSET too
        name: value if value is None else PARAMETERS[name](name, value)
        for name, value in arguments.items()
        if not isinstance(value, Unset)
    }
    if isinstance(fields := checked.get("fields"), list):
        checked["fields"] = fields_to_send(fields)
    request = endpoint._get_kwargs(**checked)  # type: ignore[arg-type]
    params: dict[str, Any] = request["params"]
    for name in _DATETIMES & params.keys():
        if params[name].endswith("+00:00"):  # UTC spelled as the official SDK sends it
            params[name] = params[name][:-6] + "Z"
    return request["method"].upper(), request["url"], params  # pragma: no mutate
