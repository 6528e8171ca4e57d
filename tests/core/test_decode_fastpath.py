"""The fast decoder equals the plain path: the generated `GetUsageResultItem.from_dict` applied
to what the standard library's `json.loads` reads.

Both of the decoder's paths are held to it: msgspec's typed reading (the `fast` extra, which
leaves what only the standard library accepts to `json.loads`) and `json.loads` alone.
Equality here is strict: `==` alone would take `1 == 1.0 == True`, and two aware datetimes
for the same instant in different offsets, for equal; so the items are compared through
`strict()`, which also keeps the value types, the offsets and the key order.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, NoReturn

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opperai_usage import _decode
from opperai_usage._generated.models import GetUsageResultItem as GeneratedItem
from opperai_usage.models import GetUsageResultItem

NO_MSGSPEC = pytest.mark.skipif(_decode._typed_loads is None, reason="no `fast` extra")
PATHS = [pytest.param(True, id="msgspec", marks=NO_MSGSPEC), pytest.param(False, id="stdlib")]
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "mistral-large", "gemini-2.5-pro")


def strict(items: list[GetUsageResultItem]) -> list[tuple[Any, ...]]:
    """Everything that tells two items apart, including what `==` glosses over."""
    return [
        (
            type(item),
            item.time_bucket.isoformat(),
            item.time_bucket.utcoffset(),
            type(item.cost),
            item.cost,
            item.count,
            [(key, type(value), repr(value)) for key, value in item.additional_properties.items()],
        )
        for item in items
    ]


def plain(content: bytes) -> list[GetUsageResultItem]:
    """The reference: the generated model's own `from_dict`, item by item."""
    return [GetUsageResultItem.from_dict(fields) for fields in json.loads(content)]


def assert_same(content: bytes, fast: bool) -> list[GetUsageResultItem]:
    decoded = _decode.decode_items(content, fast=fast)
    expected = plain(content)
    assert strict(decoded) == strict(expected)
    assert decoded == expected
    return decoded


def realistic(count: int, per_bucket: int = 10) -> list[dict[str, Any]]:
    """Items as the API answers them: each hourly bucket shared by `per_bucket` groups."""
    start = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    items = []
    for index in range(count):
        bucket = start + dt.timedelta(hours=index // per_bucket)
        completion = (index * 7_919) % 900_000
        items.append(
            {
                "time_bucket": bucket.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "cost": f"{(index * 104_729) % 50_000_000 / 1_000_000:.6f}",
                "completion_tokens": completion,
                "total_tokens": completion * 4 + index % 977,
                "model": MODELS[index % len(MODELS)],
                "project.name": (None, "alpha", "beta")[index // len(MODELS) % 3],
            }
        )
    return items


def body(items: list[dict[str, Any]], **dumps: Any) -> bytes:
    return json.dumps(items, **dumps).encode()


def stdlib_only(content: bytes) -> bool:
    """Whether msgspec leaves this answer to `json.loads` (always so without the extra)."""
    return _decode._typed(content) is None


@pytest.fixture
def gc_enabled() -> Iterator[None]:
    """The decoder pauses the GC for large answers: it must always be back on afterwards."""
    assert gc.isenabled()
    yield
    assert gc.isenabled()


# -- valid answers: the fast path equals from_dict


@pytest.mark.parametrize("fast", PATHS)
@pytest.mark.parametrize("count", [0, 1, 5, 2_000])
@pytest.mark.usefixtures("gc_enabled")
def test_realistic_answers(fast: bool, count: int) -> None:
    content = body(realistic(count))
    assert (len(content) >= _decode._GC_PAUSE_BYTES) == (count == 2_000)  # both paths run
    decoded = assert_same(content, fast)
    assert len(decoded) == count


def test_msgspec_alone_reads_a_valid_answer_when_the_fast_extra_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    content = body(realistic(3))
    expected = strict(plain(content))
    try:
        import msgspec
    except ImportError:
        assert _decode._typed_loads is None
        return
    assert _decode._typed(content) == msgspec.json.decode(content) == json.loads(content)

    def refuse(_: bytes) -> NoReturn:
        raise AssertionError("json.loads was called")

    monkeypatch.setattr(_decode, "json", SimpleNamespace(loads=refuse))
    assert strict(_decode.decode_items(content)) == expected


def test_fast_false_reads_with_the_standard_library_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests compare the two paths: `fast=False` must really leave msgspec out."""
    content = body(realistic(3))

    def refuse(_: bytes) -> NoReturn:
        raise AssertionError("msgspec was called")

    monkeypatch.setattr(_decode, "_typed_loads", refuse)
    assert strict(_decode.decode_items(content, fast=False)) == strict(plain(content))


def test_without_the_fast_extra_the_default_is_the_standard_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    content = body([*realistic(20), {"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "n": 1}])
    monkeypatch.setattr(_decode, "_typed_loads", None)
    assert stdlib_only(content)
    assert strict(_decode.decode_items(content)) == strict(plain(content))
    with pytest.raises(_decode.SchemaMismatch, match="item 20: 'cost' must be a string"):
        _decode.decode_items(content.replace(b'"cost": "1", "n": 1', b'"cost": 1, "n": 1'))


@pytest.mark.parametrize("fast", PATHS)
def test_zero_items(fast: bool) -> None:
    assert _decode.decode_items(b"[]", fast=fast) == plain(b"[]") == []
    assert _decode.decode_items(b" [ ]\n", fast=fast) == []


@pytest.mark.parametrize("fast", PATHS)
def test_many_items_share_few_buckets(fast: bool) -> None:
    items = realistic(3_000, per_bucket=1_000)
    decoded = assert_same(body(items), fast)
    assert len({item.time_bucket for item in decoded}) == 3
    # A bucket shared by many items is parsed once, and nothing it is shared by can change it.
    assert decoded[0].time_bucket is decoded[999].time_bucket
    assert decoded[0].time_bucket == dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("fast", PATHS)
def test_nulls(fast: bool) -> None:
    items = [
        {"time_bucket": "2026-11-01T00:00:00Z", "cost": "0", "model": None, "project.name": None},
        {"time_bucket": "2026-11-01T00:00:00Z", "cost": "0.1", "total_tokens": None},
    ]
    decoded = assert_same(body(items), fast)
    assert decoded[0].additional_properties == {"model": None, "project.name": None}


NUMBERS = [
    0,
    -1,
    2**31,
    2**63 - 1,
    -(2**63),
    2**64 - 1,
    2**64,  # beyond 64 bits: kept exact
    -(2**63) - 1,
    2**64 + 10**18 + 1,  # msgspec before 0.19 read these three wrongly
    19999999999999999999,
    -(2**64) + 10**18 + 1,
    10**30,
    -(10**40),
    0.0,
    -0.0,
    0.1,
    1e-7,
    123456789.123456789,
    1e16,
    1e19,  # a float as large as an integer beyond 64 bits: stays a float
    -9.3e18,
    1.7976931348623157e308,
    2.2250738585072014e-308,
    5e-324,
]


@pytest.mark.parametrize("fast", PATHS)
def test_numbers_keep_their_type_and_value(fast: bool) -> None:
    items = [
        {"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "n": number, "m": "x"}
        for number in NUMBERS
    ]
    decoded = assert_same(body(items), fast)
    assert [item["n"] for item in decoded] == NUMBERS
    assert [type(item["n"]) for item in decoded] == [type(n) for n in NUMBERS]


@pytest.mark.parametrize("fast", PATHS)
@pytest.mark.parametrize(
    "literal",
    [b"1E2", b"1.5e-400", b"0.30000000000000004", b"-0", b"1.0000000000000000000000001"],
)
def test_number_spellings(fast: bool, literal: bytes) -> None:
    content = b'[{"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "n": %s}]' % literal
    assert_same(content, fast)


@pytest.mark.parametrize("fast", PATHS)
@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_what_only_the_standard_library_reads_is_read_alike(fast: bool, literal: bytes) -> None:
    content = b'[{"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "n": %s}]' % literal
    assert stdlib_only(content)
    decoded = assert_same(content, fast)
    assert repr(decoded[0]["n"]) == repr(json.loads(content)[0]["n"])


@pytest.mark.parametrize("fast", PATHS)
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_unicode_keys_and_values(fast: bool, ensure_ascii: bool) -> None:
    items = [
        {
            "time_bucket": "2026-11-01T00:00:00Z",
            "cost": "0.5",
            "プロジェクト.名前": "ä,&= ü",
            "emoji 😀": "🚀 launch",
            "": "empty key",
            "tab\tand\nnewline": 'quote " and backslash \\',
            "control": "\u0000\u001f",
        }
    ]
    decoded = assert_same(body(items, ensure_ascii=ensure_ascii), fast)
    assert decoded[0]["プロジェクト.名前"] == "ä,&= ü"
    assert decoded[0].additional_keys == list(items[0])[2:]


@pytest.mark.parametrize("fast", PATHS)
@pytest.mark.parametrize(
    ("tag", "text"),
    [
        (b'"\\ud800"', "\ud800"),  # a lone surrogate escape
        (b'"\\udc00 \\ud800"', "\udc00 \ud800"),
        (b'"\xed\xa0\x80"', "\ud800"),  # a surrogate in UTF-8, which `json.loads` lets pass
    ],
)
def test_surrogates_the_standard_library_reads(fast: bool, tag: bytes, text: str) -> None:
    content = b'[{"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "tag": %s}]' % tag
    assert stdlib_only(content)
    assert assert_same(content, fast)[0]["tag"] == text


@pytest.mark.parametrize("fast", PATHS)
def test_escapes(fast: bool) -> None:
    pair = b'[{"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "tag": "\\ud83d\\ude00"}]'
    escapes = b'[{"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "tag": "\\u00E9\\/\\b\\f"}]'
    assert assert_same(pair, fast)[0]["tag"] == "😀"
    assert assert_same(escapes, fast)[0]["tag"] == "é/\b\f"


@pytest.mark.parametrize("fast", PATHS)
@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-32"])
def test_encodings_the_standard_library_reads(fast: bool, encoding: str) -> None:
    text = json.dumps([*realistic(20), {"time_bucket": "2026-11-01T00:00:00Z", "cost": "ä"}])
    content = text.encode(encoding)
    assert stdlib_only(content)
    assert len(assert_same(content, fast)) == 21


@pytest.mark.parametrize("fast", PATHS)
def test_time_bucket_spellings(fast: bool) -> None:
    spellings = [
        "2026-11-01T00:00:00Z",
        "2026-11-01T00:00:00+00:00",  # the same instant, and the same offset, spelled otherwise
        "2026-11-01T02:00:00+02:00",  # the same instant in another offset: kept
        "2026-11-01T00:00:00",  # naive
        "2026-11-01T00:00:00.123456Z",
        "2026-11-01T00:00:00.5-03:30",
        "2026-11-01",
        "20261101T000000Z",
    ]
    items = [{"time_bucket": text, "cost": "1"} for text in spellings * 3]
    decoded = assert_same(body(items), fast)
    assert decoded[2].time_bucket.utcoffset() == dt.timedelta(hours=2)
    assert decoded[3].time_bucket.tzinfo is None


@pytest.mark.parametrize("fast", PATHS)
def test_only_the_required_keys(fast: bool) -> None:
    decoded = assert_same(b'[{"cost": "0", "time_bucket": "2026-11-01T00:00:00Z"}]', fast)
    assert decoded[0].additional_properties == {}


@pytest.mark.parametrize("fast", PATHS)
def test_duplicate_keys_and_key_order(fast: bool) -> None:
    content = (
        b'[{"z": 1, "time_bucket": "2026-01-01T00:00:00Z", "a": "x", "cost": "1", "z": 2.5,'
        b' "cost": "2", "m": null}]'
    )
    decoded = assert_same(content, fast)
    assert decoded[0].cost == "2"
    assert list(decoded[0].additional_properties.items()) == [("z", 2.5), ("a", "x"), ("m", None)]


@pytest.mark.parametrize("fast", PATHS)
@pytest.mark.parametrize("count", [1, 2_000])
def test_extra_values_of_every_json_type(fast: bool, count: int) -> None:
    """Opper declares items with extra="allow" (`additionalProperties: true`): a tag may be a
    boolean, an object or an array, and the item is kept as the generated from_dict keeps it."""
    extras = {
        "flag": True,
        "off": False,
        "labels": {"team": "search", "tier": [1, 2.5, None, {"deep": [[]]}]},
        "list": ["a", 1, True, None],
        "empty_object": {},
        "empty_list": [],
        "big": [2**64 + 1, -(10**30)],
        "duplicate": {"k": 1, "k2": "x"},
    }
    content = body([{**row, **extras} for row in realistic(count)])
    assert (len(content) >= _decode._GC_PAUSE_BYTES) == (count == 2_000)  # both paths run
    decoded = assert_same(content, fast)
    assert decoded[-1]["labels"] == extras["labels"]
    assert decoded[-1].flag is True
    assert not stdlib_only(content) or _decode._typed_loads is None  # msgspec reads them


@pytest.mark.parametrize("fast", PATHS)
def test_duplicate_keys_in_nested_objects(fast: bool) -> None:
    content = b'[{"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "o": {"k": 1, "k": [2]}}]'
    assert assert_same(content, fast)[0]["o"] == {"k": [2]}


@pytest.mark.parametrize("fast", PATHS)
def test_json_nested_too_deep_to_read_is_a_mismatch(fast: bool) -> None:
    """Deeper than Python's recursion limit: named, not a RecursionError."""
    deep = b"[" * 100_000 + b"]" * 100_000
    content = b'[{"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "x": %s}]' % deep
    with pytest.raises(_decode.SchemaMismatch) as raised:
        _decode.decode_items(content, fast=fast)
    assert str(raised.value) == "the JSON is nested deeper than it can be read"


@pytest.mark.parametrize("fast", PATHS)
def test_pretty_printed(fast: bool) -> None:
    assert_same(body(realistic(50), indent=4), fast)


@pytest.mark.parametrize("fast", PATHS)
def test_items_are_the_generated_models(fast: bool) -> None:
    items = realistic(1_000)
    decoded = assert_same(body(items), fast)
    assert {type(item) for item in decoded} == {GetUsageResultItem}
    assert all(isinstance(item, GeneratedItem) for item in decoded)
    assert [item.to_dict() for item in decoded] == [item.to_dict() for item in plain(body(items))]
    assert decoded[0].model_dump()["model"] == items[0]["model"] == decoded[0].model


# -- any answer: hypothesis draws them

TIME_BUCKETS = st.sampled_from(
    ["2026-11-01T00:00:00Z", "2026-11-01T01:00:00Z", "2026-11-01T00:00:00+05:30", "2026-11-02"]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.sampled_from(MODELS)
)
#: Any JSON value: extra keys may hold objects and arrays too.
VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3)
    ),
    max_leaves=8,
)
KEYS = st.text().filter(lambda key: key not in ("time_bucket", "cost", "count"))
ITEM = st.fixed_dictionaries(
    {"time_bucket": TIME_BUCKETS, "cost": st.text(max_size=12)},
    optional={
        "count": st.integers(0, 2**70),
        "completion_tokens": st.integers(0, 10**9),
        "model": st.sampled_from(MODELS),
    },
).flatmap(
    lambda required: st.dictionaries(KEYS, VALUES, max_size=6).map(
        lambda extras: {**required, **extras}
    )
)


@settings(max_examples=300, deadline=None)
@given(items=st.lists(ITEM, max_size=40), ensure_ascii=st.booleans())
def test_any_valid_answer(items: list[dict[str, Any]], ensure_ascii: bool) -> None:
    content = body(items, ensure_ascii=ensure_ascii)
    fast = _decode.decode_items(content)
    slow = _decode.decode_items(content, fast=False)
    assert strict(fast) == strict(slow) == strict(plain(content))


@settings(max_examples=100, deadline=None)
@given(
    numbers=st.lists(st.integers() | st.floats(allow_nan=False, allow_infinity=False), min_size=1)
)
def test_any_numbers(numbers: list[int | float]) -> None:
    items = [{"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "n": n} for n in numbers]
    fast = _decode.decode_items(body(items))
    assert strict(fast) == strict(_decode.decode_items(body(items), fast=False))
    assert strict(fast) == strict(plain(body(items)))
    assert [(type(item["n"]), item["n"]) for item in fast] == [(type(n), n) for n in numbers]


#: Any JSON number, spelled any way: many digits, any exponent (each parser rounds its own way).
NUMBER_LITERALS = st.from_regex(
    r"-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,25})?([eE][-+]?[0-9]{1,3})?", fullmatch=True
)


@settings(max_examples=300, deadline=None)
@given(literals=st.lists(NUMBER_LITERALS, min_size=1, max_size=5))
def test_any_number_spelling(literals: list[str]) -> None:
    row = '{"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "n": %s}'
    content = ("[" + ", ".join(row % literal for literal in literals) + "]").encode()
    fast = _decode.decode_items(content)
    assert strict(fast) == strict(_decode.decode_items(content, fast=False))
    assert strict(fast) == strict(plain(content))


# -- answers that do not fit: the same error, whichever path finds it

#: A valid item, with the smallest valid count: a bad item after it is the first misfit.
VALID = '{"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "n": 1, "count": 0}'
BAD_ITEMS = [
    ('{"cost": "1"}', "required key 'time_bucket' is missing"),
    ('{"time_bucket": "2026-11-01T00:00:00Z"}', "required key 'cost' is missing"),
    ('{"time_bucket": null, "cost": "1"}', "'time_bucket' must be a date-time string, got null"),
    ('{"time_bucket": 5, "cost": "1"}', "'time_bucket' must be a date-time string, got a number"),
    ('{"time_bucket": [], "cost": "1"}', "'time_bucket' must be a date-time string, got an array"),
    ('{"time_bucket": "soon", "cost": "1"}', "'time_bucket' must be an ISO 8601 date-time"),
    ('{"time_bucket": "2026-11-01T00:00:00Z", "cost": 1}', "'cost' must be a string, got a number"),
    ('{"time_bucket": "2026-11-01T00:00:00Z", "cost": true}', "'cost' must be a string, got a"),
    ('{"time_bucket": {}, "cost": "1"}', "'time_bucket' must be a date-time string, got an object"),
    (
        '{"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "count": "3"}',
        "'count' must be a whole number, 0 or more, got '3'",
    ),
    (
        '{"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "count": -1}',
        "'count' must be a whole number, 0 or more, got a number",
    ),
    (
        '{"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "count": 1.0}',
        "'count' must be a whole number, 0 or more, got a number",
    ),
    (
        '{"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "count": true}',
        "'count' must be a whole number, 0 or more, got a boolean",
    ),
    (
        '{"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "count": null}',
        "'count' must be a whole number, 0 or more, got null",
    ),
    ("[]", "expected an object, got an array"),
    ('"item"', "expected an object, got 'item'"),
    ("null", "expected an object, got null"),
]


@pytest.mark.parametrize("fast", PATHS)
@pytest.mark.parametrize(("bad", "message"), BAD_ITEMS)
@pytest.mark.parametrize("position", [0, 1_500])
@pytest.mark.usefixtures("gc_enabled")
def test_the_first_misfit_is_named(fast: bool, bad: str, message: str, position: int) -> None:
    content = ("[" + ", ".join([VALID] * position + [bad] + [VALID] * 3) + "]").encode()
    with pytest.raises(_decode.SchemaMismatch) as raised:
        _decode.decode_items(content, fast=fast)
    assert str(raised.value).startswith(f"item {position}: ")
    assert message in str(raised.value)


@pytest.mark.parametrize("fast", PATHS)
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"time_bucket": "2026-11-01T00:00:00Z", "cost": "1"}', "got an object"),
        (b"null", "got null"),
        (b'"items"', "got 'items'"),
        (b"42", "got a number"),
    ],
)
def test_an_answer_that_is_not_an_array(fast: bool, content: bytes, message: str) -> None:
    with pytest.raises(_decode.SchemaMismatch, match=f"expected an array of items, {message}"):
        _decode.decode_items(content, fast=fast)


@pytest.mark.parametrize("fast", PATHS)
@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"[1, 2",
        b"[{]",
        b"\xff\xfe\x00",
        b'[{"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "tag": "\xff"}]',
        b'[{"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "n": 1%s}]' % (b"0" * 4_300),
    ],
    ids=["empty", "truncated", "malformed", "utf-16 garbage", "bad utf-8", "int over 4300 digits"],
)
def test_not_json_is_the_standard_librarys_value_error(fast: bool, content: bytes) -> None:
    try:
        json.loads(content)
    except ValueError as error:
        stdlib = error
    else:
        raise AssertionError(f"{content!r} is JSON")
    with pytest.raises(type(stdlib), match=re.escape(str(stdlib))) as raised:
        _decode.decode_items(content, fast=fast)
    assert str(raised.value) == str(stdlib)


def test_the_gc_is_left_as_the_caller_had_it() -> None:
    content = body(realistic(2_000))
    assert len(content) >= _decode._GC_PAUSE_BYTES
    gc.disable()
    try:
        assert strict(_decode.decode_items(content)) == strict(plain(content))
        assert not gc.isenabled()
    finally:
        gc.enable()
    bad = body([*realistic(2_000), {"time_bucket": "2026-11-01T00:00:00Z", "cost": 1}])
    with pytest.raises(_decode.SchemaMismatch, match="item 2000: 'cost' must be a string"):
        _decode.decode_items(bad)
    assert gc.isenabled()
