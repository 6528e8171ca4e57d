"""`python -m opperai_usage.testing`: the local usage server as a process, until SIGTERM or
SIGINT. It prints `listening on http://HOST:PORT` once it accepts connections; other processes
script and inspect it over HTTP under `/_control/` (see the README, "Testing your code"),
which answers programs only, not web pages open in a browser on the same machine (`Host` must
be a loopback address or `localhost`, a foreign `Origin` is refused, bodies must be JSON)."""

from __future__ import annotations

import argparse
import re
import signal
import threading
from datetime import datetime, timedelta
from types import FrameType

from ._aggregate import OUT_OF_RANGE, parse_datetime
from ._dataset import DEFAULT_EVENTS, DEFAULT_SEED
from ._server import MAX_INGEST_DELAY, UsageServer
from ._state import NOW_YEARS

_DELAY = re.compile(r"([0-9]{1,9})([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _moment(text: str) -> datetime:
    parsed = parse_datetime(text)  # a UTC datetime, or why not
    first, last = NOW_YEARS
    if parsed == OUT_OF_RANGE or (
        isinstance(parsed, datetime) and not first <= parsed.year <= last
    ):
        raise argparse.ArgumentTypeError(f"must be in the years {first} to {last} (UTC): {text!r}")
    if isinstance(parsed, str):
        raise argparse.ArgumentTypeError(f"not a date or time: {text!r} ({parsed})")
    return parsed


def _delay(text: str) -> timedelta:
    match = _DELAY.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"must be a count and a unit, s, m, h or d, such as 90m or 6h, not {text!r}"
        )
    delay = timedelta(**{_UNITS[match[2]]: int(match[1])})
    if delay > MAX_INGEST_DELAY:
        raise argparse.ArgumentTypeError(f"must be at most 365d, not {text!r}")
    return delay


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535, got {port}")
    return port


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and serve until SIGTERM or SIGINT; exit status 0."""
    parser = argparse.ArgumentParser(
        prog="python -m opperai_usage.testing",
        description="A local, Opper-compatible usage-analytics server for tests and demos.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=_port, default=0, help="port to bind, 0 to 65535; 0 picks a free one"
    )
    parser.add_argument(
        "--api-key",
        help="the only bearer token accepted (default: any); other users of this machine can "
        "read it in the process list, so use a test key",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="data set seed")
    parser.add_argument(
        "--events",
        type=int,
        default=DEFAULT_EVENTS,
        help="about how many usage events every 60 days (default %(default)s)",
    )
    parser.add_argument(
        "--now",
        type=_moment,
        help="the moment taken as now (ISO 8601, years 2 to 9998), so answers never change "
        "(default: the end of the clock's current UTC day); POST /_control/now moves it",
    )
    parser.add_argument(
        "--ingest-delay",
        type=_delay,
        default=timedelta(0),
        metavar="SPAN",
        help="show each event only a seeded time after it happened, up to SPAN, such as 6h or "
        "90m (s, m, h, d; at most 365d; default 0s)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    if args.api_key is not None and not args.api_key.strip():
        parser.error("--api-key: must not be empty (leave it out to accept any key)")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server = UsageServer(
            seed=args.seed,
            api_key=args.api_key,
            now=args.now,
            events=args.events,
            ingest_delay=args.ingest_delay,
            host=args.host,
            port=args.port,
            verbose=args.verbose,
        ).start()
    except ValueError as problem:
        parser.error(str(problem))
    except OSError as problem:
        parser.exit(1, f"{parser.prog}: cannot listen on {args.host}:{args.port}: {problem}\n")
    with server:
        print(f"listening on {server.base_url}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
