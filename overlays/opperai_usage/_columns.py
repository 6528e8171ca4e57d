"""The column model: items as rows, the one shape every output shares: the command line's table,
CSV, JSON and JSON Lines, the HTML report and the DataFrames.

Columns come in one order everywhere: `time_bucket`, the group-by tags in the order asked for,
the summed fields in the order asked for, then `cost`. Values: `time_bucket` in ISO 8601 UTC
with `Z`, tags as strings or `None`, fields as the API's numbers, `cost` as the API's decimal
string.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from itertools import repeat
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from ._validation import invalid

if TYPE_CHECKING:
    from .models import GetUsageResultItem

TIME_BUCKET = "time_bucket"
COST = "cost"
_UTC = dt.timezone.utc
_TIME_BUCKET = attrgetter("time_bucket")
_COST = attrgetter("cost")
_EXTRAS = attrgetter("additional_properties")

Value = str | int | float | None


@dataclass(frozen=True)
class Columns:
    """Which extra keys of the items are group-by tags and which are summed fields, in order."""

    group_by: tuple[str, ...]
    fields: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Every column, in output order."""
        return (TIME_BUCKET, *self.group_by, *self.fields, COST)

    @property
    def extras(self) -> tuple[str, ...]:
        """The columns read from each item's extra keys."""
        return (*self.group_by, *self.fields)


def _unique(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def columns_for(
    items: Iterable[GetUsageResultItem],
    fields: Sequence[str] | None = None,
    group_by: Sequence[str] | None = None,
) -> Columns:
    """The columns for these items: `group_by` and `fields` as given (repeats dropped).

    Either left `None` is read off the items, in the order keys first appear: given neither,
    keys holding numbers are fields and the others tags; given one, the other is every
    remaining key. A name used twice (as a tag and a field, or as `time_bucket` or `cost`)
    raises `InvalidArgumentError`: every column needs a name of its own.
    """
    if fields is not None and group_by is not None:
        return _checked(Columns(_unique(group_by), _unique(fields)))
    is_field: dict[str, bool | None] = {}  # None: only nulls seen so far
    for item in items:
        for key, value in item.additional_properties.items():
            if is_field.get(key) is None:
                is_field[key] = None if value is None else isinstance(value, int | float)
    if fields is not None:
        known = set(fields)
        return _checked(Columns(tuple(k for k in is_field if k not in known), _unique(fields)))
    if group_by is not None:
        known = set(group_by)
        return _checked(Columns(_unique(group_by), tuple(k for k in is_field if k not in known)))
    tags = tuple(key for key, numeric in is_field.items() if not numeric)
    return _checked(Columns(tags, tuple(key for key, numeric in is_field.items() if numeric)))


def _checked(columns: Columns) -> Columns:
    for name in set(columns.group_by) & set(columns.fields):
        raise invalid(
            "group_by", f"holds {name!r}, which is one of the fields too: a key is one or the other"
        )
    for kind, names in (("group_by", columns.group_by), ("fields", columns.fields)):
        for name in {TIME_BUCKET, COST} & set(names):
            raise invalid(kind, f"names {name!r}, which is already a column of every item")
    return columns


def time_text(when: dt.datetime) -> str:
    """ISO 8601 in UTC with `Z`; a bucket without an offset is taken as UTC, as the API means it."""
    when = when.replace(tzinfo=_UTC) if when.tzinfo is None else when.astimezone(_UTC)
    return when.isoformat().replace("+00:00", "Z")


def rows(items: Iterable[GetUsageResultItem], columns: Columns) -> Iterator[list[Value]]:
    """One list of values per item, in `columns.names` order (a missing key reads `None`)."""
    extras = columns.extras
    last: dt.datetime | None = None
    text = ""
    for item in items:
        when = item.time_bucket
        if when is not last:  # items of one bucket come together and share one datetime
            last, text = when, time_text(when)
        get = item.additional_properties.get
        yield [text, *map(get, extras), item.cost]


def column_values(items: Sequence[GetUsageResultItem], columns: Columns) -> list[list[Any]]:
    """Each column's values in item order (`time_bucket` as datetimes, the rest as the API sent
    them, a missing key as `None`), read with C-level maps: several times faster than rows."""
    extra_values = list(map(_EXTRAS, items))
    return [
        list(map(_TIME_BUCKET, items)),
        *(list(map(dict.get, extra_values, repeat(name))) for name in columns.extras),
        list(map(_COST, items)),
    ]


def time_texts(times: list[dt.datetime]) -> list[str]:
    """`time_text` of each, each distinct datetime object written once (the decoder shares one
    object between the items of a bucket)."""
    keys = list(map(id, times))  # the objects stay alive in `times` meanwhile
    texts = {key: time_text(when) for key, when in dict(zip(keys, times, strict=False)).items()}
    return list(map(texts.__getitem__, keys))


def records(items: Iterable[GetUsageResultItem], columns: Columns) -> Iterator[dict[str, Value]]:
    """One dict per item, keys in `columns.names` order."""
    names = columns.names
    for row in rows(items, columns):
        yield dict(zip(names, row, strict=True))


def sum_numbers(values: Iterable[Value]) -> int | float:
    """The sum of a summed field's values, nulls (and anything not a number) left out: an
    exact int for ints, else a float rounded to 12 significant digits (no 0.30000000000000004)."""
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if all(isinstance(v, int) for v in numbers):
        return sum(numbers)
    return float(f"{math.fsum(numbers):.12g}")


def sum_costs(costs: Iterable[Value]) -> str:
    """The exact sum of the API's decimal strings, with as many decimals as the most precise."""
    total = Decimal(0)
    for cost in costs:
        try:
            total += Decimal(str(cost))
        except InvalidOperation:  # not a decimal: the API never sends one; it is left out
            continue
    return f"{total:f}"
