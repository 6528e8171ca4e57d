"""What goes on the wire: the official SDK's encoding of every argument, headers, URLs; and bad
arguments rejected before anything is sent."""

from __future__ import annotations

import collections
import datetime as dt
import time
from collections import UserList
from typing import Any

import httpx
import pytest

from opperai_usage import Opper, __version__, errors, models
from opperai_usage._client import MAX_URL_LENGTH
from tests.support import API_KEY
from tests.support.calls import ITEMS, Recorder, Usage
from tests.support.servers import LocalServer

UTC = dt.timezone.utc
URL = "http://127.0.0.1:9/v2"


def sent(usage: Usage, **call: Any) -> httpx.Request:
    recorder = Recorder(httpx.Response(200, json=ITEMS))
    usage(server_url=URL, transport=recorder.transport, call=call)
    (request,) = recorder.requests
    return request


# The query strings the official SDK (opperai 1.7.2) sends for the same arguments.
ENCODINGS = [
    ({}, ""),
    ({"from_date": dt.datetime(2026, 11, 1, tzinfo=UTC)}, "from_date=2026-11-01T00%3A00%3A00Z"),
    (
        {"from_date": dt.datetime(2026, 11, 1, 3, tzinfo=dt.timezone(dt.timedelta(hours=2)))},
        "from_date=2026-11-01T03%3A00%3A00%2B02%3A00",
    ),
    ({"to_date": dt.datetime(2026, 11, 5, 12, 30)}, "to_date=2026-11-05T12%3A30%3A00"),
    ({"to_date": dt.datetime(2026, 11, 5, 12, 30, 0, 5)}, "to_date=2026-11-05T12%3A30%3A00.000005"),
    ({"from_date": dt.date(2026, 11, 1)}, "from_date=2026-11-01T00%3A00%3A00"),
    ({"from_date": "2026-11-01"}, "from_date=2026-11-01T00%3A00%3A00"),
    ({"from_date": "2026-11-01T00:00:00Z"}, "from_date=2026-11-01T00%3A00%3A00Z"),
    ({"granularity": "day"}, "granularity=day"),
    ({"granularity": models.Granularity.MONTH}, "granularity=month"),
    (
        {"fields": ["completion_tokens", "total_tokens"]},
        "fields=completion_tokens&fields=total_tokens",
    ),
    ({"group_by": ("model", "project.name")}, "group_by=model&group_by=project.name"),
    ({"fields": ["a b", "ä,&="]}, "fields=a+b&fields=%C3%A4%2C%26%3D"),
    ({"fields": [], "group_by": [], "granularity": None, "from_date": None}, ""),
    # every item carries `cost`; the API ignores it as a field, so it is left out
    ({"fields": ["cost", "total_tokens", "cost"]}, "fields=total_tokens"),
    ({"fields": ["cost"]}, ""),
    (
        {
            "from_date": dt.datetime(2026, 11, 1, tzinfo=UTC),
            "to_date": dt.datetime(2026, 12, 1, tzinfo=UTC),
            "granularity": "hour",
            "fields": ["total_tokens"],
            "group_by": ["model"],
        },
        "from_date=2026-11-01T00%3A00%3A00Z&to_date=2026-12-01T00%3A00%3A00Z"
        "&granularity=hour&fields=total_tokens&group_by=model",
    ),
]


@pytest.mark.parametrize(("call", "query"), ENCODINGS, ids=[q or "none" for _, q in ENCODINGS])
def test_query_is_encoded_as_the_official_sdk_does(
    usage: Usage, call: dict[str, Any], query: str
) -> None:
    request = sent(usage, **call)
    assert request.method == "GET"
    assert request.url.path == "/v2/analytics/usage"
    assert request.url.query.decode() == query


def test_headers_carry_the_key_user_agent_and_accept(usage: Usage) -> None:
    request = sent(usage)
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["accept"] == "application/json"
    assert request.headers["user-agent"].startswith(f"opperai-usage/{__version__} ")


def test_per_call_headers_and_server_url_apply(usage: Usage) -> None:
    request = sent(usage, http_headers={"X-Trace": "t-1"}, server_url="http://127.0.0.1:9/other/")
    assert request.headers["x-trace"] == "t-1"
    assert str(request.url) == "http://127.0.0.1:9/other/analytics/usage"


def test_key_comes_from_the_environment(usage: Usage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPPER_HTTP_BEARER", "from-env")
    recorder = Recorder(httpx.Response(200, json=[]))
    usage(http_bearer=None, server_url=URL, transport=recorder.transport)
    assert recorder.requests[0].headers["authorization"] == "Bearer from-env"


def test_key_may_be_a_callable_asked_on_every_call() -> None:
    keys = iter(["first", "second"])
    recorder = Recorder(httpx.Response(200, json=[]))
    client = httpx.Client(transport=recorder.transport)
    with Opper(http_bearer=lambda: next(keys), server_url=URL, client=client) as opper:
        opper.analytics.get_usage()
        opper.analytics.get_usage()
    sent = [request.headers["authorization"] for request in recorder.requests]
    assert sent == ["Bearer first", "Bearer second"]


def test_no_key_sends_no_authorization(usage: Usage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPPER_HTTP_BEARER", raising=False)
    recorder = Recorder(httpx.Response(200, json=[]))
    usage(http_bearer=None, server_url=URL, transport=recorder.transport)
    assert "authorization" not in recorder.requests[0].headers


BAD_ARGUMENTS = [
    ({"granularity": "week"}, "granularity", "'minute'"),
    ({"granularity": 3}, "granularity", "'year'"),
    ({"fields": "total_tokens"}, "fields", "bare string"),
    ({"fields": {"a": 1}}, "fields", "list of strings"),
    ({"group_by": [1, 2]}, "group_by[0]", "must be a string"),
    ({"group_by": ["model", None]}, "group_by[1]", "must be a string"),
    ({"from_date": "not-a-date"}, "from_date", "ISO 8601"),
    ({"to_date": 1700000000}, "to_date", "datetime"),
    # every item carries `count`, and the API refuses it as a field
    (
        {"fields": ["total_tokens", "count"]},
        "fields",
        "fields must not include 'count': every item carries it already (item.count), and the "
        "API refuses it as a field",
    ),
]


@pytest.mark.parametrize(("call", "named", "allowed"), BAD_ARGUMENTS)
def test_bad_arguments_fail_before_any_request(
    usage: Usage, call: dict[str, Any], named: str, allowed: str
) -> None:
    recorder = Recorder(httpx.Response(200, json=[]))
    with pytest.raises(errors.InvalidArgumentError) as raised:
        usage(server_url=URL, transport=recorder.transport, call=call)
    assert isinstance(raised.value, ValueError)
    assert str(raised.value).startswith(named)
    assert allowed in str(raised.value)
    assert raised.value.parameter == named.split("[")[0]
    assert recorder.requests == []


def test_unknown_argument_is_a_type_error(usage: Usage) -> None:
    with pytest.raises(TypeError, match="limit"):
        usage(server_url=URL, transport=Recorder(httpx.Response(200, json=[])).transport,
              call={"limit": 3})  # fmt: skip


@pytest.mark.parametrize(
    "value",
    [("a", "b"), collections.deque(["a", "b"]), UserList(["a", "b"])],
    ids=["tuple", "deque", "UserList"],
)
def test_any_sequence_of_strings_is_a_list(usage: Usage, value: Any) -> None:
    """What the type says (Sequence[str]) is what is accepted."""
    assert sent(usage, fields=value).url.query == b"fields=a&fields=b"


@pytest.mark.parametrize(
    "value", [{"a", "b"}, iter(["a"]), b"ab"], ids=["set", "iterator", "bytes"]
)
def test_unordered_or_one_shot_collections_are_refused(usage: Usage, value: Any) -> None:
    recorder = Recorder(httpx.Response(200, json=[]))
    with pytest.raises(errors.InvalidArgumentError, match=r"^group_by must be a list of strings"):
        usage(server_url=URL, transport=recorder.transport, call={"group_by": value})
    assert recorder.requests == []


def _group_by_for_url_length(length: int) -> list[str]:
    """group_by entries that make the request URL exactly `length` characters long."""
    base = len(f"{URL}/analytics/usage?")
    entries, size = [], base
    while size + len("group_by=") + 100 + 1 < length:
        entries.append("x" * 100)
        size += len("group_by=") + 100 + 1
    entries.append("y" * (length - size - len("group_by=")))
    return entries


def test_a_query_too_long_to_send_is_refused_naming_the_parameter(usage: Usage) -> None:
    """httpx refuses URLs over 65,536 characters with InvalidURL (neither InvalidArgumentError
    nor httpx.RequestError): refused here first, naming the parameter and the limit."""
    recorder = Recorder(httpx.Response(200, json=[]))
    too_long = _group_by_for_url_length(MAX_URL_LENGTH + 1)
    with pytest.raises(errors.InvalidArgumentError) as raised:
        usage(server_url=URL, transport=recorder.transport, call={"group_by": too_long})
    assert raised.value.parameter == "group_by"
    assert str(raised.value).startswith("group_by makes the request URL 65,537 characters long")
    assert "65,536" in str(raised.value)
    assert recorder.requests == []
    at_the_limit = sent(usage, group_by=_group_by_for_url_length(MAX_URL_LENGTH))
    assert len(str(at_the_limit.url)) == MAX_URL_LENGTH


def test_five_thousand_group_by_entries_are_refused_before_sending(local: LocalServer) -> None:
    """The issue's case, over a real socket: nothing reaches the server."""
    with (
        Opper(http_bearer=API_KEY, server_url=local.url) as opper,
        pytest.raises(errors.InvalidArgumentError, match=r"^group_by makes the request URL"),
    ):
        opper.analytics.get_usage(group_by=[f"tag{n}" for n in range(5_000)])
    assert local.requests() == []


def test_extra_headers_that_http_allows_reach_the_server(local: LocalServer) -> None:
    with Opper(http_bearer=API_KEY, server_url=local.url) as opper:
        assert opper.analytics.get_usage(http_headers={"X-Trace": "a\tb c ~!"}) is not None
    (request,) = local.requests()
    assert request["headers"]["x-trace"] == "a\tb c ~!"


@pytest.mark.parametrize(
    ("headers", "shown"),
    [
        ({"X-Trace": "a\nb"}, "U+000A at position 2 of 3"),
        ({"X-Trace": "é"}, "U+00E9"),
        ({"X Trace": "a"}, "not a header name"),
        ({"": "a"}, "not a header name"),
        ({5: "a"}, "has a name that is not a header name: 5"),
        ({"X-Tracé": "a"}, "not a header name"),
        ({"X-Trace": 5}, "must be a string, not int"),
        (["X-Trace"], "must map header names to values"),
    ],
)
def test_extra_headers_no_http_header_can_carry_are_refused(
    local: LocalServer, headers: Any, shown: str
) -> None:
    with (
        Opper(http_bearer=API_KEY, server_url=local.url) as opper,
        pytest.raises(errors.InvalidArgumentError) as raised,
    ):
        opper.analytics.get_usage(http_headers=headers)
    assert raised.value.parameter == "http_headers"
    assert shown in str(raised.value)
    assert local.requests() == []


def test_header_names_may_use_every_visible_ascii_character(usage: Usage) -> None:
    """RFC 9110 token characters include "~" and "!": such a name is sent as given."""
    request = sent_with(usage, http_headers={"X-a~b!": "1"})
    assert request.headers["x-a~b!"] == "1"


def sent_with(usage: Usage, **call: Any) -> httpx.Request:
    return sent(usage, **call)


@pytest.mark.parametrize("longer", ["group_by", "fields"])
def test_the_parameter_named_is_the_one_that_takes_most_room(usage: Usage, longer: str) -> None:
    """Both lists are long; the longer one is named, whichever it is (not the first or last
    given, nor the first or last by name), with its own share of the URL, and what to do."""
    recorder = Recorder(httpx.Response(200, json=[]))
    shorter = "fields" if longer == "group_by" else "group_by"
    call = {shorter: ["s" * 100] * 200, longer: ["l" * 100] * 450}
    with pytest.raises(errors.InvalidArgumentError) as raised:
        usage(server_url=URL, transport=recorder.transport, call=call)
    assert raised.value.parameter == longer
    own = len("&".join([f"{longer}=" + "l" * 100] * 450))
    assert f"({own:,} of them its own)" in str(raised.value)
    assert str(raised.value).endswith(
        "the longest URL that can be sent is 65,536: ask for fewer or shorter entries, "
        "over several calls if need be"
    )
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("offset", "spelled"),
    [
        (dt.timedelta(hours=5, minutes=45), "%2B05%3A45"),  # Nepal: an odd number of minutes
        (dt.timedelta(minutes=-1), "-00%3A01"),
        (dt.timedelta(hours=-9, minutes=-30), "-09%3A30"),
    ],
)
def test_whole_minute_offsets_are_sent_as_given(
    usage: Usage, offset: dt.timedelta, spelled: str
) -> None:
    moment = dt.datetime(2026, 11, 1, 12, tzinfo=dt.timezone(offset))
    request = sent(usage, from_date=moment)
    assert request.url.query.decode() == f"from_date=2026-11-01T12%3A00%3A00{spelled}"


def test_an_offset_with_seconds_is_sent_in_utc_whatever_the_local_zone(
    usage: Usage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Amsterdam's old +00:19:32 cannot be spelled in RFC 3339: the same instant is sent in
    UTC, not in the machine's own zone."""
    monkeypatch.setenv("TZ", "Asia/Kathmandu")
    time.tzset()
    try:
        lmt = dt.timezone(dt.timedelta(minutes=19, seconds=32))
        request = sent(usage, to_date=dt.datetime(1900, 1, 1, 12, tzinfo=lmt))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert request.url.query.decode() == "to_date=1900-01-01T11%3A40%3A28Z"


@pytest.mark.parametrize("name", ["from_date", "to_date"])
def test_a_moment_out_of_range_in_utc_is_refused_naming_the_parameter(
    usage: Usage, name: str
) -> None:
    """Year 1 at +00:00:30 is before datetime's first moment in UTC."""
    early = dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(seconds=30)))
    recorder = Recorder(httpx.Response(200, json=[]))
    with pytest.raises(errors.InvalidArgumentError) as raised:
        usage(server_url=URL, transport=recorder.transport, call={name: early})
    assert raised.value.parameter == name
    assert str(raised.value) == f"{name} is out of range in UTC: {early!r}"
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ({"granularity": "weekly"},
         "granularity must be one of 'day', 'hour', 'minute', 'month', 'year' "
         "(or a Granularity member), not 'weekly'"),
        ({"fields": ["a", 1]}, "fields[1] must be a string, not 1 (int)"),
        ({"group_by": ["model", None]}, "group_by[1] must be a string, not None (NoneType)"),
    ],
)  # fmt: skip
def test_bad_arguments_are_described_in_full(
    usage: Usage, call: dict[str, Any], message: str
) -> None:
    recorder = Recorder(httpx.Response(200, json=[]))
    with pytest.raises(errors.InvalidArgumentError) as raised:
        usage(server_url=URL, transport=recorder.transport, call=call)
    assert str(raised.value) == message


@pytest.mark.parametrize("spelled", [str.lower, str.upper, str.title])
def test_per_call_headers_replace_the_clients_whatever_their_case(
    usage: Usage, spelled: Any
) -> None:
    """Header names are not cased (RFC 9110): `http_headers` replaces the client's own
    Accept, User-Agent or Authorization however it spells them; none is sent twice."""
    names = ("accept", "user-agent", "authorization")
    given = {spelled(name): f"mine-{name}" for name in names}
    request = sent(usage, http_headers=given)
    for name in names:
        assert request.headers.get_list(name) == [f"mine-{name}"]
    assert request.headers.get_list("x-unrelated") == []
