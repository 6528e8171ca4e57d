"""Running `opper-usage` as a person does: a separate process, its own environment, its output
read as bytes (CSV line ends and encodings are part of what is tested)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shlex
import shutil
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    """`python -m opperai_usage ARGS` (or `command`), to completion, within TIMEOUT_S."""
    done = subprocess.run(
        [*(command or MODULE), *args],
        capture_output=True,
        env=environment() if env is None else env,
        cwd=cwd,
        timeout=TIMEOUT_S,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


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
