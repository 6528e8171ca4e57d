"""A throwaway PostgreSQL server for `nox -s sync-postgres`: Debian's `postgresql` package
(installed with apt when it is missing, which needs root, as CI has), a cluster in a temporary
folder, listening on 127.0.0.1 on a free port only, stopped and removed afterwards.

PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` user the
package creates, and its commands run as that user (`runuser`). A machine where none of this
can be done gets a `LookupError` saying why; the session fails with it, never skips.
Only the standard library is imported: nox imports this module under its own Python.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

#: Where Debian's package puts each major version's programs.
DEBIAN = Path("/usr/lib/postgresql")
USER = "postgres"
DATABASE = "opper_usage"

Run = Callable[[Sequence[str]], object]


def _programs() -> Path | None:
    """The newest installed version's bin folder, if any."""
    found = sorted(DEBIAN.glob("*/bin/initdb"), key=lambda path: int(path.parent.parent.name))
    return found[-1].parent if found else None


def programs(run: Run) -> Path:
    """PostgreSQL's bin folder, installing Debian's package first when it is missing."""
    found = _programs()
    if found is not None:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise LookupError(
            "PostgreSQL is not installed and cannot be installed here (apt-get as root is "
            "needed): apt-get install postgresql"
        )
    quiet = ["env", "DEBIAN_FRONTEND=noninteractive"]  # no debconf question can wait for a reply
    run([*quiet, "apt-get", "update", "-qq"])
    run([*quiet, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"])
    found = _programs()
    if found is None:
        raise LookupError(f"apt-get installed postgresql, but no {DEBIAN}/*/bin/initdb")
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def server(run: Run) -> Iterator[str]:
    """A running server; yields a connection URL to its database `opper_usage` (trusting
    connections from this machine only), and stops it and removes its files afterwards."""
    bin_folder = programs(run)
    as_user = ["runuser", "-u", USER, "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="opper-usage-postgres-"))
    if as_user:
        shutil.chown(folder, USER)
    data, port = folder / "data", _free_port()
    settings = f"-c listen_addresses=127.0.0.1 -c port={port} -k {folder}"
    pg_ctl = [*as_user, str(bin_folder / "pg_ctl"), "-D", str(data)]
    try:
        run([*as_user, str(bin_folder / "initdb"), "-D", str(data), "-U", USER,
             "--auth=trust", "--encoding=UTF8", "--no-sync"])  # fmt: skip
        run([*pg_ctl, "-o", settings, "-l", str(folder / "log"), "-w", "start"])
        try:
            run([*as_user, str(bin_folder / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                 "-U", USER, DATABASE])  # fmt: skip
            yield f"postgresql://{USER}:unused@127.0.0.1:{port}/{DATABASE}"
        finally:
            run([*pg_ctl, "-m", "fast", "-w", "stop"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_checked(command: Sequence[str]) -> None:
    """`command`, failing with its output when it fails."""
    subprocess.run(list(command), check=True, capture_output=True, text=True, timeout=600)
