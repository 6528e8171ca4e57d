"""`opperai_usage.sync.usage_source` in a dlt pipeline of the test's own, into a real DuckDB file
(and Parquet files), against the kit as a process with a fixed `now` (data from 2027-11-22 to
2028-01-20): the table read back equals one `get_usage` over the synced range.

dlt and `opperai_usage.sync` (which imports it) are imported by the tests that use them: every
test worker imports this module, and dlt takes half a second of CPU."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from opperai_usage import Opper
from opperai_usage.errors import InvalidArgumentError
from tests.support import API_KEY
from tests.support.fixed_kit import kit_at
from tests.support.servers import LocalServer
from tests.support.sync import UTC, expected_rows, table_rows

NOW = dt.datetime(2028, 1, 20, 12, tzinfo=UTC)
SINCE = dt.datetime(2028, 1, 10, tzinfo=UTC)
GROUP_BY = ["model", "project.name"]
FIELDS = ["total_tokens"]
QUERY: dict[str, Any] = {"granularity": "hour", "group_by": GROUP_BY, "fields": FIELDS}
TABLE = "SELECT time_bucket, model, project_name, total_tokens, cost, count FROM opper.usage"


@pytest.fixture(scope="module")
def kit() -> Iterator[LocalServer]:
    with kit_at(NOW) as server:
        yield server


@pytest.fixture
def fixed(kit: LocalServer, monkeypatch: pytest.MonkeyPatch) -> LocalServer:
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")  # nothing leaves the machine
    kit.reset()
    return kit


def sync(
    kit: LocalServer, folder: Path, until: dt.datetime = NOW, machine: str = "dlt", **options: Any
) -> Any:
    """One run into `folder`/usage.duckdb, dlt's working folder `folder`/`machine`; dlt's state
    of the table afterwards."""
    import dlt

    from opperai_usage.sync import usage_source

    pipeline = dlt.pipeline(
        "opper_usage",
        pipelines_dir=str(folder / machine),
        destination=dlt.destinations.duckdb(str(folder / "usage.duckdb")),
        dataset_name="opper",
    )
    with Opper(http_bearer=API_KEY, server_url=kit.url) as opper:
        source = usage_source(opper, **{**QUERY, "since": SINCE, "until": until, **options})
        pipeline.run(source)
    return pipeline.state["sources"]["opper_usage"]["resources"]["usage"]


def usage(kit: LocalServer, start: dt.datetime, end: dt.datetime) -> list[Any]:
    with Opper(http_bearer=API_KEY, server_url=kit.url) as opper:
        return opper.analytics.get_usage(from_date=start, to_date=end, **QUERY)


def test_the_table_is_one_get_usage_over_the_synced_range(
    fixed: LocalServer, tmp_path: Path
) -> None:
    state = sync(fixed, tmp_path, window=48)  # five windows
    assert (state["synced_from"], state["synced_to"]) == (SINCE.isoformat(), NOW.isoformat())
    items = usage(fixed, SINCE, NOW)
    assert len(items) > 100
    held = table_rows(TABLE, 3, tmp_path / "usage.duckdb")
    assert held == expected_rows(items, GROUP_BY, FIELDS)
    assert sum(row[-2] for row in held) == sum(Decimal(item.cost) for item in items)
    assert state["last_run"]["rows"] == state["last_run"]["inserted"] == len(items)
    untagged = [row for row in held if "(untagged)" in row[1:3]]
    assert untagged, "the kit leaves some events without a project: they read (untagged)"
    types = table_rows("DESCRIBE opper.usage", 1, tmp_path / "usage.duckdb")
    assert [(name, kind, null) for name, kind, null, *_ in types] == sorted(
        [
            ("time_bucket", "TIMESTAMP WITH TIME ZONE", "NO"),
            ("model", "VARCHAR", "NO"),
            ("project_name", "VARCHAR", "NO"),
            ("total_tokens", "DOUBLE", "YES"),
            ("cost", "DECIMAL(38,12)", "NO"),
            ("count", "BIGINT", "YES"),
        ]
    )


def test_a_second_run_changes_nothing_and_fetches_only_the_refetch_window(
    fixed: LocalServer, tmp_path: Path
) -> None:
    sync(fixed, tmp_path)
    before = table_rows(TABLE, 3, tmp_path / "usage.duckdb")
    fixed.reset()
    state = sync(fixed, tmp_path)
    assert table_rows(TABLE, 3, tmp_path / "usage.duckdb") == before
    run = state["last_run"]
    assert (run["from"], run["to"]) == ((NOW - dt.timedelta(days=1)).isoformat(), NOW.isoformat())
    assert run["unchanged"] == run["rows"] > 0
    assert run["inserted"] == run["updated"] == run["removed"] == 0
    (request,) = fixed.requests()
    assert request["query"]["from_date"] == ["2028-01-19T12:00:00Z"]


def test_a_later_run_continues_where_the_last_stopped(fixed: LocalServer, tmp_path: Path) -> None:
    middle = dt.datetime(2028, 1, 15, 7, 30)  # no offset: UTC, as the API reads dates
    sync(fixed, tmp_path, until=middle, since=SINCE.replace(tzinfo=None))
    # The same keys in another order are the same table.
    state = sync(fixed, tmp_path, refetch=dt.timedelta(hours=2), group_by=GROUP_BY[::-1])
    assert state["last_run"]["from"] == "2028-01-15T05:00:00+00:00"  # its bucket's start
    held = table_rows(TABLE, 3, tmp_path / "usage.duckdb")
    assert held == expected_rows(usage(fixed, SINCE, NOW), GROUP_BY, FIELDS)


def test_another_machine_continues_from_the_state_in_the_destination(
    fixed: LocalServer, tmp_path: Path
) -> None:
    sync(fixed, tmp_path, until=NOW - dt.timedelta(days=2))
    fixed.reset()
    state = sync(fixed, tmp_path, machine="elsewhere")  # a working folder of its own, empty
    assert state["last_run"]["from"] == (NOW - dt.timedelta(days=3)).isoformat()
    assert state["synced_from"] == SINCE.isoformat()
    (request,) = fixed.requests()
    assert request["query"]["from_date"] == [f"{NOW - dt.timedelta(days=3):%Y-%m-%dT%H:%M:%SZ}"]
    held = table_rows(TABLE, 3, tmp_path / "usage.duckdb")
    assert held == expected_rows(usage(fixed, SINCE, NOW), GROUP_BY, FIELDS)


def test_an_upstream_change_inside_the_refetch_window_is_corrected(
    fixed: LocalServer, tmp_path: Path
) -> None:
    sync(fixed, tmp_path)
    answer = [item.model_dump() for item in usage(fixed, NOW - dt.timedelta(days=1), NOW)]
    changed, gone = answer[0], answer[1]
    assert changed["time_bucket"] == gone["time_bucket"]  # two groups of one bucket
    changed["cost"] = str(Decimal(changed["cost"]) + Decimal("0.000001"))
    late = {**answer[-1], "model": "late-model", "cost": "1.250000"}
    upstream = [item for item in answer if item is not gone] + [late]
    for item in upstream:
        item["time_bucket"] = item["time_bucket"].isoformat()
    fixed.script({"json": upstream})
    state = sync(fixed, tmp_path)
    run = state["last_run"]
    assert (run["inserted"], run["updated"], run["removed"]) == (1, 1, 1)
    held = table_rows(TABLE, 3, tmp_path / "usage.duckdb")
    older = usage(fixed, SINCE, NOW - dt.timedelta(days=1))
    assert held == expected_rows([*older, *(_item(item) for item in upstream)], GROUP_BY, FIELDS)
    keys = [row[:3] for row in held]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("batch_rows", [50_000, 2])
def test_a_null_tag_and_the_text_untagged_are_one_row_their_sums_added(
    fixed: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_rows: int
) -> None:
    """Also when they would straddle two batches: a batch ends where a bucket does."""
    import opperai_usage.sync

    monkeypatch.setattr(opperai_usage.sync, "BATCH_ROWS", batch_rows)
    bucket = "2028-01-20T10:00:00Z"
    fixed.script(
        {"json": [
            {"time_bucket": "2028-01-20T09:00:00Z", "cost": "0.500000", "model": "gpt-4o",
             "project.name": "alpha", "total_tokens": 9, "count": 4},
            {"time_bucket": bucket, "cost": "0.100000", "model": None, "project.name": "alpha",
             "total_tokens": 5, "count": 2},
            {"time_bucket": bucket, "cost": "0.020000", "model": "(untagged)",
             "project.name": "alpha", "total_tokens": 7, "count": 1},
            {"time_bucket": bucket, "cost": "0.003000", "model": "gpt-4o", "project.name": "alpha",
             "total_tokens": 1, "count": 1},
        ]}
    )  # fmt: skip
    state = sync(fixed, tmp_path, since=NOW - dt.timedelta(hours=2))
    assert state["last_run"]["rows"] == 4
    when = dt.datetime(2028, 1, 20, 10, tzinfo=UTC)
    assert table_rows(TABLE, 3, tmp_path / "usage.duckdb") == [
        (when - dt.timedelta(hours=1), "gpt-4o", "alpha", 9.0, Decimal("0.5"), 4),
        (when, "(untagged)", "alpha", 12.0, Decimal("0.12"), 3),
        (when, "gpt-4o", "alpha", 1.0, Decimal("0.003"), 1),
    ]


def test_tags_of_any_json_value_are_text_and_fields_that_are_no_numbers_null(
    fixed: LocalServer, tmp_path: Path
) -> None:
    bucket = "2028-01-20T10:00:00Z"
    base = {"time_bucket": bucket, "cost": "0.000001", "project.name": "alpha"}
    fixed.script(
        {"json": [
            {**base, "model": {"name": "gpt-4o", "v": [1, 2]}, "total_tokens": "12"},
            {**base, "model": 7, "total_tokens": True},
            {**base, "model": "=cmd|' /C calc'!A0", "total_tokens": 10**400},
        ]}
    )  # fmt: skip
    sync(fixed, tmp_path, since=NOW - dt.timedelta(hours=2))
    held = table_rows(TABLE, 3, tmp_path / "usage.duckdb")
    assert [(row[1], row[3]) for row in held] == [
        ("7", None),
        ("=cmd|' /C calc'!A0", float("inf")),
        ('{"name": "gpt-4o", "v": [1, 2]}', None),
    ]


def test_a_cost_with_more_decimals_than_the_column_holds_fails_the_run(
    fixed: LocalServer, tmp_path: Path
) -> None:
    from dlt.pipeline.exceptions import PipelineStepFailed

    sync(fixed, tmp_path)
    before = table_rows(TABLE, 3, tmp_path / "usage.duckdb")
    item = {"time_bucket": "2028-01-20T10:00:00Z", "cost": "0.0000000000001", "model": "m"}
    fixed.script({"json": [item]})
    with pytest.raises(PipelineStepFailed, match="data loss"):
        sync(fixed, tmp_path)
    assert table_rows(TABLE, 3, tmp_path / "usage.duckdb") == before


def _item(data: dict[str, Any]) -> Any:
    from opperai_usage.models import GetUsageResultItem

    return GetUsageResultItem.from_dict(json.loads(json.dumps(data)))


def test_a_run_asking_for_another_set_is_refused_before_any_request(
    fixed: LocalServer, tmp_path: Path
) -> None:
    from dlt.pipeline.exceptions import PipelineStepFailed

    from opperai_usage.sync import TableMismatchError

    sync(fixed, tmp_path)
    fixed.reset()
    with pytest.raises(PipelineStepFailed) as raised:
        sync(fixed, tmp_path, granularity="day", group_by=["model"])
    cause = raised.value.__cause__ or raised.value.__context__
    while cause is not None and not isinstance(cause, TableMismatchError):
        cause = cause.__cause__ or cause.__context__
    assert cause is not None
    assert str(cause).startswith(
        "the table 'usage' holds granularity hour, group by model, project.name, fields "
        "total_tokens; this run asks for granularity day, group by model, fields total_tokens"
    )
    assert fixed.requests() == []
    sync(fixed, tmp_path, granularity="day", group_by=["model"], table="daily")  # its own table
    daily = table_rows("SELECT count(*) FROM opper.daily", 1, tmp_path / "usage.duckdb")
    assert daily[0][0] > 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"group_by": ["project.name", "project_name"]}, "would both be the column"),
        ({"group_by": ["Count"]}, "would be the column 'count'"),
        ({"group_by": ["model"], "fields": ["model"]}, "one of the fields too"),
        ({"granularity": "fortnight"}, "granularity"),
        ({"refetch": dt.timedelta(hours=-1)}, "refetch"),
        ({"since": "2026-01-01"}, "since must be a datetime or a timedelta"),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(
    fixed: LocalServer, options: dict[str, Any], message: str
) -> None:
    from opperai_usage.sync import usage_source

    with (
        Opper(http_bearer=API_KEY, server_url=fixed.url) as opper,
        pytest.raises(InvalidArgumentError, match=message),
    ):
        usage_source(opper, **{**QUERY, **options})
    assert fixed.requests() == []


def test_the_key_is_stored_nowhere(fixed: LocalServer, tmp_path: Path) -> None:
    sync(fixed, tmp_path)
    sync(fixed, tmp_path)
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert len(files) > 5
    assert [path for path in files if API_KEY.encode() in path.read_bytes()] == []


def test_parquet_files_on_the_filesystem_destination(fixed: LocalServer, tmp_path: Path) -> None:
    """Plain Parquet files cannot be updated: as a Delta table (Parquet files and a log of
    which are current), rows are upserted; DuckDB reads the current files back."""
    import dlt
    from deltalake import DeltaTable

    from opperai_usage.sync import usage_source

    pipeline = dlt.pipeline(
        "opper_usage_files",
        pipelines_dir=str(tmp_path / "dlt"),
        destination=dlt.destinations.filesystem((tmp_path / "lake").as_uri()),
        dataset_name="opper",
    )
    for end in (NOW - dt.timedelta(hours=30), NOW):
        with Opper(http_bearer=API_KEY, server_url=fixed.url) as opper:
            source = usage_source(opper, **QUERY, since=SINCE, until=end, table_format="delta")
            pipeline.run(source, loader_file_format="parquet")
    run = pipeline.state["sources"]["opper_usage"]["resources"]["usage"]["last_run"]
    assert run["from"] == (NOW - dt.timedelta(hours=54)).isoformat()
    assert run["rows"] > 0
    assert run["inserted"] is None  # not known: the files are not read back
    files = DeltaTable(str(tmp_path / "lake" / "opper" / "usage")).file_uris()
    assert files
    assert all(name.endswith(".parquet") for name in files)
    query = f"SELECT * FROM read_parquet({files!r})"  # noqa: S608
    assert table_rows(query, 3) == expected_rows(usage(fixed, SINCE, NOW), GROUP_BY, FIELDS)
