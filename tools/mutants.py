"""Mutation testing of the core modules: what `nox -s mutants` runs (tests/MUTANTS.md).

`python -m tools.mutants [NAME ...]`, in a venv with mutmut, the test dependencies and the
package: one-line bugs are put into the core modules one at a time, each run against the tests
that reach it. Prints the score per module and every survivor tests/MUTANTS.md does not explain.
NAMEs (`opperai_usage._retries.x_f__mutmut_3`, or patterns with `*`) run only those mutants.

What is mutated and which tests run are read from the folders, through `[tool.mutmut]` in
pyproject.toml: the core is the package's top-level modules (its subpackages, the command line,
the testing kit and the generated code, are left out, as are the modules `do_not_mutate` names),
and the tests that reach the core in-process are those in tests/core/.

mutmut expects the package under src/ and copies it to mutants/src/, which it puts first on
`sys.path`; so it runs in a staging copy, `.nox/mutants-run`, with the package as
src/opperai_usage (its `_generated` symlink resolved), the tests, the spec and pyproject.toml.
Subprocesses the tests start (the local server) import the package the venv has, never mutated.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the session runs on 3.12; mypy checks for 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "opperai_usage"
#: Where the session stages the copy mutmut runs in.
RUN = ROOT / ".nox" / "mutants-run"
EXPLANATIONS = ROOT / "tests" / "MUTANTS.md"
#: No function has this name, so the trampolines run the original code, but it has mutmut's
#: marker: tests/conftest.py sorts the tests as under a mutant (quickest first).
NOTHING_MUTATED = f"{PACKAGE}.order_check.x_none__mutmut_0"
KILLED = ("killed", "timeout")
#: Mutants tested at once. Four on two cores, as the suite's four workers: much of the time
#: of the tests that the most-called functions reach is spent waiting (retry back-offs,
#: Retry-After, time budgets), and two left a core idle a quarter of the time.
CHILDREN = 4
#: A mutant `mypy --strict` rejects (`type_check_command`): CI's typecheck would stop it.
TYPED = "caught by type check"
NOT_TRIED = ("not checked", "skipped")


def stage(root: Path, folder: Path) -> Path:
    """A fresh copy of what mutmut needs from the checkout at `root`, in `folder`."""
    shutil.rmtree(folder, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", ".hypothesis", ".pytest_cache")
    source = root / "overlays" / PACKAGE
    shutil.copytree(source, folder / "src" / PACKAGE, symlinks=False, ignore=ignore)
    shutil.copytree(root / "tests", folder / "tests", ignore=ignore)
    for name in ("openapi.yaml", "pyproject.toml"):
        shutil.copy2(root / name, folder / name)
    return folder


def config(folder: Path) -> dict[str, Any]:
    """`[tool.mutmut]` of the pyproject.toml in `folder`."""
    loaded: dict[str, Any] = tomllib.loads((folder / "pyproject.toml").read_text())
    table: dict[str, Any] = loaded["tool"]["mutmut"]
    return table


def mutated(folder: Path) -> list[str]:
    """The modules mutmut mutates in a staged `folder`, matched as mutmut matches them
    (`fnmatch` on paths relative to the folder, where `*` also matches `/`)."""
    settings = config(folder)
    only, never = settings.get("only_mutate", []), settings.get("do_not_mutate", [])
    found = []
    for source in settings["source_paths"]:
        for path in sorted((folder / source).rglob("*.py")):
            name = path.relative_to(folder).as_posix()
            if only and not any(fnmatch.fnmatch(name, p) for p in only):
                continue
            if any(fnmatch.fnmatch(name, p) for p in never):
                continue
            module = path.relative_to(folder / source).with_suffix("").as_posix()
            found.append(f"{PACKAGE}.{module.replace('/', '.')}".removesuffix(".__init__"))
    return found


def statuses(listing: str) -> dict[str, str]:
    """`mutmut results --all true` as {mutant name: status}."""
    found = {}
    for line in listing.splitlines():
        name, colon, status = line.strip().rpartition(": ")
        if colon and name.startswith(f"{PACKAGE}."):
            found[name] = status
    return found


def explained(text: str) -> set[str]:
    """The mutant names a text (tests/MUTANTS.md) mentions."""
    return set(re.findall(rf"{PACKAGE}\.\S+?__mutmut_\d+", text))


def module_of(name: str) -> str:
    """`opperai_usage._retries.xǁRetryPolicyǁ__init____mutmut_3` -> `_retries`."""
    return name.removeprefix(f"{PACKAGE}.").split(".x", 1)[0]


def report(found: Mapping[str, str], known: set[str], minutes: float) -> list[str]:
    """Per module: mutants tried, rejected by mypy, killed by a test (one failed or timed
    out), survivors, others; then the score, with the tests' share of what mypy let through,
    and each survivor `known` (the names tests/MUTANTS.md explains) does not hold."""
    counts: dict[str, dict[str, int]] = {}
    for name, status in found.items():
        if status in NOT_TRIED:  # not part of this run
            continue
        per_status = counts.setdefault(module_of(name), {})
        per_status[status] = per_status.get(status, 0) + 1
    lines = [f"{'module':<16}{'mutants':>8}{'mypy':>6}{'tests':>6}{'survived':>9}{'other':>7}"]
    for module, per_status in sorted(counts.items()):
        total = sum(per_status.values())
        typed = per_status.get(TYPED, 0)
        killed = sum(per_status.get(status, 0) for status in KILLED)
        survived = per_status.get("survived", 0)
        other = total - typed - killed - survived
        lines.append(f"{module:<16}{total:>8}{typed:>6}{killed:>6}{survived:>9}{other:>7}")
    tried = [status for status in found.values() if status not in NOT_TRIED]
    typed = tried.count(TYPED)
    killed = sum(status in KILLED for status in tried)
    alive = [name for name, status in found.items() if status not in (*KILLED, TYPED, *NOT_TRIED)]
    unexplained = sorted(name for name in alive if name not in known)
    score = 100 * (typed + killed) / len(tried) if tried else 0.0
    by_tests = 100 * killed / (len(tried) - typed) if len(tried) > typed else 0.0
    lines.append(
        f"{typed + killed} of {len(tried)} mutants killed ({score:.1f} %) in {minutes:.0f} min: "
        f"{typed} by mypy, {killed} by the tests ({by_tests:.1f} % of the {len(tried) - typed} "
        f"mypy let through); {len(alive) - len(unexplained)} survivors explained in "
        f"tests/MUTANTS.md, {len(unexplained)} not"
    )
    lines += [f"  not explained: {n} ({found[n]}; `mutmut show {n}`)" for n in unexplained]
    return lines


def stop_orphaned_servers(python: str) -> int:
    """mutmut ends a worker that overruns its time without running the test's teardown, so
    the local server that test started (in a process group of its own) outlives it, adopted
    by init. Stops those; returns how many."""
    import psutil

    stopped = 0
    for process in psutil.process_iter(["ppid", "cmdline"]):
        command = process.info["cmdline"] or []
        if process.info["ppid"] == 1 and command[:3] == [python, "-m", f"{PACKAGE}.testing"]:
            process.terminate()
            stopped += 1
    return stopped


def in_mutmuts_order(folder: Path) -> bool:
    """Whether every selected test passes in mutmut's order (quickest first) with nothing
    mutated: a test that fails only after another would count as a kill for every mutant
    whose tests put it there. Imports the package from the staged src/, as mutmut's workers
    do."""
    settings = config(folder)
    args = [*settings["pytest_add_cli_args_test_selection"], *settings["pytest_add_cli_args"]]
    pythonpath = [folder / "mutants" / "src", *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "MUTANT_UNDER_TEST": NOTHING_MUTATED}
    env["PYTHONPATH"] = os.pathsep.join(map(str, pythonpath))
    command = [sys.executable, "-m", "pytest", "-q", *args]
    try:
        return subprocess.run(command, cwd=folder / "mutants", env=env, check=False).returncode == 0
    finally:
        stop_orphaned_servers(sys.executable)


def _mutmut(folder: Path, *args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "mutmut"), *args]
    return subprocess.run(command, cwd=folder, text=True, capture_output=capture, check=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nox -s mutants --", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="mutants to run (or patterns with *); all if none")
    parser.add_argument(
        "--check-order",
        action="store_true",
        help="check the test order even when only some mutants run (a full run always does)",
    )
    args = parser.parse_args(argv)
    folder = stage(ROOT, RUN)
    print(f"mutating {', '.join(mutated(folder))}; in {folder.relative_to(ROOT)}", flush=True)
    started = time.monotonic()
    try:
        ran = _mutmut(folder, "run", "--max-children", str(CHILDREN), *args.names)
    finally:
        stop_orphaned_servers(sys.executable)
    if ran.returncode:
        return ran.returncode
    found = statuses(_mutmut(folder, "results", "--all", "true", capture=True).stdout)
    ordered = True
    if args.check_order or not args.names:
        print("the tests in mutmut's order, nothing mutated:", flush=True)
        ordered = in_mutmuts_order(folder)
    minutes = (time.monotonic() - started) / 60
    print("\n".join(report(found, explained(EXPLANATIONS.read_text()), minutes)))
    if not ordered:
        print(
            "in the order mutmut runs them, a test fails with nothing mutated, so its kills "
            "cannot be trusted (tests/MUTANTS.md, Order)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
