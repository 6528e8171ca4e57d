"""What a successful call returns: the generated models, as the official SDK's users read them."""

from __future__ import annotations

import copy
import datetime as dt
import pickle
from collections.abc import Mapping

import httpx
import pytest

from opperai_usage import models
from opperai_usage._generated.models import GetUsageResultItem as GeneratedItem
from opperai_usage._generated.types import UNSET
from tests.support.calls import ITEMS, Recorder, Usage

URL = "http://127.0.0.1:9/v2"


def items(usage: Usage) -> list[models.GetUsageResultItem]:
    return usage(server_url=URL, transport=Recorder(httpx.Response(200, json=ITEMS)).transport)


def test_items_are_the_generated_models(usage: Usage) -> None:
    result = items(usage)
    assert [type(item) for item in result] == [models.GetUsageResultItem] * 2
    assert all(isinstance(item, GeneratedItem) for item in result)


def test_required_fields_and_extras(usage: Usage) -> None:
    first, second = items(usage)
    assert first.time_bucket == dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    assert first.time_bucket.tzinfo is not None
    assert first.cost == "0.004200"
    assert first.additional_properties == {
        "total_tokens": 480,
        "model": "gpt-4o",
        "project.name": "alpha",
    }
    assert first["model"] == "gpt-4o"
    assert first.model == "gpt-4o"
    assert "project.name" in first
    assert second["project.name"] is None
    assert first.additional_keys == ["total_tokens", "model", "project.name"]


def test_items_equal_what_from_dict_builds(usage: Usage) -> None:
    expected = [models.GetUsageResultItem.from_dict(copy.deepcopy(item)) for item in ITEMS]
    assert items(usage) == expected


def test_items_round_trip_through_to_dict_and_pickle(usage: Usage) -> None:
    result = items(usage)
    assert [item.to_dict() for item in result] == [
        {**item, "time_bucket": "2026-11-01T00:00:00+00:00"} for item in ITEMS
    ]
    assert pickle.loads(pickle.dumps(result)) == result
    assert copy.deepcopy(result) == result


def test_model_dump_gives_python_values(usage: Usage) -> None:
    first = items(usage)[0]
    assert first.model_dump() == {
        "time_bucket": dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc),
        "cost": "0.004200",
        "count": 3,
        "total_tokens": 480,
        "model": "gpt-4o",
        "project.name": "alpha",
    }


def test_an_answer_without_count_still_decodes(usage: Usage) -> None:
    """`count` is in every answer of Opper's API, but not required: an older server's (or a
    proxy's) answer without it decodes as the official SDK decodes it, without the key."""
    answer = [{key: value for key, value in item.items() if key != "count"} for item in ITEMS]
    first = usage(server_url=URL, transport=Recorder(httpx.Response(200, json=answer)).transport)[0]
    assert first.count is UNSET
    assert "count" not in first
    assert list(first) == ["time_bucket", "cost", "total_tokens", "model", "project.name"]
    assert "count" not in first.model_dump()
    assert "count" not in first.to_dict()
    copied = pickle.loads(pickle.dumps(first))
    assert copied == first
    assert copied.count is UNSET
    assert copy.deepcopy(first).count is UNSET


def test_missing_extra_is_an_attribute_error(usage: Usage) -> None:
    first = items(usage)[0]
    with pytest.raises(AttributeError, match="nope"):
        _ = first.nope


def test_empty_answer_is_an_empty_list(usage: Usage) -> None:
    transport = Recorder(httpx.Response(200, json=[])).transport
    assert usage(server_url=URL, transport=transport) == []


def test_granularity_members() -> None:
    assert {member.name for member in models.Granularity} == {
        "MINUTE",
        "HOUR",
        "DAY",
        "MONTH",
        "YEAR",
    }
    assert models.Granularity.DAY.value == "day"
    assert models.Granularity("hour") is models.Granularity.HOUR


def test_an_item_is_a_read_only_mapping_of_all_its_keys(usage: Usage) -> None:
    """dict(item), iteration, len, `in`, get: time_bucket, cost and the extras alike; so
    dict(item) is model_dump(), as dict() of the official SDK's pydantic model gives."""
    first = items(usage)[0]
    keys = ["time_bucket", "cost", "count", "total_tokens", "model", "project.name"]
    assert isinstance(first, Mapping)
    assert list(first) == list(first.keys()) == keys
    assert len(first) == 6
    assert dict(first) == first.model_dump()
    assert first["time_bucket"] == first.time_bucket
    assert first["cost"] == "0.004200"
    assert first["count"] == first.count == 3
    assert "cost" in first
    assert "time_bucket" in first
    assert "nope" not in first
    assert first.get("nope", 0) == 0
    assert dict(first.items())["model"] == "gpt-4o"
    with pytest.raises(KeyError):
        first["nope"]
    with pytest.raises(TypeError, match="read-only"):
        first["model"] = "other"
    with pytest.raises(TypeError, match="read-only"):
        del first["model"]
    assert first["model"] == "gpt-4o"


def test_a_list_of_items_is_a_list_of_records(usage: Usage) -> None:
    """What table libraries take (pandas.DataFrame(items) checks for Mapping records)."""
    rows = [dict(item) for item in items(usage)]
    assert [row["model"] for row in rows] == ["gpt-4o", "claude-sonnet-4"]
    assert {key for row in rows for key in row} == {
        "time_bucket", "cost", "count", "total_tokens", "model", "project.name"
    }  # fmt: skip
