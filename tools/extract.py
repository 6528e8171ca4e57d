"""The part of an API description this client covers: `GET /analytics/usage`, everything it
references (transitively), the servers and the security schemes it uses. Every other
operation, and every component nothing kept refers to, is left out."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from tools.sources import InputError

PATH = "/analytics/usage"
METHOD = "get"
OPERATION = f"{METHOD.upper()} {PATH}"


def operation(document: dict[str, Any], label: str) -> dict[str, Any]:
    """The operation object, or an InputError naming `label`."""
    paths = document.get("paths")
    item = paths.get(PATH) if isinstance(paths, dict) else None
    found = item.get(METHOD) if isinstance(item, dict) else None
    if not isinstance(found, dict):
        raise InputError(f"{label} has no {OPERATION}")
    return found


def extract(document: dict[str, Any], label: str) -> dict[str, Any]:
    """A new document holding only what `GET /analytics/usage` needs, in the source's order."""
    op = operation(document, label)
    item = {METHOD: op}
    if "parameters" in document["paths"][PATH]:  # path-level parameters apply to it too
        item = {"parameters": document["paths"][PATH]["parameters"], **item}
    kept: dict[str, Any] = {}
    for key, value in document.items():
        if key in ("openapi", "info", "jsonSchemaDialect", "servers", "security"):
            kept[key] = value
        elif key == "tags":
            used = set(op.get("tags") or [])
            tags = [tag for tag in value if isinstance(tag, dict) and tag.get("name") in used]
            if tags:
                kept[key] = tags
        elif key == "paths":
            kept[key] = {PATH: item}
    kept = copy.deepcopy(kept)
    components = _referenced_components(document, kept, label)
    schemes = _security_schemes(document, kept, op)
    if schemes:
        components.setdefault("securitySchemes", {}).update(schemes)
    if components:
        order = list(document.get("components") or {})
        kept["components"] = {
            section: {
                name: components[section][name]
                for name in document["components"][section]
                if name in components[section]
            }
            for section in order
            if section in components
        }
    return kept


def _referenced_components(
    document: dict[str, Any], kept: dict[str, Any], label: str
) -> dict[str, dict[str, Any]]:
    """Every `#/components/<section>/<name>` reachable from `kept`, copied from `document`."""
    found: dict[str, dict[str, Any]] = {}
    pending = list(_refs(kept))
    while pending:
        ref = pending.pop()
        parts = ref.removeprefix("#/").split("/")
        if not ref.startswith("#/components/") or len(parts) != 3:
            raise InputError(f"{label}: only references to #/components/... are read, not {ref}")
        _, section, name = (_unescape(part) for part in parts)
        if name in found.get(section, {}):
            continue
        target = (document.get("components") or {}).get(section, {}).get(name)
        if target is None:
            raise InputError(f"{label}: {ref} refers to nothing")
        found.setdefault(section, {})[name] = copy.deepcopy(target)
        pending.extend(_refs(target))
    return found


def _security_schemes(
    document: dict[str, Any], kept: dict[str, Any], op: dict[str, Any]
) -> dict[str, Any]:
    names = {
        name
        for requirements in (kept.get("security") or [], op.get("security") or [])
        for requirement in requirements
        for name in requirement
    }
    schemes = (document.get("components") or {}).get("securitySchemes") or {}
    return {name: copy.deepcopy(schemes[name]) for name in names if name in schemes}


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")
