"""Where output goes: files checked before anything is sent, written whole or not at all, and
standard output in the encoding each format needs.

A regular file is written to a temporary file in its folder, made by `tempfile.mkstemp` (a
name no one can guess, created only if it does not exist, never through a link), with the
permissions the file has (or, new, would get from the umask) from the start; it is renamed
over the file at the end. On any failure, and on SIGTERM or SIGHUP meanwhile, the temporary
file is removed and the file is left as it was.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import IO

from ._failures import OutputError, Terminated, UsageError

#: How much of the file's name the temporary file's name keeps: with the dot, the random part
#: and `.tmp`, it stays far within a name's 255 bytes whatever the file's name is.
_NAME_KEPT = 32
_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def check_output(path: Path | None, flag: str) -> Path | None:
    """Where `path` leads (symbolic links followed), if it can be written; checked before
    anything is sent. `None` (and `-`) is standard output."""
    if path is None or str(path) == "-":
        return None
    shown = str(path)
    try:
        target = Path(os.path.realpath(path))
        if target.is_dir():
            raise UsageError(f"{flag} {shown!r} is a folder, not a file")
        if not target.parent.is_dir():
            raise UsageError(f"{flag} {shown!r}: the folder {str(path.parent)!r} does not exist")
        writable = os.access(target, os.W_OK) if target.exists() else True
        if replaceable(target):  # written next to it first, then renamed over it
            writable = writable and os.access(target.parent, os.W_OK)
    except OSError as error:  # a name too long, a loop of links...
        raise UsageError(f"{flag} {shown!r} cannot be written: {_reason(error)}") from None
    if not writable:
        raise UsageError(f"{flag} {shown!r} cannot be written (permission denied)")
    return target


def replaceable(target: Path) -> bool:
    """A new file or a regular one is replaced whole; anything else (/dev/null, a named pipe)
    is written in place, never replaced."""
    return not target.exists() or target.is_file()


def _reason(error: OSError) -> str:
    return error.strerror or str(error) or type(error).__name__


def write_file(target: Path, write: Callable[[IO[str]], object], errors: str = "strict") -> None:
    """Write a regular file through a temporary one in the same folder, renamed over it at the
    end: a reader never sees half a file, and a failure leaves none. A device or a named pipe
    is written in place. `errors` is the encoding error handler. Raises `OutputError` when the
    system refuses (a full disk), `Terminated` on SIGTERM or SIGHUP."""
    try:
        with _signals_raise():
            if replaceable(target):
                _replace(target, write, errors)
            else:
                with target.open("w", encoding="utf-8", newline="", errors=errors) as out:
                    write(out)
    except BrokenPipeError:  # a named pipe whose reader left: as for standard output
        raise
    except OSError as error:
        raise OutputError(f"cannot write {str(target)!r}: {_reason(error)}") from None


def _replace(target: Path, write: Callable[[IO[str]], object], errors: str) -> None:
    mode = _mode_for(target)
    name: str | None = None
    replaced = False
    try:
        with _signals_held():  # made and named before a signal can leave it behind
            handle, name = tempfile.mkstemp(
                prefix=f".{target.name[:_NAME_KEPT]}.", suffix=".tmp", dir=target.parent
            )
        with open(handle, "w", encoding="utf-8", newline="", errors=errors) as out:
            os.fchmod(out.fileno(), mode)  # before a byte is written
            write(out)
        os.replace(name, target)
        replaced = True
    finally:
        if name is not None and not replaced:
            Path(name).unlink(missing_ok=True)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGTERM and SIGHUP held back (pending) for the block, then delivered."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    held = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _mode_for(target: Path) -> int:
    """The permissions `target` has, or, new, the ones the umask gives a new file."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mask = os.umask(0o077)  # read by setting it: briefly the strictest, then put back
        os.umask(mask)
        return 0o666 & ~mask


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGTERM and SIGHUP raise `Terminated` in the block (so that `finally` clauses run),
    instead of ending the process on the spot; handlers are put back after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(number: int, frame: FrameType | None) -> None:
        raise Terminated(number)

    previous = {
        number: signal.signal(number, terminate)
        for number in _SIGNALS
        if signal.getsignal(number) is not signal.SIG_IGN  # as under nohup: still ignored
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def write_stdout(write: Callable[[IO[str]], object], table: bool, errors: str = "strict") -> None:
    """Data formats go out as UTF-8 whatever the locale (`errors` the encoding error handler);
    a table in the terminal's encoding, what it cannot show replaced.

    Written through a buffer of its own: with `python -u` (PYTHONUNBUFFERED) `sys.stdout` has
    none, and a large write into a pipe whose reader has left then ends early with no error."""
    sys.stdout.flush()
    try:
        binary: IO[bytes] = open(sys.stdout.fileno(), "wb", closefd=False)  # noqa: SIM115
    except (AttributeError, OSError, ValueError):  # no file descriptor (a replaced stdout)
        binary = sys.stdout.buffer
    if table:
        out = io.TextIOWrapper(binary, encoding=sys.stdout.encoding, errors="replace")
    else:
        out = io.TextIOWrapper(binary, encoding="utf-8", errors=errors, newline="")
    try:
        write(out)
        out.flush()
    except BrokenPipeError:  # the reader has gone (`| head`): the caller says so
        silence_stdout()
        raise
    except OSError as error:
        silence_stdout()
        raise OutputError(f"cannot write to standard output: {_reason(error)}") from None
    finally:
        detached = out.detach()
        if detached is not sys.stdout.buffer:
            detached.close()  # its own buffer only: closefd=False


def silence_stdout() -> None:
    """Point standard output at /dev/null, so that what is still buffered for it (and Python's
    own flush at exit) does not fail a second time."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
