"""The order the suite runs in, which is the order xdist's workers take its tests in."""

from __future__ import annotations

from pathlib import Path

import pytest


def spread(items: list[pytest.Item]) -> list[pytest.Item]:
    """The modules of each folder spread evenly over the run, each module's tests together and
    in order; modules with an xdist group first.

    A folder's modules are alike (the core's timing tests mostly wait, the command line's
    mostly compute), and the workers take tests at the same pace: in folder order they all
    wait at once, leaving the cores idle, then all compute at once. A group runs on one
    worker from its first test to its last, so it starts first rather than ends last."""
    modules: dict[Path, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.path, []).append(item)
    folders: dict[Path, list[Path]] = {}
    for path in modules:
        folders.setdefault(path.parent, []).append(path)

    def place(path: Path) -> tuple[bool, float]:
        siblings = folders[path.parent]
        grouped = any(item.get_closest_marker("xdist_group") for item in modules[path])
        return not grouped, (siblings.index(path) + 0.5) / len(siblings)

    return [item for path in sorted(modules, key=place) for item in modules[path]]
