"""The overlay exposes and maps everything openapi.yaml describes.

When the spec gains a query parameter, an enum value or an error response and `generated/` is
regenerated, these tests fail and name what the overlay is missing.
"""

from __future__ import annotations

import inspect

import httpx
import pytest

from opperai_usage import Opper, errors, models
from opperai_usage._client import DEFAULT_SERVER_URL
from spec import operation, resolve, spec

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


def test_every_query_parameter_is_checked_and_sent() -> None:
    from opperai_usage._query import PARAMETERS

    assert sorted(PARAMETERS) == sorted(SPEC_PARAMETERS)


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
