"""What a user's code sees under `mypy --strict`: checked by `nox -s typecheck` (mypy runs on
tests/), never run. `assert_type` pins each promise; a `# type: ignore[...]` marks what must
stay a type error (strict mode's warn_unused_ignores fails the check if it stops being one)."""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Mapping
from typing import Any

from typing_extensions import assert_type

import opperai_usage
from opperai_usage import Opper, errors, models
from opperai_usage.utils import BackoffStrategy, RetryConfig


def sync_user(opper: Opper) -> None:
    items = opper.analytics.get_usage(
        from_date=dt.date(2026, 11, 1),
        granularity=models.Granularity.DAY,
        fields=collections.deque(["total_tokens"]),  # any sequence of strings
        group_by=("model",),
        timeout_ms=1_500.5,  # a float is fine
        retries=RetryConfig("backoff", BackoffStrategy(200, 5_000, 1.5, 30_000), True, 3),
    )
    assert_type(items, list[models.GetUsageResultItem])
    item = items[0]
    assert_type(item.time_bucket, dt.datetime)
    assert_type(item.cost, str)
    assert_type(item["total_tokens"], Any)  # any JSON value
    row: Mapping[str, Any] = item  # a read-only mapping of all its keys
    assert_type(dict(row), dict[str, Any])
    assert_type(len(item), int)
    assert_type(list(item), list[str])
    assert_type(item.model_dump(), dict[str, Any])

    opper.analytics.get_usage(fields={"total_tokens"})  # type: ignore[arg-type]
    opper.analytics.get_usage(timeout_ms="1000")  # type: ignore[arg-type]


async def async_user(opper: Opper) -> None:
    items = await opper.analytics.get_usage_async(group_by=["model"], timeout_ms=250.0)
    assert_type(items, list[models.GetUsageResultItem])


def errors_user(opper: Opper) -> None:
    try:
        opper.analytics.get_usage()
    except errors.UnauthorizedError as error:
        assert_type(error.data.message, str | None)
        assert_type(error.data.type, str | None)
        assert_type(error.request_id, str | None)
        assert_type(error.status_code, int)
    except errors.RequestValidationError as error:
        assert_type(error.data.message, str | None)
    except errors.ResponseValidationError as error:
        assert_type(error.cause, Exception)
    except errors.InvalidArgumentError as error:
        assert_type(error.parameter, str)


def client_options() -> None:
    Opper(api_key="key", timeout_ms=2.5)
    Opper(http_bearer=lambda: "key", retry_config=None)
    Opper(timeout_ms="60000")  # type: ignore[arg-type]


def calendar_user(opper: Opper) -> None:
    import opperai_usage

    zone = "Europe/Stockholm"
    start = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
    end = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    granularity = opperai_usage.fetch_granularity(start, end, "week", zone)
    assert_type(granularity, models.Granularity)
    hours = opper.analytics.iter_usage(from_date=start, to_date=end, granularity=granularity)
    weeks = opperai_usage.roll_up(hours, "week", zone, start=start, end=end, granularity="hour")
    assert_type(weeks, list[models.GetUsageResultItem])
    opperai_usage.roll_up(hours, "week", zone, start="2026-10-01")  # type: ignore[arg-type]


def chargeback_user(opper: Opper) -> None:
    items = opper.analytics.get_usage(group_by=["customer_id"])
    assert_type(opperai_usage.top(items, 5, "customer_id"), list[models.GetUsageResultItem])
    opperai_usage.top(iter(items), 3, by="customer_id", fields=[], group_by=["customer_id"])
    opperai_usage.top(items, "5", "customer_id")  # type: ignore[arg-type]
