"""Whether generated/ is what the generator writes now (`nox -s drift`): the files added by
hand, those missing, those that differ, and a unified diff of each that differs."""

from __future__ import annotations

import difflib
import filecmp
from dataclasses import dataclass
from pathlib import Path


def files(root: Path) -> set[str]:
    """Every file under `root`, as a path relative to it (bytecode caches left out)."""
    return {
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


@dataclass(frozen=True)
class Drift:
    """How a checked-in tree differs from a fresh one; empty (false) when it does not."""

    added: list[str]  # in the checked-in tree only: added by hand
    missing: list[str]  # in the fresh tree only
    changed: list[str]  # in both, with different bytes

    def __bool__(self) -> bool:
        return bool(self.added or self.missing or self.changed)

    def problems(self, where: str) -> list[str]:
        """One line per file, its path starting with `where` (the checked-in tree's name)."""
        return (
            [f"{where}/{n}: added by hand (the generator does not write it)" for n in self.added]
            + [f"{where}/{n}: missing (the generator writes it)" for n in self.missing]
            + [f"{where}/{n}: differs from the generator's output" for n in self.changed]
        )


def compare(ours: Path, fresh: Path) -> Drift:
    """The checked-in tree `ours` against the generator's `fresh` one, byte for byte."""
    mine, theirs = files(ours), files(fresh)
    changed = [
        name
        for name in sorted(mine & theirs)
        if not filecmp.cmp(ours / name, fresh / name, shallow=False)
    ]
    return Drift(sorted(mine - theirs), sorted(theirs - mine), changed)


def diff(ours: Path, fresh: Path, drift: Drift, where: str) -> str:
    """A unified diff, from the checked-in file to the fresh one, of each changed file."""
    chunks: list[str] = []
    for name in drift.changed:
        old = (ours / name).read_text().splitlines(keepends=True)
        new = (fresh / name).read_text().splitlines(keepends=True)
        label = f"{where}/{name}"
        chunks.extend(difflib.unified_diff(old, new, label, f"{label} (fresh)"))
    return "".join(chunks)
