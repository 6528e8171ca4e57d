"""Error answers become the official SDK's errors, with what a user needs to act on them."""

from __future__ import annotations

import concurrent.futures
import copy
import gzip
import json
import multiprocessing
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from opperai_usage import Opper, errors
from tests.support import API_KEY
from tests.support.calls import Recorder, Usage
from tests.support.servers import LocalServer

URL = "http://127.0.0.1:9/v2"


def fail_mock(usage: Usage, response: httpx.Response) -> errors.OpperError:
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
    error = fail_mock(usage, httpx.Response(status, json=body, headers={"x-request-id": "req_1"}))
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
    error = fail_mock(usage, httpx.Response(status, json={"detail": "x"}))
    assert type(error) is kind
    assert str(error) == default_message
    data: Any = getattr(error, "data")  # noqa: B009
    assert (data.type, data.message, data.detail) == (name, default_message, "x")


def test_other_statuses_are_api_errors_with_the_official_message(usage: Usage) -> None:
    error = fail_mock(
        usage, httpx.Response(503, text="<html>down</html>", headers={"content-type": "text/html"})
    )
    assert type(error) is errors.APIError
    assert (
        str(error)
        == "API error occurred: Status 503 Content-Type text/html. Body: <html>down</html>"
    )
    error = fail_mock(
        usage, httpx.Response(500, json={"type": "X", "message": "boom", "detail": None})
    )
    assert (
        str(error)
        == 'API error occurred: Status 500. Body: {"type":"X","message":"boom","detail":null}'
    )
    error = fail_mock(usage, httpx.Response(418, text=""))
    assert (
        str(error)
        == 'API error occurred: Status 418 Content-Type "text/plain; charset=utf-8". Body: ""'
    )


def test_api_error_message_cuts_long_bodies(usage: Usage) -> None:
    error = fail_mock(
        usage, httpx.Response(502, text="x" * 10_050, headers={"content-type": "text/plain"})
    )
    assert str(error).endswith("x" * 10 + "...and 50 more chars")
    assert len(error.body) == 10_050


def test_typed_status_with_a_non_json_body_is_an_api_error(usage: Usage) -> None:
    error = fail_mock(
        usage, httpx.Response(404, text="<h1>nope</h1>", headers={"content-type": "text/html"})
    )
    assert type(error) is errors.APIError


NOT_JSON = "Expecting value: line 1 column 1 (char 0)"  # json.JSONDecodeError's own words


@pytest.mark.parametrize(
    ("response", "cause"),
    [
        (httpx.Response(404, json={"foo": 1}), "required key 'detail' is missing"),
        (httpx.Response(422, text="not json", headers={"content-type": "application/json"}),
         NOT_JSON),
        (httpx.Response(401, json=[1, 2]), "expected an error object, got an array"),
        (httpx.Response(401, json={"detail": None, "message": 5}),
         "'message' must be a string, not int"),
        (httpx.Response(422, json={"detail": None, "type": []}),
         "'type' must be a string, not list"),
        (httpx.Response(200, text="<html>ok</html>", headers={"content-type": "text/html"}),
         NOT_JSON),
        (httpx.Response(200, text="not json"), NOT_JSON),
        (httpx.Response(200, json={"a": 1}), "expected an array of items, got an object"),
        (httpx.Response(200, json=[{"cost": "1"}]),
         "item 0: required key 'time_bucket' is missing"),
        (httpx.Response(200, json=[{"time_bucket": "x", "cost": "1"}]),
         "item 0: 'time_bucket' must be an ISO 8601 date-time, got 'x'"),
        (httpx.Response(200, json=[{"time_bucket": "2026-11-01T00:00:00Z", "cost": 1}]),
         "item 0: 'cost' must be a string, got a number"),
        (httpx.Response(204), NOT_JSON),  # no body at all
    ],
)  # fmt: skip
def test_bodies_that_do_not_fit_the_schema(
    usage: Usage, response: httpx.Response, cause: str
) -> None:
    """The cause says what did not fit, and the message repeats it after its first words."""
    error = fail_mock(usage, response)
    assert type(error) is errors.ResponseValidationError
    assert isinstance(error.cause, ValueError)
    assert str(error.cause) == cause
    status = response.status_code
    assert str(error).startswith(f"Response validation failed: {cause}. Status {status}")
    assert error.status_code == response.status_code


API_ERRORS = [
    # (status, content type, body, the message)
    (503, "text/html", "<html>down</html>",
     "API error occurred: Status 503 Content-Type text/html. Body: <html>down</html>"),
    # A status the spec types, with a body that is not JSON: no typed error, the API error's
    # words (">= 400", not "> 400": the 400 itself is an error answer).
    (400, "text/html", "<h1>Bad Request</h1>",
     "API error occurred: Status 400 Content-Type text/html. Body: <h1>Bad Request</h1>"),
    (422, "text/plain", "nope",
     "API error occurred: Status 422 Content-Type text/plain. Body: nope"),
    (599, "text/plain", "x", "API error occurred: Status 599 Content-Type text/plain. Body: x"),
    # JSON is not named (as the official SDK words it); a content type with a space is quoted.
    (500, "application/json", '{"detail":null}',
     'API error occurred: Status 500. Body: {"detail":null}'),
    (502, "text/plain; charset=utf-8", "bad gateway",
     'API error occurred: Status 502 Content-Type "text/plain; charset=utf-8". Body: bad gateway'),
    (502, "text/plain;charset=utf-8", "bad gateway",
     "API error occurred: Status 502 Content-Type text/plain;charset=utf-8. Body: bad gateway"),
    # No content type at all, no body at all: both shown as "".
    (504, None, "", 'API error occurred: Status 504 Content-Type "". Body: ""'),
    # Below 400 and not 2XX: not an error answer, an unexpected one.
    (304, "text/plain", "",
     'Unexpected response received: Status 304 Content-Type text/plain. Body: ""'),
    (399, "application/json", "{}", "Unexpected response received: Status 399. Body: {}"),
]  # fmt: skip


@pytest.mark.parametrize(("status", "content_type", "body", "message"), API_ERRORS)
def test_every_api_error_message_form(
    usage: Usage, status: int, content_type: str | None, body: str, message: str
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    error = fail_mock(usage, httpx.Response(status, content=body.encode(), headers=headers))
    assert type(error) is errors.APIError
    assert str(error) == error.message == message
    assert (error.status_code, error.body) == (status, body)


def test_api_error_message_with_a_request_id_and_a_long_body(usage: Usage) -> None:
    body = "y" * 10_001
    response = httpx.Response(
        500, text=body, headers={"content-type": "text/plain", "x-request-id": "req_9"}
    )
    error = fail_mock(usage, response)
    assert error.message == (
        "API error occurred: Status 500 Content-Type text/plain. Body: "
        + "y" * 10_000
        + "...and 1 more chars"
    )
    assert str(error) == error.message + " (request id req_9)"


def test_an_api_error_made_without_a_message_is_the_description() -> None:
    """`APIError(message, raw_response, body)`, the official SDK's signature: an empty
    message leaves the description alone, and `body` is what it quotes."""
    response = httpx.Response(502, text="ignored", headers={"content-type": "text/html"})
    error = errors.APIError("", response, body="<p>proxy</p>")
    assert str(error) == "Status 502 Content-Type text/html. Body: <p>proxy</p>"
    assert error.body == "<p>proxy</p>"
    named = errors.APIError("Gateway", response)
    assert str(named) == "Gateway: Status 502 Content-Type text/html. Body: ignored"


def test_redirect_not_followed_is_an_unexpected_response(usage: Usage) -> None:
    error = fail_mock(
        usage, httpx.Response(302, headers={"location": "http://127.0.0.1:9/elsewhere"})
    )
    assert type(error) is errors.APIError
    assert str(error).startswith("Unexpected response received: Status 302")


def test_a_3xx_with_a_body_of_items_is_still_an_unexpected_response(usage: Usage) -> None:
    """Only a 2XX answer's body is items: a 300 (which is never followed) that carries a
    valid-looking list is an error, not an empty result."""
    error = fail_mock(usage, httpx.Response(300, json=[]))
    assert type(error) is errors.APIError
    assert str(error).startswith("Unexpected response received: Status 300")


def test_errors_pickle_without_the_key(usage: Usage) -> None:
    error = fail_mock(usage, httpx.Response(401, json={"detail": "bad key"}))
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


# -- every error pickles and copies with what a user reads from it (multiprocessing, task
# queues, error trackers), over a real socket: the local server answers each case


SAME_ID = {"x-request-id": "req_123"}  # one request id for every answer, so two compare
FAILURES: dict[str, tuple[list[dict[str, Any]], dict[str, Any], type[BaseException]]] = {
    "400": ([{"status": 400, "json": {"detail": "bad range"}, "headers": SAME_ID}], {},
            errors.BadRequestError),
    "401": ([{"status": 401, "json": {"message": "Nope", "detail": None}, "headers": SAME_ID}],
            {}, errors.UnauthorizedError),
    "404": ([{"status": 404, "json": {"detail": {"id": 1}}, "headers": SAME_ID}], {},
            errors.NotFoundError),
    "422": ([{"status": 422, "json": {"detail": [{"loc": ["query"]}]}, "headers": SAME_ID}], {},
            errors.RequestValidationError),
    "503": ([{"status": 503, "body": "<h1>down</h1>", "content_type": "text/html",
              "headers": SAME_ID}], {}, errors.APIError),
    "200-not-json": ([{"body": "<html>Log in to the Wi-Fi</html>", "content_type": "text/html",
                       "headers": SAME_ID}], {}, errors.ResponseValidationError),
    "200-wrong-shape": ([{"json": [{"cost": "1"}], "headers": SAME_ID}], {},
                        errors.ResponseValidationError),
    "bad-argument": ([], {"granularity": "week"}, errors.InvalidArgumentError),
    "redirect-loop": ([{"status": 302, "headers": {"Location": "/v2/analytics/usage"}}] * 21,
                      {}, httpx.TooManyRedirects),
}  # fmt: skip


def fail(server_url: str, case: str) -> None:
    """One call that fails as `case` does (in this process or in a worker)."""
    _, arguments, _ = FAILURES[case]
    with Opper(http_bearer=API_KEY, server_url=server_url, retry_config=None) as opper:
        opper.analytics.get_usage(**arguments)


def readable(error: BaseException) -> dict[str, Any]:
    """Everything a user reads from an error (the Date header aside: it changes by the
    second)."""
    seen: dict[str, Any] = {"type": type(error), "str": str(error), "repr": repr(error)}
    if isinstance(error, errors.OpperError):
        headers = {k: v for k, v in error.headers.items() if k != "date"}
        seen |= {
            "message": error.message,
            "status_code": error.status_code,
            "body": error.body,
            "headers": headers,
            "request_id": error.request_id,
            "response": (error.raw_response.status_code, error.raw_response.text),
            "url": str(error.raw_response.request.url),
        }
        data = getattr(error, "data", None)
        if data is not None:
            seen["data"] = (data.type, data.message, data.detail)
    if isinstance(error, errors.ResponseValidationError):
        seen["cause"] = (type(error.cause), str(error.cause))
    if isinstance(error, errors.InvalidArgumentError):
        seen["parameter"] = error.parameter
    if isinstance(error, httpx.RequestError):
        seen["url"] = str(error.request.url)
    return seen


def raised_here(local: LocalServer, case: str) -> BaseException:
    script, _, expected = FAILURES[case]
    if script:
        local.script(*script)
    with pytest.raises(expected) as raised:
        fail(local.url, case)
    return raised.value


@pytest.mark.parametrize("case", list(FAILURES))
def test_errors_pickle_and_copy_with_all_a_user_reads(local: LocalServer, case: str) -> None:
    error = raised_here(local, case)
    expected = readable(error)
    if isinstance(error, errors.OpperError):
        assert expected["request_id"] == "req_123"
        assert expected["str"].endswith(" (request id req_123)")
    for copied in (
        pickle.loads(pickle.dumps(error)),
        copy.copy(error),
        copy.deepcopy(error),
    ):
        assert readable(copied) == expected


FORKING_WITH_THREADS = pytest.mark.filterwarnings(  # 3.12+: pytest's and the servers' threads
    "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning"
)
InWorker = Callable[[str, str], None]


@pytest.fixture(scope="module")
def pools() -> Iterator[dict[str, InWorker]]:
    """`fail(url, case)` run in a worker process, by each kind of pool: one worker each, forked
    once for all the cases (each case's call makes its own client there, as it would here)."""
    context = multiprocessing.get_context("fork")
    with (
        concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as executor,
        context.Pool(1) as workers,
    ):

        def submitted(url: str, case: str) -> None:
            executor.submit(fail, url, case).result(timeout=30)

        def applied(url: str, case: str) -> None:
            workers.apply_async(fail, (url, case)).get(timeout=30)

        yield {"ProcessPoolExecutor": submitted, "multiprocessing.Pool": applied}


@FORKING_WITH_THREADS
@pytest.mark.parametrize("pool", ["ProcessPoolExecutor", "multiprocessing.Pool"])
@pytest.mark.parametrize("case", list(FAILURES))
def test_errors_raised_in_worker_processes_arrive_whole(
    local: LocalServer, pools: dict[str, InWorker], case: str, pool: str
) -> None:
    """A bad argument or an error answer in a worker reaches the parent as itself (not
    BrokenProcessPool, not a `.get()` that never returns), with all a user reads."""
    expected = readable(raised_here(local, case))
    script, _, kind = FAILURES[case]
    if script:
        local.script(*script)
    with pytest.raises(kind) as raised:
        pools[pool](local.url, case)
    arrived = readable(raised.value)
    assert arrived == expected


def test_a_200_that_is_not_json_says_what_it_is(local: LocalServer, usage: Usage) -> None:
    """A captive portal's page: the message names the status, the content type and the
    start of the body, besides what did not fit."""
    page = "<html><body>Log in to the Wi-Fi" + "." * 1_000 + "</body></html>"
    local.script({"body": page, "content_type": "text/html; charset=utf-8"})
    with pytest.raises(errors.ResponseValidationError) as raised:
        usage(server_url=local.url, retry_config=None)
    message = str(raised.value)
    assert message.startswith("Response validation failed: Expecting value: line 1 column 1")
    assert 'Status 200 Content-Type "text/html; charset=utf-8". Body: <html><body>Log in' in message
    assert f"...and {len(page) - 500} more chars (request id req_" in message
    assert raised.value.body == page
    assert isinstance(raised.value.cause, json.JSONDecodeError)


def test_str_without_a_request_id_is_the_message(usage: Usage) -> None:
    error = fail_mock(usage, httpx.Response(401, json={"detail": None, "message": "Nope"}))
    assert error.request_id is None
    assert str(error) == error.message == "Nope"


# -- which answers get a typed error: the status the spec documents, with a JSON body


@pytest.mark.parametrize(
    ("content_type", "typed"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("application/json;charset=utf-8; profile=x", True),
        ("Application/JSON", True),
        ("application/problem+json", True),  # RFC 9457's problem details are JSON too
        ("application/vnd.api+JSON; charset=utf-8", True),
        ("text/plain; format=application/json", False),
        ("text/json+html", False),
        (None, False),  # no content type at all: not known to be JSON
    ],
)
def test_a_documented_status_is_typed_when_its_body_is_json(
    usage: Usage, content_type: str | None, typed: bool
) -> None:
    body = b'{"type": "NotFoundError", "message": "No such project", "detail": null}'
    headers = {} if content_type is None else {"content-type": content_type}
    error = fail_mock(usage, httpx.Response(404, content=body, headers=headers))
    assert type(error) is (errors.NotFoundError if typed else errors.APIError)
    assert (error.message == "No such project") is typed


def test_which_status_gets_which_typed_error_is_read_from_the_generated_parser() -> None:
    from opperai_usage._decode import _typed_errors
    from opperai_usage._generated import models as generated

    assert _typed_errors.__wrapped__() == {
        400: errors.BadRequestError,
        401: errors.UnauthorizedError,
        404: errors.NotFoundError,
        422: errors.RequestValidationError,
    }
    assert errors.typed_error_for(generated.NotFoundError) is errors.NotFoundError
    assert errors.typed_error_for(generated.GetUsageResultItem) is None


def test_an_empty_message_falls_back_to_the_body(usage: Usage) -> None:
    body = '{"type": "BadRequestError", "message": "", "detail": null}'
    response = httpx.Response(400, text=body, headers={"content-type": "application/json"})
    error = fail_mock(usage, response)
    assert type(error) is errors.BadRequestError
    assert error.message == body
    assert str(error) == body


# -- errors made by hand (the official SDK's signatures), as tests of user code make them


def test_errors_made_by_hand_carry_what_they_were_given() -> None:
    response = httpx.Response(400, text="raw", headers={"x-request-id": "req_7"})
    data = errors.BadRequestErrorData.from_dict({"message": "Bad range", "detail": None})
    bad = errors.BadRequestError(data, response, body="given")
    assert (bad.message, bad.body, bad.status_code) == ("Bad range", "given", 400)
    assert repr(bad) == "BadRequestError(status_code=400, message='Bad range')"
    assert str(bad) == "Bad range (request id req_7)"

    cause = ValueError("'cost' must be a string")
    invalid = errors.ResponseValidationError("Bad answer", response, cause, body="shown")
    assert invalid.body == "shown"
    assert str(invalid) == (
        "Bad answer: 'cost' must be a string. Status 400 Content-Type text/plain; "
        "charset=utf-8. Body: shown (request id req_7)".replace(
            "text/plain; charset=utf-8", '"text/plain; charset=utf-8"'
        )
    )
    assert invalid.cause is cause
    assert invalid.__cause__ is cause  # tracebacks show it as the direct cause
    assert repr(invalid).startswith("ResponseValidationError(status_code=400, ")


def test_errors_made_by_hand_pickle_too() -> None:
    """A response built by hand has no request (httpx raises on `.request`): the error still
    pickles, with what it says."""
    error = errors.APIError("Gateway", httpx.Response(502, text="<p>down</p>"))
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is errors.APIError
    assert (str(restored), restored.args, restored.body) == (str(error), error.args, error.body)


def test_a_pickled_error_keeps_the_redirects_it_refers_to_without_the_key() -> None:
    """A redirect your own client did not follow (`next_request`), and those a client did
    follow on its way to an error (`history`): both survive a pickle, credentials redacted."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/usage"):
            return httpx.Response(307, headers={"location": "/v2/moved"})
        return httpx.Response(503, text="down")

    def pickled_error(follow: bool) -> errors.OpperError:
        client = httpx.Client(transport=httpx.MockTransport(answer), follow_redirects=follow)
        options: dict[str, Any] = {"client": client, "retry_config": None}
        with (
            Opper(http_bearer=API_KEY, server_url=URL, **options) as opper,
            pytest.raises(errors.APIError) as raised,
        ):
            opper.analytics.get_usage()
        pickled = pickle.dumps(raised.value)
        assert API_KEY.encode() not in pickled
        restored: errors.OpperError = pickle.loads(pickled)
        assert restored.args == raised.value.args
        return restored

    unfollowed = pickled_error(follow=False).raw_response
    assert unfollowed.status_code == 307
    assert unfollowed.next_request is not None
    assert str(unfollowed.next_request.url) == "http://127.0.0.1:9/v2/moved"
    assert unfollowed.next_request.headers["authorization"] == "<redacted>"
    followed = pickled_error(follow=True).raw_response
    assert followed.status_code == 503
    assert [earlier.status_code for earlier in followed.history] == [307]
    assert followed.history[0].request.headers["authorization"] == "<redacted>"


def test_a_redirect_followed_on_the_way_to_an_error_keeps_no_echoed_key() -> None:
    """A proxy's redirect that quoted the key (in its body and a header), followed to an
    error: the answer it left in the error's `history` has the key redacted, the rest kept."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/usage"):
            quoted = request.headers["authorization"]
            headers = {"location": "/v2/moved", "x-seen": quoted}
            return httpx.Response(307, headers=headers, text=f"moved; you sent {quoted}")
        return httpx.Response(503, text="down")

    client = httpx.Client(transport=httpx.MockTransport(answer), follow_redirects=True)
    with (
        Opper(http_bearer=API_KEY, server_url=URL, client=client, retry_config=None) as opper,
        pytest.raises(errors.APIError) as raised,
    ):
        opper.analytics.get_usage()
    (redirect,) = raised.value.raw_response.history
    assert redirect.text == "moved; you sent Bearer <redacted>"
    assert redirect.headers["x-seen"] == "Bearer <redacted>"
    assert (raised.value.status_code, raised.value.body) == (503, "down")


LONG = "x" * 40  # from 40 characters on, a string is described, not quoted


@pytest.mark.parametrize(
    ("answer", "cause"),
    [
        ({"a": 1}, "expected an array of items, got an object"),
        ("y" * 39, f"expected an array of items, got {'y' * 39!r}"),
        (LONG, "expected an array of items, got a string"),
        (True, "expected an array of items, got a boolean"),
        (None, "expected an array of items, got null"),
        (2.5, "expected an array of items, got a number"),
        ([[]], "item 0: expected an object, got an array"),
        ([{"time_bucket": {}, "cost": "1"}],
         "item 0: 'time_bucket' must be a date-time string, got an object"),
        ([{"time_bucket": "2026-11-01T00:00:00Z", "cost": "1"}, {"time_bucket": LONG, "cost": "1"}],
         "item 1: 'time_bucket' must be an ISO 8601 date-time, got a string"),
        ([{"time_bucket": "2026-11-01T00:00:00Z", "cost": None}],
         "item 0: 'cost' must be a string, got null"),
        ([{"time_bucket": "2026-11-01T00:00:00Z", "cost": False}],
         "item 0: 'cost' must be a string, got a boolean"),
        ([{"time_bucket": "2026-11-01T00:00:00Z"}], "item 0: required key 'cost' is missing"),
    ],
)  # fmt: skip
def test_what_did_not_fit_is_named(usage: Usage, answer: Any, cause: str) -> None:
    response = httpx.Response(200, content=json.dumps(answer).encode())
    error = fail_mock(usage, response)
    assert type(error) is errors.ResponseValidationError
    assert str(error.cause) == cause


def test_a_body_of_exactly_the_limit_is_quoted_whole(usage: Usage) -> None:
    body = "z" * 10_000
    error = fail_mock(usage, httpx.Response(500, text=body, headers={"content-type": "text/x"}))
    assert str(error) == f"API error occurred: Status 500 Content-Type text/x. Body: {body}"


def test_only_credentials_are_redacted_from_what_errors_keep(usage: Usage) -> None:
    """A pickled error, and a network error, keep the request's other headers as sent."""
    error = fail_mock(usage, httpx.Response(503, text="down"))
    restored = pickle.loads(pickle.dumps(error))
    headers = restored.raw_response.request.headers
    assert headers["authorization"] == "<redacted>"
    assert headers["accept"] == "application/json"
    assert headers["user-agent"].startswith("opperai-usage/")
    recorder = Recorder(httpx.ConnectError("refused"))
    with pytest.raises(httpx.ConnectError) as raised:
        usage(server_url=URL, transport=recorder.transport, retry_config=None)
    assert raised.value.request.headers["authorization"] == "<redacted>"
    assert raised.value.request.headers["accept"] == "application/json"


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ({}, "Status 200: the answer's body is larger than"),
        (
            {"Content-Encoding": " gzip "},
            "Status 200: the answer's body, decoded from gzip, is larger than",
        ),
    ],
    ids=["plain", "gzip"],
)
def test_an_answer_past_max_response_bytes_says_its_limit_and_its_encoding(
    usage: Usage, headers: dict[str, str], says: str
) -> None:
    """The message names the limit, and says "decoded" only when the body was encoded."""
    body = b"[" + b" " * 2_000 + b"]"
    content = gzip.compress(body) if headers else body
    with pytest.raises(errors.ResponseTooLargeError) as raised:
        usage(
            server_url=URL,
            transport=httpx.MockTransport(
                lambda _: httpx.Response(200, headers=headers, content=content)
            ),
            retry_config=None,
            max_response_bytes=1_024,
        )
    assert str(raised.value) == (
        f"{says} max_response_bytes (1,024 bytes), so it was not read; "
        "Opper(max_response_bytes=...) allows larger answers"
    )
    assert raised.value.limit == 1_024
    assert raised.value.body == ""


def test_a_redacted_body_keeps_its_charset(usage: Usage) -> None:
    """A Latin-1 error body that echoes the key: the error's copy of the answer has the key
    redacted and is still Latin-1, so its text reads as the server wrote it."""
    sent = f"caf\u00e9: Bearer {API_KEY}"
    headers = {"Content-Type": "text/plain; charset=latin-1"}
    answer = httpx.Response(500, headers=headers, content=sent.encode("latin-1"))
    error = fail_mock(usage, answer)
    assert error.raw_response.content == "caf\u00e9: Bearer <redacted>".encode("latin-1")
    assert error.raw_response.text == "caf\u00e9: Bearer <redacted>"
    assert error.body == "caf\u00e9: Bearer <redacted>"


def test_a_redacted_answer_keeps_its_latin_1_headers(usage: Usage) -> None:
    """An error answer that echoes the key and has a header that is not ASCII (Latin-1, as
    HTTP allows): the error's copy has the key redacted and the other header as sent."""
    headers = [
        (b"x-seen", f"Bearer {API_KEY}".encode()),
        (b"x-note", "caf\u00e9".encode("latin-1")),
    ]
    error = fail_mock(usage, httpx.Response(500, headers=headers, text="down"))
    assert error.headers["x-seen"] == "Bearer <redacted>"
    assert error.headers["x-note"] == "caf\u00e9"
    assert dict(error.headers.raw)[b"x-note"] == "caf\u00e9".encode("latin-1")


def test_a_redacted_body_that_breaks_its_charset_keeps_the_rest(usage: Usage) -> None:
    """An error body that says ASCII but holds another byte, and echoes the key: the error's
    copy reads as the server's did (the stray byte replaced, as when it was read)."""
    headers = {"Content-Type": "text/plain; charset=ascii"}
    answer = httpx.Response(
        500, headers=headers, content=f"caf\xe9: Bearer {API_KEY}".encode("latin-1")
    )
    error = fail_mock(usage, answer)
    assert error.body == "caf\ufffd: Bearer <redacted>"
    assert error.raw_response.text == error.body
    assert error.raw_response.content == b"caf?: Bearer <redacted>"


def test_other_credentials_echoed_back_are_redacted_whole() -> None:
    """Credentials sent in `http_headers` (a cookie, whose value has spaces; a proxy's token
    without a scheme) and quoted back by the server read `<redacted>` whole in the error."""
    cookie, token = f"session={API_KEY}a; theme=dark", f"{API_KEY}b"
    sent = {"Cookie": cookie, "Proxy-Authorization": token}

    def answer(request: httpx.Request) -> httpx.Response:
        quoted = f"{request.headers['cookie']} | {request.headers['proxy-authorization']}"
        return httpx.Response(500, text=f"you sent {quoted}")

    client = httpx.Client(transport=httpx.MockTransport(answer))
    with (
        Opper(http_bearer=API_KEY, server_url=URL, client=client, retry_config=None) as opper,
        pytest.raises(errors.APIError) as raised,
    ):
        opper.analytics.get_usage(http_headers=sent)
    assert raised.value.body == "you sent <redacted> | <redacted>"
