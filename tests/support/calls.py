"""Calls made the way tests need them: `Usage` (one call, sync or async: the `usage` fixture),
`Recorder` (canned answers over `httpx.MockTransport`), `ITEMS`, an answer's items, and `timed`,
a call's duration and error."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from opperai_usage.models import GetUsageResultItem

Usage = Callable[..., list[GetUsageResultItem]]


def timed(call: Callable[[], object]) -> tuple[float, BaseException | None]:
    """How long `call()` took, in seconds, and the exception it raised, if any."""
    started = time.monotonic()
    try:
        call()
    except Exception as error:
        return time.monotonic() - started, error
    return time.monotonic() - started, None


class Recorder:
    """A MockTransport handler that records requests and plays canned answers in order."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


ITEMS = [
    {
        "time_bucket": "2026-11-01T00:00:00Z",
        "cost": "0.004200",
        "count": 3,
        "total_tokens": 480,
        "model": "gpt-4o",
        "project.name": "alpha",
    },
    {
        "time_bucket": "2026-11-01T00:00:00Z",
        "cost": "0.000350",
        "count": 1,
        "total_tokens": 230,
        "model": "claude-sonnet-4",
        "project.name": None,
    },
]
