"""The local Opper-compatible server for nox's sessions, and the release's smoke call.

`nox -s build` installs the wheel in a fresh venv and runs `python -m tools.smoke URL` there: one
call against the local server, through the installed package alone. `nox -s demo` runs its
example against the same server. Only the standard library is imported at the top: nox imports
this module under its own Python, where the package is not installed.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

#: What the server prints first, then its address.
LISTENING = "listening on "


@contextlib.contextmanager
def local_server(python: str, cwd: Path) -> Iterator[str]:
    """The testing kit's server, run by `python` (which has the package), on a free loopback
    port; yields its API URL (ending in /v2) and stops it afterwards."""
    command = [python, "-m", "opperai_usage.testing", "--host", "127.0.0.1", "--port", "0"]
    with subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline().strip()
            if not line.startswith(LISTENING):
                raise RuntimeError(f"the local server did not start: {line!r}")
            yield line.removeprefix(LISTENING) + "/v2"
        finally:
            process.terminate()
            process.wait(timeout=10)


def call(url: str) -> str:
    """One `get_usage` grouped by model against `url`; a line saying what came back."""
    from opperai_usage import Opper, __version__

    with Opper(api_key="build-check", server_url=url) as opper:
        items = opper.analytics.get_usage(group_by=["model"])
    if not items:
        raise AssertionError(f"no items from {url}")
    return f"opperai-usage {__version__}: {len(items)} items from {url}"


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tools.smoke URL`."""
    (url,) = sys.argv[1:] if argv is None else argv
    print(call(url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
