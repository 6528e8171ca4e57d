"""A usage history kept in sync by dlt: `usage_source(opper, ...)` is a dlt source of one table,
which `opper-usage sync` loads and which users put in pipelines of their own (the `sync` extra:
`pip install "opperai-usage[sync]"`; `import opperai_usage` never loads dlt).

The table: `time_bucket` (a timestamp with time zone), one text column per group-by key (a
missing tag is `UNTAGGED`, never NULL, since the column is part of the key), each field (a
double), `cost` (DECIMAL(38, 12), exact), `count` (the events, a bigint; NULL where the API
did not send it). Column names are the keys as dlt's default naming
convention writes them (`column_name`); two keys that would share a name are refused.

Each run fetches from the bucket holding `until - refetch` after the last run's end (on the
first run, from `since`) up to `until` (now), with `iter_usage`, and replaces every bucket it
fetched: rows are merged on (`time_bucket`, group columns), and a row of a re-fetched bucket
that upstream no longer has is removed. What a table holds (granularity, group-by keys,
fields) and how far it is synced live in dlt's state, which dlt keeps in the destination
beside the table: another machine continues where the last run stopped, and a run asking for
another set is refused (`TableMismatchError`) before anything is fetched. The key is in none
of it: the source holds the client, never its key.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from collections.abc import Iterator, Sequence
from itertools import repeat
from operator import attrgetter
from typing import Any, Literal

try:
    import dlt
    import pyarrow as pa
    import pyarrow.compute as pc
    from dlt.common.normalizers.naming.snake_case import NamingConvention
    from dlt.extract.source import DltSource
except ImportError as missing:  # pragma: no cover - the test of the extra runs a subprocess
    raise ImportError(
        f"opperai_usage.sync needs dlt and pyarrow ({missing.name} is missing): "
        'pip install "opperai-usage[sync]"'
    ) from missing

from . import _windows
from ._analytics import DEFAULT_CONCURRENCY, DEFAULT_WINDOW
from ._chargeback import UNTAGGED  # a group-by key's value where an item has no such tag
from ._client import Opper
from ._columns import _float, counts, value_text
from ._sync_query import check_sync_query
from ._validation import invalid
from .models import GetUsageResultItem, Granularity

__all__ = [
    "COST_TYPE",
    "DEFAULT_REFETCH",
    "DEFAULT_SINCE",
    "DEFAULT_TABLE",
    "UNTAGGED",
    "TableMismatchError",
    "column_name",
    "usage_source",
]

#: The first run's start when `since` is not given: 30 days before `until`.
DEFAULT_SINCE = dt.timedelta(days=30)
#: How far before the last run's end a run starts again, for buckets still filling then.
DEFAULT_REFETCH = dt.timedelta(days=1)
DEFAULT_TABLE = "usage"
#: The source's name: dlt's schema, and where its state is kept.
SOURCE_NAME = "opper_usage"
#: `cost`: 38 digits, 12 after the point (the API sends 6): exact, and what DuckDB, Postgres and
#: Parquet hold natively. A cost with more decimals fails the load instead of being rounded.
COST_TYPE = pa.decimal128(38, 12)
#: Rows per Arrow table handed to dlt.
BATCH_ROWS = 50_000
_UTC = dt.timezone.utc
_TIME_BUCKET, _COST = attrgetter("time_bucket"), attrgetter("cost")
_EXTRAS = attrgetter("additional_properties")
_NAMING = NamingConvention()
_RESERVED = ("time_bucket", "cost", "count")


class TableMismatchError(ValueError):
    """The table holds another granularity, group-by keys or fields than this run asks for."""


def column_name(key: str) -> str:
    """The column for a group-by key or field: dlt's default (snake_case) name for it, e.g.
    `project.name` -> `project_name`, `projectName` -> `project_name`, `1st` -> `_1st`."""
    return str(_NAMING.normalize_identifier(key))


def _columns(group_by: Sequence[str], fields: Sequence[str]) -> dict[str, str]:
    """Each key's column; raises `InvalidArgumentError` when two share one, or one would be a
    column every table has."""
    named: dict[str, str] = {}
    for kind, keys in (("group_by", group_by), ("fields", fields)):
        for key in keys:
            name = column_name(key)
            clash = next((other for other, used in named.items() if used == name), None)
            if clash is not None:
                raise invalid(kind, f"{key!r} and {clash!r} would both be the column {name!r}")
            if name in _RESERVED or name.startswith("_dlt"):
                raise invalid(kind, f"{key!r} would be the column {name!r}, which the table has")
            named[key] = name
    return named


def _shape(what: dict[str, Any]) -> tuple[str, frozenset[str], frozenset[str]]:
    """What a table holds, whatever order its keys were given in."""
    return what["granularity"], frozenset(what["group_by"]), frozenset(what["fields"])


def _describe(what: dict[str, Any]) -> str:
    groups = ", ".join(what["group_by"]) or "nothing"
    fields = ", ".join(what["fields"]) or "none"
    return f"granularity {what['granularity']}, group by {groups}, fields {fields}"


def _utc(moment: dt.datetime) -> dt.datetime:
    """`moment` in UTC; without an offset it is UTC already, as the API reads dates."""
    return moment.replace(tzinfo=_UTC) if moment.tzinfo is None else moment.astimezone(_UTC)


def _bucket_start(moment: dt.datetime, granularity: Granularity) -> dt.datetime:
    start = _windows.start(_windows.index(moment, granularity), granularity)
    assert start is not None  # the bucket of a datetime starts inside the datetime range
    return start


def _tags(values: list[Any]) -> tuple[pa.Array, bool]:
    """A group-by column: text, `UNTAGGED` for a missing tag, other JSON values as text; and
    whether two values may have become one (null and the text `UNTAGGED`, an object and its
    JSON text)."""
    types = set(map(type, values))
    merging = not types <= {str, type(None)} or (type(None) in types and UNTAGGED in values)
    if not types <= {str, type(None)}:
        values = [v if v is None else value_text(v) for v in values]
    return pc.fill_null(pa.array(values, pa.string()), UNTAGGED), merging


def _numbers(values: list[Any]) -> pa.Array:
    """A field's column: its numbers as doubles; anything else (the API sends none) null."""
    if set(map(type, values)) <= {int, float, type(None)}:
        with contextlib.suppress(OverflowError, pa.ArrowInvalid):  # an int past 64 bits
            return pa.array(values, pa.float64())
    return pa.array([_number(v) for v in values], pa.float64())


def _number(value: object) -> float | None:
    """A number as a double (an int past its range as an infinity), anything else as None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _float(value)
    return None


Rows = dict[tuple[Any, ...], tuple[Any, ...]]


def _held_rows(table: str, keys: Sequence[str], values: Sequence[str], begin: dt.datetime) -> Rows:
    """The table's rows from `begin` on, as they were before this run: (time bucket, group
    values) to (fields, cost); to tell inserted rows from updated ones."""
    from dlt.destinations.exceptions import DatabaseUndefinedRelation

    try:
        with dlt.current.pipeline().sql_client() as client:
            if not client.has_dataset():
                return {}
            name = client.make_qualified_table_name(table)
            selected = ", ".join(map(client.escape_column_name, [*keys, *values]))
            query = f"SELECT {selected} FROM {name} WHERE time_bucket >= %s"  # noqa: S608
            found = client.execute_sql(query, begin) or []
    except DatabaseUndefinedRelation:
        return {}
    return {tuple(row[: len(keys)]): tuple(row[len(keys) :]) for row in found}


def _count(held: Rows | None, table: pa.Table, keys: list[str], run: dict[str, Any]) -> None:
    """Adds a batch's rows to the run's counts: inserted, updated or unchanged."""
    if held is None:  # not known
        return
    if not held:
        run["inserted"] += table.num_rows
        return
    values = [name for name in table.column_names if name not in keys]
    key_rows = zip(*(table[name].to_pylist() for name in keys), strict=True)
    value_rows = zip(*(table[name].to_pylist() for name in values), strict=True)
    for key, value in zip(key_rows, value_rows, strict=True):
        old = held.pop(key, None)
        outcome = "inserted" if old is None else "unchanged" if old == value else "updated"
        run[outcome] += 1


def _whole_buckets(items: Iterator[GetUsageResultItem]) -> Iterator[list[GetUsageResultItem]]:
    """`items` in lists of about BATCH_ROWS, each ending where a time bucket does (a bucket
    larger than that is a list of its own), so that one bucket's rows meet in one batch."""
    carried: list[GetUsageResultItem] = []
    while chunk := carried + list(itertools.islice(items, BATCH_ROWS)):
        carried = []
        if len(chunk) >= BATCH_ROWS:
            last, cut = chunk[-1].time_bucket, len(chunk) - 1
            while cut and chunk[cut - 1].time_bucket == last:
                cut -= 1
            chunk, carried = (chunk[:cut], chunk[cut:]) if cut else (chunk, [])
        yield chunk


def _merged(rows: list[dict[str, Any]], keys: list[str]) -> list[dict[str, Any]]:
    """Rows of one key summed into one: a tag the API sent as null and one it sent as the text
    `(untagged)` are one group here (as an object and its JSON text are)."""
    sums: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[name] for name in keys)
        held = sums.setdefault(key, row)
        if held is not row:
            for name, value in row.items():
                if name not in keys:
                    held[name] = _add(held[name], value)
    return list(sums.values())


def _add(one: Any, other: Any) -> Any:
    return other if one is None else one if other is None else one + other


def usage_source(
    opper: Opper,
    *,
    granularity: Granularity | str = Granularity.DAY,
    group_by: Sequence[str] = (),
    fields: Sequence[str] = (),
    since: dt.datetime | dt.timedelta = DEFAULT_SINCE,
    refetch: dt.timedelta = DEFAULT_REFETCH,
    until: dt.datetime | None = None,
    table: str = DEFAULT_TABLE,
    table_format: Literal["delta", "iceberg"] | None = None,
    window: int = DEFAULT_WINDOW,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> DltSource:
    """A dlt source of one table, `table`, of usage by `granularity`, `group_by` and `fields`.

    The first run loads from `since` (a datetime, or how long before `until`); each later one
    from `refetch` before the last one's end. Both are taken back to the start of their bucket.
    `until` is the end (default: now, when the run starts). `window` and `concurrency` are
    `iter_usage`'s. `table_format="delta"` is for the filesystem destination, whose plain
    Parquet files cannot be updated: rows are then upserted on their key (a row upstream no
    longer has is kept), and the run's counts other than `rows` are not known (`None`).

    Bad arguments raise `InvalidArgumentError` here; a table that holds another set raises
    `TableMismatchError` when the pipeline runs, before any request."""
    group_by, fields = list(dict.fromkeys(group_by)), list(dict.fromkeys(fields))
    check_sync_query(opper, granularity, group_by, fields, window, concurrency)
    names = _columns(group_by, fields)
    if not isinstance(refetch, dt.timedelta) or refetch < dt.timedelta(0):
        raise invalid("refetch", f"must be a timedelta of 0 or more, got {refetch!r}")
    if not isinstance(since, dt.datetime | dt.timedelta):
        raise invalid("since", f"must be a datetime or a timedelta, got {since!r}")
    if until is not None and not isinstance(until, dt.datetime):
        raise invalid("until", f"must be a datetime, got {until!r}")
    unit = Granularity(granularity)
    wanted = {"granularity": unit.value, "group_by": group_by, "fields": fields}
    schema = pa.schema(
        [
            pa.field("time_bucket", pa.timestamp("us", tz="UTC"), nullable=False),
            *(pa.field(names[key], pa.string(), nullable=False) for key in group_by),
            *(pa.field(names[key], pa.float64()) for key in fields),
            pa.field("cost", COST_TYPE, nullable=False),
            pa.field("count", pa.int64()),
        ]
    )
    hints: dict[str, Any] = {
        "time_bucket": {"data_type": "timestamp", "timezone": True, "nullable": False},
        **{names[key]: {"data_type": "text", "nullable": False} for key in group_by},
        **{names[key]: {"data_type": "double", "nullable": True} for key in fields},
        "cost": {"data_type": "decimal", "precision": 38, "scale": 12, "nullable": False},
        "count": {"data_type": "bigint", "nullable": True},
    }

    key_columns = ["time_bucket", *(names[key] for key in group_by)]
    value_columns = [*(names[key] for key in fields), "cost", "count"]

    def batch(items: list[GetUsageResultItem], held: Rows | None, run: dict[str, Any]) -> pa.Table:
        extras = list(map(_EXTRAS, items))
        tags = [_tags(list(map(dict.get, extras, repeat(key)))) for key in group_by]
        table = pa.Table.from_arrays(
            [
                pa.array(list(map(_TIME_BUCKET, items)), schema.field("time_bucket").type),
                *(column for column, _ in tags),
                *(_numbers(list(map(dict.get, extras, repeat(key)))) for key in fields),
                pa.array(list(map(_COST, items)), pa.string()).cast(COST_TYPE),  # exact
                pa.array(counts(items), pa.int64()),
            ],
            schema=schema,
        )
        merging = any(may for _, may in tags)
        if merging and table.group_by(key_columns).aggregate([]).num_rows < table.num_rows:
            table = pa.Table.from_pylist(_merged(table.to_pylist(), key_columns), schema=schema)
        _count(held, table, key_columns, run)
        return table

    def rows() -> Iterator[pa.Table]:
        state = dlt.current.resource_state()
        holds = state.get("table")
        if holds is not None and _shape(holds) != _shape(wanted):
            raise TableMismatchError(
                f"the table {table!r} holds {_describe(holds)}; this run asks for "
                f"{_describe(wanted)}: ask for what it holds, or sync into another table"
            )
        end = _utc(until or dt.datetime.now(_UTC))
        synced = state.get("synced_to")
        if synced is not None:
            begin = dt.datetime.fromisoformat(synced) - refetch
        else:
            begin = since if isinstance(since, dt.datetime) else end - since
        begin = _bucket_start(_utc(begin), unit)
        state["table"] = wanted
        counted = 0 if table_format is None else None  # files cannot be read back here
        run: dict[str, Any] = {
            "rows": 0,
            "inserted": counted,
            "updated": counted,
            "unchanged": counted,
        }
        run["removed"] = counted
        state["last_run"] = {"from": begin.isoformat(), "to": end.isoformat(), **run}
        if begin < end:
            held = None
            if table_format is None:
                held = _held_rows(table, key_columns, value_columns, begin)
            items = opper.analytics.iter_usage(
                from_date=begin,
                to_date=end,
                granularity=unit,
                group_by=group_by or None,
                fields=fields or None,
                window=window,
                concurrency=concurrency,
            )
            fetched: set[dt.datetime] = set()
            try:
                for chunk in _whole_buckets(items):
                    run["rows"] += len(chunk)
                    if held:
                        fetched.update(map(_TIME_BUCKET, chunk))
                    yield batch(chunk, held, run)
            finally:
                items.close()
            if held is not None:  # what is left of a bucket fetched again is gone upstream
                run["removed"] = sum(key[0] in fetched for key in held)
            state["last_run"] |= run
        state["synced_from"] = state.get("synced_from") or begin.isoformat()
        if synced is None or dt.datetime.fromisoformat(synced) < end:
            state["synced_to"] = end.isoformat()

    # Delete-insert on the time bucket also removes what a bucket fetched again no longer
    # has; a table format (Delta, Iceberg) on the filesystem destination can only upsert.
    merge: dict[str, Any] = {"merge_key": "time_bucket"}
    write: Any = {"disposition": "merge", "strategy": "delete-insert"}
    if table_format is not None:
        merge, write = (
            {"table_format": table_format},
            {"disposition": "merge", "strategy": "upsert"},
        )
    resource = dlt.resource(
        rows,
        name=table,
        write_disposition=write,
        primary_key=key_columns,
        columns=hints,
        **merge,
    )

    @dlt.source(name=SOURCE_NAME)
    def opper_usage() -> Any:
        return resource

    return opper_usage()
