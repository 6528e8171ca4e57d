"""Property-based tests: arguments in, requests out (held to openapi.yaml by openapi-core), and
arbitrary answers in, results or typed errors out.

- Every valid combination of arguments makes one request that conforms to openapi.yaml and
  carries exactly the values given; the sync and the async call send the same request.
- Every invalid argument raises `InvalidArgumentError` (a `ValueError`) naming the parameter,
  before anything is sent.
- Any JSON that does not fit the 200 schema raises `ResponseValidationError`, never KeyError,
  TypeError or AttributeError; any valid items decode to equal values (and equal to what the
  generated `from_dict` makes of them).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import httpx
import pytest
from dateutil.parser import isoparse
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from opperai_usage import Opper, _decode
from opperai_usage._generated.models import GetUsageResultItem as GeneratedItem
from opperai_usage.errors import (
    APIError,
    BadRequestError,
    InvalidArgumentError,
    NotFoundError,
    OpperError,
    RequestValidationError,
    ResponseValidationError,
    UnauthorizedError,
)
from opperai_usage.models import GetUsageResultItem, Granularity
from opperai_usage.types import UNSET
from tests.support import API_KEY
from tests.support.spec import spec

if TYPE_CHECKING:  # openapi-core takes half a second to import, in every test worker
    from openapi_core import OpenAPI
    from openapi_core.datatypes import RequestParameters

PATH = "/analytics/usage"
SERVER = "https://api.opper.ai/v2"
PARAMETERS = ("from_date", "to_date", "granularity", "fields", "group_by")
DATES = ("from_date", "to_date")
LISTS = ("fields", "group_by")
GRANULARITIES = [member.value for member in Granularity]
QUICK = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- openapi.yaml as openapi-core checks it


@cache
def openapi() -> OpenAPI:
    """openapi.yaml for openapi-core, with each parameter's `anyOf [..., null]` unwrapped.

    openapi-core (0.19 to 0.23) reads a parameter whose schema is an `anyOf` as type "any"
    and so takes only the first value of an exploded array (`fields=a&fields=b` fails as
    `'a' is not an array`). A query string cannot carry a JSON null, so dropping the null
    branch loses nothing; every other branch is kept as written.
    """
    from openapi_core import OpenAPI

    document = copy.deepcopy(spec())
    for parameter in document["paths"][PATH]["get"]["parameters"]:
        schema = parameter["schema"]
        branches = [branch for branch in schema.pop("anyOf") if branch != {"type": "null"}]
        if len(branches) == 1:
            schema.update(branches[0])
        else:
            schema["anyOf"] = branches
    return OpenAPI.from_dict(document)


@dataclass
class SpecRequest:
    """An `openapi_core.protocols.Request` made from the httpx request the client sent."""

    host_url: str
    path: str
    method: str
    parameters: RequestParameters
    body: bytes | None = None
    content_type: str = ""

    @classmethod
    def of(cls, request: httpx.Request) -> SpecRequest:
        from openapi_core.datatypes import RequestParameters
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        url = request.url
        query = parse_qsl(url.query.decode("ascii"), keep_blank_values=True, strict_parsing=False)
        return cls(
            host_url=f"{url.scheme}://{url.netloc.decode('ascii')}",
            path=url.path,
            method=request.method.lower(),
            parameters=RequestParameters(
                query=ImmutableMultiDict(query), header=Headers(list(request.headers.items()))
            ),
        )


# -- a client whose requests are captured, not sent


class Capture:
    """MockTransport handler: records each request and answers with `answer`."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = httpx.Response(200, json=[])

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(
            self.answer.status_code, headers=self.answer.headers, content=self.answer.content
        )

    def take(self) -> list[httpx.Request]:
        taken, self.requests = self.requests, []
        return taken


@dataclass
class Captured:
    capture: Capture
    opper: Opper
    #: One event loop for the module's async calls: `asyncio.run()` per example would spend
    #: more on making and closing loops than on the call (loops have tests of their own).
    loop: asyncio.AbstractEventLoop

    def sync(self, arguments: dict[str, Any]) -> list[GetUsageResultItem]:
        return self.opper.analytics.get_usage(**arguments)

    def async_(self, arguments: dict[str, Any]) -> list[GetUsageResultItem]:
        return self.loop.run_until_complete(self.opper.analytics.get_usage_async(**arguments))

    def both(self, arguments: dict[str, Any]) -> list[httpx.Request]:
        """Make the call sync and async, answered with no items (whatever answer a test of
        answers left: tests run in any order); return the requests sent (one per mode)."""
        self.capture.answer = httpx.Response(200, json=[])
        self.sync(arguments)
        self.async_(arguments)
        return self.capture.take()


@pytest.fixture(scope="module")
def captured() -> Iterator[Captured]:
    capture = Capture()
    transport = httpx.MockTransport(capture)
    opper = Opper(
        http_bearer=API_KEY,
        client=httpx.Client(transport=transport),
        async_client=httpx.AsyncClient(transport=transport),
        retry_config=None,
    )
    loop = asyncio.new_event_loop()
    try:
        yield Captured(capture, opper, loop)
    finally:
        opper.close()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


# -- valid arguments, with the value each one means

# Whole-minute offsets: what RFC 3339 can spell (offsets with seconds have a test of their own).
minute_offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
# Years 2..9998, so that any offset can move an instant without leaving datetime's range.
naive_datetimes = st.datetimes(min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 1, 1))
aware_datetimes = st.builds(
    lambda naive, zone: naive.replace(tzinfo=zone),
    naive_datetimes,
    st.just(dt.timezone.utc) | minute_offsets,
)


def _zulu(moment: dt.datetime) -> str:
    return moment.replace(tzinfo=None).isoformat() + "Z"


@st.composite
def date_arguments(draw: st.DrawFn) -> tuple[Any, dt.datetime | None]:
    """(argument, the datetime it means) — None for "not sent"."""
    kind = draw(st.sampled_from(["unset", "none", "aware", "naive", "date", "string"]))
    if kind == "unset":
        return UNSET, None
    if kind == "none":
        return None, None
    if kind == "aware":
        moment = draw(aware_datetimes)
        return moment, moment
    if kind == "naive":
        moment = draw(naive_datetimes)
        return moment, moment
    if kind == "date":
        day = draw(st.dates(min_value=dt.date(2, 1, 1), max_value=dt.date(9998, 1, 1)))
        return day, dt.datetime(day.year, day.month, day.day)
    moment = draw(naive_datetimes | aware_datetimes)
    spellings = [moment.isoformat(), moment.date().isoformat() if moment.tzinfo is None else None]
    if moment.tzinfo is dt.timezone.utc:
        spellings.append(_zulu(moment))
    text = draw(st.sampled_from([s for s in spellings if s is not None]))
    return text, _python_datetime(text)


granularity_arguments = st.sampled_from([UNSET, None, *Granularity, *GRANULARITIES])
names = st.text(max_size=12).filter(lambda name: name != "count")  # refused as a field
list_arguments = st.one_of(
    st.just(UNSET),
    st.none(),
    st.lists(names, max_size=4),
    st.lists(names, max_size=4).map(tuple),
)


@st.composite
def valid_arguments(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """(keyword arguments, what each sent parameter must mean)."""
    arguments: dict[str, Any] = {}
    meaning: dict[str, Any] = {}
    for name in DATES:
        argument, moment = draw(date_arguments())
        arguments[name] = argument
        if moment is not None:
            meaning[name] = moment
    granularity = draw(granularity_arguments)
    arguments["granularity"] = granularity
    if granularity is not None and granularity is not UNSET:
        meaning["granularity"] = Granularity(granularity).value
    for name in LISTS:
        values = draw(list_arguments)
        arguments[name] = values
        sent = [v for v in values or () if name != "fields" or v != "cost"]  # cost: left out
        if sent:
            meaning[name] = sent
    # Leave out UNSET ones half the time: not passing an argument at all is the usual case.
    if draw(st.booleans()):
        arguments = {key: value for key, value in arguments.items() if value is not UNSET}
    return arguments, meaning


def _python_datetime(text: str) -> dt.datetime:
    """Python's own ISO 8601 parser, not the client's (3.10's does not read "Z")."""
    return dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)


def _sent_datetime(text: str) -> dt.datetime:
    """A sent date-time parameter read back (Python's own parser, not the client's)."""
    return _python_datetime(text)


def check_request(request: httpx.Request, meaning: dict[str, Any]) -> None:
    """One request: conforms to openapi.yaml, and carries exactly `meaning`."""
    openapi().validate_request(SpecRequest.of(request))  # raises on any mismatch
    assert request.method == "GET"
    assert str(request.url).startswith(f"{SERVER}{PATH}")
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    sent: dict[str, list[str]] = {}
    for key, value in parse_qsl(request.url.query.decode("ascii"), keep_blank_values=True):
        sent.setdefault(key, []).append(value)
    assert set(sent) == set(meaning)
    for name, expected in meaning.items():
        if name in LISTS:
            assert sent[name] == expected
            continue
        (value,) = sent[name]
        if name in DATES:
            moment = _sent_datetime(value)
            assert moment == expected
            assert (moment.tzinfo is None) == (expected.tzinfo is None)
        else:
            assert value == expected


@QUICK
@given(valid_arguments())
@example(({}, {}))
@example(
    (
        {
            "from_date": dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc),
            "to_date": dt.date(2026, 11, 8),
            "granularity": Granularity.DAY,
            "fields": ["completion_tokens", "total_tokens"],
            "group_by": ("model", "project.name", "a b", "ä,&=", ""),
        },
        {
            "from_date": dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc),
            "to_date": dt.datetime(2026, 11, 8),
            "granularity": "day",
            "fields": ["completion_tokens", "total_tokens"],
            "group_by": ["model", "project.name", "a b", "ä,&=", ""],
        },
    )
)
def test_valid_arguments_make_a_conforming_request(
    captured: Captured, case: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    arguments, meaning = case
    sync_request, async_request = captured.both(arguments)
    check_request(sync_request, meaning)
    assert_same_request(async_request, sync_request)


def assert_same_request(request: httpx.Request, checked: httpx.Request) -> None:
    """`request` is the one already `checked` (what openapi-core and check_request look at
    is all here), so it needs no second check against openapi.yaml."""
    assert request.method == checked.method
    assert request.url == checked.url
    assert request.headers.multi_items() == checked.headers.multi_items()


@QUICK
@given(
    st.datetimes(min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 1, 1)),
    st.integers(-(24 * 3600 - 1), 24 * 3600 - 1),
)
@example(dt.datetime(1900, 1, 1), 19 * 60 + 32)  # Europe/Amsterdam's LMT, as zoneinfo gives it
def test_offsets_with_seconds_still_make_a_conforming_request(
    captured: Captured, naive: dt.datetime, offset_s: int
) -> None:
    """RFC 3339 offsets are whole minutes; any aware datetime is still sent as one instant."""
    moment = naive.replace(tzinfo=dt.timezone(dt.timedelta(seconds=offset_s)))
    sync_request, async_request = captured.both({"from_date": moment})
    check_request(sync_request, {"from_date": moment})
    assert_same_request(async_request, sync_request)


#: Strings shaped like ISO 8601 (calendar, week and ordinal dates, basic and extended forms,
#: any separator, fractions, offsets), with digits anywhere in range or not.
iso_like = st.from_regex(
    r"[0-9]{4}(-?[0-9]{2}(-?[0-9]{2})?|-?W[0-9]{2}(-?[0-9])?|-?[0-9]{3})"
    r"([T t_][0-9]{2}(:?[0-9]{2}(:?[0-9]{2}([.,][0-9]{1,9})?)?)?)?"
    r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)?",
    fullmatch=True,
)


@QUICK
@given(st.text() | iso_like)
@example("2026-11-01T00:00:00+00:00")
@example("20261101T120000Z")
@example("2026-W45-1")
@example("2026-11-01T24:00:00")
@example("9999-12-31T23:59:59-23:59")
def test_any_date_string_is_sent_conforming_or_rejected(captured: Captured, text: str) -> None:
    """Whatever string is given as a date: a conforming request, or InvalidArgumentError."""
    for name in DATES:
        try:
            requests = captured.both({name: text})
        except InvalidArgumentError as error:
            rejected: InvalidArgumentError | None = error
        else:
            rejected = None
        event("rejected" if rejected else "sent")
        if rejected is not None:
            assert rejected.parameter == name
            assert captured.capture.take() == []
            continue
        given = isoparse(text)  # what the string means: ISO 8601 as dateutil reads it
        sync_request, async_request = requests
        openapi().validate_request(SpecRequest.of(sync_request))
        (value,) = [v for k, v in parse_qsl(sync_request.url.query.decode()) if k == name]
        sent = _sent_datetime(value)
        assert sent == given  # the same instant (aware) or the same wall time (naive)
        assert (sent.tzinfo is None) == (given.tzinfo is None)
        assert_same_request(async_request, sync_request)


# -- invalid arguments

not_dates = st.one_of(
    st.integers(),
    st.floats(),
    st.booleans(),
    st.binary(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.builds(dt.time),
    st.builds(dt.timedelta, st.integers(0, 10**6)),
    # ISO 8601 needs digits: no text without a decimal digit can be a date.
    st.text(alphabet=st.characters(exclude_categories=["Nd"])),
    st.sampled_from(
        ["2026-13-01", "2026-02-30", "2026-11-01T25:00:00", "not-a-date", "2026/11/01", "0"]
    ),
)
not_granularities = st.one_of(
    st.text().filter(lambda text: text not in GRANULARITIES),
    st.sampled_from(["DAY", "Day", " day", "week", "days", "daily"]),
    st.integers(),
    st.booleans(),
    st.binary(),
    st.lists(st.sampled_from(GRANULARITIES), min_size=1, max_size=2),
    st.just(HealthCheck.too_slow),  # an enum member, of another enum
)
not_str = st.one_of(
    st.integers(), st.floats(), st.binary(), st.none(), st.booleans(), st.lists(st.text())
)
not_lists = st.one_of(
    st.text(),  # a bare string: the classic mistake
    st.binary(),
    st.integers(),
    st.booleans(),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
    st.frozensets(st.text(max_size=3), max_size=2),
    st.builds(
        lambda head, bad, tail: [*head, bad, *tail],
        st.lists(st.text(max_size=3), max_size=2),
        not_str,
        st.lists(st.text(max_size=3), max_size=2),
    ),
)
INVALID = {
    "from_date": not_dates,
    "to_date": not_dates,
    "granularity": not_granularities,
    "fields": not_lists,
    "group_by": not_lists,
}


@st.composite
def invalid_arguments(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """(the bad parameter, arguments: that one invalid, the others valid or left out)."""
    arguments, _ = draw(valid_arguments())
    name = draw(st.sampled_from(PARAMETERS))
    arguments[name] = draw(INVALID[name])
    return name, arguments


@QUICK
@given(invalid_arguments())
def test_invalid_arguments_raise_before_sending(
    captured: Captured, case: tuple[str, dict[str, Any]]
) -> None:
    name, arguments = case
    with pytest.raises(InvalidArgumentError) as raised:
        captured.sync(arguments)
    assert isinstance(raised.value, ValueError)
    assert raised.value.parameter == name
    assert name in str(raised.value)
    with pytest.raises(InvalidArgumentError):
        captured.async_(arguments)
    assert captured.capture.take() == []


# -- answers

RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _is_rfc3339(value: object) -> bool:
    if not isinstance(value, str) or not RFC3339.fullmatch(value):
        return True  # not a string: `type` judges it, not `format`
    try:
        dt.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


@cache
def answer_schema() -> Draft202012Validator:
    """The 200 answer's schema from openapi.yaml, with `format: date-time` asserted."""
    pointer = "#/paths/~1analytics~1usage/get/responses/200/content/application~1json/schema"
    checker = FormatChecker(formats=())
    checker.checks("date-time")(_is_rfc3339)
    return Draft202012Validator({**spec(), "$ref": pointer}, format_checker=checker)


def _lenient(document: object) -> bool:
    """A time_bucket the client reads although RFC 3339 does not spell it so ("2026-11-01",
    "20261101T00"): accepted on purpose, like the official SDK's pydantic model does."""
    if not isinstance(document, list):
        return False
    for item in document:
        if isinstance(item, dict) and isinstance(item.get("time_bucket"), str):
            text = item["time_bucket"]
            try:
                _decode.parse_datetime(text)  # what this Python's client reads
            except ValueError:
                continue
            if not (RFC3339.fullmatch(text) and _is_rfc3339(text)):
                return True
    return False


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers() | st.integers(-(2**80), 2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
rfc3339_texts = aware_datetimes.map(lambda moment: moment.isoformat())
item_keys = st.sampled_from(["time_bucket", "cost", "total_tokens", "model", "project.name"])
# Items that nearly fit: the right keys, with any JSON (or a right value) in them.
near_items = st.dictionaries(
    item_keys | st.text(max_size=8),
    json_values | rfc3339_texts | st.text(max_size=8),
    max_size=5,
)
documents = st.one_of(
    json_values,
    st.lists(near_items, max_size=4),
    st.lists(json_values, min_size=1, max_size=3),
)


def _respond(captured: Captured, status: int, content: bytes) -> httpx.Response:
    captured.capture.answer = httpx.Response(
        status, content=content, headers={"content-type": "application/json"}
    )
    return captured.capture.answer


@QUICK
@given(documents)
@example({"items": []})
@example([{"cost": "1"}])
@example([{"time_bucket": None, "cost": "1"}])
@example([{"time_bucket": "2026-11-01T00:00:00Z"}])
@example([{"time_bucket": "2026-11-01T00:00:00Z", "cost": 1}])
@example([{"time_bucket": "2026-13-01T00:00:00Z", "cost": "1"}])
@example(["2026-11-01T00:00:00Z"])
def test_answers_that_do_not_fit_raise_response_validation_error(
    captured: Captured, document: Any
) -> None:
    assume(not answer_schema().is_valid(document))
    assume(not _lenient(document))
    content = json.dumps(document).encode()
    _respond(captured, 200, content)
    for call in (captured.sync, captured.async_):
        with pytest.raises(ResponseValidationError) as raised:
            call({})
        error = raised.value
        assert isinstance(error.cause, ValueError)
        assert error.status_code == 200
        assert error.body == content.decode()
    captured.capture.take()


#: Any JSON value (additionalProperties: true): numbers beyond 64 bits too (sums are exact),
#: booleans, objects and arrays (tags of other types than strings).
extra_values = json_values
valid_items = st.tuples(
    aware_datetimes,
    st.sampled_from(["isoformat", "zulu"]),
    st.text(max_size=12),
    st.dictionaries(
        st.text(max_size=12).filter(lambda key: key not in ("time_bucket", "cost", "count")),
        extra_values,
        max_size=5,
    ),
    st.none() | st.integers(0, 2**70),  # count, when the answer has it
)


@QUICK
@given(st.lists(valid_items, max_size=6))
@example(
    [
        (
            dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc),
            "zulu",
            "0.004200",
            {
                "big": 19_999_999_999_999_999_999,
                "u64": 2**64,
                "below_i64": -(2**63) - 1,
                "huge": 1e308,
                "negative_zero": -0.0,
                "unicode \u00e4": "\u2603",
                "none": None,
                "flag": True,
                "nested": {"a": [1, "two", None, {"b": False}]},
                "list": [],
            },
            3,
        )
    ]
)
def test_valid_items_decode_to_equal_values(
    captured: Captured, items: list[tuple[dt.datetime, str, str, dict[str, Any], int | None]]
) -> None:
    document = []
    for moment, spelling, cost, extras, count in items:
        if spelling == "zulu":
            moment = moment.astimezone(dt.timezone.utc)
        text = _zulu(moment) if spelling == "zulu" else moment.isoformat()
        counted = {} if count is None else {"count": count}
        document.append({"time_bucket": text, "cost": cost, **counted, **extras})
    assert answer_schema().is_valid(document)
    _respond(captured, 200, json.dumps(document).encode())
    for call in (captured.sync, captured.async_):
        decoded = call({})
        assert len(decoded) == len(items)
        for item, raw, (moment, spelling, cost, extras, count) in zip(
            decoded, document, items, strict=True
        ):
            assert type(item) is GetUsageResultItem
            assert item.time_bucket == moment
            assert item.time_bucket.utcoffset() == (
                dt.timedelta(0) if spelling == "zulu" else moment.utcoffset()
            )
            assert item.cost == cost
            assert item.additional_properties == extras
            counted = {} if count is None else {"count": count}
            assert item.model_dump() == {"time_bucket": moment, "cost": cost, **counted, **extras}
            generated = GeneratedItem.from_dict(copy.deepcopy(raw))
            assert generated.time_bucket == item.time_bucket
            assert generated.cost == item.cost
            assert generated.count == item.count
            assert generated.additional_properties == item.additional_properties
    captured.capture.take()


@QUICK
@given(
    st.integers(200, 299), st.binary(max_size=64) | documents.map(lambda d: json.dumps(d).encode())
)
def test_any_success_body_is_items_or_response_validation_error(
    captured: Captured, status: int, content: bytes
) -> None:
    """Not JSON, not UTF-8, empty: a result or ResponseValidationError, nothing else."""
    _respond(captured, status, content)
    for call in (captured.sync, captured.async_):
        outcome: list[GetUsageResultItem] | ResponseValidationError
        try:
            outcome = call({})
        except ResponseValidationError as error:
            outcome = error
        if isinstance(outcome, ResponseValidationError):
            assert outcome.status_code == status
            assert isinstance(outcome.cause, ValueError)
        else:
            assert all(type(item) is GetUsageResultItem for item in outcome)
    captured.capture.take()


TYPED: dict[int, type[OpperError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    404: NotFoundError,
    422: RequestValidationError,
}


@QUICK
@given(
    st.sampled_from(list(TYPED)) | st.integers(400, 599),
    json_values
    | st.dictionaries(
        item_keys | st.sampled_from(["detail", "message", "type"]), json_values, max_size=4
    ),
)
@example(401, {"detail": "bad key"})
@example(422, {"detail": [{"loc": ["query", "granularity"]}], "message": None, "type": None})
@example(422, {"detail": [{"loc": ["query", "granularity"]}], "message": 5, "type": None})
@example(400, {"message": "no detail"})
@example(404, ["detail"])
def test_any_error_body_is_a_typed_error_api_error_or_validation_error(
    captured: Captured, status: int, document: Any
) -> None:
    """A documented status gives its typed error (or ResponseValidationError when the body is
    not an error object); any other gives APIError. Never KeyError, TypeError, ..."""
    content = json.dumps(document).encode()
    _respond(captured, status, content)
    for call in (captured.sync, captured.async_):
        with pytest.raises(OpperError) as raised:
            call({})
        error = raised.value
        assert error.status_code == status
        typed = TYPED.get(status)
        if typed is None:
            assert type(error) is APIError
        elif (
            isinstance(document, dict)
            and "detail" in document
            and all(isinstance(document.get(key), str | None) for key in ("message", "type"))
        ):
            assert type(error) is typed
            assert error.body == content.decode()
        else:  # not an error object, or one whose message or type is not a string or null
            assert type(error) is ResponseValidationError
    captured.capture.take()
