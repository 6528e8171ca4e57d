"""The overlay exposes and maps everything openapi.yaml describes.

When the spec gains a query parameter, an enum value or an error response and `generated/` is
regenerated, these tests fail and name what the overlay is missing.
"""

from __future__ import annotations

import inspect
from typing import Any, cast
from urllib.parse import parse_qs

import httpx
import pytest

from opperai_usage import Opper, errors, models
from opperai_usage._client import DEFAULT_SERVER_URL
from tests.support.calls import Recorder
from tests.support.spec import operation, resolve, spec

SPEC_PARAMETERS = [p["name"] for p in operation()["parameters"]]
CALL_OPTIONS = {"retries", "server_url", "timeout_ms", "http_headers"}


@pytest.mark.parametrize("method", ["get_usage", "get_usage_async"])
def test_every_query_parameter_is_an_argument(method: str) -> None:
    arguments = inspect.signature(getattr(Opper(http_bearer="k").analytics, method)).parameters
    missing = [name for name in SPEC_PARAMETERS if name not in arguments]
    assert not missing, f"openapi.yaml has query parameters {method} does not take: {missing}"
    extra = set(arguments) - set(SPEC_PARAMETERS) - CALL_OPTIONS
    assert not extra, f"{method} takes arguments openapi.yaml does not describe: {extra}"
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in arguments.values())


def example_for(name: str) -> tuple[Any, list[str]]:
    """A valid argument for the spec's query parameter `name`, read off its schema, and the
    values it must be sent as (`fields=a&fields=b` for an array)."""
    schema = next(p["schema"] for p in operation()["parameters"] if p["name"] == name)
    branches = [resolve(branch) for branch in schema.get("anyOf", [schema])]
    for branch in branches:
        if branch.get("format") == "date-time":
            return "2026-11-01T00:00:00Z", ["2026-11-01T00:00:00Z"]
        if "enum" in branch:
            return branch["enum"][-1], [branch["enum"][-1]]
        if branch.get("type") == "array" and branch["items"].get("type") == "string":
            return ["total_tokens", "project.name"], ["total_tokens", "project.name"]
    raise AssertionError(f"openapi.yaml's {name!r} has a schema this test has no example for")


@pytest.mark.parametrize("name", SPEC_PARAMETERS)
def test_every_query_parameter_is_checked_and_sent(name: str) -> None:
    """Each parameter the spec has: a valid value goes over the wire as the spec's parameter,
    alone and as given; a value of no type the spec allows is refused, naming it, unsent."""
    argument, sent = example_for(name)
    recorder = Recorder(httpx.Response(200, json=[]))
    client = httpx.Client(transport=recorder.transport)
    with Opper(http_bearer="k", server_url="http://127.0.0.1/v2", client=client) as opper:
        opper.analytics.get_usage(**{name: argument})
        (request,) = recorder.requests
        assert request.url.path == "/v2/analytics/usage"
        assert parse_qs(request.url.query.decode(), keep_blank_values=True) == {name: sent}
        with pytest.raises(errors.InvalidArgumentError) as raised:
            opper.analytics.get_usage(**{name: cast(Any, object())})
        assert raised.value.parameter == name
    assert len(recorder.requests) == 1


def test_every_enum_value_is_a_granularity_member() -> None:
    values = resolve({"$ref": "#/components/schemas/Granularity"})["enum"]
    assert sorted(member.value for member in models.Granularity) == sorted(values)
    for value in values:
        assert models.Granularity[value.upper()] == value


@pytest.mark.parametrize("status", [s for s in operation()["responses"] if s[0] in "45"], ids=str)
def test_every_documented_error_status_raises_its_typed_error(status: str) -> None:
    schema_name = operation()["responses"][status]["content"]["application/json"]["schema"][
        "$ref"
    ].rsplit("/", 1)[1]
    error_class = getattr(errors, schema_name, None)
    assert error_class is not None, (
        f"openapi.yaml answers {status} with {schema_name}, "
        "which opperai_usage.errors does not define"
    )
    body = {"type": schema_name, "message": "m", "detail": None}
    opper = Opper(
        http_bearer="k",
        server_url="http://127.0.0.1/v2",
        client=httpx.Client(
            transport=httpx.MockTransport(lambda _: httpx.Response(int(status), json=body))
        ),
        retry_config=None,
    )
    with pytest.raises(error_class) as raised:
        opper.analytics.get_usage()
    assert raised.value.status_code == int(status)
    assert raised.value.data.type == schema_name


def test_default_error_response_is_api_error() -> None:
    assert "default" in operation()["responses"]
    opper = Opper(
        http_bearer="k",
        server_url="http://127.0.0.1/v2",
        client=httpx.Client(
            transport=httpx.MockTransport(
                lambda _: httpx.Response(418, json={"type": "x", "message": "m", "detail": None})
            )
        ),
    )
    with pytest.raises(errors.APIError):
        opper.analytics.get_usage()


def test_default_server_url_is_the_specs() -> None:
    assert spec()["servers"][0]["url"] == DEFAULT_SERVER_URL


def test_each_parameter_is_checked_by_the_type_the_generated_code_declares() -> None:
    """The check for each query parameter is chosen from the generated `_get_kwargs` type
    hints; a parameter of a type the overlay has no check for fails loudly, naming it."""
    import functools
    import typing

    from opperai_usage._generated.api.analytics import usage_analytics_usage_get as endpoint
    from opperai_usage._generated.types import Unset
    from opperai_usage._query import _as_datetime, _as_enum, _as_str_list, _coercer_for

    hints = typing.get_type_hints(endpoint._get_kwargs)
    assert _coercer_for("from_date", hints["from_date"]) is _as_datetime
    assert _coercer_for("fields", hints["fields"]) is _as_str_list
    granularity = _coercer_for("granularity", hints["granularity"])
    assert isinstance(granularity, functools.partial)
    assert (granularity.func, granularity.args) == (_as_enum, (models.Granularity,))
    for hint in (int | None | Unset, list[int] | None | Unset, str | Unset):
        with pytest.raises(TypeError) as raised:
            _coercer_for("limit", hint)
        assert str(raised.value) == (
            f"query parameter 'limit' has a type the overlay cannot check yet: {hint}"
        )
