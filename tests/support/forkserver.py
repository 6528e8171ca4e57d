"""A warm `python -m opperai_usage` for the command-line tests: this process imports the
command line once, then forks one child per run, so a run costs its own work rather than the
0.3 s of CPU that starting Python and importing httpx take (166 runs a suite).

Each child is a real process with the test's argv, environment, working directory and pipes
for its standard streams, and it ends with the status a fresh interpreter would give. What a
fresh interpreter decides at start-up (encodings, buffering, `sys.path`, the time zone) is the
same here, since `command_line.run` sends only runs whose start-up variables equal this
process's; any other run, and every test of the console script itself, starts a fresh Python.

Protocol, over a Unix socket: the client sends an 8-byte length with three descriptors (stdin,
stdout, stderr) attached, then that many bytes of JSON (`argv`, `env`, `cwd`); the server answers
`PID\\n` once the child exists and `STATUS\\n` (as `subprocess` reports it) once it has ended.
The server ends when its standard input closes, i.e. when the test process that started it ends.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import runpy
import selectors
import signal
import socket
import struct
import sys
import threading
from pathlib import Path
from typing import Any, NoReturn

HEADER = struct.Struct("!Q")


#: Found with `python -X importtime -m opperai_usage ...` against what warm_up() had imported.
RUN_IMPORTS = [
    "opperai_usage._analytics", "opperai_usage._chargeback", "opperai_usage._cli._focus",
    "opperai_usage._decode", "opperai_usage.errors", "opperai_usage.models", "dateutil.parser",
    "dateutil.tz", "sysconfig", "zoneinfo",
]  # fmt: skip


def warm_up() -> None:
    """Import what every run imports, so children start with it loaded."""
    import importlib

    import opperai_usage._cli._main  # noqa: F401
    from opperai_usage._connections import default_tls_context
    from opperai_usage._deadline import transport_with_deadlines

    # httpcore's connection pool and its backends imported, and the CAs loaded (per value of
    # SSL_CERT_FILE and SSL_CERT_DIR: a child whose differ loads its own).
    transport_with_deadlines(default_tls_context())
    # What a run imports once its arguments are parsed: 40 ms of each run's 65 otherwise.
    for name in RUN_IMPORTS:
        importlib.import_module(name)


def warm_up_sync() -> None:
    """Import what `opper-usage sync` adds (a second of CPU: dlt, DuckDB, pyarrow and the
    pandas pyarrow loads), once the first sync run asks. The tests of a sync without dlt hide
    it with PYTHONPATH, so they start afresh and never come here."""
    import dlt.destinations  # noqa: F401
    import pandas  # noqa: F401

    import opperai_usage._cli._sync
    import opperai_usage.sync  # noqa: F401


def receive(connection: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """One request: its JSON and its three descriptors."""
    header, fds, _, _ = socket.recv_fds(connection, HEADER.size, 3)
    (size,) = HEADER.unpack(header)
    body = bytearray()
    while len(body) < size:
        chunk = connection.recv(size - len(body))
        if not chunk:
            raise ConnectionError("the request ended early")
        body += chunk
    return json.loads(body), fds


def exit_status(error: SystemExit) -> int:
    """The status Python gives for `raise SystemExit(code)`, printing a non-integer code."""
    if error.code is None:
        return 0
    if isinstance(error.code, int):
        return error.code
    print(error.code, file=sys.stderr)
    return 1


def child(request: dict[str, Any], fds: list[int], keep_closed: list[int]) -> NoReturn:
    """Become `python -m opperai_usage ARGV` in the request's environment, then exit."""
    for fd in keep_closed:
        os.close(fd)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = os.getcwd()  # as `python -m` sets it
    main = Path(sys.modules["opperai_usage"].__file__ or "").with_name("__main__.py")
    sys.argv = [str(main), *request["argv"]]
    status = 1
    try:
        runpy.run_module("opperai_usage", run_name="__main__", alter_sys=True)
        status = 0
    except SystemExit as error:
        status = exit_status(error)
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:
        sys.excepthook(*sys.exc_info())
    finish = getattr(threading, "_shutdown", None)  # what the interpreter does at exit
    if finish is not None:
        finish()
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
    except (BrokenPipeError, OSError):
        status = status or 120  # Python's status when stdout cannot be flushed at exit
    sys.stderr.flush()
    os._exit(status)


class Server:
    """The listening socket, and the children running with the connection each answers to."""

    def __init__(self, path: str) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(16)
        self.watch = selectors.EpollSelector()
        self.watch.register(self.listener, selectors.EVENT_READ, self.start)
        self.running: dict[int, tuple[int, socket.socket]] = {}  # pidfd: (pid, connection)
        self.warm_for_sync = False

    def serve(self) -> None:
        """Fork a child per request until standard input closes."""
        self.watch.register(sys.stdin.fileno(), selectors.EVENT_READ, None)
        print("ready", flush=True)
        while True:
            for key, _ in self.watch.select():
                if key.data is None:  # the test process has ended
                    return
                key.data(key.fd)

    def start(self, _: int) -> None:
        """Fork the child a new connection asks for, and tell the client its pid."""
        connection, _ = self.listener.accept()
        connection.settimeout(10)
        request, fds = receive(connection)
        if request["argv"][:1] == ["sync"] and not self.warm_for_sync:
            warm_up_sync()
            self.warm_for_sync = True
        pid = os.fork()
        if pid == 0:
            others = [c.fileno() for _, c in self.running.values()]
            owned = [self.listener.fileno(), self.watch.fileno(), *self.running, *others]
            child(request, fds, [*owned, connection.fileno()])
        for fd in fds:
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        self.running[pidfd] = (pid, connection)
        self.watch.register(pidfd, selectors.EVENT_READ, self.finish)
        connection.sendall(f"{pid}\n".encode())

    def finish(self, pidfd: int) -> None:
        """Reap an ended child and send its status to its client, if still there."""
        pid, connection = self.running.pop(pidfd)
        self.watch.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        with contextlib.suppress(OSError):  # the client has gone (it timed out, killing it)
            connection.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
        connection.close()


if __name__ == "__main__":
    warm_up()
    Server(sys.argv[1]).serve()
