"""A progress line on a terminal while a slow call runs; nothing at all on a pipe or a file."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

#: A call that answers faster than this shows nothing.
DELAY_S = 0.5
INTERVAL_S = 0.1
SPINNER = "|/-\\"
CLEAR_LINE = "\r\x1b[K"


def wanted(stream: TextIO) -> bool:
    """Whether `stream` is a terminal that can redraw a line (not a pipe, a file or TERM=dumb)."""
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


class Progress:
    """`with Progress(sys.stderr, "waiting for ..."):` redraws `| waiting for ... 1.2 s` on
    `stream` every 0.1 s once the block has run for 0.5 s, and erases it when the block ends.
    `status()`, when given, is shown after the message at each redraw (`: 3 of 12 windows`)."""

    def __init__(
        self,
        stream: TextIO,
        message: str,
        *,
        delay_s: float = DELAY_S,
        status: Callable[[], str] | None = None,
    ) -> None:
        self._stream = stream
        self._message = message
        self._status = status
        self._delay_s = delay_s
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._shown = False

    def __enter__(self) -> Progress:
        if wanted(self._stream):
            self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        if self._shown:
            self._stream.write(CLEAR_LINE)
            self._stream.flush()

    def _run(self) -> None:
        started = time.monotonic()
        if self._done.wait(self._delay_s):
            return
        self._shown = True
        frame = 0
        while True:
            elapsed = time.monotonic() - started
            spin = SPINNER[frame % len(SPINNER)]
            status = f": {self._status()}" if self._status is not None else ""
            self._stream.write(f"{CLEAR_LINE}{spin} {self._message}{status} {elapsed:.1f} s")
            self._stream.flush()
            frame += 1
            if self._done.wait(INTERVAL_S):
                return
