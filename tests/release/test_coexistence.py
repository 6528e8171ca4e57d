"""This package beside the official SDK, as users install them: for `opperai` 1.x and 2.x, this
package's wheel installed before it and after it, each pair in a fresh venv.

In each venv: every file the official distribution installed is unchanged (the hashes in its
RECORD), both packages import, the official SDK still works, this package makes a call, and
`pip check` passes. `nox -s coexistence` runs these (they install from the package index).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.servers import LocalServer

# Each venv is made and filled from the package index inside the first test that uses it.
pytestmark = [pytest.mark.coexistence, pytest.mark.timeout(300)]

OFFICIAL = {"1.x": "opperai==1.7.2", "2.x": "opperai==2.1.1"}
ORDERS = ["official-first", "ours-first"]

#: Run in each venv: the official SDK works as its users use it.
OFFICIAL_WORKS = {
    # 1.x: its own get_usage against the local server.
    "1.x": """
import sys
from opperai import Opper
with Opper(http_bearer="coexistence-key", server_url=sys.argv[1]) as opper:
    items = opper.analytics.get_usage(fields=["total_tokens"], group_by=["model"])
assert items and items[0].time_bucket is not None, items
print(len(items))
""",
    # 2.x: no analytics at all; its client and agents import and construct.
    "2.x": """
from opperai import Agent, Opper
opper = Opper(api_key="coexistence-key")
print(type(opper).__module__, Agent.__name__)
""",
}

OURS_CALL = """
import sys
from opperai_usage import Opper
with Opper(api_key="coexistence-key", server_url=sys.argv[1]) as opper:
    items = opper.analytics.get_usage(fields=["total_tokens"], group_by=["model"])
assert items and all(item.cost for item in items), items
print(len(items))
"""

#: Every file a distribution's RECORD lists with a hash, checked against the file on disk.
CHECK_RECORD = """
import base64, csv, hashlib, importlib.metadata, json, pathlib, sys
dist = importlib.metadata.distribution(sys.argv[1])
changed, checked = [], 0
for path, digest, _ in csv.reader(dist.read_text("RECORD").splitlines()):
    if not digest:
        continue
    algorithm, expected = digest.split("=", 1)
    data = pathlib.Path(dist.locate_file(path)).read_bytes()
    actual = base64.urlsafe_b64encode(hashlib.new(algorithm, data).digest()).rstrip(b"=")
    checked += 1
    if actual.decode() != expected:
        changed.append(path)
print(json.dumps({"checked": checked, "changed": changed, "files": [str(f) for f in dist.files]}))
"""


def run(python: Path, *args: str) -> str:
    done = subprocess.run(
        [str(python), *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This package's wheel, built from the checkout as a release would be."""
    out = tmp_path_factory.mktemp("wheel")
    run(
        Path(sys.executable),
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--no-deps",
        "-w",
        str(out),
        str(ROOT),
    )
    (built,) = out.glob("opperai_usage-*.whl")
    return built


@pytest.fixture(scope="module", params=[(g, o) for g in OFFICIAL for o in ORDERS], ids=str)
def installed(
    request: pytest.FixtureRequest, wheel: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    """(the official SDK's generation, a venv's python) with both installed in the given order."""
    generation, order = request.param
    home = tmp_path_factory.mktemp(f"venv-{generation}-{order}")
    venv.create(home, with_pip=True)
    python = home / "bin" / "python"
    steps = [OFFICIAL[generation], str(wheel)]
    for requirement in steps if order == "official-first" else steps[::-1]:
        run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", requirement)
    return generation, python


def record(python: Path, distribution: str) -> tuple[int, list[str], list[str]]:
    """(files whose hash was checked, those that changed, every file) of `distribution`."""
    loaded = json.loads(run(python, "-c", CHECK_RECORD, distribution))
    return loaded["checked"], loaded["changed"], loaded["files"]


def test_the_official_distribution_is_unchanged(installed: tuple[str, Path]) -> None:
    _, python = installed
    checked, changed, _ = record(python, "opperai")
    assert changed == []
    assert checked > 10


def test_this_package_installs_nothing_under_opperai(installed: tuple[str, Path]) -> None:
    _, python = installed
    _, changed, files = record(python, "opperai-usage")
    assert changed == []
    in_site_packages = [name for name in files if not name.startswith("../")]  # not scripts
    tops = {Path(name).parts[0] for name in in_site_packages}
    assert tops == {"opperai_usage", next(t for t in tops if t.endswith(".dist-info"))}
    scripts = {Path(name).name for name in files if name.startswith("../")}
    assert scripts == {"opper-usage"}
    assert any(name.startswith("opperai_usage/_generated/") for name in files)


def test_the_official_sdk_still_works(installed: tuple[str, Path], server: LocalServer) -> None:
    generation, python = installed
    run(python, "-c", OFFICIAL_WORKS[generation], server.url)


def test_this_package_makes_a_call(installed: tuple[str, Path], server: LocalServer) -> None:
    _, python = installed
    assert int(run(python, "-c", OURS_CALL, server.url)) > 0


def test_both_import_side_by_side(installed: tuple[str, Path]) -> None:
    _, python = installed
    both = run(
        python,
        "-c",
        "import opperai, opperai_usage; print(opperai.__file__); print(opperai_usage.__file__)",
    )
    official, ours = both.split()
    assert Path(official).parent.name == "opperai"
    assert Path(ours).parent.name == "opperai_usage"


def test_pip_check_passes(installed: tuple[str, Path]) -> None:
    _, python = installed
    run(python, "-m", "pip", "check")


def test_record_hashes_are_checked_for_real(tmp_path: Path) -> None:
    """The control for the RECORD check: it does see a changed file."""
    site = tmp_path / "site"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg-1.0.dist-info").mkdir()
    (site / "pkg" / "__init__.py").write_text("x = 1\n")
    digest = base64.urlsafe_b64encode(hashlib.sha256(b"x = 1\n").digest()).rstrip(b"=").decode()
    with (site / "pkg-1.0.dist-info" / "RECORD").open("w", newline="") as out:
        csv.writer(out).writerow(["pkg/__init__.py", f"sha256={digest}", "6"])
    (site / "pkg-1.0.dist-info" / "METADATA").write_text("Name: pkg\nVersion: 1.0\n")
    env = {"PYTHONPATH": str(site)}
    check = [sys.executable, "-c", CHECK_RECORD, "pkg"]
    before = json.loads(subprocess.run(check, env=env, capture_output=True, check=True).stdout)
    (site / "pkg" / "__init__.py").write_text("x = 2\n")
    after = json.loads(subprocess.run(check, env=env, capture_output=True, check=True).stdout)
    assert (before["changed"], after["changed"]) == ([], ["pkg/__init__.py"])
