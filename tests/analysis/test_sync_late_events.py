"""Late events (issue 21's test): the kit with an ingest delay, a sync, `now` moved on, a sync
again; the table then equals a fresh `get_usage` over the synced range, the late events in."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from opperai_usage import Opper
from opperai_usage.testing import UsageServer
from tests.support.sync import UTC, expected_rows, table_rows

NOW = dt.datetime(2026, 11, 15, 12, tzinfo=UTC)
SINCE = NOW - dt.timedelta(days=5)
QUERY: dict[str, Any] = {
    "granularity": "hour",
    "group_by": ["model", "customer_id"],
    "fields": ["total_tokens"],
}
TABLE = "SELECT time_bucket, model, customer_id, total_tokens, cost, count FROM opper.usage"


def test_late_events_are_in_the_table_after_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dlt  # here, not at the top: every test worker imports this module

    from opperai_usage.sync import usage_source

    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    pipeline = dlt.pipeline(
        "opper_usage",
        pipelines_dir=str(tmp_path / "dlt"),
        destination=dlt.destinations.duckdb(str(tmp_path / "usage.duckdb")),
        dataset_name="opper",
    )
    later = NOW + dt.timedelta(hours=8)  # past the ingest delay: the last day's events are in
    with (
        UsageServer(seed=3, now=NOW, ingest_delay=dt.timedelta(hours=6)) as server,
        Opper(api_key="test", server_url=server.url) as opper,
    ):
        pipeline.run(usage_source(opper, **QUERY, since=SINCE, until=NOW))
        early = table_rows(TABLE, 3, tmp_path / "usage.duckdb")
        server.now = later
        pipeline.run(usage_source(opper, **QUERY, since=SINCE, until=later))
        fresh = opper.analytics.get_usage(from_date=SINCE, to_date=later, **QUERY)
    held = table_rows(TABLE, 3, tmp_path / "usage.duckdb")
    assert held == expected_rows(fresh, QUERY["group_by"], QUERY["fields"])
    late = sum(row[-1] for row in held if row[0] < NOW) - sum(row[-1] for row in early)
    assert late > 0, "events before NOW that arrived after it are in the table"
    assert any(row[2] == "(untagged)" for row in held)
