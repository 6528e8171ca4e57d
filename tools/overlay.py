"""Applying an OpenAPI Overlay 1.0 document: the project's own adjustments to the upstream
description, kept as data (as Speakeasy's workflow keeps the official SDK's).

Each action's `target` is an RFC 9535 JSONPath query. `remove: true` removes every selected
node from its object or array. Otherwise `update` is merged into every selected object
(recursively: objects merge key by key, any other value replaces) or appended to every
selected array, as the Overlay specification says.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpath_rfc9535

from tools.sources import InputError


def apply(document: dict[str, Any], overlay: Any, label: str) -> list[str]:
    """Apply `overlay` to `document` in place; warnings for actions that selected nothing."""
    actions = _actions(overlay, label)
    warnings = []
    for number, action in enumerate(actions, start=1):
        where = f"{label}: action {number} ({action['target']})"
        try:
            nodes = jsonpath_rfc9535.find(action["target"], document)
        except jsonpath_rfc9535.JSONPathError as error:
            raise InputError(f"{where}: {error}") from None
        if not nodes:
            warnings.append(f"{where} selects nothing: has the upstream description changed?")
        if action.get("remove") is True:
            # Last first, so that removing an array item does not shift the others.
            for location in sorted((node.location for node in nodes), key=_order, reverse=True):
                if not location:
                    raise InputError(f"{where}: the whole document cannot be removed")
                parent = _at(document, location[:-1])
                del parent[location[-1]]
        elif "update" in action:
            for node in nodes:
                _update(node.value, action["update"], where)
    return warnings


def _actions(overlay: Any, label: str) -> list[dict[str, Any]]:
    if not isinstance(overlay, dict) or not str(overlay.get("overlay", "")).startswith("1.0"):
        raise InputError(f"{label} is not an OpenAPI Overlay 1.0 document (`overlay: 1.0.x`)")
    actions = overlay.get("actions")
    if not isinstance(actions, list) or not all(
        isinstance(action, dict) and isinstance(action.get("target"), str) for action in actions
    ):
        raise InputError(f"{label}: `actions` must be a list of objects, each with a `target`")
    return actions


def _update(target: Any, update: Any, where: str) -> None:
    if isinstance(target, list):
        target.append(copy.deepcopy(update))
    elif isinstance(target, dict) and isinstance(update, dict):
        _merge(target, update)
    else:
        raise InputError(f"{where}: an update applies to objects and arrays only")


def _merge(target: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(target.get(key), dict) and isinstance(value, dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _at(document: Any, location: tuple[str | int, ...]) -> Any:
    for key in location:
        document = document[key]
    return document


def _order(location: tuple[str | int, ...]) -> tuple[tuple[int, str | int], ...]:
    """Locations compared part by part, array indices as numbers (so 10 comes after 9)."""
    return tuple((0, part) if isinstance(part, int) else (1, part) for part in location)
