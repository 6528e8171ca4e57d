"""Command line: `python -m localserver --host 127.0.0.1 --port 0 [--api-key KEY] [--seed N]`."""

from __future__ import annotations

import argparse

from localserver.app import serve
from localserver.dataset import DEFAULT_EVENTS, DEFAULT_SEED


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m localserver", description="Local Opper usage-analytics server."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument("--api-key", help="the only bearer token accepted (default: any)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="data set seed")
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="data set size")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    return serve(
        args.host,
        args.port,
        api_key=args.api_key,
        seed=args.seed,
        events=args.events,
        verbose=args.verbose,
    )


if __name__ == "__main__":
    raise SystemExit(main())
