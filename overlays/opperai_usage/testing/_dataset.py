"""The server's usage events: a deterministic function of the seed and of time.

Time is cut into hours; the events of an hour come from a generator seeded with (seed, hour),
so any range is built on its own, in any order, and an event never changes once it exists:
moving `now` on only adds events, and the past stays as it was. Events arrive at random (a
Poisson process at `events` per WINDOW_DAYS days), and each UTC day also starts with one at
00:00:00, so every day, and the current month from its first moment, holds events.

A day's events are kept as columns (one array per attribute), built once and cached for every
server of the process, within a budget of MAX_CACHED_EVENTS.
"""

from __future__ import annotations

import hashlib
import random
import threading
from array import array
from bisect import bisect
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import accumulate, product

UTC = timezone.utc

DEFAULT_SEED = 7
#: The mean number of events in WINDOW_DAYS days (besides each day's first, at 00:00:00).
DEFAULT_EVENTS = 5_000
#: `events` is a count per this many days; the data set starts this many days back from the
#: day the server starts with (that day included).
WINDOW_DAYS = 60
DAY = 86_400
HOUR = 3_600
#: Days kept built, at most this many events in all (about 60 bytes each): the oldest go first.
MAX_CACHED_EVENTS = 4_000_000

# Prices in thousandths of a USD per million tokens, (prompt, completion): a token's cost is
# then a whole number of nano-USD, and cached prompt tokens at half price are too.
PRICES: dict[str, tuple[int, int]] = {
    "gpt-4o": (2_500, 10_000),
    "gpt-4o-mini": (150, 600),
    "claude-sonnet-4": (3_000, 15_000),
    "mistral-large": (2_000, 6_000),
    "gemini-2.5-pro": (1_250, 10_000),
}
_MODEL_WEIGHTS = (25, 35, 20, 8, 12)
ENVIRONMENTS = ("production", "staging", "development")
PROJECTS = ("alpha", "beta", "gamma")
#: Values of the custom tag `customer_id`, on CUSTOMER_SHARE of the events, the biggest first.
CUSTOMERS = ("acme", "globex", "initech", "umbrella", "hooli", "stark")
_CUSTOMER_WEIGHTS = (30, 22, 16, 12, 12, 8)
CUSTOMER_SHARE = 0.7
PROJECT_SHARE = 0.85
#: The summed metadata, in the order of `Day`'s columns.
FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens")

_MODELS = tuple(PRICES)
_MODEL_CUMULATIVE = tuple(accumulate(_MODEL_WEIGHTS))
_CUSTOMER_CUMULATIVE = tuple(accumulate(_CUSTOMER_WEIGHTS))
#: Every combination of tags an event can carry, each an index into this list.
TAGS: list[dict[str, str]] = []
for _model, _environment, _project, _customer in product(
    _MODELS, ENVIRONMENTS, (None, *PROJECTS), (None, *CUSTOMERS)
):
    _tags = {"model": _model, "environment": _environment}
    if _project is not None:
        _tags["project.name"] = _project
    if _customer is not None:
        _tags["customer_id"] = _customer
    TAGS.append(_tags)
_PROJECT_CHOICES = 1 + len(PROJECTS)
_CUSTOMER_CHOICES = 1 + len(CUSTOMERS)
_EPOCH = datetime(1, 1, 1, tzinfo=UTC)


def seconds(moment: datetime) -> int:
    """Whole seconds from 0001-01-01T00:00:00Z to an aware `moment` (its microseconds cut)."""
    moment = moment.astimezone(UTC)
    return (moment.toordinal() - 1) * DAY + moment.hour * HOUR + moment.minute * 60 + moment.second


def moment(second: int) -> datetime:
    """The UTC datetime `second` seconds after 0001-01-01T00:00:00Z."""
    return _EPOCH + timedelta(seconds=second)


@dataclass(frozen=True, slots=True)
class Day:
    """One UTC day's events in time order, one array per attribute: `seconds` (see
    `seconds()`), `lags` (the share of the ingest delay after which each is visible, in
    [0, 1)), `costs` (nano-USD), `tags` (indices into TAGS) and one per FIELDS name."""

    seconds: array[int]
    lags: array[float]
    costs: array[int]
    tags: array[int]
    fields: tuple[array[int], ...]

    def __len__(self) -> int:
        return len(self.seconds)


def _hour_random(seed: int, hour: int) -> random.Random:
    """The generator of one hour's events: the same for the same seed and hour, anywhere."""
    digest = hashlib.blake2b(f"{seed}/{hour}".encode(), digest_size=16).digest()
    return random.Random(int.from_bytes(digest, "big"))


def build_day(seed: int, events: int, day: int) -> Day:
    """The events of day number `day` (0 is 0001-01-01), for `events` per WINDOW_DAYS days."""
    built = Day(array("q"), array("d"), array("q"), array("H"), tuple(array("q") for _ in FIELDS))
    if events <= 0:
        return built
    mean_gap = WINDOW_DAYS * DAY / events  # seconds between two events, on average
    start = day * DAY
    for hour in range(24):
        rng = _hour_random(seed, day * 24 + hour)
        offset = 0.0 if hour == 0 else rng.expovariate(1 / mean_gap)
        while offset < HOUR:
            _add_event(built, rng, start + hour * HOUR + int(offset))
            offset += rng.expovariate(1 / mean_gap)
    return built


def _add_event(day: Day, rng: random.Random, second: int) -> None:
    """Draw one event's attributes from `rng` and append it to `day`'s columns."""
    model = bisect(_MODEL_CUMULATIVE, rng.random() * _MODEL_CUMULATIVE[-1])
    prompt = int(rng.lognormvariate(6.0, 1.0)) + 5
    completion = 0 if rng.random() < 0.04 else int(rng.lognormvariate(5.0, 0.9)) + 1
    cached = rng.randint(0, prompt) if rng.random() < 0.25 else 0
    environment = int(rng.random() * len(ENVIRONMENTS))
    project = 1 + int(rng.random() * len(PROJECTS)) if rng.random() < PROJECT_SHARE else 0
    customer = 0
    if rng.random() < CUSTOMER_SHARE:
        customer = 1 + bisect(_CUSTOMER_CUMULATIVE, rng.random() * _CUSTOMER_CUMULATIVE[-1])
    prompt_price, completion_price = PRICES[_MODELS[model]]
    cost = (prompt - cached) * prompt_price + cached * prompt_price // 2
    day.seconds.append(second)
    day.lags.append(rng.random())
    day.costs.append(cost + completion * completion_price)
    day.tags.append(
        ((model * len(ENVIRONMENTS) + environment) * _PROJECT_CHOICES + project) * _CUSTOMER_CHOICES
        + customer
    )
    values = (prompt, completion, prompt + completion, cached)
    for column, value in zip(day.fields, values, strict=True):
        column.append(value)


class _Days:
    """Built days shared by every server of the process, the least recently used dropped
    first once they hold more than MAX_CACHED_EVENTS events."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._days: OrderedDict[tuple[int, int, int], Day] = OrderedDict()
        self._events = 0

    def get(self, seed: int, events: int, day: int) -> Day:
        key = (seed, events, day)
        with self._lock:
            found = self._days.get(key)
            if found is not None:
                self._days.move_to_end(key)
                return found
        built = build_day(seed, events, day)  # outside the lock: others keep answering
        with self._lock:
            if key not in self._days:
                self._days[key] = built
                self._events += len(built)
                while self._events > MAX_CACHED_EVENTS and len(self._days) > 1:
                    self._events -= len(self._days.popitem(last=False)[1])
        return built


DAYS = _Days()
