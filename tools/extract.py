"""The part of an API description this client covers: `GET /analytics/usage`, everything it
references (transitively), the servers and the security schemes it uses. Every other
operation, and every component nothing kept refers to, is left out.

What is kept is checked for what the tools (and openapi-spec-validator) cannot follow: a
schema that is its own member through `$ref`s alone, and nesting beyond `MAX_DEPTH` counted
through `$ref`s. A recursive type (a tree whose `items` refer to itself) is fine."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from tools.sources import MAX_DEPTH, InputError

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
    _check_cycles(components, label)
    _check_depth(kept, components, label)
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


Component = tuple[str, str]
#: Where a schema is its members, with nothing between: a schema among its own members this
#: way is a `$ref` cycle that never reaches a field (classify and the validator recurse on).
_SAME_LEVEL = ("allOf", "anyOf", "oneOf")


def _pointer(component: Component) -> str:
    return "#/components/" + "/".join(
        part.replace("~", "~0").replace("/", "~1") for part in component
    )


def _target(ref: str) -> Component:
    """`#/components/<section>/<name>`, already checked by `_referenced_components`."""
    _, section, name = (_unescape(part) for part in ref.removeprefix("#/").split("/"))
    return section, name


def _same_level_refs(schema: Any) -> Iterator[tuple[str, Component]]:
    """The components `schema` is made of directly (itself a `$ref`, or one in its
    allOf/anyOf/oneOf members), each with where its `$ref` is in `schema`."""
    pending = [(schema, "")]
    while pending:
        node, where = pending.pop()
        if not isinstance(node, dict):
            continue
        if isinstance(node.get("$ref"), str):
            yield where, _target(node["$ref"])
        for keyword in _SAME_LEVEL:
            members = node.get(keyword)
            if isinstance(members, list):
                pending += [(member, f"{where}/{keyword}/{i}") for i, member in enumerate(members)]


def _check_cycles(components: dict[str, dict[str, Any]], label: str) -> None:
    """An InputError naming the first `$ref` cycle found among `components`, if any."""
    graph = {
        (section, name): list(_same_level_refs(value))
        for section, named in components.items()
        for name, value in named.items()
    }
    done: set[Component] = set()
    for start in graph:
        if start in done:
            continue
        path, stack = [start], [iter(graph[start])]
        vias: list[str] = []  # where in path[i] its $ref to path[i + 1] is
        while stack:
            step = next(stack[-1], None)
            if step is None:
                done.add(path.pop())
                stack.pop()
                vias = vias[: len(path) - 1]
                continue
            where, target = step
            if target in path:
                first = path.index(target)
                steps = [
                    _pointer(c) + via
                    for c, via in zip(path[first:], [*vias, where][first:], strict=True)
                ]
                cycle = " -> ".join([*steps, _pointer(target)])
                raise InputError(
                    f"{label}: $ref cycle at {cycle} (a schema that is its own member)"
                )
            if target not in done:
                path.append(target)
                vias.append(where)
                stack.append(iter(graph[target]))


def _check_depth(kept: dict[str, Any], components: dict[str, dict[str, Any]], label: str) -> None:
    """An InputError if `kept` nests deeper than MAX_DEPTH with each `$ref` expanded (and
    counted as a level). A component already being expanded is not expanded again (a
    recursive type); each one's height is worked out once."""
    heights: dict[Component, int] = {}

    def too_deep(component: Component | None) -> InputError:
        where = f" (down to {_pointer(component)})" if component else ""
        return InputError(
            f"{label} is nested more than {MAX_DEPTH} levels deep, counting through its $refs"
            + where
        )

    def height(node: Any, depth: int, path: tuple[Component, ...]) -> int:
        """How many levels `node`, `depth` levels down, holds; recursing at most MAX_DEPTH."""
        if not isinstance(node, (dict, list)):
            return 0
        if depth >= MAX_DEPTH:
            raise too_deep(path[-1] if path else None)
        tallest = 0
        for child in node.values() if isinstance(node, dict) else node:
            tallest = max(tallest, height(child, depth + 1, path))
        ref = node.get("$ref") if isinstance(node, dict) else None
        if isinstance(ref, str) and _target(ref) not in path:
            component = _target(ref)
            if component not in heights:
                section, name = component
                target = components[section][name]
                heights[component] = height(target, depth + 1, (*path, component))
            elif depth + 1 + heights[component] > MAX_DEPTH:
                raise too_deep(component)
            tallest = max(tallest, heights[component])
        return 1 + tallest

    height(kept, 0, ())


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
