"""Contract: Prism, mocking from openapi.yaml, accepts every request the client sends and serves
answers the client decodes; requests that break the spec are refused by Prism itself."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from opperai_usage import errors, models
from tests.support.calls import Usage
from tests.support.spec import operation

#: One worker runs them all, so that one Prism is started (two CPU seconds), not one per worker.
pytestmark = [pytest.mark.prism, pytest.mark.xdist_group("prism")]

CALLS: list[dict[str, Any]] = [
    {},
    {"fields": ["completion_tokens", "total_tokens"], "group_by": ["model", "project.name"]},
    {
        "from_date": dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc),
        "to_date": dt.date(2026, 11, 8),
    },
    {"from_date": "2026-11-01T03:00:00+02:00", "granularity": models.Granularity.HOUR},
    {"granularity": "minute", "fields": ["a b", "ä,&="], "group_by": []},
]


@pytest.mark.parametrize("call", CALLS)
def test_prism_accepts_the_request_and_the_answer_decodes(
    prism: str, usage: Usage, call: dict[str, Any]
) -> None:
    items = usage(server_url=prism, call=call, retry_config=None)
    example = operation()["responses"]["200"]["content"]["application/json"]["example"]
    assert [
        item.to_dict() | {"time_bucket": e["time_bucket"]}
        for item, e in zip(items, example, strict=True)
    ] == example


def test_prism_refuses_a_request_without_the_key(
    prism: str, usage: Usage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPPER_HTTP_BEARER", raising=False)
    with pytest.raises(errors.UnauthorizedError):
        usage(server_url=prism, http_bearer="", retry_config=None)


def test_prism_refuses_what_the_client_would_never_send(prism: str) -> None:
    answer = httpx.get(f"{prism}/analytics/usage", params={"granularity": "week"},
                       headers={"Authorization": "Bearer k"})  # fmt: skip
    assert answer.status_code == 422


@pytest.mark.parametrize("status", ["400", "401", "404", "422"])
def test_documented_error_examples_raise_their_typed_errors(
    prism: str, usage: Usage, status: str
) -> None:
    name = operation()["responses"][status]["content"]["application/json"]["example"]["type"]
    with pytest.raises(getattr(errors, name)) as raised:
        usage(
            server_url=prism, call={"http_headers": {"Prefer": f"code={status}"}}, retry_config=None
        )
    assert raised.value.status_code == int(status)
