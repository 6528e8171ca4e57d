"""Where output goes: files checked before anything is sent, written whole or not at all, and
standard output in the encoding each format needs."""

from __future__ import annotations

import io
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ._failures import UsageError


def check_output(path: Path | None, flag: str) -> Path | None:
    """Where `path` leads (symbolic links followed), if it can be written; checked before
    anything is sent. `None` (and `-`) is standard output."""
    if path is None or str(path) == "-":
        return None
    target = Path(os.path.realpath(path))
    shown = str(path)
    if target.is_dir():
        raise UsageError(f"{flag} {shown!r} is a folder, not a file")
    if not target.parent.is_dir():
        raise UsageError(f"{flag} {shown!r}: the folder {str(path.parent)!r} does not exist")
    writable = os.access(target, os.W_OK) if target.exists() else True
    if replaceable(target):  # written next to it first, then renamed over it
        writable = writable and os.access(target.parent, os.W_OK)
    if not writable:
        raise UsageError(f"{flag} {shown!r} cannot be written (permission denied)")
    return target


def replaceable(target: Path) -> bool:
    """A new file or a regular one is replaced whole; anything else (/dev/null, a named pipe)
    is written in place, never replaced."""
    return not target.exists() or target.is_file()


def write_file(target: Path, write: Callable[[IO[str]], object]) -> None:
    """Write a regular file through a temporary one in the same folder, renamed over it at the
    end (keeping its permissions): a reader never sees half a file, and a failure leaves none.
    A device or a named pipe is written in place."""
    if not replaceable(target):
        with target.open("w", encoding="utf-8", newline="") as out:
            write(out)
        return
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8", newline="") as out:
            write(out)
        if target.exists():
            shutil.copymode(target, temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def write_stdout(write: Callable[[IO[str]], object], table: bool) -> None:
    """Data formats go out as UTF-8 whatever the locale; a table in the terminal's encoding."""
    sys.stdout.flush()
    if table:
        out = io.TextIOWrapper(sys.stdout.buffer, encoding=sys.stdout.encoding, errors="replace")
    else:
        out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
    try:
        write(out)
        out.flush()
    finally:
        out.detach()
