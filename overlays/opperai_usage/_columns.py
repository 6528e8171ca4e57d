"""The column model: items as rows, the one shape every output shares: the command line's table,
CSV, JSON and JSON Lines, the HTML report and the DataFrames.

Columns come in one order everywhere: `time_bucket`, the group-by tags in the order asked for,
the summed fields in the order asked for, then `count` and `cost`, which every item carries.
Values: `time_bucket` in ISO 8601 UTC with `Z`, tags as strings or `None`, fields and `count`
as the API's numbers (`count` `None` when an answer lacks it), `cost` as the API's decimal
string.

Whatever the decoder accepts can be written: a `cost` of `NaN` or `9E+999999`, a time bucket at
year 1 with an offset, an object as a tag value (written as JSON text where a format has only
text), a field of NaN or of 400 digits.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from itertools import repeat
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from ._generated.types import UNSET, Unset  # an item's `count` when the answer lacked it
from ._validation import invalid

if TYPE_CHECKING:
    from .models import GetUsageResultItem

TIME_BUCKET = "time_bucket"
COUNT = "count"
COST = "cost"
#: The keys a calendar roll-up (`_calendar.roll_up`) adds to each item: its local label and
#: whether the range or the clock leaves part of it out. Columns after `time_bucket`.
PERIOD = "period"
INCOMPLETE = "incomplete"
LABELS = (PERIOD, INCOMPLETE)
_UTC = dt.timezone.utc
_TIME_BUCKET = attrgetter("time_bucket")
_COST = attrgetter("cost")
_COUNT = attrgetter("count")
_EXTRAS = attrgetter("additional_properties")
#: A sum of costs is written in plain digits up to this many; past it (a `cost` of `9E+999999`
#: would be a million digits) in scientific notation, as `Decimal` writes it.
MAX_PLAIN_DIGITS = 40
#: Sums of costs: the default context's precision (28 digits) and range, with overflow to
#: Infinity and an invalid operation (Infinity minus Infinity) to NaN instead of an exception.
_SUMS = decimal.Context(traps=[])

Value = str | int | float | None


@dataclass(frozen=True)
class Columns:
    """Which extra keys of the items are group-by tags and which are summed fields, in order."""

    group_by: tuple[str, ...]
    fields: tuple[str, ...]
    #: `LABELS` for calendar roll-ups (`period`, `incomplete`), else empty.
    labels: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """Every column, in output order."""
        return (TIME_BUCKET, *self.labels, *self.group_by, *self.fields, COUNT, COST)

    @property
    def extras(self) -> tuple[str, ...]:
        """The columns read from each item's extra keys."""
        return (*self.labels, *self.group_by, *self.fields)

    @property
    def texts(self) -> int:
        """How many columns come before the summed ones (`time_bucket`, labels, tags)."""
        return 1 + len(self.labels) + len(self.group_by)


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

    Items of a calendar roll-up (a list whose first item has a text `period` and a boolean
    `incomplete`) get those two columns after `time_bucket`.
    """
    labels = _labels(items)
    if fields is not None and group_by is not None:
        return _checked(Columns(_unique(group_by), _unique(fields), labels))
    is_field: dict[str, bool | None] = {}  # None: only nulls seen so far
    for item in items:
        for key, value in item.additional_properties.items():
            if key in labels:
                continue
            if is_field.get(key) is None:
                is_field[key] = None if value is None else isinstance(value, int | float)
    if fields is not None:
        known = set(fields)
        tags = tuple(k for k in is_field if k not in known)
        return _checked(Columns(tags, _unique(fields), labels))
    if group_by is not None:
        known = set(group_by)
        numbers = tuple(k for k in is_field if k not in known)
        return _checked(Columns(_unique(group_by), numbers, labels))
    tags = tuple(key for key, numeric in is_field.items() if not numeric)
    numbers = tuple(key for key, numeric in is_field.items() if numeric)
    return _checked(Columns(tags, numbers, labels))


def _labels(items: Iterable[GetUsageResultItem]) -> tuple[str, ...]:
    """`LABELS` when `items` is a calendar roll-up's list, else ()."""
    if not isinstance(items, Sequence) or not items:
        return ()
    extras = items[0].additional_properties
    rolled = isinstance(extras.get(PERIOD), str) and isinstance(extras.get(INCOMPLETE), bool)
    return LABELS if rolled else ()


def _checked(columns: Columns) -> Columns:
    for name in set(columns.group_by) & set(columns.fields):
        raise invalid(
            "group_by", f"holds {name!r}, which is one of the fields too: a key is one or the other"
        )
    for kind, names in (("group_by", columns.group_by), ("fields", columns.fields)):
        for name in {TIME_BUCKET, COUNT, COST, *columns.labels} & set(names):
            raise invalid(kind, f"names {name!r}, which is already a column of every item")
    return columns


def time_text(when: dt.datetime) -> str:
    """ISO 8601 in UTC with `Z`; a bucket without an offset is taken as UTC, as the API means it.
    One that UTC would move out of years 1-9999 (`0001-01-01T00:00:00+01:00`) keeps its offset."""
    try:
        when = when.replace(tzinfo=_UTC) if when.tzinfo is None else when.astimezone(_UTC)
    except OverflowError:
        return when.isoformat()
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
        count = item.count
        yield [text, *map(get, extras), None if isinstance(count, Unset) else count, item.cost]


def column_values(items: Sequence[GetUsageResultItem], columns: Columns) -> list[list[Any]]:
    """Each column's values in item order (`time_bucket` as datetimes, the rest as the API sent
    them, a missing key as `None`), read with C-level maps: several times faster than rows."""
    extra_values = list(map(_EXTRAS, items))
    return [
        list(map(_TIME_BUCKET, items)),
        *(list(map(dict.get, extra_values, repeat(name))) for name in columns.extras),
        counts(items),
        list(map(_COST, items)),
    ]


def counts(items: Sequence[GetUsageResultItem]) -> list[int | None]:
    """Each item's `count`, `None` where the answer lacked it."""
    values: list[Any] = list(map(_COUNT, items))
    if UNSET in values:
        return [None if value is UNSET else value for value in values]
    return values


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
    exact int for ints, else a float rounded to 12 significant digits (no 0.30000000000000004);
    NaN or an infinity among them, or a sum past float's range, give NaN or an infinity."""
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if all(isinstance(v, int) for v in numbers):
        return sum(numbers)
    try:
        total = math.fsum(numbers)
    except (ValueError, OverflowError):  # inf - inf, or past float's range
        total = sum(map(_float, numbers))
    return float(f"{total:.12g}")


def _float(number: int | float) -> float:
    """`number` as a float; an int past float's range as an infinity of its sign."""
    try:
        return float(number)
    except OverflowError:
        return math.inf if number > 0 else -math.inf


def sum_costs(costs: Iterable[Value]) -> str:
    """The exact sum of the API's decimal strings, with as many decimals as the most precise
    (see `decimal_text`). A cost that is no number is left out (the API never sends one);
    `NaN` (or `sNaN`) makes the sum NaN, and a sum past `Decimal`'s range is Infinity."""
    total: Decimal | None = None  # not Decimal(0): 0 + 9E+999999 has a million digits
    for cost in costs:
        try:
            value = Decimal(str(cost))
        except InvalidOperation:
            continue
        value = Decimal("NaN") if value.is_snan() else value
        total = value if total is None else _SUMS.add(total, value)
    return decimal_text(Decimal(0) if total is None else total)


def decimal_text(value: Decimal) -> str:
    """`value` in plain digits (`0.004550`), or, past MAX_PLAIN_DIGITS of them, in scientific
    notation (`9E+999999`); `NaN`, `Infinity` and `-Infinity` as they are."""
    if not value.is_finite():
        return str(value)
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    digits = max(value.adjusted(), 0) + max(-exponent, 0) + 1
    return f"{value:f}" if digits <= MAX_PLAIN_DIGITS else str(value)


def value_text(value: Value | object) -> str:
    """A value as text, for formats that have only text (CSV, the table, the report): a
    string as it is, an object or an array as JSON, a number as Python writes it (an int too
    long for that, past 4,300 digits, in scientific notation)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json_text(value)
    try:
        return str(value)
    except ValueError:  # an int past sys.get_int_max_str_digits()
        return f"{Decimal(value):.12E}" if isinstance(value, int) else repr(type(value))


def finite(value: object) -> object:
    """`value` with each NaN or infinity in it (at any depth) as `None`: JSON has no such
    numbers, and writes `null` for them, as JavaScript's JSON.stringify does."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    return value


def json_text(value: object) -> str:
    """`value` as JSON text (UTF-8 as it is, not `\\u` escapes); NaN and infinities as `null`."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except ValueError:  # NaN or an infinity somewhere in it
        return json.dumps(finite(value), ensure_ascii=False, allow_nan=False)
