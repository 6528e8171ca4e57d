"""What a venv was given, remembered, so that nox's sessions install only when it changes.

`pip install` of the test suite's requirements takes seconds even when every one of them is
there already. A stamp file in the venv (or in any folder an install writes to: Prism's, the
official SDK's venv) holds a hash of what was asked for, and of the files that say what that
means (pyproject.toml: the dependency groups and, for `-e .`, the package's own dependencies).
A different request, a changed file or a new venv (no stamp) means one install.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

#: The stamp's name in the folder it describes.
STAMP = ".installed-requirements"


def fingerprint(requirements: Iterable[str], files: Iterable[Path] = ()) -> str:
    """A hash of the requirements, in order, and of each file's name and bytes."""
    digest = hashlib.sha256()
    for requirement in requirements:
        digest.update(b"requirement\0" + requirement.encode() + b"\0")
    for path in files:
        digest.update(b"file\0" + path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def is_current(folder: Path, wanted: str) -> bool:
    """Whether `folder` was last given exactly what `wanted` (a fingerprint) describes."""
    stamp = folder / STAMP
    return stamp.is_file() and stamp.read_text().strip() == wanted


def forget(folder: Path) -> None:
    """Before an install: one that fails halfway must not leave the old stamp standing."""
    (folder / STAMP).unlink(missing_ok=True)


def record(folder: Path, wanted: str) -> None:
    """After an install that succeeded."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STAMP).write_text(wanted + "\n")
