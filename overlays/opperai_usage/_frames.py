"""Items as DataFrames: `to_pandas(items)` and `to_polars(items)` (the `pandas` and `polars`
extras), one row per item, columns in the command line's order.

Types: `time_bucket` a timezone-aware UTC datetime; tags strings, with nulls; summed fields
integers (64-bit; pandas' nullable `Int64` when some are null) or, when any value is
fractional or beyond 64 bits, floats (an integer past float's range, such as 10**400, as an
infinity of its sign); `count` as a summed field; `cost` a 64-bit float in USD (`NaN` and
`Infinity` as such; a cost
that is no number raises `ValueError` naming the item).

Why `cost` is a float: pandas has no exact decimal type of its own (a column of `Decimal`
objects is an `object` column, which is not numeric and which plotting, `describe()` and most
aggregations refuse or make slow), and one rule for both libraries is easier to rely on than
two. A float64 holds 15 significant digits, so every cost the API sends (a decimal string with
six places, under a billion dollars) reads back as the same string with `f"{cost:.6f}"`; sums
are off by rounding in the last digits (far below a micro-dollar for a month of usage). For
exact sums, add `decimal.Decimal(item.cost)` of the items, or in polars cast the strings:
`pl.Series([i.cost for i in items]).str.to_decimal()`.

Neither library is imported until one of these functions is called.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal

from ._columns import (
    COST,
    COUNT,
    INCOMPLETE,
    PERIOD,
    TIME_BUCKET,
    Columns,
    column_values,
    columns_for,
)

if TYPE_CHECKING:
    import pandas
    import polars

    from .models import GetUsageResultItem

Kind = Literal["int", "float"]
_INT64 = range(-(2**63), 2**63)
_MAX_FLOAT = int(2.0**1023 * (2 - 2.0**-52))  # sys.float_info.max, exactly


def _missing(library: str) -> ImportError:
    return ImportError(
        f"opperai_usage.to_{library} needs {library}, which is not installed: "
        f'pip install "opperai-usage[{library}]"'
    )


def _columns(
    items: Sequence[GetUsageResultItem],
    fields: Sequence[str] | None,
    group_by: Sequence[str] | None,
) -> tuple[Columns, dict[str, list[Any]]]:
    """The columns and each one's values."""
    columns = columns_for(items, fields, group_by)
    values = dict(zip(columns.names, column_values(items, columns), strict=True))
    values[COST] = _costs(values[COST])
    for name in columns.group_by:  # tags are strings (a number the API sent as a tag, too)
        if not set(map(type, values[name])) <= {str, type(None)}:
            values[name] = [None if v is None else str(v) for v in values[name]]
    return columns, values


def _costs(costs: list[str]) -> list[float]:
    """The API's decimal strings as floats; raises `ValueError` naming an item whose `cost` is
    no number."""
    try:
        return list(map(float, costs))
    except ValueError:
        return [_cost(index, cost) for index, cost in enumerate(costs)]


def _cost(index: int, cost: str) -> float:
    try:
        return float(cost)
    except ValueError:
        pass
    try:
        if Decimal(cost).is_nan():  # sNaN, which float() does not read
            return math.nan
    except InvalidOperation:
        pass
    raise ValueError(f"item {index}: {COST!r} is {cost!r}, which is not a number") from None


def _floats(values: list[Any]) -> list[Any]:
    """A float column's values: as they are, unless an int is past float's range (10**400),
    which pandas and polars refuse: then each as a float, such an int as an infinity."""
    if all(type(v) is not int or abs(v) <= _MAX_FLOAT for v in values):
        return values
    return [None if v is None else _float(v) for v in values]


def _float(number: int | float) -> float:
    try:
        return float(number)
    except OverflowError:
        return math.inf if number > 0 else -math.inf


def _number_kind(name: str, values: Iterable[object]) -> Kind:
    """Whether a summed field fits 64-bit integers; raises `TypeError` for a non-number."""
    kind: Kind = "int"
    for value in values:
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"summed field {name!r} holds {value!r}, which is not a number")
        if not isinstance(value, int) or value not in _INT64:
            kind = "float"
    return kind


def to_pandas(
    items: Iterable[GetUsageResultItem],
    *,
    fields: Sequence[str] | None = None,
    group_by: Sequence[str] | None = None,
) -> pandas.DataFrame:
    """A pandas DataFrame of `items` (needs the `pandas` extra).

    `fields` and `group_by` give the columns and their order, as passed to `get_usage`; left
    out, they are read off the items (keys holding numbers are fields, the others tags).
    """
    try:
        import pandas as pd
    except ImportError as error:
        raise _missing("pandas") from error

    listed = list(items)
    columns, values = _columns(listed, fields, group_by)
    data: dict[str, Any] = {
        TIME_BUCKET: pd.to_datetime(pd.Series(values[TIME_BUCKET], dtype=object), utc=True)
    }
    if columns.labels:  # a calendar roll-up's local label and incomplete flag
        data[PERIOD] = pd.Series(values[PERIOD], dtype="string")
        data[INCOMPLETE] = pd.Series(values[INCOMPLETE], dtype="bool")
    for name in columns.group_by:
        data[name] = pd.Series(values[name], dtype="string")
    for name in (*columns.fields, COUNT):
        column = values[name]
        if _number_kind(name, column) == "float":
            data[name] = pd.Series(_floats(column), dtype="float64")
        else:
            data[name] = pd.Series(column, dtype="Int64" if None in column else "int64")
    data[COST] = pd.Series(values[COST], dtype="float64")
    frame: pandas.DataFrame = pd.DataFrame(data, columns=list(columns.names))
    return frame


def to_polars(
    items: Iterable[GetUsageResultItem],
    *,
    fields: Sequence[str] | None = None,
    group_by: Sequence[str] | None = None,
) -> polars.DataFrame:
    """A polars DataFrame of `items` (needs the `polars` extra); `fields` and `group_by` as
    for `to_pandas`."""
    try:
        import polars as pl
    except ImportError as error:
        raise _missing("polars") from error

    listed = list(items)
    columns, values = _columns(listed, fields, group_by)
    series = [pl.Series(TIME_BUCKET, values[TIME_BUCKET], dtype=pl.Datetime("us", "UTC"))]
    if columns.labels:  # a calendar roll-up's local label and incomplete flag
        series.append(pl.Series(PERIOD, values[PERIOD], dtype=pl.String))
        series.append(pl.Series(INCOMPLETE, values[INCOMPLETE], dtype=pl.Boolean))
    series += [pl.Series(name, values[name], dtype=pl.String) for name in columns.group_by]
    for name in (*columns.fields, COUNT):
        if _number_kind(name, values[name]) == "int":
            series.append(pl.Series(name, values[name], dtype=pl.Int64))
        else:
            series.append(pl.Series(name, _floats(values[name]), dtype=pl.Float64))
    series.append(pl.Series(COST, values[COST], dtype=pl.Float64))
    return pl.DataFrame(series)
