"""tools/release.py, what `nox -s build` checks of the wheels: the one built from the sdist holds
the same files, byte for byte, as the checkout's (its RECORD aside), and nothing is installed
under the official SDK's package name."""

from __future__ import annotations

import zipfile
from pathlib import Path

from tools import release

DIST_INFO = "opperai_usage-1.0.0.dist-info"


def _wheel(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


FILES = {
    "opperai_usage/__init__.py": "",
    "opperai_usage/_generated/client.py": "x = 1\n",
    f"{DIST_INFO}/METADATA": "Name: opperai-usage\n",
}


def test_the_same_files_pass(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "a.whl", {**FILES, f"{DIST_INFO}/RECORD": "one listing\n"})
    rebuilt = _wheel(tmp_path / "b.whl", {**FILES, f"{DIST_INFO}/RECORD": "another\n"})
    assert release.problems(wheel, rebuilt) == []
    assert f"{DIST_INFO}/RECORD" not in release.wheel_contents(wheel)


def test_a_file_that_differs_or_is_missing_is_named(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "a.whl", FILES)
    changed = {**FILES, "opperai_usage/_generated/client.py": "x = 2\n"}
    del changed["opperai_usage/__init__.py"]
    rebuilt = _wheel(tmp_path / "b.whl", changed)
    (problem,) = release.problems(wheel, rebuilt)
    assert problem == (
        "the wheel built from the sdist differs from the checkout's: "
        "['opperai_usage/__init__.py', 'opperai_usage/_generated/client.py']"
    )


def test_files_under_the_official_sdks_package_are_refused(tmp_path: Path) -> None:
    files = {**FILES, "opperai/__init__.py": ""}
    wheel = _wheel(tmp_path / "a.whl", files)
    rebuilt = _wheel(tmp_path / "b.whl", files)
    assert release.problems(wheel, rebuilt) == [
        "the wheel installs files under opperai/: ['opperai/__init__.py']"
    ]
