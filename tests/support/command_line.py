"""Running `opper-usage` as a person does: a separate process, its own environment, its output
read as bytes (CSV line ends and encodings are part of what is tested)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

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
