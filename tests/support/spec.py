"""openapi.yaml, loaded once for the tests that check code against it."""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml

from tests.support import ROOT


@cache
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    return loaded


def operation() -> dict[str, Any]:
    op: dict[str, Any] = spec()["paths"]["/analytics/usage"]["get"]
    return op


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local `$ref`."""
    while "$ref" in node:
        target: Any = spec()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node
