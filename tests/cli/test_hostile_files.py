"""Files and streams the command writes, in hostile places: a shared folder where someone plants
links, a file others must not read, SIGTERM mid-write, a full disk, a device that refuses, a
long name, a reader that leaves early. The command runs as a subprocess against the testing
kit's server process."""

from __future__ import annotations

import json
import os
import resource
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT
from tests.support.calls import ITEMS
from tests.support.command_line import MODULE, environment, run
from tests.support.servers import LocalServer

QUERY = ["--group-by", "model", "--group-by", "project.name", "--field", "total_tokens"]
#: Enough items that writing them takes a good part of a second: long enough to catch the
#: temporary file while it is being written.
MANY = 300_000


def start(*args: str, **options: Any) -> subprocess.Popen[bytes]:
    """`python -m opperai_usage ARGS`, started; stdout and stderr piped unless `options` say."""
    settings: dict[str, Any] = {
        "stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "stdin": subprocess.DEVNULL,
        "env": environment(), "cwd": ROOT,
    }  # fmt: skip
    settings.update(options)
    return subprocess.Popen([*MODULE, *args], **settings)


def await_new_file(
    folder: Path, known: set[str], proc: subprocess.Popen[bytes]
) -> tuple[Path, int] | None:
    """The first file to appear in `folder` beyond `known`, with its permission bits, seen
    while `proc` runs (polled as fast as the folder can be read); `None` if it ended first."""
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        for entry in os.scandir(folder):
            if entry.name in known:
                continue
            try:
                return Path(entry.path), stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
            except FileNotFoundError:  # renamed meanwhile
                continue
    return None


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, bytes, bytes]:
    stdout, stderr = proc.communicate(timeout=60)
    return proc.returncode, stdout, stderr


# -- the temporary file


def test_a_link_planted_where_the_temporary_file_goes_is_not_followed(
    local: LocalServer, tmp_path: Path
) -> None:
    """The old temporary name, `.NAME.PID.tmp`, could be guessed: a link planted there sent the
    output into another file, and the output path became that link."""
    local.script({"delay_ms": 500, "json": ITEMS})
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    target = tmp_path / "usage.csv"
    proc = start("--server-url", local.url, *QUERY, "--format", "csv", "-o", str(target))
    (tmp_path / f".{target.name}.{proc.pid}.tmp").symlink_to(victim)  # before it writes
    code, _, stderr = finish(proc)
    assert (code, stderr) == (0, b"")
    assert victim.read_text() == "precious"
    assert not target.is_symlink()
    assert target.read_text(encoding="utf-8").startswith("time_bucket,model,")


def test_the_temporary_file_of_a_private_file_is_private_from_the_start(
    local: LocalServer, tmp_path: Path
) -> None:
    local.script({"items": MANY})
    target = tmp_path / "usage.json"
    target.write_text("old")
    target.chmod(0o600)
    proc = start("--server-url", local.url, "--format", "json", "-o", str(target))
    seen = await_new_file(tmp_path, {target.name}, proc)
    code, _, stderr = finish(proc)
    assert (code, stderr) == (0, b"")
    assert seen is not None, "the temporary file was never seen"
    assert oct(seen[1]) == oct(0o600)  # never readable by others, even while written
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_a_new_file_gets_the_permissions_the_umask_gives(
    local: LocalServer, tmp_path: Path, umask: int, mode: int
) -> None:
    local.script({"json": ITEMS})
    target = tmp_path / "usage.csv"
    proc = start(
        "--server-url", local.url, "--format", "csv", "-o", str(target),
        preexec_fn=lambda: os.umask(umask),
    )  # fmt: skip
    code, _, stderr = finish(proc)
    assert (code, stderr) == (0, b"")
    assert oct(stat.S_IMODE(target.stat().st_mode)) == oct(mode)


def test_sigterm_while_writing_removes_the_temporary_file_and_keeps_the_old_one(
    local: LocalServer, tmp_path: Path
) -> None:
    local.script({"items": MANY})
    target = tmp_path / "usage.json"
    target.write_text("old")
    proc = start("--server-url", local.url, "--format", "json", "-o", str(target))
    seen = await_new_file(tmp_path, {target.name}, proc)
    assert seen is not None, "the temporary file was never seen"
    proc.send_signal(signal.SIGTERM)
    code, stdout, stderr = finish(proc)
    assert (code, stdout, stderr) == (143, b"", b"opper-usage: terminated\n")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_a_legal_250_character_name_works(local: LocalServer, tmp_path: Path) -> None:
    local.script({"json": ITEMS})
    target = tmp_path / ("u" * 246 + ".csv")
    result = run("--server-url", local.url, *QUERY, "--format", "csv", "-o", str(target))
    assert (result.code, result.err) == (0, "")
    assert target.read_text(encoding="utf-8").startswith("time_bucket,model,")
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


# -- the system refusing


def one_line_error(stderr: bytes) -> str:
    text = stderr.decode("utf-8")
    assert "Traceback" not in text
    assert text.count("\n") == 1, text
    return text


def test_a_full_device_is_a_one_line_error(local: LocalServer) -> None:
    local.script({"json": ITEMS})
    result = run("--server-url", local.url, *QUERY, "--format", "csv", "-o", "/dev/full")
    assert result.code == 1
    assert one_line_error(result.stderr) == (
        "opper-usage: error: cannot write '/dev/full': No space left on device\n"
    )


def test_standard_output_on_a_full_device_is_a_one_line_error(local: LocalServer) -> None:
    local.script({"json": ITEMS})
    with open("/dev/full", "wb") as full:
        proc = start("--server-url", local.url, *QUERY, "--format", "jsonl", stdout=full)
        code, _, stderr = finish(proc)
    assert code == 1
    assert one_line_error(stderr) == (
        "opper-usage: error: cannot write to standard output: No space left on device\n"
    )


def limit_file_size() -> None:
    """In the child: files may not grow past 64 KiB (writes past it fail with EFBIG, as on a
    full disk; Python ignores the SIGXFSZ that comes with it)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def test_a_disk_that_fills_up_mid_file_leaves_the_old_file_and_no_other(
    local: LocalServer, tmp_path: Path
) -> None:
    local.script({"items": 20_000})
    target = tmp_path / "usage.json"
    target.write_text("old")
    proc = start(
        "--server-url", local.url, "--format", "json", "-o", str(target),
        preexec_fn=limit_file_size,
    )  # fmt: skip
    code, _, stderr = finish(proc)
    assert code == 1
    assert one_line_error(stderr) == (
        f"opper-usage: error: cannot write {str(target)!r}: File too large\n"
    )
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_a_file_the_system_will_not_replace_is_a_one_line_error(local: LocalServer) -> None:
    """/proc/version: refused before sending when the folder is seen to be read-only (exit 2),
    or, as root, when the temporary file cannot be made there (exit 1)."""
    local.script({"json": ITEMS})
    result = run("--server-url", local.url, "--format", "csv", "-o", "/proc/version")
    assert result.code in (1, 2)
    assert one_line_error(result.stderr).startswith("opper-usage: error: ")
    assert "/proc/version" in result.err


def test_a_name_too_long_is_refused_before_anything_is_sent(
    local: LocalServer, tmp_path: Path
) -> None:
    name = "n" * 300
    result = run("--server-url", local.url, "-o", str(tmp_path / name))
    assert result.code == 2
    assert one_line_error(result.stderr) == (
        f"opper-usage: error: --output {str(tmp_path / name)!r} cannot be written: "
        "File name too long\n"
    )
    assert local.requests() == []


# -- a reader that leaves


@pytest.mark.parametrize("form", ["table", "csv", "json", "jsonl"])
@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_a_closed_pipe_stops_every_format_quietly_with_141(
    local: LocalServer, form: str, unbuffered: str
) -> None:
    """As `| head -1` does; with PYTHONUNBUFFERED=1 (`python -u`), too, where a table written
    in one piece used to be cut off and reported done (exit 0)."""
    local.script({"items": 50_000})
    env = environment(PYTHONUNBUFFERED=unbuffered)
    proc = subprocess.Popen(
        [*MODULE, "--server-url", local.url, "--format", form],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    assert proc.wait(timeout=60) == 141
    assert proc.stderr.read() == b""
    proc.stderr.close()
    expected: dict[str, Callable[[bytes], bool]] = {
        "table": lambda line: line.split() == [b"time_bucket", b"count", b"cost"],
        "csv": lambda line: line == b"time_bucket,count,cost\r\n",
        "json": lambda line: line == b"[\n",
        "jsonl": lambda line: "cost" in json.loads(line),
    }
    assert expected[form](first), first
