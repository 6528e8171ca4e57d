"""A synced table read back with DuckDB, and the rows one `get_usage` says it should hold."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from opperai_usage._generated.types import Unset
from opperai_usage.models import GetUsageResultItem

UTC = dt.timezone.utc
Row = tuple[Any, ...]


def table_rows(query: str, keys: int, db: Path | None = None) -> list[Row]:
    """The rows `query` selects (in DuckDB, on `db` when given, read only), ordered by their
    first `keys` columns (the time bucket and the group values)."""
    import duckdb

    connection = duckdb.connect(str(db) if db else ":memory:", read_only=db is not None)
    try:
        rows = connection.execute(query).fetchall()
    finally:
        connection.close()
    rows = [(_utc(row[0]), *row[1:]) for row in rows]
    return sorted(rows, key=lambda row: row[:keys])


def _utc(value: Any) -> Any:
    return value.astimezone(UTC) if isinstance(value, dt.datetime) else value


def expected_rows(
    items: Iterable[GetUsageResultItem], group_by: Sequence[str], fields: Sequence[str]
) -> list[Row]:
    """The table's rows for `items`: the columns in the table's order, a missing tag as
    `(untagged)`, fields as floats, the cost as an exact Decimal, then the count."""
    rows = [
        (
            item.time_bucket.astimezone(UTC),
            *("(untagged)" if item.get(key) is None else item[key] for key in group_by),
            *(None if item.get(key) is None else float(item[key]) for key in fields),
            Decimal(item.cost),
            None if isinstance(item.count, Unset) else item.count,
        )
        for item in items
    ]
    return sorted(rows, key=lambda row: row[: 1 + len(group_by)])
