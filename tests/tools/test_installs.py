"""tools/installs.py: a session installs again exactly when what it asks for, or the file that
defines it, changed; an install that fails halfway is never taken for a done one."""

from __future__ import annotations

from pathlib import Path

from tools import installs


def test_the_same_request_and_file_give_the_same_fingerprint(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text("[project]\n")
    first = installs.fingerprint(["-e", ".[fast]", "pytest>=8"], [pyproject])
    assert installs.fingerprint(["-e", ".[fast]", "pytest>=8"], [pyproject]) == first


def test_a_different_request_or_file_gives_another_fingerprint(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text("[project]\n")
    before = installs.fingerprint(["pytest>=8", "ruff==0.17.6"], [pyproject])
    assert installs.fingerprint(["pytest>=8", "ruff==0.17.7"], [pyproject]) != before
    assert installs.fingerprint(["ruff==0.17.6", "pytest>=8"], [pyproject]) != before
    assert installs.fingerprint(["pytest>=8ruff==0.17.6"], [pyproject]) != before
    pyproject.write_text("[project]\ndependencies = ['httpx']\n")
    assert installs.fingerprint(["pytest>=8", "ruff==0.17.6"], [pyproject]) != before


def test_a_new_venv_needs_an_install_and_a_recorded_one_does_not(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    wanted = installs.fingerprint(["pytest>=8"])
    assert not installs.is_current(venv, wanted)
    installs.record(venv, wanted)
    assert installs.is_current(venv, wanted)
    assert not installs.is_current(venv, installs.fingerprint(["pytest>=9"]))


def test_an_install_under_way_leaves_no_stamp_behind(tmp_path: Path) -> None:
    """If it then fails, the next run installs again even for the request recorded before."""
    wanted = installs.fingerprint(["pytest>=8"])
    installs.record(tmp_path, wanted)
    installs.forget(tmp_path)
    assert not installs.is_current(tmp_path, wanted)
    installs.forget(tmp_path)  # nothing to forget is fine too
