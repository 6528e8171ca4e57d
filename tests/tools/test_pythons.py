"""tools/pythons.py: plain `nox` tests on the Python it runs on, or the supported one nearest
it; CI adds the others; pyenv's newest release of each supported version is found."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import pythons

SUPPORTED = ["3.10", "3.11", "3.12", "3.13"]


@pytest.mark.parametrize(
    ("running", "chosen"),
    [
        ("3.11", "3.11"),
        ("3.13", "3.13"),
        ("3.14", "3.13"),  # newer than any supported: the newest
        ("3.9", "3.10"),  # older: the oldest
        ("4.0", "3.10"),  # no supported 4.x: the whole list, by minor
    ],
)
def test_the_python_plain_nox_tests_on(running: str, chosen: str) -> None:
    assert pythons.nearest(running, SUPPORTED) == chosen


def test_a_tie_goes_to_the_newer() -> None:
    assert pythons.nearest("3.11", ["3.10", "3.12"]) == "3.12"


def test_ci_adds_every_other_supported_python() -> None:
    assert pythons.others("3.11", SUPPORTED) == ["3.10", "3.12", "3.13"]
    assert pythons.others("3.14", SUPPORTED) == ["3.10", "3.11", "3.12"]


def test_pyenvs_newest_release_of_each_supported_version(tmp_path: Path) -> None:
    for release in ["3.10.9", "3.10.13", "3.11.7", "3.11.8t", "3.12.1", "3.9.18", "3.13.0"]:
        (tmp_path / "versions" / release / "bin").mkdir(parents=True)
    (tmp_path / "versions" / "3.12.4").mkdir()  # no bin/: not an installed Python
    found = pythons.pyenv_dirs(["3.10", "3.11", "3.12", "3.14"], root=tmp_path)
    assert found == [
        str(tmp_path / "versions" / release / "bin") for release in ["3.10.13", "3.11.7", "3.12.1"]
    ]


def test_no_pyenv_means_no_folders(tmp_path: Path) -> None:
    assert pythons.pyenv_dirs(SUPPORTED, root=tmp_path / "absent") == []
