"""The testing kit as a process whose `now` is fixed (`--now`), so that what the command
computes from it (this month, complete days, a forecast) is known to the test."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator

from tests.support.servers import LocalServer, start_kit


@contextlib.contextmanager
def kit_at(now: dt.datetime) -> Iterator[LocalServer]:
    """`python -m opperai_usage.testing --now NOW` (any bearer token), stopped on the way out."""
    kit = start_kit("--now", now.isoformat())
    try:
        yield LocalServer(kit.url)
    finally:
        kit.process.terminate()
        kit.process.communicate(timeout=10)
