"""Text from elsewhere (the API's answers, a server's error, a proxy's page) made safe to show:
control characters escaped, so a value cannot move the cursor, clear the screen, set a window
title or hide a link in the terminal; and the encoding errors each output allows."""

from __future__ import annotations

import codecs

#: The encoding error handler of text outputs (CSV, the table in a file, the HTML report): a
#: lone surrogate (which UTF-8 cannot hold, and a JSON answer can: `"\ud800"`) is written as
#: U+FFFD, the replacement character. JSON and JSON Lines use `backslashreplace` instead,
#: which writes it as the JSON escape `\ud800`: the same string, read back.
REPLACE = "opperai_usage.replace"


def _replace(error: UnicodeError) -> tuple[str | bytes, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    # As bytes: CPython's UTF-8 encoder takes only ASCII back as text.
    try:
        mark = "\ufffd".encode(error.encoding)
    except UnicodeError:  # an encoding without it
        mark = b"?"
    return mark * (error.end - error.start), error.end


codecs.register_error(REPLACE, _replace)


def printable(text: str) -> str:
    """`text` with each character that is not printable (control characters, ESC and BEL,
    C1 controls such as CSI, bidirectional overrides, lone surrogates) written as Python
    escapes it (`\\x1b`, `\\u202e`), and everything else as it is."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
