"""The Chromium that the HTML report's tests open pages in, through Playwright (which is never
asked to download a browser when the machine has one): `nox -s tests` calls `ensure`.

In order: `CHROMIUM_BIN`, or `chromium` on PATH; else Debian's chromium, installed with apt-get
when this is a Debian-like machine and we are root (as in CI); else Playwright's own Chromium,
downloaded once by `playwright install`. `python -m tools.chromium`, run in a venv that has
Playwright, prints where that one is. Only the standard library is imported at the top: nox
imports this module under its own Python.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

#: Runs a command with these variables added to the environment, and returns its output.
Run = Callable[[Sequence[str], Mapping[str, str]], str]
Which = Callable[[str], "str | None"]

APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
APT = (
    ("apt-get", "update", "-qq"),
    ("apt-get", "install", "-y", "-qq", "chromium", "fonts-dejavu-core"),
)
MISSING = (
    "the browser tests need Chromium: `sudo apt-get install chromium`, "
    "or set CHROMIUM_BIN to a Chromium or Chrome binary"
)


def find(environ: Mapping[str, str], which: Which) -> str | None:
    """The Chromium the machine has already, if any."""
    return environ.get("CHROMIUM_BIN") or which("chromium")


def ensure(
    run: Run,
    python: str,
    *,
    environ: Mapping[str, str] = os.environ,
    which: Which = shutil.which,
    is_root: bool | None = None,
) -> str:
    """A Chromium binary's path, installing one if need be (see the module's docstring);
    `python` is a venv's that has Playwright. LookupError when there is none to be had."""
    found = find(environ, which)
    if found:
        return found
    root = os.geteuid() == 0 if is_root is None else is_root
    if root and which("apt-get"):
        for command in APT:
            run(command, APT_ENV)
        found = find(environ, which)
        if found:
            return found
    run([python, "-m", "playwright", "install", "chromium"], {})
    said = [line.strip() for line in run([python, "-m", "tools.chromium"], {}).splitlines()]
    path = next((line for line in reversed(said) if line), "")
    if path and Path(path).is_file():
        return path
    raise LookupError(MISSING)


def playwright_chromium() -> str:
    """Where `playwright install chromium` puts its browser."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        return playwright.chromium.executable_path


if __name__ == "__main__":
    print(playwright_chromium())
