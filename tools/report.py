"""A list of classified changes as text (a terminal), markdown (a pull-request comment or a
CHANGELOG entry) or JSON (scripts)."""

from __future__ import annotations

import json
from collections import Counter

from tools.classify import KINDS, Change

FORMATS = ("text", "markdown", "json")
_CHANGELOG_SECTIONS = (("added", "Added"), ("changed", "Changed"), ("removed", "Removed"))


def summary(changes: list[Change]) -> str:
    """`1 breaking, 2 non-breaking, 0 annotations`."""
    counts = Counter(change.type for change in changes)
    parts = [f"{counts[kind]} {kind}" for kind in KINDS[:2]]
    annotations = counts["annotation"]
    return ", ".join([*parts, f"{annotations} annotation{'s' * (annotations != 1)}"])


def render(changes: list[Change], form: str, old: str, new: str) -> str:
    """The report, ending with a newline."""
    if form == "json":
        return json.dumps([change.as_json() for change in changes], indent=2) + "\n"
    if form == "markdown":
        return _markdown(changes, old, new)
    width = max(len(kind) for kind in KINDS)
    lines = [f"{change.type:<{width}}  {change.message}  [{change.path}]" for change in changes]
    lines.append(f"{old} -> {new}: {summary(changes) if changes else 'no changes'}")
    return "\n".join(lines) + "\n"


def _markdown(changes: list[Change], old: str, new: str) -> str:
    """Keep a Changelog's sections; breaking items marked as this project's CHANGELOG marks
    them; annotations folded away, since a changelog leaves them out."""
    lines = [f"## API changes: `{old}` → `{new}`", ""]
    if not changes:
        return "\n".join([*lines, "No changes to the operation this client covers.", ""])
    lines += [f"{summary(changes)}.", ""]
    for verb, heading in _CHANGELOG_SECTIONS:
        items = [c for c in changes if c.change == verb and c.type != "annotation"]
        if items:
            lines.append(f"### {heading}")
            lines += [_item(change) for change in items]
            lines.append("")
    notes = [change for change in changes if change.type == "annotation"]
    if notes:
        lines += [
            "<details><summary>Annotations: descriptions, examples, titles "
            f"({len(notes)})</summary>",
            "",
            *(_item(change) for change in notes),
            "",
            "</details>",
            "",
        ]
    return "\n".join(lines)


def _item(change: Change) -> str:
    mark = "**Breaking:** " if change.type == "breaking" else ""
    return f"- {mark}{change.message} (`{change.path}`)"
