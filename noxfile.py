"""Everything a maintainer runs (CONTRIBUTING.md): each session says what runs; the logic lives
in tools/ (linted, type-checked and tested like the rest), the dependencies in pyproject.toml's
[dependency-groups].

Plain `nox` runs lint, typecheck and the tests on the Python running nox. `nox -s ci` runs what
CI adds (drift, build, coexistence, load, and the tests on every other supported Python); set
`OPPERAI_USAGE_ALL_PYTHONS=1` to make a missing Python an error, as CI does. A session installs
only when what it asks for changed (tools/installs.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import nox

ROOT = Path(__file__).parent
sys.path.insert(0, str(ROOT))  # tools/, from wherever nox was started
import tools.chromium  # noqa: E402
import tools.drift  # noqa: E402
import tools.installs  # noqa: E402
import tools.postgres  # noqa: E402
import tools.pythons  # noqa: E402
import tools.release  # noqa: E402
import tools.smoke  # noqa: E402

nox.needs_version = ">=2025.2.9"  # nox.project.dependency_groups
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
#: The Pythons the package claims (its classifiers): the tests run on each of them.
PYTHONS = nox.project.python_versions(PYPROJECT)
#: Plain `nox` tests on the Python running nox (or the supported one nearest it).
RUNNING = tools.pythons.nearest(f"{sys.version_info[0]}.{sys.version_info[1]}", PYTHONS)
#: The contract tests' mock server, from npm (Node.js comes from the test group).
PRISM = "@stoplight/prism-cli@5.14.2"
SPEC = ROOT / "openapi.yaml"
PACKAGE = "opperai_usage_generated"
GENERATED = ROOT / "generated" / PACKAGE
HAND_WRITTEN = ["overlays", "tests", "examples", "bench", "tools", "noxfile.py"]

nox.options.sessions = ["lint", "typecheck", f"tests-{RUNNING}"]
nox.options.reuse_venv = "yes"
# uv makes the venvs and installs into them where it is installed (`pip install "nox[uv]"`, as
# the README says): seconds where pip takes a minute a session. Without it: virtualenv and pip.
nox.options.default_venv_backend = "uv|virtualenv"
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")  # the Pythons of this machine, no other
nox.options.error_on_missing_interpreters = os.environ.get("OPPERAI_USAGE_ALL_PYTHONS") == "1"
os.environ["PATH"] = os.pathsep.join([*tools.pythons.pyenv_dirs(PYTHONS), os.environ["PATH"]])
# Python images set PYTHONDONTWRITEBYTECODE=1: then nothing installed or tested is ever cached
# as bytecode, and each of the hundreds of processes the suite starts compiles httpx and the
# package from source again (0.05 s a process; pytest's collection 4.5 s instead of 2.9 s).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def group(name: str) -> tuple[str, ...]:
    """A dependency group of pyproject.toml."""
    return nox.project.dependency_groups(PYPROJECT, name)


def install(session: nox.Session, *requirements: str) -> None:
    """`uv pip install` (or pip's), unless this venv holds exactly these already (and
    pyproject.toml, which defines the groups and the package, has not changed since)."""
    venv = Path(session.virtualenv.location)
    wanted = tools.installs.fingerprint(requirements, [ROOT / "pyproject.toml"])
    if tools.installs.is_current(venv, wanted):
        session.log("requirements installed already")
        return
    tools.installs.forget(venv)
    if session.venv_backend == "uv":  # uv compiles nothing either
        command = ["uv", "pip", "install", *requirements]
    else:
        command = ["python", "-m", "pip", "install", "--no-compile", *requirements]
    # Compiled when used; None when nox was told not to install (-R).
    if session.run_install(*command, silent=True, external=True) is not None:
        tools.installs.record(venv, wanted)


def _generate(session: nox.Session, out: Path, spec: Path = SPEC) -> None:
    """The generator's output for `spec` in `out` (the session has the generate group)."""
    session.run(
        "openapi-python-client", "generate", "--path", str(spec),
        "--config", str(ROOT / "generator-config.yaml"),
        "--meta", "none", "--overwrite", "--output-path", str(out),
        silent=True,
    )  # fmt: skip


@nox.session
def generate(session: nox.Session) -> None:
    """Regenerate generated/ from openapi.yaml."""
    install(session, *group("generate"))
    _generate(session, GENERATED)
    session.log(f"regenerated {GENERATED.relative_to(ROOT)}; review `git diff` and commit")


@nox.session
def drift(session: nox.Session) -> None:
    """Fail, with a unified diff, when generated/ is not what the generator writes now."""
    install(session, *group("generate"))
    where = GENERATED.relative_to(ROOT).as_posix()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / PACKAGE
        _generate(session, fresh)
        found = tools.drift.compare(GENERATED, fresh)
        sys.stdout.write(tools.drift.diff(GENERATED, fresh, found, where))
    if found:
        problems = "\n  ".join(found.problems(where))
        session.error(f"generated/ is stale or hand-edited; run `nox -s generate`.\n  {problems}")
    session.log("generated/ matches openapi.yaml and the pinned generator")


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff on everything hand-written: the checks and the format."""
    install(session, *group("lint"))
    session.run("ruff", "check", *HAND_WRITTEN)
    session.run("ruff", "format", "--check", *HAND_WRITTEN)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on everything hand-written (tests/typing/ is what users' code sees)."""
    install(session, "-e", ".[fast]", *group("typecheck"))
    session.run("mypy", "--strict", *HAND_WRITTEN)


def _once(session: nox.Session, folder: Path, what: Sequence[str], *commands: list[str]) -> None:
    """Run `commands` unless `folder` (shared by every venv) holds `what` already."""
    wanted = tools.installs.fingerprint(what)
    if not tools.installs.is_current(folder, wanted):
        for command in commands:
            session.run(*command, external=True)
        tools.installs.record(folder, wanted)


def _prism(session: nox.Session) -> str:
    """Prism, from npm with the test group's Node.js, once for every venv; its path."""
    prefix = ROOT / ".nox" / "prism"
    npm = ["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(prefix)]
    _once(session, prefix, [PRISM], [*npm, PRISM])
    return str(prefix / "node_modules" / ".bin" / "prism")


def _official_python(session: nox.Session) -> str:
    """A venv of its own for the official SDK (it is imported as `opperai` too); its python."""
    venv, sdk = ROOT / ".nox" / "official-sdk", group("official-sdk")
    python = str(venv / "bin" / "python")
    if session.venv_backend == "uv":
        make = ["uv", "venv", "--quiet", "--clear", "--python", sys.executable, str(venv)]
        fill = ["uv", "pip", "install", "--quiet", "--python", python, *sdk]
    else:
        make = [sys.executable, "-m", "venv", str(venv)]
        fill = [python, "-m", "pip", "install", "--quiet", *sdk]
    _once(session, venv, sdk, make, fill)
    return python


def _chromium(session: nox.Session) -> str:
    """The browser the HTML report's tests use (tools/chromium.py says which)."""

    def run(command: Sequence[str], env: Mapping[str, str]) -> str:
        session.log(" ".join(command))
        return str(session.run(*command, env=dict(env), external=True, silent=True) or "")

    try:
        return tools.chromium.ensure(run, str(Path(session.bin) / "python"))
    except LookupError as missing:
        session.error(str(missing))


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The suite in four workers, without the load and coexistence tests: `nox -s tests-3.11`,
    then pytest's arguments after `--` (`-n 0` runs it in one process).

    Four workers on two cores, since part of the suite waits (on servers, budgets, processes);
    `--dist loadgroup` gives a module with an xdist group to one worker, so its costly fixture
    is made once (CONTRIBUTING.md, The tests and The nox sessions)."""
    install(session, "-e", ".[fast]", *group("test"))
    env = {
        "PRISM_BIN": _prism(session),
        "OFFICIAL_PYTHON": _official_python(session),
        "OFFICIAL_SDK": group("official-sdk")[0],
        "CHROMIUM_BIN": _chromium(session),
    }
    if session.python == PYTHONS[0]:  # the oldest: every command in a fresh interpreter
        env["OPPER_USAGE_TESTS_FRESH"] = "1"
    session.run("python", "-m", "pytest", "-n", "4", "--dist", "loadgroup", "-m",
                "not load and not coexistence and not postgres", *session.posargs,
                env=env)  # fmt: skip


@nox.session
def coexistence(session: nox.Session) -> None:
    """This package's wheel beside the official SDK 1.x and 2.x, in fresh venvs, installed in
    both orders: neither overwrites the other, both work, `pip check` passes."""
    install(session, "-e", ".", "pip", *group("test"))  # pip builds the wheel, as a user's would
    session.run("python", "-m", "pytest", "-m", "coexistence", *session.posargs)


@nox.session
def load(session: nox.Session) -> None:
    """The load tests: 10,000 sequential and 1,000 concurrent calls on one client."""
    install(session, "-e", ".[fast]", *group("test"))
    session.run("python", "-m", "pytest", "-m", "load", *session.posargs)


@nox.session(name="sync-postgres")
def sync_postgres(session: nox.Session) -> None:
    """`opper-usage sync` into a real PostgreSQL server, the tests marked `postgres`: Debian's
    package (apt-installed when missing), started on loopback for the session, stopped after
    (tools/postgres.py). Where it cannot be installed, the session says so and fails."""
    install(session, "-e", ".[fast,sync]", *group("sync-postgres"))

    def run(command: Sequence[str]) -> None:
        session.run(*command, external=True, silent=True)

    try:
        with tools.postgres.server(run) as url:
            session.run("python", "-m", "pytest", "-m", "postgres", *session.posargs,
                        env={"OPPER_USAGE_POSTGRES": url})  # fmt: skip
    except LookupError as missing:
        session.error(str(missing))


@nox.session(python=False, requires=["drift", "build", "coexistence", "load", "sync-postgres"] + [
    f"tests-{version}" for version in tools.pythons.others(RUNNING, PYTHONS)
])  # fmt: skip
def ci(session: nox.Session) -> None:
    """What CI runs after plain `nox` (.ci/run): the sessions it requires."""
    session.log(
        "drift, build, coexistence, load, sync-postgres and the other Pythons' tests are done"
    )


@nox.session
def demo(session: nox.Session) -> None:
    """The main job, against a local Opper-compatible server: the seed's example (the library),
    then the same question asked of the `opper-usage` command, with an HTML report."""
    install(session, "-e", ".")
    report = ROOT / ".artifacts" / "demo-report.html"
    report.parent.mkdir(exist_ok=True)
    with tools.smoke.local_server(str(Path(session.bin) / "python"), ROOT) as url:
        key = os.environ.get("OPPER_HTTP_BEARER", "demo-key")
        env = {"OPPER_SERVER_URL": url, "OPPER_HTTP_BEARER": key}
        session.run("python", "examples/demo.py", env=env)
        session.log("the same usage from the command line, the last 7 days per model:")
        session.run("opper-usage", "--server-url", url, "--last", "7d", "--group-by", "model",
                    "--field", "total_tokens", "--html", str(report), env=env)  # fmt: skip
    session.log(f"the HTML report of that: {report.as_uri()}")


@nox.session
def build(session: nox.Session) -> None:
    """The release files in dist/, checked as a release needs them: `twine check` passes; a
    wheel built from the sdist holds the same files, byte for byte, as the one built from the
    checkout; the wheel, installed in a fresh venv, imports and makes a call."""
    install(session, "-e", ".", *group("build"))
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        via_sdist, fresh = Path(tmp) / "via-sdist", Path(tmp) / "venv"
        session.run("python", "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT))
        session.run("python", "-m", "build", "--outdir", str(via_sdist), str(ROOT))  # sdist, wheel
        (wheel,), (rebuilt,) = dist.glob("*.whl"), via_sdist.glob("*.whl")
        sdist = Path(shutil.copy(next(via_sdist.glob("*.tar.gz")), dist))
        problems = tools.release.problems(wheel, rebuilt)
        if problems:
            session.error("; ".join(problems))
        session.run("twine", "check", "--strict", str(wheel), str(sdist))
        session.run(sys.executable, "-m", "venv", str(fresh), external=True)
        python = str(fresh / "bin" / "python")
        session.run(python, "-m", "pip", "install", "--quiet", str(wheel), external=True)
        with tools.smoke.local_server(str(Path(session.bin) / "python"), ROOT) as url:
            session.run(python, "-m", "tools.smoke", url, external=True)
    session.log(f"{wheel.name} and {sdist.name} in dist/")


#: 3.12: on 3.11.7 mutmut's stats run dies (a segfault, or a LookupError from a ContextVar that
#: has a default) inside its trampolines' ContextVar.set, a CPython 3.11 bug it does not hit.
@nox.session(python="3.12")
def mutants(session: nox.Session) -> None:
    """Mutation testing of the core modules against tests/core (tools/mutants.py): the score and
    every survivor tests/MUTANTS.md does not explain. Not in CI: it takes too long.
    `nox -s mutants -- "opperai_usage._retries*"` runs only those mutants."""
    install(session, "-e", ".[fast]", *group("mutants"))
    session.run("python", "-m", "tools.mutants", *session.posargs)


@nox.session(python=False)
def clean(session: nox.Session) -> None:
    """Remove build artefacts."""
    for path in ["build", "dist", ".mypy_cache", ".pytest_cache", ".ruff_cache"]:
        shutil.rmtree(ROOT / path, ignore_errors=True)


@nox.session
def bench(session: nox.Session) -> None:
    """Side-by-side benchmark: this client, raw httpx and the official SDK; then long ranges
    and sync, 1,000,000 items (bench/README.md)."""
    install(session, "-e", ".[fast,sync]", *group("bench"))
    official = ["--official-python", _official_python(session)]
    session.run("python", "bench/run.py", *official, *session.posargs)
    session.run("python", "bench/sync.py")


# -- when the API changes (tools/; CONTRIBUTING.md: "When the API changes")


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
    install(session, *group("tools"), *group("generate"))
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
    install(session, *group("tools"))
    _tool(session, "spec_diff", *session.posargs)


@nox.session(name="live-contract")
def live_contract(session: nox.Session) -> None:
    """Valid calls to the live API (or --server-url), each answer checked against openapi.yaml:
    `nox -s live-contract -- [--server-url URL]`, with OPPER_API_KEY set. Not in plain `nox`:
    it needs the network and a key (the scheduled CI job of a repository that holds one)."""
    install(session, *group("tools"))
    _tool(session, "live_contract", *session.posargs)
