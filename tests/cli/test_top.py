"""`opper-usage --top N --group-by KEY`: chargeback from the command line, against the testing
kit's server (whose data tags about 85 % of events with one of three projects) and scripted
answers (items that lack the key). In every format the rows sum to what they sum to without
--top, to the last digit; a bucket has at most N + 1 groups; no group is ever empty."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.support.command_line import run
from tests.support.servers import LocalServer

QUERY = ["--from", "2026-01-01", "--to", "2030-01-01", "--granularity", "month"]
QUERY += ["--group-by", "project.name", "--group-by", "model", "--field", "total_tokens"]


def records(text: str, fmt: str) -> list[dict[str, Any]]:
    """The rows of a format, as dicts of text (CSV) or JSON values."""
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(text, newline="")))
    if fmt == "json":
        loaded: list[dict[str, Any]] = json.loads(text)
        return loaded
    return [json.loads(line) for line in text.splitlines()]


def totals(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per time bucket: cost (exact), count and total_tokens (a missing count left out, as
    the table's totals leave it out)."""
    out: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"cost": Decimal(0), "count": 0, "total_tokens": 0}
    )
    for row in rows:
        bucket = out[row["time_bucket"]]
        bucket["cost"] += Decimal(row["cost"])
        bucket["count"] += int(row["count"] or 0)
        bucket["total_tokens"] += int(row["total_tokens"])
    return dict(out)


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_top_keeps_every_total_in_every_data_format(local: LocalServer, fmt: str) -> None:
    everything = run("--server-url", local.url, *QUERY, "--format", fmt)
    top = run("--server-url", local.url, *QUERY, "--format", fmt, "--top", "2")
    assert (everything.code, everything.err, top.code, top.err) == (0, "", 0, "")
    rows = records(top.out, fmt)
    assert totals(rows) == totals(records(everything.out, fmt))
    groups: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        assert row["project.name"]  # never empty, null or missing
        assert row["model"]
        groups[row["time_bucket"]].add(row["project.name"])
    assert max(map(len, groups.values())) == 3  # two projects and (other)
    assert "(other)" in set().union(*groups.values())


def test_the_table_shows_the_same_totals_and_the_labels(local: LocalServer) -> None:
    everything = run("--server-url", local.url, *QUERY)
    top = run("--server-url", local.url, *QUERY, "--top", "1")
    assert (everything.code, top.code) == (0, 0)

    def sums(table: str) -> list[str]:  # total_tokens, count and cost on the totals line
        return table.splitlines()[-1].split("items", 1)[1].split()

    assert sums(top.out) == sums(everything.out)
    assert len(sums(top.out)) == 3
    body = top.out.splitlines()[2:-2]
    assert all("-" not in line.split()[1:3] for line in body)  # no null group
    assert any("(other)" in line for line in body)


def test_the_report_with_top_has_the_same_total(local: LocalServer, tmp_path: Path) -> None:
    pages = []
    for extra in ([], ["--top", "2"]):
        page = tmp_path / f"report{len(extra)}.html"
        result = run("--server-url", local.url, *QUERY, "--html", str(page), *extra)
        assert (result.code, result.err) == (0, "")
        pages.append(page.read_text(encoding="utf-8"))
    foot = [re.search(r"<tfoot>.*</tfoot>", page, re.S) for page in pages]
    assert foot[0]
    assert foot[1]
    assert foot[0][0].split("</td>", 1)[1] == foot[1][0].split("</td>", 1)[1]  # the sums
    assert "(other)" in pages[1]


def test_items_lacking_the_key_are_untagged_in_every_format(local: LocalServer) -> None:
    answer = [
        {"time_bucket": "2026-11-01T00:00:00Z", "cost": "0.250000", "count": 2},
        {"time_bucket": "2026-11-01T00:00:00Z", "cost": "0.750000", "count": 1,
         "customer": "acme"},
        {"time_bucket": "2026-11-01T00:00:00Z", "cost": "0.125000", "count": 1,
         "customer": None},
    ]  # fmt: skip
    for fmt in ("csv", "json", "jsonl", "table"):
        local.script({"json": answer})
        result = run("--server-url", local.url, "--group-by", "customer", "--top", "5",
                     "--format", fmt)  # fmt: skip
        assert (result.code, result.err) == (0, "")
        if fmt == "table":
            assert "(untagged)" in result.out
            assert " - " not in result.out
            continue
        rows = records(result.out, fmt)
        assert [(row["customer"], row["cost"], int(row["count"])) for row in rows] == [
            ("acme", "0.750000", 1),
            ("(untagged)", "0.375000", 3),  # the item without the key and the null one
        ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--top", "2"], "--top needs --group-by KEY"),
        (["--top", "0", "--group-by", "model"], "argument --top: must be a whole number from 1"),
        (["--top", "x", "--group-by", "model"], "argument --top: must be a whole number from 1"),
        (["--top", "-3", "--group-by", "model"], "argument --top: must be a whole number from 1"),
    ],
)
def test_a_top_that_cannot_work_exits_2_before_any_request(
    local: LocalServer, args: list[str], message: str
) -> None:
    result = run("--server-url", local.url, *args)
    assert result.code == 2
    assert message in result.err
    assert local.requests() == []


def test_top_on_calendar_periods_keeps_their_labels_and_totals(local: LocalServer) -> None:
    query = ["--tz", "Europe/Stockholm", "--granularity", "week", "--from", "2026-11-02",
             "--to", "2026-11-16", "--group-by", "project.name", "--field", "total_tokens",
             "--format", "json"]  # fmt: skip
    everything = run("--server-url", local.url, *query)
    top = run("--server-url", local.url, *query, "--top", "1")
    assert (everything.code, top.code, top.err) == (0, 0, "")
    rows = records(top.out, "json")
    assert totals(rows) == totals(records(everything.out, "json"))
    assert {(row["period"], row["incomplete"]) for row in rows} == {
        ("2026-W45", False),
        ("2026-W46", False),
    }
    assert {row["project.name"] for row in rows} <= {"alpha", "beta", "gamma", "(other)"}
    assert len({row["project.name"] for row in rows}) == 2
