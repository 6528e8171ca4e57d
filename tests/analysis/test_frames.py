"""`opperai_usage.to_pandas` and `to_polars`: one row per item, the command line's column order,
the documented types (UTC datetimes, numeric fields and cost, string tags with nulls), a clear
ImportError without the extra, and no pandas or polars at `import opperai_usage`."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest

import opperai_usage
from opperai_usage import Opper
from opperai_usage.models import GetUsageResultItem
from tests.support import API_KEY
from tests.support.calls import ITEMS
from tests.support.servers import LocalServer

UTC = dt.timezone.utc
FIELDS = ["total_tokens", "ratio"]
GROUP_BY = ["project.name", "model"]
ORDER = ["time_bucket", "project.name", "model", "total_tokens", "ratio", "count", "cost"]
MIXED = [
    {**ITEMS[0], "ratio": 0.5},
    {**ITEMS[1], "ratio": 1, "time_bucket": "2026-11-02T01:00:00+01:00"},
]


def fetch(local: LocalServer, answer: list[dict[str, Any]]) -> list[GetUsageResultItem]:
    local.script({"json": answer})
    with Opper(http_bearer=API_KEY, server_url=local.url) as opper:
        return opper.analytics.get_usage(fields=FIELDS, group_by=GROUP_BY)


def test_pandas_columns_and_types(local: LocalServer) -> None:
    import pandas as pd  # imported by the tests that use it, not by every test worker

    frame = opperai_usage.to_pandas(fetch(local, MIXED), fields=FIELDS, group_by=GROUP_BY)
    assert list(frame.columns) == ORDER
    assert len(frame) == len(MIXED)
    assert isinstance(frame["time_bucket"].dtype, pd.DatetimeTZDtype)
    assert str(frame["time_bucket"].dt.tz) == "UTC"
    assert list(frame["time_bucket"]) == [
        pd.Timestamp("2026-11-01T00:00:00Z"),
        pd.Timestamp("2026-11-02T00:00:00Z"),  # the same instant as 01:00+01:00, in UTC
    ]
    assert frame["model"].dtype == pd.StringDtype()
    assert frame["project.name"].dtype == pd.StringDtype()
    assert frame["project.name"].tolist() == ["alpha", pd.NA]
    assert frame["total_tokens"].dtype == "int64"
    assert frame["ratio"].dtype == "float64"  # an int and a float: floats
    assert frame["count"].dtype == "int64"
    assert frame["count"].tolist() == [item["count"] for item in MIXED]
    assert frame["cost"].dtype == "float64"
    assert frame["cost"].tolist() == [float(str(item["cost"])) for item in MIXED]


def test_polars_columns_and_types(local: LocalServer) -> None:
    import polars as pl

    frame = opperai_usage.to_polars(fetch(local, MIXED), fields=FIELDS, group_by=GROUP_BY)
    assert frame.columns == ORDER
    assert frame.schema["time_bucket"] == pl.Datetime("us", "UTC")
    assert frame["time_bucket"].to_list() == [
        dt.datetime(2026, 11, 1, tzinfo=UTC),
        dt.datetime(2026, 11, 2, tzinfo=UTC),
    ]
    assert frame.schema["model"] == pl.String
    assert frame["project.name"].to_list() == ["alpha", None]
    assert frame.schema["total_tokens"] == pl.Int64
    assert frame.schema["ratio"] == pl.Float64
    assert frame.schema["count"] == pl.Int64
    assert frame["count"].to_list() == [item["count"] for item in MIXED]
    assert frame.schema["cost"] == pl.Float64
    assert frame["cost"].to_list() == [float(str(item["cost"])) for item in MIXED]


def test_null_fields_stay_integers_where_the_library_can(local: LocalServer) -> None:
    import pandas as pd
    import polars as pl

    answer = [{**ITEMS[0], "ratio": None}, {**ITEMS[1], "ratio": 3}]
    items = fetch(local, answer)
    frame = opperai_usage.to_pandas(items, fields=FIELDS, group_by=GROUP_BY)
    assert frame["ratio"].dtype == "Int64"
    assert frame["ratio"].tolist() == [pd.NA, 3]
    polars_frame = opperai_usage.to_polars(items, fields=FIELDS, group_by=GROUP_BY)
    assert polars_frame.schema["ratio"] == pl.Int64
    assert polars_frame["ratio"].to_list() == [None, 3]


def test_columns_are_read_off_the_items_when_not_given(local: LocalServer) -> None:
    items = fetch(local, ITEMS)
    # ITEMS' keys: total_tokens (numbers), model and project.name (strings): tags first
    expected = ["time_bucket", "model", "project.name", "total_tokens", "count", "cost"]
    assert list(opperai_usage.to_pandas(items).columns) == expected
    assert opperai_usage.to_polars(items).columns == expected
    given_fields = opperai_usage.to_polars(items, fields=["total_tokens"])
    assert given_fields.columns == expected


def test_no_items_give_empty_frames_with_the_columns() -> None:
    names = ["time_bucket", "model", "total_tokens", "count", "cost"]
    frame = opperai_usage.to_pandas([], fields=["total_tokens"], group_by=["model"])
    assert (list(frame.columns), len(frame)) == (names, 0)
    assert opperai_usage.to_polars([], fields=["total_tokens"], group_by=["model"]).columns == names


def test_float_costs_sum_to_within_a_micro_dollar_of_the_exact_sum(local: LocalServer) -> None:
    """The documented trade-off of float costs, on the largest answer the benchmark uses."""
    local.script({"items": 100_000})
    with Opper(http_bearer=API_KEY, server_url=local.url) as opper:
        items = opper.analytics.get_usage()
    exact = sum((Decimal(item.cost) for item in items), Decimal(0))
    assert exact > 1_000  # a sum large enough for rounding to show, if it did
    frame = opperai_usage.to_pandas(items)
    assert abs(Decimal(float(frame["cost"].sum())) - exact) < Decimal("0.000001")
    assert abs(Decimal(opperai_usage.to_polars(items)["cost"].sum()) - exact) < Decimal("0.000001")
    assert all(f"{cost:.6f}" == item.cost for cost, item in zip(frame["cost"], items, strict=True))


@pytest.mark.parametrize("library", ["pandas", "polars"])
def test_a_missing_library_names_the_extra(
    library: str, monkeypatch: pytest.MonkeyPatch, local: LocalServer
) -> None:
    items = fetch(local, ITEMS)
    monkeypatch.setitem(sys.modules, library, None)  # `import pandas` now fails
    convert = getattr(opperai_usage, f"to_{library}")
    with pytest.raises(ImportError, match=rf'pip install "opperai-usage\[{library}\]"'):
        convert(items)


def test_import_loads_neither_dataframe_library_nor_the_command_line() -> None:
    probe = (
        "import sys, opperai_usage\n"
        "heavy = {'pandas', 'polars', 'argparse', 'numpy', 'pyarrow', 'dlt', 'duckdb'}\n"
        "def loaded():\n"
        "    return sorted(m for m in sys.modules if m.split('.')[0] in heavy\n"
        "                  or m.startswith('opperai_usage._cli'))\n"
        "print(loaded())\n"
        "to_pandas, to_polars = opperai_usage.to_pandas, opperai_usage.to_polars\n"
        "print(loaded())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.splitlines() == ["[]", "[]"]
