"""What the release promises about itself: the Pythons it claims are the ones tested, and the
version it carries has its CHANGELOG entry."""

from __future__ import annotations

import re
import sys

from opperai_usage import __version__
from tests.support import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10 has the same parser as a package
    import tomli as tomllib

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_pythons_claimed_agree_with_requires_python() -> None:
    """The classifiers are what nox runs the tests on (noxfile.py reads them)."""
    project = PYPROJECT["project"]
    claimed = [
        c.removeprefix("Programming Language :: Python :: ")
        for c in project["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert claimed == ["3.10", "3.11", "3.12", "3.13"]
    assert project["requires-python"] == f">={claimed[0]}"
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in claimed


def test_the_version_has_a_changelog_entry_on_top() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", changelog, re.M)
    assert releases, "no '## [X.Y.Z] - YYYY-MM-DD' headings"
    assert releases[0][0] == __version__
    assert [r[1] for r in releases] == sorted((r[1] for r in releases), reverse=True)
    sections = set(re.findall(r"^### (\w+)$", changelog, re.M))
    assert sections <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def test_nothing_is_packaged_under_the_official_sdk_name() -> None:
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
    targets = [*wheel["only-include"], *wheel["sources"].values()]
    assert all("opperai/" not in f"{target}/" for target in targets)
    assert set(wheel["sources"].values()) == {"opperai_usage", "opperai_usage/_generated"}
