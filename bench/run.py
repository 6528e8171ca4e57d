"""Side-by-side benchmark: this client and the official SDK (`opperai==1.7.2`), each against
raw httpx doing the same work, measured in one run on this machine.

    nox -s bench                  # the full run (a few minutes)
    nox -s bench -- --quick       # a smoke run: fewer rounds, smaller answers
    python bench/run.py --help    # options (e.g. --official-python, --no-official)

Each side runs in a process of its own: ours (`opperai_usage`) in this interpreter's venv, the
official SDK (`opperai`) in the venv `nox -s bench` makes for it (`--official-python`).
Timings are interleaved (rounds alternate the sides, and raw and client alternate within each
side) and the table shows medians. See bench/README.md for what each
figure measures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import _payload

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "_worker.py"
IMPORTS = {"pass": "pass", "httpx": "import httpx", "client": "from opperai_usage import Opper"}
#: The official SDK's side imports its own package.
OFFICIAL_IMPORT = "from opperai import Opper"
#: Each figure's target for ours/raw, from the issue.
TARGETS = {
    "call": 1.15,
    "decode": 1.25,
    "import": 1.3,
    "memory": 1.6,
    "concurrency": 1.2,
    "csv": 2.0,
}
HOW = {
    "call": "get_usage, 5 items, MockTransport / httpx get + .json()",
    "decode": "the same, {items:,} items ({size:.1f} MB)",
    "import": "from opperai_usage import Opper / import httpx (minus bare start)",
    "memory": "peak RSS growth, {items:,} items / json.loads",
    "concurrency": "{calls} concurrent get_usage_async, loopback / httpx.AsyncClient",
    "csv": "opper-usage's CSV of the {items:,} items, to a file / their decode (raw column)",
}


@dataclass(frozen=True)
class Plan:
    """How much to measure: rounds interleave the sides; samples alternate raw and client."""

    call_rounds: int
    call_batch: int
    decode_rounds: int
    decode_items: int
    import_rounds: int
    memory_rounds: int
    concurrency_rounds: int
    official_concurrency_rounds: int
    concurrent_calls: int = 300


FULL = Plan(
    call_rounds=25,
    call_batch=100,
    decode_rounds=11,
    decode_items=100_000,
    import_rounds=21,
    memory_rounds=5,
    concurrency_rounds=7,
    official_concurrency_rounds=3,
)
QUICK = Plan(
    call_rounds=3,
    call_batch=20,
    decode_rounds=2,
    decode_items=10_000,
    import_rounds=3,
    memory_rounds=1,
    concurrency_rounds=1,
    official_concurrency_rounds=1,
    concurrent_calls=50,
)


@dataclass
class Figure:
    """One side's measurements of one figure: the raw floor and the client."""

    raw: list[float] = field(default_factory=list)
    client: list[float] = field(default_factory=list)

    def add(self, answer: dict[str, list[float]]) -> None:
        self.raw += answer["raw"]
        self.client += answer["client"]

    @property
    def ratio(self) -> float:
        return statistics.median(self.client) / statistics.median(self.raw)


Results = dict[str, dict[str, Figure]]  # figure -> side ("ours", "official") -> measurements


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def clean_env() -> dict[str, str]:
    """The environment for the measured processes: nothing that changes a client's work."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("OPPER_") and name not in ("PYTHONPATH", "PYTHONHOME")
    }


# -- the local server and the workers


@contextlib.contextmanager
def local_server() -> Iterator[str]:
    """`python -m opperai_usage.testing` on a free loopback port; yields its API URL (…/v2)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "opperai_usage.testing", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise SystemExit(f"the local server did not start: {line!r}")
        yield line.removeprefix("listening on ") + "/v2"
    finally:
        server.terminate()
        server.wait(timeout=10)


class Worker:
    """A `_worker.py serve` process: one interpreter, one `opperai`, commands over a pipe."""

    def __init__(self, python: Path, small: Path, large: Path, server: str, cwd: Path) -> None:
        command = [str(python), str(WORKER), "serve", "--small", str(small), "--large", str(large)]
        self.process = subprocess.Popen(
            [*command, "--server", server],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=clean_env(),
        )

    def ask(self, op: str, **options: int) -> dict[str, list[float]]:
        stdin, stdout = self._pipes()
        stdin.write(json.dumps({"op": op, **options}) + "\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise SystemExit(f"the {op} worker ({self.process.args!r}) stopped")
        answer: dict[str, list[float]] = json.loads(line)
        return answer

    def _pipes(self) -> tuple[IO[str], IO[str]]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        return self.process.stdin, self.process.stdout

    def close(self) -> None:
        stdin, _ = self._pipes()
        stdin.close()
        self.process.wait(timeout=60)


def interleaved(
    sides: dict[str, Worker], rounds: int, op: str, **options: int
) -> dict[str, Figure]:
    """`rounds` rounds, each asking every side once; the side that goes first rotates."""
    figures = {name: Figure() for name in sides}
    names = list(sides)
    for index in range(rounds):
        for name in names[index % len(names) :] + names[: index % len(names)]:
            figures[name].add(sides[name].ask(op, **options))
    return figures


def run_timings(
    pythons: dict[str, Path],
    plan: Plan,
    work: Path,
    server: str,
    results: Results,
    only: list[str],
) -> None:
    small, large = work / "small.json", work / "large.json"
    small.write_bytes(_payload.body(5))
    large.write_bytes(_payload.body(plan.decode_items))
    workers = {name: Worker(python, small, large, server, work) for name, python in pythons.items()}
    try:
        if "call" in only:
            log("call: 5-item answers through MockTransport")
            results["call"] = interleaved(
                workers, plan.call_rounds, "call", samples=2, batch=plan.call_batch
            )
        if "decode" in only:
            log(f"decode: {plan.decode_items:,}-item answers through MockTransport")
            results["decode"] = interleaved(workers, plan.decode_rounds, "decode", samples=2)
        if "csv" in only:
            log(f"csv: writing {plan.decode_items:,} items as CSV, against decoding them")
            ours = {name: worker for name, worker in workers.items() if name == "ours"}
            results["csv"] = interleaved(ours, plan.decode_rounds, "csv", samples=2)
        if "concurrency" not in only:
            return
        log(f"concurrency: {plan.concurrent_calls} concurrent calls to the local server")
        calls = plan.concurrent_calls
        ours = {name: worker for name, worker in workers.items() if name == "ours"}
        results["concurrency"] = interleaved(
            ours, plan.concurrency_rounds, "concurrency", samples=2, calls=calls
        )
        if "official" in workers:  # seconds a burst: fewer rounds
            official = {"official": workers["official"]}
            rounds = plan.official_concurrency_rounds
            results["concurrency"] |= interleaved(
                official, rounds, "concurrency", samples=2, calls=calls
            )
    finally:
        for worker in workers.values():
            worker.close()


def wall(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=clean_env(), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def run_imports(pythons: dict[str, Path], plan: Plan, work: Path, results: Results) -> None:
    """Interpreter starts: bare, with httpx, with the client; all shuffled within each round."""
    log("import: interpreter starts, bare / import httpx / the client's import of Opper")
    runs = [(side, what) for side in pythons for what in IMPORTS]
    times: dict[tuple[str, str], list[float]] = {run: [] for run in runs}
    shuffle = random.Random(5).shuffle

    def code(side: str, what: str) -> str:
        return OFFICIAL_IMPORT if (side, what) == ("official", "client") else IMPORTS[what]

    for side, what in runs:  # warm the OS caches and write the .pyc files first
        wall([str(pythons[side]), "-c", code(side, what)], work)
    for _ in range(plan.import_rounds):
        shuffle(runs)
        for side, what in runs:
            times[side, what].append(wall([str(pythons[side]), "-c", code(side, what)], work))
    results["import"] = {}
    for side in pythons:
        bare = statistics.median(times[side, "pass"])
        results["import"][side] = Figure(
            raw=[statistics.median(times[side, "httpx"]) - bare],
            client=[statistics.median(times[side, "client"]) - bare],
        )


def memory_growth(python: Path, kind: str, body: Path, work: Path) -> float:
    command = [str(python), str(WORKER), "memory", "--kind", kind, "--body", str(body)]
    done = subprocess.run(
        command, cwd=work, env=clean_env(), check=True, capture_output=True, text=True
    )
    growth: float = json.loads(done.stdout)["growth"]
    return growth


def run_memory(pythons: dict[str, Path], plan: Plan, work: Path, results: Results) -> None:
    """Fresh processes: json.loads of the body, and the client decoding it, per side."""
    log(f"memory: peak RSS growth decoding {plan.decode_items:,} items, fresh processes")
    body = work / "large.json"
    figures = {side: Figure() for side in pythons}
    for _ in range(plan.memory_rounds):
        for side, python in pythons.items():
            figures[side].raw.append(memory_growth(python, "loads", body, work))
            figures[side].client.append(memory_growth(python, "client", body, work))
    results["memory"] = figures


# -- the report


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def versions(python: Path, modules: list[str]) -> str:
    probe = (
        "import importlib.metadata as m\n"
        f"for name in {modules!r}:\n"
        "    try: print(f'{name} {m.version(name)}')\n"
        "    except m.PackageNotFoundError: pass\n"
    )
    done = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, env=clean_env(), check=False
    )
    return ", ".join(done.stdout.split("\n")[:-1])


def machine(pythons: dict[str, Path]) -> str:
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    lines = [
        f"machine: {cpu_model()}, {cores} cores ({usable} usable), "
        f"{platform.system()} {platform.release()}",
        f"python: {platform.python_implementation()} {platform.python_version()}",
        f"ours: {versions(pythons['ours'], ['opperai-usage', 'httpx', 'msgspec'])}",
    ]
    if "official" in pythons:
        lines.append(f"official: {versions(pythons['official'], ['opperai', 'httpx'])}")
    return "\n".join(lines)


def show(figure: str, value: float) -> str:
    if figure in ("call",):
        return f"{value * 1e6:.0f} µs"
    if figure in ("decode", "import", "csv"):
        return f"{value * 1e3:.0f} ms"
    if figure == "memory":
        return f"{value / 2**20:.0f} MiB"
    return f"{value:.2f} s"


def table(results: Results, plan: Plan, size: int) -> str:
    rows = [
        "| figure | how (client / raw floor) | raw httpx | ours | ours/raw | target "
        "| official SDK | official/raw |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for name, target in TARGETS.items():
        sides = results.get(name, {})
        how = HOW[name].format(
            items=plan.decode_items, size=size / 1e6, calls=plan.concurrent_calls
        )
        ours, official = sides.get("ours"), sides.get("official")
        cells = [name, how]
        if ours is None:
            cells += ["—", "—", "—"]
        else:
            verdict = "ok" if ours.ratio <= target else "MISSED"
            raw = statistics.median(ours.raw)
            cells += [show(name, raw), show(name, statistics.median(ours.client))]
            cells.append(f"{ours.ratio:.2f}x {verdict}")
        cells.append(f"<= {target}x")
        if official is None:
            cells += ["—", "—"]
        else:
            cells += [show(name, statistics.median(official.client)), f"{official.ratio:.2f}x"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def samples_note(results: Results) -> str:
    counts = {
        name: "/".join(f"{side} {len(fig.client)}" for side, fig in sides.items())
        for name, sides in results.items()
        if name != "import"
    }
    return "samples per median: " + ", ".join(f"{name} {count}" for name, count in counts.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--official-python",
        type=Path,
        default=os.environ.get("OPPER_BENCH_OFFICIAL_PYTHON"),
        help="an interpreter with opperai==1.7.2 installed (nox -s bench makes one)",
    )
    parser.add_argument("--no-official", action="store_true", help="measure ours only")
    parser.add_argument("--json", type=Path, help="also write the raw measurements here")
    parser.add_argument(
        "--only",
        type=lambda text: text.split(","),
        default=list(TARGETS),
        help=f"comma-separated figures to measure (default: all of {','.join(TARGETS)})",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    started = time.monotonic()

    pythons = {"ours": Path(sys.executable)}
    if not args.no_official:
        if args.official_python is None:
            parser.error("--official-python is needed (nox -s bench passes it), or --no-official")
        pythons["official"] = args.official_python
    results: Results = {}
    with tempfile.TemporaryDirectory(prefix="opperai-bench-") as tmp, local_server() as server:
        work = Path(tmp)
        run_timings(pythons, plan, work, server, results, args.only)
        if "import" in args.only:
            run_imports(pythons, plan, work, results)
        if "memory" in args.only:
            run_memory(pythons, plan, work, results)
        size = (work / "large.json").stat().st_size

    report = [
        machine(pythons),
        "",
        table(results, plan, size),
        "",
        samples_note(results) + f"; import {plan.import_rounds} starts per kind",
        f"run: {'--quick' if args.quick else 'full'}, {time.monotonic() - started:.0f} s",
    ]
    print("\n".join(report))
    if args.json:
        dump: dict[str, Any] = {
            name: {side: vars(fig) for side, fig in sides.items()}
            for name, sides in results.items()
        }
        args.json.write_text(json.dumps(dump, indent=2))
    missed = [
        name
        for name, target in TARGETS.items()
        if "ours" in results.get(name, {}) and results[name]["ours"].ratio > target
    ]
    if missed:
        log(f"over target: {', '.join(missed)} (a benchmark, not a test: exit status stays 0)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
