"""Credentials as both generations of the official SDK spell them (`api_key`/`OPPER_API_KEY`,
`http_bearer`/`OPPER_HTTP_BEARER`), `OPPER_BASE_URL`, and a key no repr or pickle shows.

The key is checked over real sockets: the `keyed` server accepts only `KEY`, so a call that
succeeds sent exactly that bearer token, and one that sent anything else gets a 401.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import pickle
import types
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opperai_usage import Opper, errors
from tests.support import API_KEY
from tests.support.calls import Recorder
from tests.support.servers import LocalServer

KEY = API_KEY  # the one key the `keyed` server (conftest) accepts


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPPER_API_KEY", "OPPER_HTTP_BEARER", "OPPER_BASE_URL", "OPPER_DEBUG"):
        monkeypatch.delenv(name, raising=False)


def key_argument(name: str, key: object) -> dict[str, Any]:
    """`{name: key}`, for tests run once with `api_key` and once with `http_bearer`."""
    return {name: key}


def both_ways(opper: Opper) -> list[Any]:
    """One sync and one async call on `opper`; the items of each."""

    async def run() -> list[Any]:
        return await opper.analytics.get_usage_async(group_by=["model"])

    with opper:
        return [opper.analytics.get_usage(group_by=["model"]), asyncio.run(run())]


@pytest.mark.parametrize("name", ["api_key", "http_bearer"])
def test_either_argument_sends_the_key(keyed: LocalServer, name: str) -> None:
    sync_items, async_items = both_ways(Opper(server_url=keyed.url, **key_argument(name, KEY)))
    assert sync_items
    assert sync_items == async_items


@pytest.mark.parametrize("name", ["api_key", "http_bearer"])
def test_a_wrong_key_is_refused_by_the_server(keyed: LocalServer, name: str) -> None:
    """The control for the test above: the server does tell keys apart."""
    with (
        Opper(server_url=keyed.url, retry_config=None, **key_argument(name, KEY + "x")) as opper,
        pytest.raises(errors.UnauthorizedError),
    ):
        opper.analytics.get_usage()


def test_api_key_is_keyword_only_and_http_bearer_stays_first_positional(
    keyed: LocalServer,
) -> None:
    """`Opper("key")` means `http_bearer`, as in the official SDK 1.x."""
    with Opper(KEY, keyed.url) as opper:
        assert opper.analytics.get_usage()
    with pytest.raises(TypeError):
        Opper(KEY, keyed.url, None, None, None, None, None, KEY)  # type: ignore[call-arg]


def test_both_arguments_are_refused_naming_both() -> None:
    with pytest.raises(errors.InvalidArgumentError) as raised:
        Opper(api_key=KEY, http_bearer=KEY)
    assert raised.value.parameter == "api_key"
    assert str(raised.value) == (
        "api_key and http_bearer were both given: pass the key once, as api_key (the official "
        "SDK 2.x's name) or http_bearer (1.x's)"
    )
    assert KEY not in str(raised.value)


@pytest.mark.parametrize("variable", ["OPPER_API_KEY", "OPPER_HTTP_BEARER"])
def test_the_key_is_read_from_either_variable(
    keyed: LocalServer, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, KEY)
    assert all(both_ways(Opper(server_url=keyed.url)))


def test_opper_api_key_wins_and_a_difference_is_warned_without_values(
    keyed: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPPER_API_KEY", KEY)
    monkeypatch.setenv("OPPER_HTTP_BEARER", "sk-the-other-key")
    with pytest.warns(UserWarning, match="^OPPER_API_KEY and OPPER_HTTP_BEARER ") as caught:
        opper = Opper(server_url=keyed.url)
    (warning,) = caught
    assert warning.category is UserWarning
    assert str(warning.message) == (
        "OPPER_API_KEY and OPPER_HTTP_BEARER are both set and differ; using OPPER_API_KEY"
    )
    assert all(both_ways(opper))


def test_the_variables_warning_points_at_the_line_that_made_the_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPPER_API_KEY", KEY)
    monkeypatch.setenv("OPPER_HTTP_BEARER", "sk-the-other-key")
    with pytest.warns(UserWarning, match="^OPPER_API_KEY and OPPER_HTTP_BEARER ") as caught:
        Opper()
    (warning,) = caught
    assert warning.filename == __file__


def test_equal_variables_are_not_warned_about(
    keyed: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPPER_API_KEY", KEY)
    monkeypatch.setenv("OPPER_HTTP_BEARER", KEY + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opper = Opper(server_url=keyed.url)
    assert all(both_ways(opper))


@pytest.mark.parametrize("name", ["api_key", "http_bearer"])
def test_an_argument_beats_the_environment(
    keyed: LocalServer, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("OPPER_API_KEY", "sk-from-the-environment")
    monkeypatch.setenv("OPPER_HTTP_BEARER", "sk-from-the-environment")
    assert all(both_ways(Opper(server_url=keyed.url, **key_argument(name, KEY))))


def test_no_key_anywhere_sends_no_authorization(keyed: LocalServer) -> None:
    """As with the official SDK 1.x: the server's 401 says what is missing."""
    with Opper(server_url=keyed.url, retry_config=None) as opper:
        with pytest.raises(errors.UnauthorizedError):
            opper.analytics.get_usage()
        assert "<unset>" in repr(opper)


# -- keys as they arrive from files and secrets


@pytest.mark.parametrize("padded", [KEY + "\n", KEY + "\r\n", f"  {KEY}\t", KEY + "\u00a0"])
def test_surrounding_whitespace_is_dropped(keyed: LocalServer, padded: str) -> None:
    """A key read from a file or a mounted secret often ends in a newline."""
    assert all(both_ways(Opper(api_key=padded, server_url=keyed.url)))


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        (KEY[:8] + "\n" + KEY[8:], "a line feed"),
        (KEY[:8] + "\t" + KEY[8:], "a tab"),  # a header may hold one; no key does
        (KEY[:8] + "\u00a0" + KEY[8:], "NO-BREAK SPACE"),
        (KEY[:8] + "é" + KEY[8:], "LATIN SMALL LETTER E WITH ACUTE"),
        (KEY + "\x00x", "a control character"),
    ],
)
def test_a_key_no_header_can_carry_is_refused_without_showing_it(bad: str, named: str) -> None:
    with pytest.raises(errors.InvalidArgumentError) as raised:
        Opper(api_key=bad)
    message = str(raised.value)
    position = next(n for n, char in enumerate(bad, 1) if not " " <= char <= "~")
    code = f"U+{ord(bad[position - 1]):04X}"
    assert message == (
        f"api_key holds {named} ({code}) at position {position} of {len(bad)}, "
        "which cannot be sent in an HTTP header; check how the key was read"
    )
    for shown in (message, repr(raised.value), repr(pickle.loads(pickle.dumps(raised.value)))):
        assert KEY[:8] not in shown
        assert KEY[8:] not in shown


def test_a_bad_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPPER_HTTP_BEARER", KEY[:8] + "\n" + KEY[8:])
    with pytest.raises(errors.InvalidArgumentError, match=r"^OPPER_HTTP_BEARER holds a line feed"):
        Opper()


def test_a_callable_key_is_checked_before_each_request(keyed: LocalServer) -> None:
    answers: Iterator[Any] = iter([KEY, KEY[:8] + "\n" + KEY[8:], 42])
    with Opper(api_key=lambda: next(answers), server_url=keyed.url) as opper:
        assert opper.analytics.get_usage()
        keyed.reset()
        with pytest.raises(errors.InvalidArgumentError, match="line feed"):
            opper.analytics.get_usage()
        with pytest.raises(errors.InvalidArgumentError) as raised:
            opper.analytics.get_usage()
        assert str(raised.value) == "api_key callable returned int, not a string"
        assert raised.value.parameter == "api_key"
    assert keyed.requests() == []  # refused before sending


# -- OPPER_BASE_URL


def test_opper_base_url_is_the_host_root(
    keyed: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPPER_BASE_URL", keyed.base + "/")
    opper = Opper(api_key=KEY)
    assert opper._server_url == keyed.base + "/v2"
    assert all(both_ways(opper))


def test_server_url_beats_opper_base_url(
    keyed: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPPER_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    assert all(both_ways(Opper(api_key=KEY, server_url=keyed.url)))


@pytest.mark.parametrize("value", ["api.opper.ai", "ftp://api.opper.ai", "https://", "http://[::"])
def test_a_malformed_opper_base_url_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("OPPER_BASE_URL", value)
    with pytest.raises(errors.InvalidArgumentError) as raised:
        Opper(api_key=KEY)
    assert raised.value.parameter == "OPPER_BASE_URL"
    # The example is the host root OPPER_BASE_URL takes, not the API's URL with /v2.
    assert str(raised.value) == (
        f"OPPER_BASE_URL must be an http(s) URL such as 'https://api.opper.ai', not {value!r}"
    )


@pytest.mark.parametrize(
    ("value", "server_url"),
    [
        ("https://gateway.example.test", "https://gateway.example.test/v2"),
        ("https://gateway.example.test///", "https://gateway.example.test/v2"),
        (" https://gateway.example.test/opperX/ ", "https://gateway.example.test/opperX/v2"),
    ],
)
def test_opper_base_url_gets_the_api_path_appended_once(
    monkeypatch: pytest.MonkeyPatch, value: str, server_url: str
) -> None:
    monkeypatch.setenv("OPPER_BASE_URL", value)
    assert Opper(api_key=KEY)._server_url == server_url


@pytest.mark.parametrize("name", ["OPPER_BASE_URL", "server_url"])
@pytest.mark.parametrize(
    "url",
    [
        "https://user:hunter2-secret@api.opper.ai",
        "https://sk-secret-key@api.opper.ai",  # a key put where a user name goes
        "https://:hunter2-secret@api.opper.ai",
    ],
)
def test_a_url_with_a_password_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, name: str, url: str
) -> None:
    options: dict[str, Any] = {"server_url": url} if name == "server_url" else {}
    if name == "OPPER_BASE_URL":
        monkeypatch.setenv(name, url)
    with pytest.raises(errors.InvalidArgumentError) as raised:
        Opper(api_key=KEY, **options)
    assert raised.value.parameter == name
    assert str(raised.value) == (
        f"{name} must not hold a user name or password ('https://api.opper.ai' without "
        "them); the API key goes in api_key"
    )


# -- the key is held where no repr reaches it


def reachable(root: object) -> Iterator[object]:
    """Every object reachable from `root` through attributes, slots and containers, as a
    debugger's variable view or an error tracker's locals dump walks them (not into modules,
    classes or code, whose reprs do not show their contents)."""
    seen: set[int] = set()
    stack = [root]
    opaque = (type, types.ModuleType, types.FunctionType, types.MethodType, types.CodeType)
    opaque += (str, bytes, int, float)  # type: ignore[assignment]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        if isinstance(node, opaque):
            continue
        if isinstance(node, dict):
            stack += [*node.keys(), *node.values()]
        elif isinstance(node, list | tuple | set | frozenset):
            stack += list(node)
        stack += list(getattr(node, "__dict__", {}).values())
        for cls in type(node).__mro__:
            for slot in getattr(cls, "__slots__", ()):
                if hasattr(node, slot) and not slot.startswith("__"):
                    stack.append(getattr(node, slot))


@pytest.mark.parametrize("name", ["api_key", "http_bearer"])
def test_nothing_reachable_from_the_client_shows_the_key(keyed: LocalServer, name: str) -> None:
    opper = Opper(server_url=keyed.url, **key_argument(name, KEY))

    async def call_async() -> None:
        await opper.analytics.get_usage_async()

    opper.analytics.get_usage()
    asyncio.run(call_async())  # both httpx clients exist and have been used
    objects = list(reachable(opper))
    assert len(objects) > 50  # the walk did go through the client, its httpx clients, ...
    for value in objects:
        assert KEY not in repr(value), type(value)
    assert KEY not in repr(vars(opper))
    assert "ApiKey(<hidden>)" in repr(vars(opper))
    opper.close()


def test_the_key_is_not_among_the_client_attributes_strings() -> None:
    """Beyond reprs: no string reachable by attributes is the key (it sits in a closure)."""
    opper = Opper(api_key=KEY)
    assert KEY not in [value for value in reachable(opper) if isinstance(value, str)]
    gc.collect()


def test_a_client_refuses_to_be_pickled_or_copied() -> None:
    opper = Opper(api_key=KEY)
    with pytest.raises(TypeError) as raised:
        pickle.dumps(opper)
    assert str(raised.value) == (
        "an Opper client cannot be pickled: it holds an API key and open connections; "
        "create one in each process"
    )
    with pytest.raises(TypeError):
        copy.copy(opper)
    with pytest.raises(TypeError) as refused:
        pickle.dumps(opper._api_key)
    assert str(refused.value) == ("an API key is never pickled: give each process its own client")
    assert repr(opper._api_key) == str(opper._api_key) == "ApiKey(<hidden>)"


@pytest.mark.parametrize("name", ["api_key", "http_bearer"])
def test_an_empty_key_is_no_key(name: str) -> None:
    assert "api_key=<unset>" in repr(Opper(**key_argument(name, "")))
    assert "api_key=<hidden>" in repr(Opper(**key_argument(name, KEY)))


@pytest.mark.parametrize("name", ["api_key", "http_bearer"])
def test_a_key_of_another_type_is_refused_naming_the_argument(name: str) -> None:
    with pytest.raises(errors.InvalidArgumentError) as raised:
        Opper(**key_argument(name, b"bytes-key"))
    assert str(raised.value) == f"{name} must be a string or a callable returning one"


@pytest.mark.parametrize("key", ["sk key with spaces", "sk~tilde!", " ~x~ "])
def test_every_visible_ascii_character_and_inner_spaces_are_sent(key: str) -> None:
    recorder = Recorder(httpx.Response(200, json=[]))
    client = httpx.Client(transport=recorder.transport)
    with Opper(api_key=key, server_url="http://127.0.0.1:9/v2", client=client) as opper:
        opper.analytics.get_usage()
    assert recorder.requests[0].headers["authorization"] == f"Bearer {key.strip()}"


def test_a_callable_keys_bad_answer_is_named_as_the_argument() -> None:
    with pytest.raises(errors.InvalidArgumentError) as raised:
        Opper(http_bearer=lambda: "sk\nkey").analytics.get_usage()
    assert str(raised.value).startswith("http_bearer holds a line feed (U+000A) at position 3")
    assert raised.value.parameter == "http_bearer"
