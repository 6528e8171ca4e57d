"""Which Pythons nox runs the tests on: the one plain `nox` uses, the others CI adds, and where
pyenv keeps them. Only the standard library: nox imports this module under its own Python."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def nearest(running: str, supported: Sequence[str]) -> str:
    """`running` if the package supports it, else the supported version closest to it (the
    newer on a tie): plain `nox` tests on the Python a user runs it with."""
    if running in supported:
        return running
    major, minor = _minor(running)
    same = [v for v in supported if _minor(v)[0] == major] or list(supported)
    return min(same, key=lambda v: (abs(_minor(v)[1] - minor), -_minor(v)[1]))


def others(running: str, supported: Sequence[str]) -> list[str]:
    """The supported versions but the one plain `nox` tests on."""
    chosen = nearest(running, supported)
    return [version for version in supported if version != chosen]


def pyenv_dirs(supported: Sequence[str], root: Path | None = None) -> list[str]:
    """The bin folder of pyenv's newest installed release of each supported version, so that
    `python3.10` and the like resolve for nox (pyenv's shims run only the selected version)."""
    root = root or Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found = []
    for version in supported:
        releases = [p for p in (root / "versions").glob(f"{version}.*") if (p / "bin").is_dir()]
        releases = [p for p in releases if p.name.removeprefix(f"{version}.").isdigit()]
        if releases:
            newest = max(releases, key=lambda p: int(p.name.removeprefix(f"{version}.")))
            found.append(str(newest / "bin"))
    return found
