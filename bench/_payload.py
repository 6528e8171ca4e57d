"""The benchmark's answers: deterministic usage items shaped like the API's (stdlib only)."""

from __future__ import annotations

import datetime as dt
import json

MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "mistral-large", "gemini-2.5-pro")
PROJECTS = ("alpha", "beta", None)
#: Items per time bucket: every bucket is shared by this many groups (model x project).
GROUPS_PER_BUCKET = 10
FIELDS = ("completion_tokens", "total_tokens")
GROUP_BY = ("model", "project.name")


def items(count: int) -> list[dict[str, object]]:
    """`count` items with six keys each, `GROUPS_PER_BUCKET` per hourly bucket."""
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    out: list[dict[str, object]] = []
    for index in range(count):
        bucket = start + dt.timedelta(hours=index // GROUPS_PER_BUCKET)
        group = index % GROUPS_PER_BUCKET
        completion = 1_000 + (index * 7_919) % 900_000
        out.append(
            {
                "time_bucket": bucket.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "cost": f"{(index * 104_729) % 50_000_000 / 1_000_000:.6f}",
                "completion_tokens": completion,
                "total_tokens": completion * 4 + (index * 31) % 10_000,
                "model": MODELS[group % len(MODELS)],
                "project.name": PROJECTS[(group // len(MODELS) + index // 50) % len(PROJECTS)],
            }
        )
    return out


def body(count: int) -> bytes:
    """The JSON answer with `count` items, spaced as Python's `json.dumps` spaces it."""
    return json.dumps(items(count)).encode()
