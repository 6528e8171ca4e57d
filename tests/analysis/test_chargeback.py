"""`opperai_usage.top`: chargeback by a tag, the top N kept, the rest as `(other)`, usage
without the tag as `(untagged)`, totals kept to the last digit. Against made-up items
(hypothesis) and the testing kit's data over real HTTP."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import opperai_usage
from opperai_usage import Opper, errors
from opperai_usage.models import GetUsageResultItem
from tests.support import API_KEY
from tests.support.servers import LocalServer

MISSING = object()  # the item lacks the key altogether
CUSTOMERS = ["acme", "globex", "initech", "umbrella", "hooli", "=HYPERLINK(1)"]
BUCKETS = [f"2026-11-0{day}T00:00:00Z" for day in range(1, 5)]


def item(bucket: str, cost: str, customer: object, model: object, **extra: Any) -> dict[str, Any]:
    made: dict[str, Any] = {"time_bucket": bucket, "cost": cost}
    made |= {key: value for key, value in extra.items() if value is not MISSING}
    for key, value in (("customer", customer), ("model", model)):
        if value is not MISSING:
            made[key] = value
    return made


ITEM = st.builds(
    item,
    st.sampled_from(BUCKETS),
    st.decimals(0, 1000, places=6).map(str),
    st.one_of(st.sampled_from(CUSTOMERS), st.none(), st.just(MISSING)),
    st.one_of(st.sampled_from(["gpt-4o", "claude-sonnet-4"]), st.none(), st.just(MISSING)),
    count=st.one_of(st.integers(0, 10**6), st.just(MISSING)),  # an answer may lack counts
    total_tokens=st.integers(0, 10**12),
    seconds=st.one_of(st.none(), st.integers(0, 1000).map(lambda n: n / 4)),  # exact in binary
)
FIELDS = ["total_tokens", "seconds"]


def made(dicts: list[dict[str, Any]]) -> list[GetUsageResultItem]:
    return [GetUsageResultItem.from_dict(d) for d in dicts]


def sums(items: list[GetUsageResultItem]) -> dict[str, dict[str, Any]]:
    """Per time bucket: cost (exact), count and each field, nulls left out."""
    out: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"cost": Decimal(0), "count": 0, "total_tokens": 0, "seconds": 0.0}
    )
    for one in items:
        bucket = out[one.time_bucket.isoformat()]
        bucket["cost"] += Decimal(one.cost)
        bucket["count"] += one.count if isinstance(one.count, int) else 0  # or UNSET
        for field in FIELDS:
            value = one.additional_properties.get(field)
            bucket[field] += value or 0
    return dict(out)


def ranking(dicts: list[dict[str, Any]]) -> list[str]:
    """The customers (missing or null as (untagged)) by total cost, highest first, ties in
    the order first seen: what `top` is documented to keep."""
    totals: dict[str, Decimal] = {}
    for one in dicts:
        name = one.get("customer") or "(untagged)"
        totals[name] = totals.get(name, Decimal(0)) + Decimal(one["cost"])
    return sorted(totals, key=lambda name: -totals[name])


@settings(max_examples=200, deadline=None)
@given(st.lists(ITEM, max_size=40), st.integers(1, 5))
def test_top_keeps_every_total_and_at_most_n_plus_one_groups_a_bucket(
    dicts: list[dict[str, Any]], n: int
) -> None:
    given_items = made(dicts)
    result = opperai_usage.top(
        given_items, n, "customer", fields=FIELDS, group_by=["customer", "model"]
    )
    assert sums(result) == sums(given_items)
    per_bucket: dict[str, set[str]] = defaultdict(set)
    for one in result:
        for tag in ("customer", "model"):
            assert isinstance(one.additional_properties.get(tag), str)  # never missing or None
            assert one.additional_properties[tag] != ""
        per_bucket[one.time_bucket.isoformat()].add(one["customer"])
    assert all(len(names) <= n + 1 for names in per_bucket.values())
    kept = set(ranking(dicts)[:n])
    shown = {one["customer"] for one in result} - {"(other)"}
    assert shown == kept
    if len(ranking(dicts)) <= n:
        assert all(one["customer"] != "(other)" for one in result)


def test_the_folded_row_sums_its_bucket_and_comes_last() -> None:
    given_items = made(
        [
            item(BUCKETS[0], "0.500000", "acme", "gpt-4o", count=5, total_tokens=50),
            item(BUCKETS[0], "0.100000", "globex", "gpt-4o", count=1, total_tokens=10),
            item(BUCKETS[0], "0.200000", None, "gpt-4o", count=2, total_tokens=20),
            item(BUCKETS[0], "0.000001", "initech", MISSING, count=3, total_tokens=30),
            item(BUCKETS[1], "0.300000", MISSING, "gpt-4o", count=4, total_tokens=None),
        ]
    )
    result = opperai_usage.top(given_items, 2, "customer", fields=["total_tokens"])
    rows = [(r.time_bucket.day, r["customer"], r["model"], r.cost, r.count, r["total_tokens"])
            for r in result]  # fmt: skip
    assert rows == [
        (1, "acme", "gpt-4o", "0.500000", 5, 50),
        (1, "(untagged)", "gpt-4o", "0.200000", 2, 20),
        (1, "(other)", "(other)", "0.100001", 4, 40),
        (2, "(untagged)", "gpt-4o", "0.300000", 4, None),
    ]


def test_top_refuses_what_it_cannot_rank_by() -> None:
    items = made([item(BUCKETS[0], "1", "acme", "gpt-4o", count=1)])
    for n in (0, -1, 1.5, True, "2"):
        with pytest.raises(errors.InvalidArgumentError, match="positive int") as raised:
            opperai_usage.top(items, n, "customer")  # type: ignore[arg-type]
        assert raised.value.parameter == "n"
    with pytest.raises(errors.InvalidArgumentError, match="names no tag"):
        opperai_usage.top(made([{"time_bucket": BUCKETS[0], "cost": "1", "n": 1}]), 1)


def usage(server: LocalServer, **arguments: Any) -> list[GetUsageResultItem]:
    with Opper(api_key=API_KEY, server_url=server.url) as opper:
        return opper.analytics.get_usage(**arguments)


def test_the_kits_projects_top_two_over_real_http(local: LocalServer) -> None:
    group_by = ["project.name", "model"]
    query = {"granularity": "day", "fields": ["total_tokens"], "group_by": group_by}
    items = usage(local, **query)
    result = opperai_usage.top(items, 2, "project.name", fields=["total_tokens"], group_by=group_by)
    assert sums(result) == sums(items)
    projects = {one["project.name"] for one in result}
    assert len(projects) == 3  # of alpha, beta, gamma and (untagged): the top two and (other)
    assert "(other)" in projects
    assert opperai_usage.top(items, 2) == result  # by defaults to the first tag


def test_items_that_lack_the_key_show_as_untagged(local: LocalServer) -> None:
    answer = [
        {"time_bucket": BUCKETS[0], "cost": "0.250000", "count": 2, "total_tokens": 7},
        {"time_bucket": BUCKETS[0], "cost": "0.750000", "count": 1, "total_tokens": 3,
         "customer": "acme"},
    ]  # fmt: skip
    local.script({"json": answer})
    items = usage(local, fields=["total_tokens"], group_by=["customer"])
    result = opperai_usage.top(items, 1, "customer", fields=["total_tokens"], group_by=["customer"])
    assert [(r["customer"], r.cost) for r in result] == [
        ("acme", "0.750000"),
        ("(other)", "0.250000"),
    ]
    result = opperai_usage.top(items, 5, "customer", fields=["total_tokens"], group_by=["customer"])
    assert [(r["customer"], r.cost) for r in result] == [
        ("acme", "0.750000"),
        ("(untagged)", "0.250000"),
    ]


def test_dataframes_of_top_keep_the_totals_and_have_no_null_groups(local: LocalServer) -> None:
    columns = {"fields": ["total_tokens"], "group_by": ["project.name"]}
    items = usage(local, granularity="day", **columns)
    result = opperai_usage.top(items, 3, "project.name")
    pandas_df = opperai_usage.to_pandas(result, **columns)
    polars_df = opperai_usage.to_polars(result, **columns)
    tokens = sum(one["total_tokens"] for one in items)
    assert int(pandas_df["total_tokens"].sum()) == tokens == polars_df["total_tokens"].sum()
    assert not pandas_df["project.name"].isna().any()
    assert polars_df["project.name"].null_count() == 0
    assert pandas_df.groupby("time_bucket")["project.name"].nunique().max() <= 4


def test_odd_values_rank_and_fold_without_error() -> None:
    given_items = made(
        [
            item(BUCKETS[0], "NaN", "nan-customer", "m", count=1, total_tokens=1),
            item(BUCKETS[0], "2", {"id": 7}, "m", count=1, total_tokens=2),
            item(BUCKETS[0], "3", [1, 2], "m", count=1, total_tokens=float("inf")),
            item(BUCKETS[0], "1", "1", "m", count=1, total_tokens=10**30),
            item(BUCKETS[0], "1", 1, "m", count=1, total_tokens=1),
        ]
    )
    result = opperai_usage.top(given_items, 2, "customer", fields=["total_tokens"])
    assert [r["customer"] for r in result] == [[1, 2], {"id": 7}, "(other)"]  # objects kept
    other = result[-1]
    assert (other.cost, other.count, other["total_tokens"]) == ("NaN", 3, 10**30 + 2)
    # "1" and 1 are two groups (a string and a number), NaN's cost ranks below every number
    assert len(opperai_usage.top(given_items, 5, "customer")) == 5


def test_top_of_a_roll_up_keeps_its_period_labels(local: LocalServer) -> None:
    cet = dt.timezone(dt.timedelta(hours=1))
    start, end = dt.datetime(2026, 11, 2, tzinfo=cet), dt.datetime(2026, 11, 16, tzinfo=cet)
    with Opper(api_key=API_KEY, server_url=local.url) as opper:
        hours = opper.analytics.iter_usage(
            from_date=start, to_date=end, granularity="hour", group_by=["project.name"]
        )
        weeks = opperai_usage.roll_up(hours, "week", "Europe/Stockholm", start=start, end=end,
                                      granularity="hour")  # fmt: skip
    result = opperai_usage.top(weeks, 1, "project.name")
    assert {(r["period"], r["incomplete"]) for r in result} == {
        ("2026-W45", False),
        ("2026-W46", False),
    }
    assert sums(result) == sums(weeks)
    frame = opperai_usage.to_pandas(result)
    assert list(frame.columns[:3]) == ["time_bucket", "period", "incomplete"]
