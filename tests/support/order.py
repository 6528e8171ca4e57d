"""The order the suite runs in, which is the order xdist's workers take its tests in."""

from __future__ import annotations

from pathlib import Path

import pytest


def spread(items: list[pytest.Item]) -> list[pytest.Item]:
    """The modules of each folder spread evenly over the run, each module's tests together and
    in order.

    A folder's modules are alike (the command line's mostly compute, the kit's mostly serve),
    and the workers take a module's tests at once: in folder order they all wait at once,
    leaving the cores idle, then all compute at once. (The modules that mostly wait on the
    clock are the xdist group `clock`: one worker runs them while the others compute.)"""
    modules: dict[Path, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.path, []).append(item)
    folders: dict[Path, list[Path]] = {}
    for path in modules:
        folders.setdefault(path.parent, []).append(path)

    def place(path: Path) -> float:
        siblings = folders[path.parent]
        return (siblings.index(path) + 0.5) / len(siblings)

    return [item for path in sorted(modules, key=place) for item in modules[path]]
