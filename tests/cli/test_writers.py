"""The row export every output shares: which keys are columns and in what order, how values are
written, CSV's fast path held byte for byte to the csv module, and the table's fit to a width."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest

from opperai_usage._cli._table import cell_width, render_table
from opperai_usage._cli._writers import write_csv
from opperai_usage._columns import Columns, columns_for, rows, time_text
from opperai_usage.errors import InvalidArgumentError
from opperai_usage.models import GetUsageResultItem


def items_of(*dicts: dict[str, Any]) -> list[GetUsageResultItem]:
    return [GetUsageResultItem.from_dict(d) for d in dicts]


def item(day: int, cost: str = "0.001000", **extra: Any) -> dict[str, Any]:
    return {"time_bucket": f"2026-11-{day:02d}T00:00:00Z", "cost": cost, **extra}


def csv_module(items: list[GetUsageResultItem], columns: Columns) -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(columns.names)
    writer.writerows(rows(items, columns))
    return out.getvalue()


def written(items: list[GetUsageResultItem], columns: Columns) -> str:
    out = io.StringIO(newline="")
    write_csv(items, columns, out)
    return out.getvalue()


@pytest.mark.parametrize(
    "tags",
    [
        ["gpt-4o", None, "claude-sonnet-4", "ünï ✓ 日本"],  # nothing to quote: the fast path
        ["gpt-4o", "a,b", None, 'say "hi"', "two\nlines", "cr\r"],  # the csv module's path
    ],
)
def test_csv_is_byte_for_byte_what_the_csv_module_writes(tags: list[str | None]) -> None:
    items = items_of(
        *(
            item(
                day, f"0.{day:06d}", model=tag, tokens=day * 7, ratio=[0.5, None, 3, 1e-7][day % 4]
            )
            for day, tag in enumerate(tags * 50, 1)
            if day <= 28
        )
    )
    columns = Columns(group_by=("model", "absent"), fields=("tokens", "ratio"))
    assert written(items, columns) == csv_module(items, columns)


def test_columns_given_keep_their_order_and_lose_repeats() -> None:
    columns = columns_for([], fields=["b", "a", "b"], group_by=["z", "y", "z"])
    assert columns.names == ("time_bucket", "z", "y", "b", "a", "count", "cost")


def test_columns_not_given_are_read_off_the_items() -> None:
    items = items_of(
        item(1, model="m", tokens=1, project=None),
        item(2, model=None, tokens=2, project="p", late=0.5),
    )
    assert columns_for(items).names == (
        "time_bucket", "model", "project", "tokens", "late", "count", "cost",
    )  # fmt: skip
    assert columns_for(items, fields=["tokens"]).names == (
        "time_bucket", "model", "project", "late", "tokens", "count", "cost",
    )  # fmt: skip
    assert columns_for(items, group_by=["model"]).names == (
        "time_bucket", "model", "tokens", "project", "late", "count", "cost",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "group_by", "parameter"),
    [
        (["model"], ["model"], "group_by"),
        (["cost"], [], "fields"),
        ([], ["time_bucket"], "group_by"),
    ],
)
def test_a_name_used_twice_is_refused(
    fields: list[str], group_by: list[str], parameter: str
) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        columns_for([], fields=fields, group_by=group_by)
    assert raised.value.parameter == parameter


@pytest.mark.parametrize(
    ("when", "text"),
    [
        (dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc), "2026-11-01T00:00:00Z"),
        (dt.datetime(2026, 11, 1), "2026-11-01T00:00:00Z"),  # no offset: the API's UTC
        (
            dt.datetime(2026, 11, 1, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "2026-10-31T23:30:00Z",
        ),
        (
            dt.datetime(2026, 11, 1, 0, 0, 0, 250, tzinfo=dt.timezone.utc),
            "2026-11-01T00:00:00.000250Z",
        ),
    ],
)
def test_time_buckets_are_iso_8601_in_utc_with_z(when: dt.datetime, text: str) -> None:
    assert time_text(when) == text


def test_cell_widths_count_terminal_cells() -> None:
    assert cell_width("abc") == 3
    assert cell_width("日本") == 4  # wide
    assert cell_width("e\u0301") == 1  # a combining accent takes no cell


def test_the_table_shortens_text_to_fit_and_never_cuts_numbers() -> None:
    long = "日本語のとても長いモデル名" * 3
    items = items_of(item(1, "12.345678", model=long, tokens=123_456_789, count=42))
    columns = Columns(group_by=("model",), fields=("tokens",))
    natural = render_table(items, columns)
    assert max(map(cell_width, natural.splitlines())) > 60
    fitted = render_table(items, columns, width=60).splitlines()
    assert max(map(cell_width, fitted)) <= 60
    assert "…" in fitted[2]
    assert fitted[2].endswith("123456789     42  12.345678")
    assert fitted[-1].endswith("123456789     42  12.345678")  # the totals line
