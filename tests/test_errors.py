"""Error answers become the official SDK's errors, with what a user needs to act on them."""

from __future__ import annotations

import json
import pickle
from typing import Any

import httpx
import pytest

from conftest import API_KEY, Recorder, Usage
from opperai_usage import errors

URL = "http://127.0.0.1:9/v2"


def fail(usage: Usage, response: httpx.Response) -> errors.OpperError:
    with pytest.raises(errors.OpperError) as raised:
        usage(server_url=URL, transport=Recorder(response).transport, retry_config=None)
    return raised.value


TYPED = [
    (400, errors.BadRequestError, "BadRequestError", "The request is invalid"),
    (401, errors.UnauthorizedError, "UnauthorizedError", "The request is unauthorized"),
    (404, errors.NotFoundError, "NotFoundError", "The resource was not found"),
    (422, errors.RequestValidationError, "RequestValidationError", "The request is invalid"),
]


@pytest.mark.parametrize(("status", "kind", "name", "default_message"), TYPED)
def test_documented_errors_are_typed(
    usage: Usage, status: int, kind: type[errors.OpperError], name: str, default_message: str
) -> None:
    body = {"type": name, "message": "Something specific", "detail": [{"loc": ["query"]}]}
    error = fail(usage, httpx.Response(status, json=body, headers={"x-request-id": "req_1"}))
    assert type(error) is kind
    assert error.status_code == status
    assert error.message == "Something specific"
    assert str(error) == "Something specific (request id req_1)"  # logs carry the id
    assert error.request_id == "req_1"
    assert json.loads(error.body) == body
    assert error.headers["x-request-id"] == "req_1"
    assert error.raw_response.status_code == status
    data: Any = getattr(error, "data")  # noqa: B009 - each typed error has its own data type
    assert (data.type, data.message, data.detail) == (
        name,
        "Something specific",
        [{"loc": ["query"]}],
    )


@pytest.mark.parametrize(("status", "kind", "name", "default_message"), TYPED)
def test_spec_defaults_fill_a_sparse_error_body(
    usage: Usage, status: int, kind: type[errors.OpperError], name: str, default_message: str
) -> None:
    error = fail(usage, httpx.Response(status, json={"detail": "x"}))
    assert type(error) is kind
    assert str(error) == default_message
    data: Any = getattr(error, "data")  # noqa: B009
    assert (data.type, data.message, data.detail) == (name, default_message, "x")


def test_other_statuses_are_api_errors_with_the_official_message(usage: Usage) -> None:
    error = fail(
        usage, httpx.Response(503, text="<html>down</html>", headers={"content-type": "text/html"})
    )
    assert type(error) is errors.APIError
    assert (
        str(error)
        == "API error occurred: Status 503 Content-Type text/html. Body: <html>down</html>"
    )
    error = fail(usage, httpx.Response(500, json={"type": "X", "message": "boom", "detail": None}))
    assert (
        str(error)
        == 'API error occurred: Status 500. Body: {"type":"X","message":"boom","detail":null}'
    )
    error = fail(usage, httpx.Response(418, text=""))
    assert (
        str(error)
        == 'API error occurred: Status 418 Content-Type "text/plain; charset=utf-8". Body: ""'
    )


def test_api_error_message_cuts_long_bodies(usage: Usage) -> None:
    error = fail(
        usage, httpx.Response(502, text="x" * 10_050, headers={"content-type": "text/plain"})
    )
    assert str(error).endswith("x" * 10 + "...and 50 more chars")
    assert len(error.body) == 10_050


def test_typed_status_with_a_non_json_body_is_an_api_error(usage: Usage) -> None:
    error = fail(
        usage, httpx.Response(404, text="<h1>nope</h1>", headers={"content-type": "text/html"})
    )
    assert type(error) is errors.APIError


@pytest.mark.parametrize(
    ("response", "cause"),
    [
        (httpx.Response(404, json={"foo": 1}), "required key 'detail' is missing"),
        (httpx.Response(422, text="not json", headers={"content-type": "application/json"}), ""),
        (httpx.Response(401, json=[1, 2]), "expected an error object, got an array"),
        (httpx.Response(401, json={"detail": None, "message": 5}), "'message' must be a string"),
        (httpx.Response(422, json={"detail": None, "type": []}), "'type' must be a string"),
        (httpx.Response(200, text="<html>ok</html>", headers={"content-type": "text/html"}), ""),
        (httpx.Response(200, text="not json"), ""),
        (httpx.Response(200, json={"a": 1}), "expected an array of items, got an object"),
        (httpx.Response(200, json=[{"cost": "1"}]),
         "item 0: required key 'time_bucket' is missing"),
        (httpx.Response(200, json=[{"time_bucket": "x", "cost": "1"}]), "item 0: 'time_bucket'"),
        (httpx.Response(200, json=[{"time_bucket": "2026-11-01T00:00:00Z", "cost": 1}]),
         "item 0: 'cost' must be a string, got a number"),
        (httpx.Response(204), ""),
    ],
)  # fmt: skip
def test_bodies_that_do_not_fit_the_schema(
    usage: Usage, response: httpx.Response, cause: str
) -> None:
    error = fail(usage, response)
    assert type(error) is errors.ResponseValidationError
    assert str(error).startswith("Response validation failed: ")
    assert isinstance(error.cause, ValueError)
    assert cause in str(error.cause)
    assert error.status_code == response.status_code


def test_redirect_not_followed_is_an_unexpected_response(usage: Usage) -> None:
    error = fail(usage, httpx.Response(302, headers={"location": "http://127.0.0.1:9/elsewhere"}))
    assert type(error) is errors.APIError
    assert str(error).startswith("Unexpected response received: Status 302")


def test_errors_pickle_without_the_key(usage: Usage) -> None:
    error = fail(usage, httpx.Response(401, json={"detail": "bad key"}))
    assert error.raw_response.request.headers["authorization"] == f"Bearer {API_KEY}"
    pickled = pickle.dumps(error)
    assert API_KEY.encode() not in pickled
    restored = pickle.loads(pickled)
    assert type(restored) is errors.UnauthorizedError
    assert (restored.status_code, str(restored), restored.data.detail) == (
        401,
        error.message,
        "bad key",
    )
    assert API_KEY not in repr(error) + str(error)
