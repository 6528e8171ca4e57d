"""Running the tools in tools/ as a maintainer does, for their tests: `python -m tools.X` and
`nox -s X` as subprocesses, in a sandbox copy of the repository when they write files, on
variants of the upstream fixture (tests/tools/opper_upstream.json)."""

from __future__ import annotations

import contextlib
import copy
import fcntl
import importlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support import ROOT
from tests.support.net import closed_port_url
from tests.support.servers import serving

UPSTREAM = ROOT / "tests" / "tools" / "opper_upstream.json"
#: What `nox -s update-spec` reads and writes, copied into a sandbox.
SANDBOXED = [
    "noxfile.py",
    "pyproject.toml",  # noxfile.py reads the Pythons it tests on from it
    "tools",
    "openapi.yaml",
    "openapi-overlay.yaml",
    "generator-config.yaml",
    "generated",
    "tests/tools/opper_upstream.json",
]
#: The tools' nox sessions made by the tests: one folder per Python, so that the test runs of
#: different Pythons do not make nox recreate each other's venvs.
ENVDIR = ROOT / ".nox" / f"tools-py{sys.version_info.major}.{sys.version_info.minor}"
TOOL_TIMEOUT_S = 60
NOX_TIMEOUT_S = 600  # the first run creates the session's venv and installs into it


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str


@cache
def _upstream() -> dict[str, Any]:
    from tests.tools.opper_upstream import served  # FastAPI: here, for the tests that need it

    loaded: dict[str, Any] = json.loads(served())
    return loaded


def upstream() -> dict[str, Any]:
    """A fresh copy of the whole description the FastAPI stand-in serves, to change."""
    return copy.deepcopy(_upstream())


def write_json(path: Path, document: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


def sandbox(tmp_path: Path) -> Path:
    """A copy of what the tools read and write, so that tests never touch the repository."""
    root = tmp_path / "repo"
    for name in SANDBOXED:
        source, target = ROOT / name, root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(source, target)
    return root


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    """This environment without the keys live-contract reads, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPPER_API_KEY", "OPPER_HTTP_BEARER")}
    return env | (extra or {})


def tool(module: str, *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> Run:
    """`python -m tools.<module> ARGS` in `cwd`, run in this process: its `main(argv)` with
    standard output and error captured, `cwd` and `env` in place for the call. The tools' own
    start-up (openapi-core alone takes half a second to import) is paid once per test worker;
    the nox sessions' tests run each tool as a separate process, as a maintainer does."""
    main = importlib.import_module(f"tools.{module}").main
    stdout, stderr = io.StringIO(), io.StringIO()
    with (
        _environment(_env(env)),
        _working_directory(cwd),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        try:
            code = main(list(args))
        except SystemExit as exit:  # argparse's usage errors, --help
            code = exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 1
    return Run(code, stdout.getvalue(), stderr.getvalue())


@contextlib.contextmanager
def _working_directory(folder: Path) -> Iterator[None]:
    """The working directory set to `folder` for the block (contextlib.chdir is 3.11+)."""
    saved = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(saved)


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """`os.environ` replaced by `env` for the block."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def nox(session: str, *args: str, root: Path = ROOT, env: dict[str, str] | None = None) -> Run:
    """`nox -s <session> -- ARGS` with the noxfile in `root` (a sandbox, or the repository).

    One run of a session at a time across the test workers: runs of the same session share
    its venv under ENVDIR, and two workers creating it at once break its pip."""
    command = [sys.executable, "-m", "nox", "-f", str(root / "noxfile.py")]
    command += ["--envdir", str(ENVDIR), "-s", session, "--", *args]
    ENVDIR.mkdir(parents=True, exist_ok=True)
    with (ENVDIR / f"{session}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        done = subprocess.run(
            command,
            cwd=root,
            env=_env(env),
            capture_output=True,
            text=True,
            timeout=NOX_TIMEOUT_S,
            check=False,
        )
    return Run(done.returncode, done.stdout, done.stderr)


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args],
        cwd=root,
        check=True,
        capture_output=True,
        timeout=TOOL_TIMEOUT_S,
    )


def pointer(document: Any, path: str) -> Any:
    """The value at a JSON pointer (RFC 6901); KeyError or IndexError if there is none."""
    for part in path.split("/")[1:] if path else []:
        key = part.replace("~1", "/").replace("~0", "~")
        document = document[int(key)] if isinstance(document, list) else document[key]
    return document


BAD_SOURCES = ["unreachable URL", "no such file", "not OpenAPI", "not JSON or YAML", "no operation"]


def bad_source(tmp_path: Path, case: str) -> tuple[str, str]:
    """A source of the kind `case` names, and what its one-line error says."""
    if case == "unreachable URL":
        url = closed_port_url("/v2/openapi.json")
        return url, f"cannot read {url}: ConnectError"
    if case == "no such file":
        return str(tmp_path / "absent.json"), "absent.json: No such file or directory"
    if case == "not OpenAPI":
        return str(write_json(tmp_path / "list.json", [1, 2])), "is not an OpenAPI 3 document"
    if case == "not JSON or YAML":
        return str(ROOT / "tests" / "tools" / "opper_upstream.py"), "is neither JSON nor YAML"
    without = upstream()
    del without["paths"]["/analytics/usage"]
    return str(write_json(tmp_path / "without.json", without)), "has no GET /analytics/usage"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serving_folder(directory: Path) -> Iterator[str]:
    """`directory` over http on loopback, as a URL without a trailing slash."""
    handler = partial(_Quiet, directory=str(directory))
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), handler)) as server:
        yield f"http://127.0.0.1:{server.server_port}"
