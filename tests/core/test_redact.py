"""`redact`: the key taken out of text a server sent back, in every spelling a body can hold
it. The errors, the command line and live-contract rely on it; these tests hold each
spelling, the whitespace rules and the limits to account in-process."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import pytest

from opperai_usage._redact import MIN_SECRET_CHARS, REDACTED, _matcher, redact

#: A key with every character some encoding changes: a quote, a backslash, a space, a slash,
#: a plus, an apostrophe, an ampersand, angle brackets and a non-ASCII letter.
KEY = 'sk-"Zq9"\\w7 Kp/+é\'&<>'


@pytest.fixture(autouse=True)
def _patterns_built_afresh() -> None:
    """Each test builds its patterns: ones cached by an earlier call (under mutation testing,
    by the unmutated run the workers are forked from) would hide a change to how they are
    built."""
    _matcher.cache_clear()


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


SPELLINGS: dict[str, Callable[[str], str]] = {
    "as sent": lambda key: key,
    "JSON, ASCII": lambda key: json.dumps(key)[1:-1],
    "JSON, UTF-8": lambda key: json.dumps(key, ensure_ascii=False)[1:-1],
    "HTML, quotes escaped": lambda key: html.escape(key, quote=True),
    "HTML, quotes kept": lambda key: html.escape(key, quote=False),
    "repr": lambda key: repr(key)[1:-1],
    "URL, all encoded": lambda key: quote(key, safe=""),
    "URL, slash kept": quote,
    "URL, plus for space": lambda key: quote_plus(key, safe=""),
    "URL, lower-case hex": lambda key: _lower_hex(quote(key, safe="")),
    "URL, slash kept, lower-case hex": lambda key: _lower_hex(quote(key)),
    "URL, plus for space, lower-case hex": lambda key: _lower_hex(quote_plus(key, safe="")),
}


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_spelling_of_the_key_is_redacted(spelling: str) -> None:
    form = SPELLINGS[spelling](KEY)
    assert redact(f"you sent: Bearer {form}.", [KEY]) == f"you sent: Bearer {REDACTED}."


def test_the_spellings_differ_so_each_is_needed() -> None:
    """Each spelling above is a text the others do not contain (so each case tests its own
    form), but for the ones the key's characters make equal."""
    forms = {name: make(KEY) for name, make in SPELLINGS.items()}
    assert len(set(forms.values())) >= 10, forms
    assert all(KEY not in form for name, form in forms.items() if name != "as sent")


@pytest.mark.parametrize(
    "changed",
    [
        "sk-abc  def-123",  # a run of spaces where the key has one
        "sk-abc def-123",
        "sk-abc\n    def-123",  # a folded line
        "sk-abc\tdef-123",
        "sk-abcdef-123",  # no space at all, as some collapsing does
    ],
)
def test_the_keys_whitespace_may_have_changed(changed: str) -> None:
    key = "sk-abc  def-123"
    assert redact(f"[{changed}]", [key]) == f"[{REDACTED}]"


def test_whitespace_elsewhere_in_the_text_is_left_as_it_is() -> None:
    text = "a  b\n\tc"
    assert redact(text, ["sk-secret"]) == text


def test_the_shortest_key_looked_for_has_min_secret_chars() -> None:
    """Shorter "keys" would redact ordinary words; a key of exactly the minimum is redacted."""
    assert MIN_SECRET_CHARS == 4
    assert redact("the abc key", ["abc"]) == "the abc key"
    assert redact("the abcd key", ["abcd"]) == f"the {REDACTED} key"
    assert redact("the abcd key", [" abc "]) == "the abcd key"  # stripped, then too short


def test_the_key_is_looked_for_without_surrounding_whitespace() -> None:
    assert redact("Bearer sk-secret!", ["  sk-secret\n"]) == f"Bearer {REDACTED}!"


def test_missing_and_empty_keys_are_ignored() -> None:
    assert redact("nothing here", [None, "", "   "]) == "nothing here"
    assert redact("nothing here", []) == "nothing here"
    assert redact("sk-secret", [None, "sk-secret"]) == REDACTED


def test_every_occurrence_of_every_key_is_redacted() -> None:
    text = "a=sk-one-1 b=sk-two-2 c=sk-one-1 d=sk%2Dtwo-2"
    assert redact(text, ["sk-one-1", "sk-two-2"]) == (
        f"a={REDACTED} b={REDACTED} c={REDACTED} d=sk%2Dtwo-2"
    )


def test_a_key_that_starts_another_leaves_no_tail_of_the_longer() -> None:
    """Longer spellings are matched first: a key that is the start of another (an old and a
    new key) does not leave the other's end in the text."""
    assert redact("x sk-abcdef-longer y", ["sk-abcdef", "sk-abcdef-longer"]) == f"x {REDACTED} y"
    assert redact("x sk-abcdef-longer y", ["sk-abcdef-longer", "sk-abcdef"]) == f"x {REDACTED} y"


def test_a_spelling_longer_than_another_is_redacted_whole() -> None:
    """The JSON-escaped form of a key with a quote is longer than the raw form and contains
    its pieces: it is redacted whole, not as the raw key's fragments."""
    key = 'sk-"quoted"-key'
    assert redact(json.dumps({"auth": key}), [key]) == f'{{"auth": "{REDACTED}"}}'


def test_text_is_matched_literally() -> None:
    """A key is text, not a pattern: its `.` or `+` match only themselves."""
    assert redact("sk-aXb+c", ["sk-a.b+c"]) == "sk-aXb+c"
    assert redact("sk-a.b+c", ["sk-a.b+c"]) == REDACTED


def test_the_same_keys_in_another_order_give_the_same_text() -> None:
    text = "sk-first-1 and sk-second-2"
    first = redact(text, ["sk-first-1", "sk-second-2"])
    assert first == redact(text, ["sk-second-2", "sk-first-1"]) == f"{REDACTED} and {REDACTED}"
