"""Runs parity cases through one SDK: this project's (`opperai_usage`) or the official one
(`opperai`, in a venv of its own).

    python tests/release/parity_driver.py opperai|opperai_usage SERVER_URL < cases.json > out.json

It prints `{"sdk": {...which SDK ran...}, "outcomes": [...one per case...]}`.

Each case scripts the local server, makes one call and reports what a user would see: the
query string the server received, and the items or the error. Only the public API common to
both is used, so the same file drives both clients.
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.metadata
import json
import sys
from typing import Any

import httpx

SDK_NAME = sys.argv[1] if __name__ == "__main__" else "opperai_usage"
sdk: Any = importlib.import_module(SDK_NAME)
utils: Any = importlib.import_module(f"{SDK_NAME}.utils")
Opper, errors, models = sdk.Opper, sdk.errors, sdk.models
BackoffStrategy, RetryConfig = utils.BackoffStrategy, utils.RetryConfig


def decode(value: Any) -> Any:
    """JSON to call arguments: `{"$datetime": iso}`, `{"$date": iso}`, `{"$granularity": NAME}`,
    `{"$retries": [strategy, [initial, max, exponent, elapsed], connection_errors]}`."""
    if isinstance(value, dict) and len(value) == 1:
        ((tag, text),) = value.items()
        if tag == "$datetime":
            return dt.datetime.fromisoformat(text)
        if tag == "$date":
            return dt.date.fromisoformat(text)
        if tag == "$granularity":
            return models.Granularity[text]
        if tag == "$retries":
            strategy, backoff, connection_errors = text
            return RetryConfig(strategy, BackoffStrategy(*backoff), connection_errors)
    if isinstance(value, list):
        return [decode(item) for item in value]
    return value


def outcome(call: Any) -> dict[str, Any]:
    try:
        items = call()
    except errors.OpperError as error:
        data = getattr(error, "data", None)
        return {
            "error": type(error).__name__,
            "message": str(error),
            "request_id": error.headers.get("x-request-id"),
            "status": error.status_code,
            "data": None if data is None else [data.type, data.message, data.detail],
        }
    except ValueError:  # an argument rejected before sending: the messages differ
        return {"error": "ValueError"}
    return {"items": [as_dict(item) for item in items]}


def as_dict(item: Any) -> dict[str, Any]:
    """An item's values: ours declares `count`, the official SDK keeps it with the others."""
    values = {"time_bucket": item.time_bucket.isoformat(), "cost": item.cost}
    values.update(item.additional_properties)
    count = getattr(item, "count", None)
    if isinstance(count, int):
        values["count"] = count
    return values


def run(server: str, cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    base = server.removesuffix("/v2")
    results = []
    with (
        httpx.Client(base_url=f"{base}/_control") as control,  # one, not one per request
        Opper(http_bearer="parity-key", server_url=server, retry_config=None) as opper,
    ):
        for case in cases:
            control.post("/reset").raise_for_status()
            control.post("/script", json=case.get("script", [])).raise_for_status()
            arguments = {name: decode(value) for name, value in case["args"].items()}
            result = outcome(lambda: opper.analytics.get_usage(**arguments))  # noqa: B023
            recorded = control.get("/requests").json()
            result["query"] = recorded[0]["raw_query"] if recorded else None
            result["attempts"] = len(recorded)
            results.append(result)
    return results


def identity() -> dict[str, str]:
    """Which SDK this run really drove: its distribution, version and where it was imported."""
    distribution = {"opperai": "opperai", "opperai_usage": "opperai-usage"}[SDK_NAME]
    return {
        "module": SDK_NAME,
        "distribution": distribution,
        "version": importlib.metadata.version(distribution),
        "file": str(sdk.__file__),
    }


if __name__ == "__main__":
    outcomes = run(sys.argv[2], json.load(sys.stdin))
    json.dump({"sdk": identity(), "outcomes": outcomes}, sys.stdout)
