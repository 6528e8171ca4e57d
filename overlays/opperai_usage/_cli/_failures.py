"""One line on stderr for each way the command fails, its exit status, and the key kept out of
it: the error class, the status, the message and the request id.

What a server sent (an error body, a message, a 422 detail) is shown with the key redacted in
every form it can take there (`_redact`) and its control characters escaped (`_text`): a
server or a proxy must not be able to print the key, or to write to the terminal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TextIO

import httpx

from .. import _credentials
from .._redact import redact
from ._text import printable

PROG = "opper-usage"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 130, 141
#: An error line longer than this is cut (an HTML error page from a proxy can be long).
MAX_ERROR_CHARS = 500


class UsageError(Exception):
    """Bad usage noticed after parsing: a one-line message, exit status 2, nothing sent."""


class OutputError(Exception):
    """The output could not be written (a full disk, a device that refuses it): a one-line
    message, exit status 1."""


class Terminated(BaseException):
    """SIGTERM (or SIGHUP) while an output file was being written, raised so that the
    temporary file is removed on the way out; the command exits with 128 + the signal."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(signal_number)
        self.signal_number = signal_number


def one_line(text: str, secrets: Sequence[str]) -> str:
    """`text` on one line, fit for a terminal: each secret redacted (in any spelling),
    whitespace collapsed, control characters escaped, and cut to MAX_ERROR_CHARS."""
    text = printable(" ".join(redact(text, secrets).split()))
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 1] + "…"
    return text


def _detail(data: object) -> str:
    """What a documented error body's `detail` adds to its message (422: which parameter)."""
    detail = getattr(data, "detail", None)
    if isinstance(detail, str) and detail:
        return f": {detail}"
    if isinstance(detail, list):
        parts = [
            f"{_location(d.get('loc'))}: {d.get('msg', '')}" for d in detail if isinstance(d, dict)
        ]
        return f": {'; '.join(parts)}" if parts else ""
    return ""


def _location(loc: object) -> str:
    """A 422 detail's `loc` (a list of names and indexes; anything else shown as it is)."""
    if isinstance(loc, list | tuple):
        return ".".join(map(str, loc))
    return "" if loc is None else str(loc)


def describe_failure(error: Exception) -> str:
    """The error class, status (or "no answer"), message and request id, in one line, and
    the window it belongs to when the range was fetched in windows."""
    window = getattr(error, "usage_window", None)
    return _failure(error) + ("" if window is None else f" in the window {window}")


def _failure(error: Exception) -> str:
    from ..errors import OpperError

    name = type(error).__name__
    if isinstance(error, OpperError):
        request_id = error.request_id or "none"
        message = error.message + _detail(getattr(error, "data", None))
        return f"{name}: status {error.status_code}: {message} (request id {request_id})"
    where = ""
    try:
        request = error.request if isinstance(error, httpx.RequestError) else None
    except RuntimeError:  # an httpx error raised without a request
        request = None
    if request is not None:
        where = f" from {request.method} {request.url.copy_with(query=None)}"
    return f"{name}: no answer{where}: {error or 'no details'} (request id none)"


def key_values() -> list[str]:
    """The keys in the environment, to scrub from anything printed (a server may echo them)."""
    values = (os.environ.get(name, "").strip() for name in _credentials.ENV_VARIABLES)
    return [value for value in values if len(value) >= 4]


def show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    print(f"{PROG}: warning: {one_line(str(message), key_values())}", file=sys.stderr)
