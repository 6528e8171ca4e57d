"""One side of the benchmark, in a process of its own: raw httpx against one client.

Which client that is depends on the interpreter running this file: ours (`opperai_usage`) in
the bench venv, the official SDK (`opperai`) in its own venv; the first of the two that imports
is used. Only the standard library, httpx and that client are used here, so the same file runs
in both venvs.

Two ways to run it:

- `_worker.py serve --small FILE --large FILE --server URL`: reads one JSON command a line on
  stdin (`{"op": "call" | "decode" | "csv" | "concurrency", "samples": N, ...}`) and answers
  each with one JSON line, `{"raw": [seconds, ...], "client": [seconds, ...]}`, raw and client timed
  alternately (the one that goes first alternates too).
- `_worker.py memory --kind loads|client --body FILE`: in a fresh process, the peak RSS
  growth (bytes) while decoding the body, printed as one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast

import httpx

try:
    from opperai_usage import Opper
except ImportError:  # the official SDK's venv
    from opperai import Opper  # type: ignore[no-redef,import-not-found,unused-ignore]

FIELDS = ["completion_tokens", "total_tokens"]
GROUP_BY = ["model", "project.name"]
PARAMS = {"fields": FIELDS, "group_by": GROUP_BY}
AUTH = {"Authorization": "Bearer bench-key"}
MOCK_URL = "https://bench.invalid/v2"
USAGE = "/analytics/usage"


def mock_client(body: bytes) -> httpx.Client:
    """A client whose every request is answered with `body`, without touching the network."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    return httpx.Client(transport=httpx.MockTransport(answer))


def expect(count: int, items: list[Any]) -> None:
    """Refuse to time a client that did not decode the whole answer into items."""
    if len(items) != count or (count and not hasattr(items[0], "time_bucket")):
        raise SystemExit(f"expected {count} decoded items, got {len(items)}: {items[:1]!r}")


class MockPair:
    """Raw httpx and the client, each on its own `httpx.Client` over the same MockTransport."""

    def __init__(self, body: bytes) -> None:
        self.count = len(json.loads(body))
        self.raw = mock_client(body)
        self.opper = Opper(http_bearer="bench-key", server_url=MOCK_URL, client=mock_client(body))

    def call_raw(self) -> object:
        return self.raw.get(MOCK_URL + USAGE, params=PARAMS, headers=AUTH).json()

    def call_client(self) -> object:
        return self.opper.analytics.get_usage(fields=FIELDS, group_by=GROUP_BY)

    def check(self) -> None:
        raw = self.call_raw()
        if not isinstance(raw, list) or len(raw) != self.count:
            raise SystemExit(f"raw httpx did not decode {self.count} items")
        expect(self.count, self.opper.analytics.get_usage(fields=FIELDS, group_by=GROUP_BY))


def timed_batch(function: Callable[[], object], batch: int, young_gc: bool = False) -> float:
    """Seconds per call, over `batch` calls in a row, from a fully collected heap.

    `young_gc` adds a collection of the youngest generation to each call's time, so that a
    client that pauses the cyclic GC while it builds its objects is still charged for the
    first walk over them (which a client that does not pause pays as it goes).
    """
    kept: list[object] = []  # freed after the clock stops: freeing is not decoding
    keep = kept.append
    gc.collect()
    started = time.perf_counter()
    for _ in range(batch):
        keep(function())
        if young_gc:
            gc.collect(0)
    elapsed = time.perf_counter() - started
    kept.clear()
    return elapsed / batch


def alternate(
    raw: Callable[[], float], client: Callable[[], float], samples: int
) -> dict[str, list[float]]:
    """`samples` timings of each, interleaved, the first of each pair alternating."""
    result: dict[str, list[float]] = {"raw": [], "client": []}
    for sample in range(samples):
        order = [("raw", raw), ("client", client)]
        for name, measure in order if sample % 2 == 0 else reversed(order):
            result[name].append(measure())
    return result


def time_pair(pair: MockPair, samples: int, batch: int, young_gc: bool) -> dict[str, list[float]]:
    return alternate(
        lambda: timed_batch(pair.call_raw, batch, young_gc),
        lambda: timed_batch(pair.call_client, batch, young_gc),
        samples,
    )


class CsvExport:
    """`opper-usage --format csv`'s writer on the items of the large answer, against the client's
    decode of that answer (ours only: the official SDK writes no CSV).

    Each decode is timed with no other items alive (as in the decode figure), and its items are
    the ones the next write writes.
    """

    def __init__(self, pair: MockPair, path: Path) -> None:
        from opperai_usage._cli._writers import write_csv
        from opperai_usage._columns import Columns

        self.pair, self.path, self.write_csv = pair, path, write_csv
        self.columns = Columns(group_by=tuple(GROUP_BY), fields=tuple(FIELDS))
        self.items: list[Any] = []
        self.decode()
        expect(pair.count, self.items)

    def decode(self) -> float:
        self.items = []  # no other items alive while timing
        gc.collect()
        started = time.perf_counter()
        items = self.pair.call_client()
        gc.collect(0)
        elapsed = time.perf_counter() - started
        self.items = cast("list[Any]", items)
        return elapsed

    def write(self) -> float:
        gc.collect()
        started = time.perf_counter()
        with self.path.open("w", encoding="utf-8", newline="") as out:
            self.write_csv(self.items, self.columns, out)
        gc.collect(0)
        return time.perf_counter() - started

    def measure(self, samples: int) -> dict[str, list[float]]:
        return alternate(self.decode, self.write, samples)


class Concurrency:
    """`calls` concurrent requests on one async client to the local server, raw and client."""

    def __init__(self, server: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.url = server + USAGE
        self.raw = httpx.AsyncClient()
        self.opper = Opper(
            http_bearer="bench-key", server_url=server, async_client=httpx.AsyncClient()
        )

    async def _raw_one(self) -> object:
        response = await self.raw.get(self.url, params=PARAMS, headers=AUTH)
        response.raise_for_status()
        return response.json()

    async def _client_one(self) -> object:
        return await self.opper.analytics.get_usage_async(fields=FIELDS, group_by=GROUP_BY)

    def _wall(self, one: Callable[[], Coroutine[Any, Any, object]], calls: int) -> float:
        async def burst() -> list[object]:
            return await asyncio.gather(*(one() for _ in range(calls)))

        gc.collect()
        started = time.perf_counter()
        results = self.loop.run_until_complete(burst())
        wall = time.perf_counter() - started
        if len(results) != calls or not all(isinstance(r, list) and r for r in results):
            raise SystemExit("a concurrent call did not return items")
        return wall

    def measure(self, samples: int, calls: int) -> dict[str, list[float]]:
        return alternate(
            lambda: self._wall(self._raw_one, calls),
            lambda: self._wall(self._client_one, calls),
            samples,
        )


def serve(small: Path, large: Path, server: str) -> None:
    """Answer timing commands from stdin until it closes."""
    pairs: dict[str, MockPair] = {}
    concurrency: Concurrency | None = None
    export: CsvExport | None = None
    for line in sys.stdin:
        command = json.loads(line)
        op, samples = command["op"], int(command["samples"])
        if op == "csv":
            if export is None:
                export = CsvExport(MockPair(large.read_bytes()), Path("items.csv").resolve())
                export.write()  # warm up: the writer's imports, the file's blocks
            result = export.measure(samples)
        elif op in ("call", "decode"):
            if op not in pairs:
                pairs[op] = MockPair((small if op == "call" else large).read_bytes())
                pairs[op].check()
            result = time_pair(pairs[op], samples, int(command.get("batch", 1)), op == "decode")
        elif op == "concurrency":
            if concurrency is None:
                concurrency = Concurrency(server)
                concurrency.measure(1, int(command["calls"]))  # connect, warm up
            result = concurrency.measure(samples, int(command["calls"]))
        else:
            raise SystemExit(f"unknown command {op!r}")
        print(json.dumps(result), flush=True)


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (Linux), so it measures from here on."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def memory(kind: str, body_path: Path) -> None:
    """Print the peak RSS growth, in bytes, of one decode of the body (loads or the client)."""
    body = body_path.read_bytes()
    decode: Callable[[], object]
    if kind == "loads":
        decode = lambda: json.loads(body)  # noqa: E731
    else:
        with mock_client(b'[{"time_bucket": "2026-01-01T00:00:00Z", "cost": "0"}]') as warm:
            Opper(http_bearer="bench-key", server_url=MOCK_URL, client=warm).analytics.get_usage()
        opper = Opper(http_bearer="bench-key", server_url=MOCK_URL, client=mock_client(body))
        decode = lambda: opper.analytics.get_usage(fields=FIELDS, group_by=GROUP_BY)  # noqa: E731
    gc.collect()
    before = _status_kib("VmRSS")
    if before is not None and _reset_peak():
        result = decode()
        peak = _status_kib("VmHWM")
        growth = ((peak or before) - before) * 1024
    else:  # elsewhere: the process's peak so far (close to its size now, see above)
        import resource

        scale = 1 if sys.platform == "darwin" else 1024
        start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
        result = decode()
        growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale - start
    assert isinstance(result, list)
    if kind == "client":
        expect(len(json.loads(body)), result)
    print(json.dumps({"growth": growth}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serving = commands.add_parser("serve")
    serving.add_argument("--small", type=Path, required=True)
    serving.add_argument("--large", type=Path, required=True)
    serving.add_argument("--server", required=True)
    measuring = commands.add_parser("memory")
    measuring.add_argument("--kind", choices=["loads", "client"], required=True)
    measuring.add_argument("--body", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.small, args.large, args.server)
    else:
        memory(args.kind, args.body)


if __name__ == "__main__":
    main()
