"""The release files' checks that need no tool of their own (`nox -s build`): a wheel built from
the sdist holds the same files, byte for byte, as the one built from the checkout, and nothing
is installed under the official SDK's package name."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

#: The official SDK's import package, which this one must never write into.
OFFICIAL_PACKAGE = "opperai"


def wheel_contents(wheel: Path) -> dict[str, str]:
    """Each file in `wheel` with its sha256, but its RECORD (which lists the others' hashes)."""
    with zipfile.ZipFile(wheel) as archive:
        return {
            name: hashlib.sha256(archive.read(name)).hexdigest()
            for name in archive.namelist()
            if not name.endswith(".dist-info/RECORD")
        }


def problems(wheel: Path, rebuilt: Path) -> list[str]:
    """What is wrong with `wheel` (from the checkout) given `rebuilt` (from the sdist)."""
    ours, theirs = wheel_contents(wheel), wheel_contents(rebuilt)
    found = []
    differ = sorted(n for n in ours.keys() | theirs.keys() if ours.get(n) != theirs.get(n))
    if differ:
        found.append(f"the wheel built from the sdist differs from the checkout's: {differ}")
    official = sorted(name for name in ours if name.split("/")[0] == OFFICIAL_PACKAGE)
    if official:
        found.append(f"the wheel installs files under {OFFICIAL_PACKAGE}/: {official}")
    return found
