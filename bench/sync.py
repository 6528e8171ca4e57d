"""Long ranges and sync: 1,000,000 items (minute granularity, 5 groups) fetched three ways, each
in a fresh process against one local server process, and their times and peak memory compared.

    nox -s bench                       # bench/run.py, then this
    python bench/sync.py --rows 100000 # a smaller run

- `get_usage`: one call over the whole range (one answer of every item);
- `iter_usage`: the same range window by window (the default window and concurrency), the
  items counted and let go;
- `opper-usage sync`: the same range loaded into a new DuckDB file (the command, run as a user
  runs it).

The server (`serve`, in a process of its own, standard library only) answers any range with
five items per minute from START on, a cost, a count and one summed field each, so each side
gets the same items. Time is each process's wall time from its start to its end, less that of
a process that only imports what it needs; peak memory is the process's peak RSS (VmHWM).
Targets, from issue 21: iter_usage at most 1.0x get_usage's time and a fraction of its memory;
sync at most 3x iter_usage's time and under 1 GiB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

UTC = dt.timezone.utc
GROUPS = 5
MINUTE = dt.timedelta(minutes=1)
QUERY = ["--granularity", "minute", "--group-by", "model", "--field", "total_tokens"]
TARGETS = {"iter_usage/get_usage time": 1.0, "sync/iter_usage time": 3.0}
GIB = 1024**3


def serve(start: dt.datetime, minutes: int) -> None:
    """The server: prints its port, answers until stdin closes."""

    def items(begin: dt.datetime, end: dt.datetime) -> bytes:
        first = max(0, -(-(begin - start) // MINUTE))
        last = min(minutes, -(-(end - start) // MINUTE))
        parts = []
        for number in range(first, last):
            when = (start + number * MINUTE).strftime("%Y-%m-%dT%H:%M:00Z")
            for group in range(GROUPS):
                parts.append(
                    f'{{"time_bucket":"{when}","cost":"0.{number % 997:03d}{group:03d}",'
                    f'"count":{number % 7 + 1},"model":"model-{group}",'
                    f'"total_tokens":{number % 5000 + group}}}'
                )
        return ("[" + ",".join(parts) + "]").encode()

    class Answer(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            body = items(*(_moment(query[name][0]) for name in ("from_date", "to_date")))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_port, flush=True)
    sys.stdin.read()


def _moment(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


#: Each side, as a program: it prints the items it got (`sync` prints its own report).
PROGRAMS = {
    "get_usage": (
        "from opperai_usage import Opper\n"
        "with Opper(http_bearer='bench', server_url=URL) as opper:\n"
        "    print(len(opper.analytics.get_usage(from_date=START, to_date=END, "
        "granularity='minute', group_by=['model'], fields=['total_tokens'])))\n"
    ),
    "iter_usage": (
        "from opperai_usage import Opper\n"
        "with Opper(http_bearer='bench', server_url=URL) as opper:\n"
        "    print(sum(1 for _ in opper.analytics.iter_usage(from_date=START, to_date=END, "
        "granularity='minute', group_by=['model'], fields=['total_tokens'])))\n"
    ),
}
IMPORTS = {
    "get_usage": "from opperai_usage import Opper; Opper(http_bearer='x').analytics",
    "iter_usage": "from opperai_usage import Opper; Opper(http_bearer='x').analytics",
    "sync": "import opperai_usage._cli._sync, opperai_usage.sync, dlt.destinations",
}


def measure(command: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in bytes and standard output of one process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env, text=True)
    assert process.stdout is not None
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - started
    if process.returncode:
        raise SystemExit(f"{command[:3]} failed with {process.returncode}")
    return elapsed, usage.ru_maxrss * 1024, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(_moment(args.serve[0]), int(args.serve[1]))
        return 0
    minutes = args.rows // GROUPS
    end = dt.datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - minutes * MINUTE
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPPER_", "PYTHONPATH"))}
    env |= {"OPPER_API_KEY": "bench", "RUNTIME__DLTHUB_TELEMETRY": "false"}
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", start.isoformat(), str(minutes)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stdout is not None
    url = f"http://127.0.0.1:{server.stdout.readline().strip()}/v2"
    figures: dict[str, tuple[float, int, str]] = {}
    try:
        with tempfile.TemporaryDirectory() as folder:
            setup = f"URL, START, END = {url!r}, {start.isoformat()!r}, {end.isoformat()!r}\n"
            for name, program in PROGRAMS.items():
                figures[name] = measure([sys.executable, "-c", setup + program], env)
            sync = [sys.executable, "-m", "opperai_usage", "sync", "--server-url", url, *QUERY,
                    "--since", start.isoformat(), "--db", str(Path(folder) / "bench.duckdb"),
                    "--format", "json"]  # fmt: skip
            figures["sync"] = measure(sync, env)
            imports = {
                name: measure([sys.executable, "-c", code], env)[0]
                for name, code in IMPORTS.items()
            }
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(timeout=30)
    seconds = {name: figures[name][0] - imports[name] for name in figures}
    rows = json.loads(figures["sync"][2])["rows"]
    print(f"{args.rows:,} items asked for; get_usage {figures['get_usage'][2].strip()}, "
          f"iter_usage {figures['iter_usage'][2].strip()}, sync {rows:,} rows")  # fmt: skip
    for name, (_, peak, _) in figures.items():
        print(f"{name:>10}: {seconds[name]:7.2f} s (less {imports[name]:.2f} s of imports), "
              f"peak RSS {peak / 2**20:7.0f} MiB")  # fmt: skip
    ratios = {
        "iter_usage/get_usage time": seconds["iter_usage"] / seconds["get_usage"],
        "iter_usage/get_usage memory": figures["iter_usage"][1] / figures["get_usage"][1],
        "sync/iter_usage time": seconds["sync"] / seconds["iter_usage"],
    }
    for name, ratio in ratios.items():
        target = TARGETS.get(name)
        verdict = "" if target is None else f" (target <= {target}x: " + (
            "met)" if ratio <= target else "MISSED)")  # fmt: skip
        print(f"{name}: {ratio:.2f}x{verdict}")
    peak = figures["sync"][1]
    print(f"sync peak RSS: {peak / 2**20:.0f} MiB (target < 1024 MiB: "
          f"{'met' if peak < GIB else 'MISSED'})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
