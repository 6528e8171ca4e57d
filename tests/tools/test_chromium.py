"""tools/chromium.py: the browser for the report's tests is the machine's when it has one;
otherwise Debian's, installed with apt-get as root; otherwise Playwright's own; otherwise a
clear error. The commands are recorded here instead of run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from tools import chromium

PYTHON = "/venv/bin/python"


class Machine:
    """What `ensure` sees: the programs on PATH, and the commands it runs (apt-get puts
    chromium on PATH; the venv's `python -m tools.chromium` prints `playwright_path`)."""

    def __init__(self, *, on_path: Sequence[str] = (), playwright_path: str = "") -> None:
        self.on_path = {name: f"/usr/bin/{name}" for name in on_path}
        self.playwright_path = playwright_path
        self.ran: list[tuple[tuple[str, ...], dict[str, str]]] = []

    def which(self, name: str) -> str | None:
        return self.on_path.get(name)

    def run(self, command: Sequence[str], env: Mapping[str, str]) -> str:
        self.ran.append((tuple(command), dict(env)))
        if command[0] == "apt-get" and "install" in command:
            self.on_path["chromium"] = "/usr/bin/chromium"
        if tuple(command) == (PYTHON, "-m", "tools.chromium"):
            return f"some log line\n{self.playwright_path}\n"
        return ""


def _ensure(machine: Machine, environ: Mapping[str, str], *, is_root: bool) -> str:
    return chromium.ensure(
        machine.run, PYTHON, environ=environ, which=machine.which, is_root=is_root
    )


def test_chromium_bin_wins_and_nothing_is_installed() -> None:
    machine = Machine(on_path=["chromium", "apt-get"])
    assert _ensure(machine, {"CHROMIUM_BIN": "/opt/chrome"}, is_root=True) == "/opt/chrome"
    assert machine.ran == []


def test_chromium_on_path_is_used_as_it_is() -> None:
    machine = Machine(on_path=["chromium", "apt-get"])
    assert _ensure(machine, {}, is_root=True) == "/usr/bin/chromium"
    assert machine.ran == []


def test_as_root_on_debian_it_is_installed_with_apt_get() -> None:
    machine = Machine(on_path=["apt-get"])
    assert _ensure(machine, {}, is_root=True) == "/usr/bin/chromium"
    assert machine.ran == [
        (("apt-get", "update", "-qq"), chromium.APT_ENV),
        (("apt-get", "install", "-y", "-qq", "chromium", "fonts-dejavu-core"), chromium.APT_ENV),
    ]


def test_elsewhere_playwrights_own_chromium_is_downloaded(tmp_path: Path) -> None:
    browser = tmp_path / "chrome"
    browser.write_text("")
    machine = Machine(on_path=["apt-get"], playwright_path=str(browser))
    assert _ensure(machine, {}, is_root=False) == str(browser)
    assert [command for command, _ in machine.ran] == [
        (PYTHON, "-m", "playwright", "install", "chromium"),
        (PYTHON, "-m", "tools.chromium"),
    ]


def test_no_browser_to_be_had_is_a_clear_error(tmp_path: Path) -> None:
    machine = Machine(playwright_path=str(tmp_path / "absent"))
    with pytest.raises(LookupError, match="sudo apt-get install chromium"):
        _ensure(machine, {}, is_root=True)
