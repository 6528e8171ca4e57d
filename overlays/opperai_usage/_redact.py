"""The API key kept out of text a server sent back: a server or a proxy may echo the request's
`Authorization` header into an error body, and that text reaches `str(error)`, the command
line's error line and the tools' reports.

A plain search for the key misses it once the body has encoded it, so every form it can take
there is looked for: as sent, JSON-escaped (`"` and `\\` escaped, non-ASCII as `\\uXXXX`),
URL-encoded (either hex case, `+` or `%20` for a space, `/` kept or not), HTML-escaped, as a
Python repr quotes it (an error about a malformed header line), and with its whitespace
changed (a run of spaces collapsed, or a line folded). It needs no imports beyond the standard
library, so the tools can use it without the package's dependencies.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import quote, quote_plus

REDACTED = "<redacted>"
#: Shorter "keys" (a stray `x`, say) would redact ordinary words: they are not looked for.
MIN_SECRET_CHARS = 4
_WHITESPACE = re.compile(r"\s+")


def _forms(secret: str) -> set[str]:
    """Each spelling of `secret` that a body may hold."""
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],  # pragma: no mutate (None is false too)
        html.escape(secret),  # quotes escaped too
        html.escape(secret, quote=False),  # pragma: no mutate (None is false too)
        repr(secret)[1:-1],  # as Python quotes it: h11 quotes a malformed header line so
    }
    # Every character encoded, or `/` kept (what `quote()` does unless told otherwise).
    # `safe` names characters kept; "XXXX" would keep only "X", which is never encoded.
    for encoded in (quote(secret, safe=""), quote(secret), quote_plus(secret)):  # pragma: no mutate
        forms.add(encoded)
        forms.add(re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded))
    return {form for form in forms if form}


def _pattern_of(form: str) -> str:
    """`form` as a regular expression in which any run of whitespace in it matches any run
    (including none where the key had some: a folded or collapsed line)."""
    parts = [re.escape(part) for part in _WHITESPACE.split(form)]
    return r"\s*".join(parts)


@lru_cache(maxsize=32)
def _matcher(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    forms = {form for secret in secrets for form in _forms(secret)}
    if not forms:
        return None
    patterns = sorted({_pattern_of(form) for form in forms}, key=len, reverse=True)
    return re.compile("|".join(patterns))


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every spelling of each secret (of at least `MIN_SECRET_CHARS` characters,
    surrounding whitespace ignored) replaced by `<redacted>`."""
    wanted = tuple(sorted({s.strip() for s in secrets if s and len(s.strip()) >= MIN_SECRET_CHARS}))
    matcher = _matcher(wanted)  # None when nothing is looked for
    return matcher.sub(REDACTED, text) if matcher is not None else text
