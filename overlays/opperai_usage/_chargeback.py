"""Chargeback: `top(items, n, by)` keeps the `n` groups that cost the most over the whole range
and folds the rest into one `(other)` item per time bucket; usage without a group value shows
as `(untagged)`.

Every output (the command line's table, CSV, JSON, JSON Lines, the HTML report, the chart,
FOCUS, the DataFrames) is made from items, so doing this to the items, once, gives the same
rows in all of them. Nothing is lost: per time bucket, the items returned sum to the items
given, `cost` exactly (decimal, not float), `count` and integer fields exactly, fractional
fields as floats sum.

`(untagged)` is a group like any other: it takes one of the `n` places when its cost is among
the highest, and is folded into `(other)` when it is not. So each time bucket has at most
`n + 1` values of `by`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from ._columns import _SUMS, Columns, _float, columns_for, sum_costs
from ._generated.types import UNSET
from ._validation import invalid

if TYPE_CHECKING:
    from .models import GetUsageResultItem

#: The group value of the folded item: every group outside the top `n`.
OTHER = "(other)"
#: The group value shown for an item that lacks the key, or whose value is null.
UNTAGGED = "(untagged)"
#: The group key of the folded row (no tag value can be this object).
_FOLDED = object()


def _key(value: object) -> object:
    """A hashable key for a tag value: strings as they are, null as None, anything else (an
    object, an array, a number) as its JSON text, kept apart from strings."""
    if value is None or type(value) is str:
        return value
    return ("json", json.dumps(value, sort_keys=True, ensure_ascii=False))


def _cost(cost: str) -> Decimal | None:
    """A cost as an exact decimal, or None for one that is no number (sums leave it out)."""
    try:
        value = Decimal(cost)
    except InvalidOperation:
        return None
    return Decimal("NaN") if value.is_snan() else value


def _rank(total: Decimal) -> tuple[int, Decimal]:
    """Highest cost first; a NaN total last (it compares with nothing)."""
    return (1, Decimal(0)) if total.is_nan() else (0, _SUMS.minus(total))


def _sum_field(values: Iterable[object]) -> int | float | None:
    """A summed field over the items of one row: an int for ints (exact), else their float
    sum; None when no item holds a number (nulls and non-numbers are left out, as totals do)."""
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if not numbers:
        return None
    if all(isinstance(v, int) for v in numbers):
        return sum(numbers)
    try:
        return math.fsum(numbers)
    except (ValueError, OverflowError):  # inf - inf, or past float's range
        return sum(map(_float, numbers))


def top(
    items: Iterable[GetUsageResultItem],
    n: int,
    by: str | None = None,
    *,
    fields: Sequence[str] | None = None,
    group_by: Sequence[str] | None = None,
) -> list[GetUsageResultItem]:
    """The items with the `n` values of the tag `by` that cost the most over all of them kept,
    and every other value folded into one item per time bucket whose tags read `(other)`.

    `by` defaults to the first tag. `fields` and `group_by` say which keys are summed fields
    and which are tags, as for `to_pandas` (left out, they are read off the items). Every tag
    that an item lacks or holds null reads `(untagged)`. Items come out in time-bucket order
    (as given), and in a bucket by rank, `(other)` last. Raises `InvalidArgumentError` for an
    `n` that is not a positive int, or when there is no tag to rank by.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise invalid("n", f"must be a positive int (how many groups to keep), not {n!r}")
    listed = list(items)
    columns = columns_for(listed, fields, group_by)
    tags = columns.group_by
    by = by if by is not None else (tags[0] if tags else None)
    if by is None:
        raise invalid("by", "names no tag, and the items have none: give the key to rank by")
    if by not in tags:
        tags = (by, *tags)
    totals: dict[object, Decimal] = {}
    for item in listed:
        key = _key(item.additional_properties.get(by))
        cost = _cost(item.cost)
        total = totals.get(key, Decimal(0))
        totals[key] = total if cost is None else _SUMS.add(total, cost)
    ranked = sorted(totals, key=lambda k: _rank(totals[k]))  # stable: first seen first on ties
    place = {key: index for index, key in enumerate(ranked[:n])}
    rest = (by, *(tag for tag in tags if tag != by))
    buckets: dict[object, dict[tuple[object, ...], list[GetUsageResultItem]]] = {}
    for item in listed:
        get = item.additional_properties.get
        key = _key(get(by))
        if key in place:
            row: tuple[object, ...] = tuple(_key(get(tag)) for tag in rest)
        else:
            row = (_FOLDED,)
        buckets.setdefault(item.time_bucket, {}).setdefault(row, []).append(item)
    fold = len(place)
    out = []
    for rows in buckets.values():
        for row in sorted(rows, key=lambda r: place.get(r[0], fold)):
            out.append(_row(rows[row], row[0] is _FOLDED, tags, columns))
    return out


def _row(
    items: list[GetUsageResultItem], folded: bool, tags: Sequence[str], columns: Columns
) -> GetUsageResultItem:
    """One output item for the items of one row: the item itself when it is alone and has
    every tag, else a new one with their sums (and the time bucket's calendar labels, which
    a calendar roll-up's items of one bucket share)."""
    first = items[0]
    extras = first.additional_properties
    if len(items) == 1 and not folded and all(extras.get(tag) is not None for tag in tags):
        return first
    new: dict[str, Any] = {label: extras.get(label) for label in columns.labels}
    for tag in tags:
        value = extras.get(tag)
        new[tag] = OTHER if folded else UNTAGGED if value is None else value
    for field in columns.fields:
        new[field] = _sum_field(item.additional_properties.get(field) for item in items)
    cost = first.cost if len(items) == 1 else sum_costs(item.cost for item in items)
    count = _sum_field(item.count for item in items)  # an answer without counts keeps none
    made = type(first)(
        time_bucket=first.time_bucket, cost=cost, count=UNSET if count is None else int(count)
    )
    made.additional_properties = new
    return made
