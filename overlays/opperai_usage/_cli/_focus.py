"""`--format focus`: the usage as FOCUS 1.2 rows (the FinOps Open Cost and Usage
Specification, which Vantage, Ternary, OpenCost and LiteLLM read), as CSV, or as Parquet for
`-o FILE.parquet` (with polars, or pandas and pyarrow).

One row per item. Every column FOCUS 1.2 makes mandatory is written, non-null wherever FOCUS
requires it for a usage charge: the four costs are the item's `cost`, exact; the charge
period is the time bucket; the billing period its calendar month (UTC); the sub account the
`project.name` group (none for a null project, nor for `--top`'s `(other)` and
`(untagged)`, which are no one project); the quantity is `count` (null, as its unit, for an
answer without counts, which the API always sends). The README's table gives the mapping. A cost
that is not a finite decimal number cannot be a FOCUS cost: the export stops with an error
naming the item.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import IO, TYPE_CHECKING, Any

from .._chargeback import OTHER, UNTAGGED
from .._columns import Columns, _float, decimal_text, finite, time_text, value_text
from .._generated.types import Unset
from ._failures import OutputError, UsageError
from ._writers import neutralised

if TYPE_CHECKING:
    from ..models import GetUsageResultItem

#: Where the billing account comes from when `--billing-account` is not given.
BILLING_ACCOUNT_ENV = "OPPER_BILLING_ACCOUNT"
#: The tag that names a sub account (Opper's projects).
SUB_ACCOUNT_TAG = "project.name"
COSTS = ("BilledCost", "ContractedCost", "EffectiveCost", "ListCost")
#: Columns with the same value on every row.
CONSTANT = {
    "BillingCurrency": "USD",
    "ChargeCategory": "Usage",
    "ChargeFrequency": "Usage-Based",
    "InvoiceIssuerName": "Opper",
    "ProviderName": "Opper",
    "PublisherName": "Opper",
    "ServiceCategory": "AI and Machine Learning",
    "ServiceName": "Opper",
    "ServiceSubcategory": "Generative AI",
}
#: FOCUS 1.2's columns written, in the specification's (alphabetical) order; then `x_count`
#: and one `x_FIELD` per --field (custom columns take the `x_` prefix).
COLUMNS = (
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SubAccountId",
    "SubAccountName",
    "SubAccountType",
    "Tags",
)
#: FOCUS 1.2's mandatory columns, and those of them that allow nulls.
MANDATORY = (
    *COSTS,
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "InvoiceIssuerName",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
)
NULLABLE = frozenset({"BillingAccountName", "ChargeClass"})
#: Parquet's widest decimal (128 bits) holds this many digits.
DECIMAL_DIGITS = 38
_INT64 = range(-(2**63), 2**63)
_STEPS = {"minute": dt.timedelta(minutes=1), "hour": dt.timedelta(hours=1)}
_STEPS["day"] = dt.timedelta(days=1)


@dataclass(frozen=True)
class Focus:
    """What the export needs besides the items: checked before anything is sent."""

    billing_account: str
    quantity: str  # "count" or a --field
    granularity: str


def focus_settings(args: argparse.Namespace, fields: Sequence[str]) -> Focus:
    """The export's settings, or `UsageError` (exit 2, before any request)."""
    account = (args.billing_account or os.environ.get(BILLING_ACCOUNT_ENV, "")).strip()
    if not account:
        raise UsageError(
            f"--format focus needs the billing account (FOCUS's BillingAccountId): "
            f"--billing-account ID, or set {BILLING_ACCOUNT_ENV}"
        )
    quantity = args.focus_quantity or "count"
    if quantity != "count" and quantity not in fields:
        raise UsageError(
            f"--focus-quantity must be count or one of the --field keys, not {quantity!r}"
        )
    if getattr(args, "tz", None):
        raise UsageError(
            "--format focus writes UTC charge and billing periods (FOCUS's rule): leave out --tz"
        )
    granularity = str(getattr(args.granularity, "value", args.granularity) or "day")
    if granularity not in (*_STEPS, "month"):  # a year (or a week) is no part of one month
        raise UsageError(
            "--format focus needs buckets within a calendar month (its billing period): "
            "--granularity minute, hour, day or month"
        )
    return Focus(account, quantity, granularity)


def check_focus_options(args: argparse.Namespace) -> None:
    """The FOCUS options are refused with any other format."""
    if args.format != "focus":
        for flag, value in (("--billing-account", args.billing_account),
                            ("--focus-quantity", args.focus_quantity)):  # fmt: skip
            if value is not None:
                raise UsageError(f"{flag} is for --format focus")


def _month(when: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    start = when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start, end


def _charge_end(start: dt.datetime, granularity: str) -> dt.datetime:
    if granularity == "month":
        return _month(start)[1]
    return start + _STEPS[granularity]


def _unit(quantity: str) -> str:
    """FOCUS's unit for the quantity: Requests for the count of events, Tokens for a token
    field, else the field's name, capitalised (a count-based unit of its own)."""
    if quantity == "count":
        return "Requests"
    if quantity.lower().endswith("tokens"):
        return "Tokens"
    return quantity[:1].upper() + quantity[1:]


def _cost(index: int, cost: str) -> Decimal:
    try:
        value = Decimal(cost)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise OutputError(
            f"item {index}: cost {cost[:40]!r} is not a decimal number, which every FOCUS "
            "cost column must be"
        )
    return value


def _number(value: object) -> int | float:
    """A summed value as a number: null (no event had the key) is 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return value


def _tags(extras: dict[str, Any], group_by: Sequence[str]) -> str | None:
    """FOCUS's Tags: the group values as a JSON object; objects and arrays (which FOCUS's
    key-value format does not allow as values) as JSON text; nulls left out."""
    if not group_by:
        return None
    pairs = {}
    for key in group_by:
        value = extras.get(key)
        if value is not None:
            pairs[key] = json.dumps(finite(value)) if isinstance(value, dict | list) else value
    return json.dumps(finite(pairs), ensure_ascii=False)


def focus_rows(
    items: Sequence[GetUsageResultItem], columns: Columns, focus: Focus
) -> tuple[list[str], list[dict[str, Any]]]:
    """The column names and one dict per item, values as Python objects: costs as Decimal,
    periods as aware UTC datetimes, quantities as numbers, the rest as strings or None."""
    extra_names = ["x_count", *(f"x_{field}" for field in columns.fields)]
    unit = _unit(focus.quantity)
    out = []
    for index, item in enumerate(items):
        extras = item.additional_properties
        cost = _cost(index, item.cost)
        start = item.time_bucket
        start = start.replace(tzinfo=dt.timezone.utc) if start.tzinfo is None else start
        try:
            start = start.astimezone(dt.timezone.utc)
            period_start, period_end = _month(start)
            end = _charge_end(start, focus.granularity)
        except (OverflowError, ValueError):  # past year 9999 (or before year 1) in UTC
            raise OutputError(
                f"item {index}: the time bucket {item.time_bucket.isoformat()} has no billing "
                "period FOCUS can write (its month ends past year 9999)"
            ) from None
        count = None if isinstance(item.count, Unset) else item.count
        quantity = count if focus.quantity == "count" else _number(extras.get(focus.quantity))
        project = extras.get(SUB_ACCOUNT_TAG) if SUB_ACCOUNT_TAG in columns.group_by else None
        project = None if project in (None, OTHER, UNTAGGED) else value_text(project)
        groups = ", ".join(
            f"{key}={UNTAGGED if extras.get(key) is None else value_text(extras.get(key))}"
            for key in columns.group_by
        )
        row: dict[str, Any] = dict.fromkeys(COLUMNS)
        row.update(CONSTANT)
        row.update(dict.fromkeys(COSTS, cost))
        row |= {
            "BillingAccountId": focus.billing_account,
            "BillingPeriodStart": period_start,
            "BillingPeriodEnd": period_end,
            "ChargeDescription": f"Opper usage: {groups}" if groups else "Opper usage",
            "ChargePeriodStart": start,
            "ChargePeriodEnd": end,
            "ConsumedQuantity": quantity,
            "ConsumedUnit": None if quantity is None else unit,
            "PricingQuantity": quantity,
            "PricingUnit": None if quantity is None else unit,
            "SubAccountId": project,
            "SubAccountName": project,
            "SubAccountType": None if project is None else "Project",
            "Tags": _tags(extras, columns.group_by),
            "x_count": count,
        }
        for field in columns.fields:
            value = extras.get(field)
            row[f"x_{field}"] = None if _number(value) is not value else value  # numbers only
        out.append(row)
    return [*COLUMNS, *extra_names], out


def _text(value: object) -> str:
    """A CSV cell: FOCUS's formats (ISO 8601 with Z, plain decimals), text neutralised for
    spreadsheets, null as empty."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return time_text(value)
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, float):
        return decimal_text(Decimal(repr(value))) if value == value else ""
    if isinstance(value, str):
        return neutralised(value)
    return value_text(value)


def write_focus_csv(
    items: Sequence[GetUsageResultItem], columns: Columns, focus: Focus, out: IO[str]
) -> None:
    """FOCUS rows as RFC 4180 CSV (the csv module's dialect)."""
    names, rows = focus_rows(items, columns, focus)
    writer = csv.writer(out)
    writer.writerow(names)
    for row in rows:
        writer.writerow([_text(row[name]) for name in names])


def check_parquet() -> None:
    """Parquet needs polars, or pandas with pyarrow: refused before anything is sent."""
    import importlib.util

    if importlib.util.find_spec("polars") is not None:
        return
    if importlib.util.find_spec("pandas") and importlib.util.find_spec("pyarrow"):
        return
    raise UsageError(
        'writing Parquet needs polars (pip install "opperai-usage[polars]"), or pandas with pyarrow'
    )


def focus_parquet(items: Sequence[GetUsageResultItem], columns: Columns, focus: Focus) -> bytes:
    """FOCUS rows as a Parquet file: costs as decimals (exact), periods as UTC timestamps."""
    names, rows = focus_rows(items, columns, focus)
    scale = _scale(row["BilledCost"] for row in rows)
    buffer = io.BytesIO()
    try:
        import polars as pl
    except ImportError:
        _pandas_parquet(names, rows, buffer)
        return buffer.getvalue()
    data = {name: [row[name] for row in rows] for name in names}
    types: dict[str, Any] = dict.fromkeys(names, pl.String)
    types |= dict.fromkeys(COSTS, pl.Decimal(DECIMAL_DIGITS, scale))
    for name in ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd"):
        types[name] = pl.Datetime("us", "UTC")
    for name in ("ConsumedQuantity", "PricingQuantity", *names[len(COLUMNS) :]):
        if all(type(v) is int and v in _INT64 for v in data[name] if v is not None):
            types[name] = pl.Int64
        else:  # a fraction, or an int past 64 bits
            types[name] = pl.Float64
            data[name] = [None if v is None else _float(v) for v in data[name]]
    frame = pl.DataFrame([pl.Series(name, data[name], dtype=types[name]) for name in names])
    frame.write_parquet(buffer)
    return buffer.getvalue()


def _scale(costs: Iterable[Decimal]) -> int:
    """The decimal places Parquet's cost columns need to hold every cost exactly; an
    `OutputError` when that takes more than DECIMAL_DIGITS digits (far past any real cost)."""
    costs = list(costs)
    scale = max((max(0, -int(cost.as_tuple().exponent)) for cost in costs), default=0)
    whole = max((max(1, cost.adjusted() + 1) for cost in costs), default=1)
    if whole + scale > DECIMAL_DIGITS:
        raise OutputError(
            f"the costs need {whole + scale} digits to be written exactly, more than Parquet's "
            f"decimals hold ({DECIMAL_DIGITS}): write CSV instead"
        )
    return scale


def _pandas_parquet(names: list[str], rows: list[dict[str, Any]], buffer: IO[bytes]) -> None:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=names)
    for name in ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd"):
        frame[name] = pd.to_datetime(frame[name], utc=True)
    frame.to_parquet(buffer, engine="pyarrow", index=False)
