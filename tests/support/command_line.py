"""Running `opper-usage` as a person does: a separate process, its own environment, its output
read as bytes (CSV line ends and encodings are part of what is tested)."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import pty
import select
import selectors
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.support import API_KEY, ROOT

#: The console script, next to this interpreter (the package is installed into the test venv).
SCRIPT = Path(sys.executable).parent / "opper-usage"
MODULE = [sys.executable, "-m", "opperai_usage"]
TIMEOUT_S = 60


@dataclass
class Result:
    code: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8")


def environment(key: str | None = API_KEY, **extra: str) -> dict[str, str]:
    """This process's environment without any OPPER_* variable, plus `key` as OPPER_API_KEY."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("OPPER_")}
    if key is not None:
        env["OPPER_API_KEY"] = key
    env.update(extra)
    return env


def run(
    *args: str,
    env: dict[str, str] | None = None,
    command: list[str] | None = None,
    cwd: Path = ROOT,
) -> Result:
    """`python -m opperai_usage ARGS` (or `command`), to completion, within TIMEOUT_S.

    `python -m opperai_usage` is forked from a warm interpreter (`forkserver`) when the run's
    start-up variables are this process's and OPPER_USAGE_TESTS_FRESH is not 1 (`nox -s
    tests` sets it on the oldest Python); the console script always starts afresh."""
    env = environment() if env is None else env
    server = fork_server() if command is None and _may_fork(env) else None
    if server is not None:
        return server.run(list(args), env, cwd)
    done = subprocess.run(
        [*(command or MODULE), *args],
        capture_output=True,
        env=env,
        cwd=cwd,
        timeout=TIMEOUT_S,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


#: What a fresh interpreter reads from the environment as it starts (encodings, buffering,
#: `sys.path`, the time zone): a run that sets any of these differently starts afresh.
STARTUP = ("PYTHON", "LC_", "LANG", "TZ")


def _startup(env: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if name.startswith(STARTUP)}


def _may_fork(env: dict[str, str]) -> bool:
    """Whether a run in `env` may be forked from the fork server rather than start afresh."""
    fresh = os.environ.get("OPPER_USAGE_TESTS_FRESH") == "1"
    return not fresh and _startup(env) == _startup(os.environ)


class Process(Protocol):
    """What the tests use of a started command: a `subprocess.Popen`, or a `Started`."""

    pid: int

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...

    def communicate(
        self, input: bytes | None = None, timeout: float | None = None
    ) -> tuple[Any, Any]: ...


def start(*args: str, cwd: Path = ROOT) -> Process:
    """`python -m opperai_usage ARGS`, started with stdout and stderr piped: forked as `run()`
    forks, or a new process."""
    env = environment()
    server = fork_server() if _may_fork(env) else None
    if server is not None:
        return server.start(list(args), env, cwd)
    return subprocess.Popen(
        [*MODULE, *args], cwd=cwd, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


class ForkServer:
    """This test process's `forkserver`, started on first use and ended with the process."""

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="opper-forkserver-")
        self.path = os.path.join(self.folder, "socket")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.forkserver", self.path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            cwd=ROOT, env=environment(key=None),
        )  # fmt: skip
        atexit.register(self.close)
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], TIMEOUT_S)
        if not ready or self.process.stdout.readline() != b"ready\n":
            raise RuntimeError("the fork server did not start")

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()  # the server's signal to end
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)

    def run(self, args: list[str], env: dict[str, str], cwd: Path) -> Result:
        """One run in a child of the server: its output and status, within TIMEOUT_S."""
        started = self.start(args, env, cwd)
        try:
            stdout, stderr = started.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            started.communicate(timeout=10)  # the killed run's status: nothing left open
            raise
        assert started.returncode is not None
        return Result(started.returncode, stdout, stderr)

    def start(self, args: list[str], env: dict[str, str], cwd: Path) -> Started:
        """A run in a child of the server, started: stdin empty, stdout and stderr piped."""
        body = json.dumps({"argv": args, "env": env, "cwd": str(cwd)}).encode()
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        stdin = os.open(os.devnull, os.O_RDONLY)
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            connection.settimeout(TIMEOUT_S)
            connection.connect(self.path)
            header = struct.pack("!Q", len(body))
            socket.send_fds(connection, [header], [stdin, out_write, err_write])
            connection.sendall(body)
        except BaseException:
            connection.close()
            os.close(out_read)
            os.close(err_read)
            raise
        finally:
            for fd in (stdin, out_write, err_write):
                os.close(fd)
        return Started(connection, out_read, err_read)


class Started:
    """A run in a child of the fork server, as a `Process`: the server, whose child it is, tells
    its exit status over `connection` (a line after the pid's); it is signalled through a pidfd,
    which cannot reach another process once it has ended."""

    def __init__(self, connection: socket.socket, stdout: int, stderr: int) -> None:
        self._connection, self._pipes = connection, (stdout, stderr)
        self._received = b""
        self._streams: dict[int, bytearray] | None = None  # what the pipes gave, once read
        try:
            self.pid = int(self._line(time.monotonic() + TIMEOUT_S))
        except BaseException:
            for fd in self._pipes:
                os.close(fd)
            connection.close()
            raise
        self.returncode: int | None = None
        try:
            self._pidfd: int | None = os.pidfd_open(self.pid)
        except ProcessLookupError:  # ended and reaped already
            self._pidfd = None

    def _line(self, deadline: float) -> bytes:
        """The next line the server sends; TimeoutError past `deadline`."""
        while b"\n" not in self._received:
            self._connection.settimeout(max(deadline - time.monotonic(), 0))
            chunk = self._connection.recv(64)  # socket.timeout is TimeoutError
            if not chunk:
                raise ConnectionError("the fork server did not say how the run ended")
            self._received += chunk
        line, self._received = self._received.split(b"\n", 1)
        return line

    def _ended(self, deadline: float) -> None:
        self.returncode = int(self._line(deadline))
        self._connection.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def poll(self) -> int | None:
        if self.returncode is None and (
            b"\n" in self._received or select.select([self._connection], [], [], 0)[0]
        ):
            self._ended(time.monotonic() + TIMEOUT_S)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None and self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):  # it has ended meanwhile
                signal.pidfd_send_signal(self._pidfd, sig)

    def communicate(
        self, input: bytes | None = None, timeout: float | None = None
    ) -> tuple[bytes, bytes]:
        """Both pipes read to their end, then the status; TimeoutExpired (the run killed). As
        with `subprocess.Popen`, it may be called again: after a timeout, for the status."""
        assert input is None, "stdin is empty"
        deadline = time.monotonic() + (TIMEOUT_S if timeout is None else timeout)
        try:
            if self._streams is None:  # the pipes are closed once read, however that ends
                self._streams = {fd: bytearray() for fd in self._pipes}
                _drain(self._streams, deadline)
            if self.returncode is None:
                self._ended(deadline)
        except TimeoutError:
            self.send_signal(signal.SIGKILL)
            raise subprocess.TimeoutExpired(["opper-usage"], timeout or TIMEOUT_S) from None
        return bytes(self._streams[self._pipes[0]]), bytes(self._streams[self._pipes[1]])


def _drain(streams: dict[int, bytearray], deadline: float) -> None:
    """Read every pipe in `streams` to its end (and close it); TimeoutError past `deadline`."""
    with selectors.DefaultSelector() as watch:
        try:
            for fd in streams:
                watch.register(fd, selectors.EVENT_READ)
            while watch.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                for key, _ in watch.select(remaining):
                    chunk = os.read(key.fd, 65536)
                    if chunk:
                        streams[key.fd] += chunk
                    else:
                        watch.unregister(key.fd)
        finally:
            for fd in streams:
                os.close(fd)


_servers: list[ForkServer | None] = []


def fork_server() -> ForkServer | None:
    """The server, started once; None where it cannot run (no `os.pidfd_open`)."""
    if not _servers:
        _servers.append(ForkServer() if hasattr(os, "pidfd_open") else None)
    return _servers[0]


def run_in_terminal(args: list[str], terminal: str, columns: int = 200) -> tuple[int, bytes, bytes]:
    """Run the command with `terminal` ("stdout" or "stderr") on a pseudo-terminal of
    `columns` columns and the other stream on a pipe; (status, terminal bytes, pipe bytes)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    streams: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    streams[terminal] = slave
    env = environment(TERM="xterm", COLUMNS=str(columns))
    proc = subprocess.Popen(
        [*MODULE, *args], stdin=subprocess.DEVNULL, env=env, cwd=ROOT, **streams
    )
    os.close(slave)
    seen = bytearray()
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the command closed the terminal, i.e. it has ended
                break
            if not chunk:
                break
            seen += chunk
        else:
            raise AssertionError(f"the command did not end in time; it wrote {bytes(seen)!r}")
        piped = proc.communicate(timeout=30)[0 if terminal == "stderr" else 1]
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode, bytes(seen), piped or b""


def run_in_tmux(
    tmp_path: Path, args: list[str], columns: int = 250, escapes: bool = False
) -> tuple[str, str]:
    """Run the command in a tmux pane (a real terminal emulator) `columns` wide, after a marker
    line; the pane's text once it has ended (with its colours as escapes if `escapes`), and
    the pane's title."""
    tmux = shutil.which("tmux")
    if tmux is None:
        pytest.fail("tmux is needed for the terminal tests: apt-get install tmux")
    script = tmp_path / "run.sh"
    command = shlex.join([sys.executable, "-m", "opperai_usage", *args])
    script.write_text(f'printf "MARK-BEFORE\\n"\n{command}\necho "EXIT:$?"\nexec cat\n')
    base = [tmux, "-S", str(tmp_path / "tmux.sock"), "-f", "/dev/null"]
    env = environment(TERM="xterm-256color")
    for name in ("COLUMNS", "LINES"):  # the pane's size, not this process's (xdist sets them)
        env.pop(name, None)
    subprocess.run(
        [*base, "new-session", "-d", "-s", "hostile", "-x", str(columns), "-y", "50", "-c",
         str(ROOT), "sh", str(script)],
        env=env, check=True, timeout=30,
    )  # fmt: skip
    capture = [*base, "capture-pane", "-p", "-J", *(["-e"] if escapes else []), "-t", "hostile"]
    try:
        deadline = time.monotonic() + 60
        while True:
            screen = subprocess.run(
                capture, capture_output=True, text=True, check=True, timeout=30
            ).stdout
            if "EXIT:" in screen:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"the command did not end in time; the pane shows:\n{screen}")
            time.sleep(0.05)  # poll
        title = subprocess.run(
            [*base, "display-message", "-p", "-t", "hostile", "#{pane_title}"],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout.strip()  # fmt: skip
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True, timeout=30, check=False)
    return screen, title
