"""The server's in-memory usage events: seeded, realistic and anchored to a day.

The set depends only on the seed, the size and the day it ends with (today, unless the server
is given `now=`), so two servers with the same seed on the same day answer every query
identically, and the current month always holds events (the window includes that whole day).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

UTC = timezone.utc

DEFAULT_SEED = 7
DEFAULT_EVENTS = 5_000
WINDOW_DAYS = 60

_MILLION = Decimal(1_000_000)
# USD per million tokens: (prompt, completion). Cached prompt tokens cost half.
PRICES: dict[str, tuple[Decimal, Decimal]] = {
    "gpt-4o": (Decimal("2.50"), Decimal("10.00")),
    "gpt-4o-mini": (Decimal("0.15"), Decimal("0.60")),
    "claude-sonnet-4": (Decimal("3.00"), Decimal("15.00")),
    "mistral-large": (Decimal("2.00"), Decimal("6.00")),
    "gemini-2.5-pro": (Decimal("1.25"), Decimal("10.00")),
}
_MODEL_WEIGHTS = (25, 35, 20, 8, 12)
PROJECTS = ("alpha", "beta", "gamma")
CUSTOMERS = ("acme", "globex", "initech", "umbrella")
ENVIRONMENTS = ("production", "staging", "development")


@dataclass(frozen=True, slots=True)
class Event:
    """One billed call: when, its tags (grouping keys), its metadata (summed) and cost."""

    timestamp: datetime
    tags: dict[str, str]
    metadata: dict[str, int]
    cost: Decimal


def event_cost(model: str, prompt: int, completion: int, cached: int) -> Decimal:
    """Exact USD cost of one call, so sums never pick up float rounding."""
    prompt_price, completion_price = PRICES[model]
    uncached = (prompt - cached) * prompt_price
    return (uncached + cached * prompt_price / 2 + completion * completion_price) / _MILLION


def generate(
    seed: int = DEFAULT_SEED, count: int = DEFAULT_EVENTS, today: datetime | None = None
) -> list[Event]:
    """Build `count` events over the WINDOW_DAYS days ending with today, sorted by time."""
    now = today or datetime.now(UTC)
    end = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end += timedelta(days=1)
    span = WINDOW_DAYS * 86_400
    start = end - timedelta(seconds=span)
    rng = random.Random(seed)
    models = list(PRICES)
    events = []
    for _ in range(count):
        model = rng.choices(models, weights=_MODEL_WEIGHTS)[0]
        prompt = int(rng.lognormvariate(6.0, 1.0)) + 5
        completion = 0 if rng.random() < 0.04 else int(rng.lognormvariate(5.0, 0.9)) + 1
        metadata = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        cached = 0
        if rng.random() < 0.25:
            cached = rng.randint(0, prompt)
            metadata["cached_tokens"] = cached
        tags = {"model": model, "environment": rng.choice(ENVIRONMENTS)}
        if rng.random() < 0.85:
            tags["project.name"] = rng.choice(PROJECTS)
        if rng.random() < 0.7:
            tags["customer"] = rng.choice(CUSTOMERS)
        timestamp = start + timedelta(seconds=rng.randrange(span))
        events.append(
            Event(timestamp, tags, metadata, event_cost(model, prompt, completion, cached))
        )
    events.sort(key=lambda event: event.timestamp)
    return events
