"""`opper-usage --format focus`: FOCUS 1.2 rows as CSV, and as Parquet for `-o FILE.parquet`
(with polars, and with pandas and pyarrow when polars is missing), read back with the csv
module and DuckDB: every mandatory column present and non-null where FOCUS requires it, and
sum(BilledCost) equal to the total cost, exactly."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from opperai_usage._cli._focus import COSTS, MANDATORY, NULLABLE
from tests.support.command_line import MODULE, environment, run
from tests.support.servers import LocalServer

ACCOUNT = ["--billing-account", "acct-0042"]
PROJECTS: list[str | None] = ["alpha", "=cmd|' /C calc'!A0", None]


def answer() -> list[dict[str, Any]]:
    """Two days, three projects (one a formula, one null) and two models."""
    items = []
    for day in (1, 2):
        for index, project in enumerate(PROJECTS):
            for model in ("gpt-4o", "claude-sonnet-4"):
                items.append(
                    {
                        "time_bucket": f"2026-11-{day:02d}T00:00:00Z",
                        "cost": f"0.{day}{index}{len(model)}001",
                        "count": day + index,
                        "total_tokens": 1000 * day + index,
                        "project.name": project,
                        "model": model,
                    }
                )
    return items


GROUPS = ["--group-by", "project.name", "--group-by", "model", "--field", "total_tokens"]


def focus_csv(
    local: LocalServer, *args: str, env: dict[str, str] | None = None
) -> list[dict[str, str]]:
    result = run("--server-url", local.url, "--format", "focus", *args, env=env)
    assert (result.code, result.err) == (0, ""), result.err
    assert result.stdout.startswith(b"BilledCost,")
    return list(csv.DictReader(io.StringIO(result.out, newline="")))


def check_mandatory(rows: list[dict[str, Any]], empty: object) -> None:
    for row in rows:
        assert set(MANDATORY) <= set(row)
        missing = [
            name for name in MANDATORY if row[name] in (None, empty) and name not in NULLABLE
        ]
        assert missing == []


def test_focus_csv_maps_each_item_to_one_row(local: LocalServer) -> None:
    local.script({"json": answer()})
    rows = focus_csv(local, *GROUPS, *ACCOUNT)
    check_mandatory(rows, "")
    assert len(rows) == len(answer())
    assert sum(Decimal(row["BilledCost"]) for row in rows) == sum(
        Decimal(item["cost"]) for item in answer()
    )
    for row, item in zip(rows, answer(), strict=True):
        assert {row[name] for name in COSTS} == {item["cost"]}
        assert row["ChargePeriodStart"] == item["time_bucket"]
        start = dt.datetime.fromisoformat(item["time_bucket"].replace("Z", "+00:00"))
        assert row["ChargePeriodEnd"] == f"{start + dt.timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}"
        assert (row["BillingPeriodStart"], row["BillingPeriodEnd"]) == (
            "2026-11-01T00:00:00Z",
            "2026-12-01T00:00:00Z",
        )
        assert (row["BillingAccountId"], row["BillingCurrency"]) == ("acct-0042", "USD")
        assert (row["ChargeCategory"], row["ServiceCategory"]) == (
            "Usage",
            "AI and Machine Learning",
        )
        assert {row[n] for n in ("ProviderName", "PublisherName", "InvoiceIssuerName")} == {"Opper"}
        assert (row["ConsumedQuantity"], row["ConsumedUnit"]) == (str(item["count"]), "Requests")
        assert row["x_total_tokens"] == str(item["total_tokens"])
        tags = json.loads(row["Tags"])
        assert tags.get("project.name") == item["project.name"]
        assert tags["model"] == item["model"]
        project = item["project.name"]
        if project is None:
            assert (row["SubAccountId"], row["SubAccountName"], row["SubAccountType"]) == (
                "",
                "",
                "",
            )
        elif project.startswith("="):
            assert row["SubAccountId"] == row["SubAccountName"] == "'" + project  # neutralised
        else:
            assert (row["SubAccountId"], row["SubAccountType"]) == (project, "Project")


def test_the_quantity_can_be_a_field_and_the_account_come_from_the_environment(
    local: LocalServer,
) -> None:
    local.script({"json": answer()})
    env = environment(OPPER_BILLING_ACCOUNT="acct-env")
    rows = focus_csv(local, *GROUPS, "--focus-quantity", "total_tokens", env=env)
    assert {row["BillingAccountId"] for row in rows} == {"acct-env"}
    assert {row["ConsumedUnit"] for row in rows} == {"Tokens"}
    assert [row["ConsumedQuantity"] for row in rows] == [str(i["total_tokens"]) for i in answer()]


@pytest.mark.parametrize(
    ("granularity", "start", "end"),
    [
        ("hour", "2026-11-30T23:00:00Z", "2026-12-01T00:00:00Z"),
        ("month", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        ("minute", "2026-11-30T23:59:00Z", "2026-12-01T00:00:00Z"),
    ],
)
def test_the_charge_period_is_the_bucket_and_the_billing_period_its_month(
    local: LocalServer, granularity: str, start: str, end: str
) -> None:
    local.script({"json": [{"time_bucket": start, "cost": "1.5", "count": 3}]})
    window = ["--from", start, "--to", end]  # one request, which the script answers
    (row,) = focus_csv(local, "--granularity", granularity, *window, *ACCOUNT)
    assert (row["ChargePeriodStart"], row["ChargePeriodEnd"]) == (start, end)
    assert row["BillingPeriodStart"] == start[:8] + "01T00:00:00Z"
    assert row["Tags"] == ""  # no group-by: no tags


def test_the_kits_usage_as_focus_sums_to_its_total_cost(local: LocalServer) -> None:
    query = ["--from", "2020-01-01", "--to", "2030-01-01", "--group-by", "project.name"]
    query += ["--field", "total_tokens"]
    data = run("--server-url", local.url, *query, "--format", "json")
    rows = focus_csv(local, *query, "--focus-quantity", "total_tokens", *ACCOUNT)
    check_mandatory(rows, "")
    total = sum(Decimal(item["cost"]) for item in json.loads(data.out))
    assert total > 0
    assert sum(Decimal(row["BilledCost"]) for row in rows) == total
    assert {row["SubAccountId"] for row in rows} >= {"alpha", "beta", "gamma", ""}


def parquet(
    local: LocalServer, path: Path, command: list[str] | None = None
) -> list[dict[str, Any]]:
    local.script({"json": answer()})
    result = run("--server-url", local.url, "--format", "focus", *GROUPS, *ACCOUNT,
                 "-o", str(path), command=command)  # fmt: skip
    assert (result.code, result.err, result.out) == (0, "", "")
    cursor = duckdb.connect().execute("SELECT * FROM read_parquet(?)", [str(path)])
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


#: The command with polars hidden: `import polars` fails, as where it is not installed.
WITHOUT_POLARS = [sys.executable, "-c", "import sys; sys.modules['polars'] = None; "
                  "from opperai_usage._cli import main; sys.exit(main())"]  # fmt: skip


@pytest.mark.parametrize("command", [MODULE, WITHOUT_POLARS], ids=["polars", "pandas"])
def test_parquet_reads_back_with_exact_costs(
    local: LocalServer, tmp_path: Path, command: list[str]
) -> None:
    rows = parquet(local, tmp_path / "usage.parquet", command)
    check_mandatory(rows, None)
    assert len(rows) == len(answer())
    assert all(isinstance(row["BilledCost"], Decimal) for row in rows)
    assert sum(row["BilledCost"] for row in rows) == sum(Decimal(i["cost"]) for i in answer())
    assert [str(row["ChargePeriodStart"].date()) for row in rows] == [
        item["time_bucket"][:10] for item in answer()
    ]
    assert {row["SubAccountId"] for row in rows} == {"alpha", "=cmd|' /C calc'!A0", None}


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ([], {}, "--format focus needs the billing account (FOCUS's BillingAccountId)"),
        ([], {"OPPER_BILLING_ACCOUNT": "  "}, "--billing-account ID, or set OPPER_BILLING_ACCOUNT"),
        ([*ACCOUNT, "--granularity", "year"], {}, "needs buckets within a calendar month"),
        ([*ACCOUNT, "--granularity", "week"], {}, "needs buckets within a calendar month"),
        ([*ACCOUNT, "--tz", "Europe/Stockholm"], {}, "UTC charge and billing periods"),
        ([*ACCOUNT, "--focus-quantity", "tokens"], {}, "--focus-quantity must be count or one"),
        (
            ["--billing-account", "x", "--format", "csv"],
            {},
            "--billing-account is for --format focus",
        ),
    ],
)
def test_an_export_that_cannot_be_made_exits_2_before_any_request(
    local: LocalServer, args: list[str], env: dict[str, str], message: str
) -> None:
    fmt = [] if "--format" in args else ["--format", "focus"]
    result = run("--server-url", local.url, *fmt, *args, env=environment(**env))
    assert result.code == 2
    assert message in result.err
    assert local.requests() == []


def test_a_cost_that_is_no_number_stops_the_export_naming_the_item(local: LocalServer) -> None:
    items = [{"time_bucket": "2026-11-01T00:00:00Z", "cost": c, "count": 1} for c in ("1", "NaN")]
    local.script({"json": items})
    result = run("--server-url", local.url, "--format", "focus", *ACCOUNT)
    assert result.code == 1
    assert "item 1: cost 'NaN' is not a decimal number" in result.err
    assert "Traceback" not in result.err


def test_with_top_the_folded_and_untagged_rows_have_no_sub_account(local: LocalServer) -> None:
    local.script({"json": answer()})
    rows = focus_csv(local, "--group-by", "project.name", "--top", "2", *ACCOUNT)
    check_mandatory(rows, "")
    assert sum(Decimal(row["BilledCost"]) for row in rows) == sum(
        Decimal(item["cost"]) for item in answer()
    )
    projects = {json.loads(row["Tags"])["project.name"]: row["SubAccountId"] for row in rows}
    assert projects == {
        "(untagged)": "",
        "=cmd|' /C calc'!A0": "'=cmd|' /C calc'!A0",
        "(other)": "",
    }


def test_parquet_without_polars_or_pandas_exits_2_before_any_request(
    local: LocalServer, tmp_path: Path
) -> None:
    hidden = [sys.executable, "-c", "import sys; sys.modules['polars'] = sys.modules['pandas'] = "
              "None; from opperai_usage._cli import main; sys.exit(main())"]  # fmt: skip
    target = tmp_path / "usage.parquet"
    result = run("--server-url", local.url, "--format", "focus", *ACCOUNT, "-o", str(target),
                 command=hidden)  # fmt: skip
    assert result.code == 2
    assert 'writing Parquet needs polars (pip install "opperai-usage[polars]")' in result.err
    assert local.requests() == []
    assert not target.exists()


def test_a_bucket_whose_month_ends_past_9999_stops_the_export(local: LocalServer) -> None:
    bucket = "9999-12-31T00:00:00Z"
    local.script({"json": [{"time_bucket": bucket, "cost": "1", "count": 1}]})
    window = ["--from", "9999-12-31", "--to", "9999-12-31T12:00:00Z"]
    result = run("--server-url", local.url, "--format", "focus", *ACCOUNT, *window)
    assert result.code == 1
    assert "item 0: the time bucket 9999-12-31T00:00:00+00:00 has no billing period" in result.err
    assert "Traceback" not in result.err


def test_parquet_takes_odd_fields_and_refuses_costs_no_decimal_column_holds(
    local: LocalServer, tmp_path: Path
) -> None:
    odd = [{"time_bucket": "2026-11-01T00:00:00Z", "cost": "0.5", "count": 10**30,
            "total_tokens": "many"}]  # fmt: skip
    local.script({"json": odd})
    target = tmp_path / "odd.parquet"
    result = run("--server-url", local.url, "--format", "focus", *ACCOUNT, "--field",
                 "total_tokens", "-o", str(target))  # fmt: skip
    assert (result.code, result.err) == (0, "")
    cursor = duckdb.connect().execute(
        "SELECT x_count, x_total_tokens, BilledCost FROM read_parquet(?)", [str(target)]
    )
    assert cursor.fetchall() == [(1e30, None, Decimal("0.5"))]
    local.script({"json": [{"time_bucket": "2026-11-01T00:00:00Z", "cost": "1E-40", "count": 1}]})
    result = run("--server-url", local.url, "--format", "focus", *ACCOUNT, "-o", str(target))
    assert result.code == 1
    assert "the costs need 41 digits to be written exactly, more than Parquet's" in result.err
