"""`opper-usage` (also `python -m opperai_usage`): usage from the command line, as a table,
CSV, JSON or JSON Lines, and optionally a self-contained HTML report.

Exit status: 0 when done; 1 when the API or the network failed (one line on stderr: the error
class, the status, the message and the request id); 2 for bad usage or bad arguments, including
what the library refuses before sending anything (nothing is sent then); 130 on Ctrl-C; 141
when whatever reads the output stops early (`| head`), as for any program that meets a closed
pipe.

The API key is read from `OPPER_API_KEY` or `OPPER_HTTP_BEARER` only: a key given as an
argument would show in `ps` and in shell history.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import re
import shlex
import shutil
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, TextIO

import httpx

from . import _credentials
from ._client import Opper
from ._export import Columns, columns_for, write_csv, write_json, write_jsonl
from ._invalid import InvalidArgumentError
from ._progress import Progress
from ._version import __version__

PROG = "opper-usage"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 130, 141
#: The command-line flag for each library parameter, for error messages.
FLAGS = {
    "from_date": "--from",
    "to_date": "--to",
    "granularity": "--granularity",
    "fields": "--field",
    "group_by": "--group-by",
    "server_url": "--server-url",
    "timeout_ms": "--timeout",
}
FORMATS = ("table", "csv", "json", "jsonl")
#: An error line longer than this is cut (an HTML error page from a proxy can be long).
MAX_ERROR_CHARS = 500
_SPAN = re.compile(r"(\d+)([hdw])")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}
_UTC = dt.timezone.utc


class UsageError(Exception):
    """Bad usage noticed after parsing: a one-line message, exit status 2, nothing sent."""


# -- arguments


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def _span(text: str) -> dt.timedelta:
    match = _SPAN.fullmatch(text.strip())
    if not match or int(match[1]) == 0:
        raise argparse.ArgumentTypeError(
            f"must be a count and a unit, h (hours), d (days) or w (weeks), such as 7d, "
            f"not {text!r}"
        )
    return dt.timedelta(**{_UNITS[match[2]]: int(match[1])})


def _month(text: str) -> tuple[dt.datetime, dt.datetime]:
    try:
        start = dt.datetime.strptime(text.strip(), "%Y-%m").replace(tzinfo=_UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a month as YYYY-MM, such as 2026-11, not {text!r}"
        ) from None
    following = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start, following


def build_parser() -> argparse.ArgumentParser:
    """The command's arguments. Granularities are the generated enum's values."""
    from .models import Granularity  # the spec's list, not a copy of it

    granularities = ", ".join(g.value for g in Granularity)
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Opper usage (cost and summed event metadata per time bucket and group) as a table, "
            "CSV, JSON or JSON Lines, and optionally an HTML report. The API key is read from "
            "OPPER_API_KEY (or OPPER_HTTP_BEARER), never from an argument; OPPER_BASE_URL "
            "points at another server."
        ),
        epilog=(
            "exit status: 0 done; 1 the API or the network failed; 2 bad usage or arguments "
            "(nothing is sent). Example: opper-usage --month 2026-11 --group-by model "
            "--field total_tokens --format csv -o november.csv"
        ),
    )
    when = parser.add_argument_group("time range (default: the API's, the current month)")
    when.add_argument(
        "--from",
        dest="from_date",
        metavar="WHEN",
        help="start, inclusive: an ISO 8601 date or date-time, such as 2026-11-01",
    )
    when.add_argument(
        "--to",
        dest="to_date",
        metavar="WHEN",
        help="end, exclusive: likewise, such as 2026-11-08T12:00Z",
    )
    shortcut = when.add_mutually_exclusive_group()
    shortcut.add_argument(
        "--last",
        type=_span,
        metavar="SPAN",
        help="the SPAN up to now, such as 12h, 7d or 2w (instead of --from/--to)",
    )
    shortcut.add_argument(
        "--month",
        type=_month,
        metavar="YYYY-MM",
        help="one calendar month in UTC (instead of --from/--to)",
    )
    query = parser.add_argument_group("what to sum and group by")
    query.add_argument(
        "--granularity",
        metavar="UNIT",
        help=f"time bucket size: {granularities} (the API's default: day)",
    )
    query.add_argument(
        "--field",
        dest="fields",
        action="append",
        metavar="KEY",
        help="an event_metadata key to sum; repeat for more",
    )
    query.add_argument(
        "--group-by",
        dest="group_by",
        action="append",
        metavar="KEY",
        help="a tag key to group by, such as model or project.name; repeat for "
        "more (the report stacks its chart by the first)",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table (default): aligned, with totals; csv (RFC 4180); json (one "
        "array); jsonl (one object a line)",
    )
    output.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="write there instead of to standard output (- for standard output)",
    )
    output.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="also write a self-contained HTML report: a chart, the data, the query",
    )
    connection = parser.add_argument_group("connection")
    connection.add_argument(
        "--server-url",
        metavar="URL",
        help="the API's URL (default: OPPER_BASE_URL + /v2, else https://api.opper.ai/v2)",
    )
    connection.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help="each attempt's time budget (default 60); failed attempts are "
        "retried as the library retries them",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _time_range(args: argparse.Namespace, now: dt.datetime) -> tuple[object, object]:
    """`from_date` and `to_date` for the library: as given (strings, read by the library), or
    from --last / --month."""
    shortcut = "--last" if args.last is not None else "--month" if args.month is not None else None
    if shortcut and (args.from_date is not None or args.to_date is not None):
        raise UsageError(f"{shortcut} sets the time range: leave out --from and --to")
    if args.last is not None:
        now = now.replace(microsecond=0)
        return now - args.last, now
    if args.month is not None:
        start, end = args.month
        return start, end
    return args.from_date, args.to_date


def _check_output(path: Path | None, flag: str) -> Path | None:
    """Where `path` leads (symbolic links followed), if it can be written; checked before
    anything is sent. `None` (and `-`) is standard output."""
    if path is None or str(path) == "-":
        return None
    target = Path(os.path.realpath(path))
    shown = str(path)
    if target.is_dir():
        raise UsageError(f"{flag} {shown!r} is a folder, not a file")
    if not target.parent.is_dir():
        raise UsageError(f"{flag} {shown!r}: the folder {str(path.parent)!r} does not exist")
    writable = os.access(target, os.W_OK) if target.exists() else True
    if _replaceable(target):  # written next to it first, then renamed over it
        writable = writable and os.access(target.parent, os.W_OK)
    if not writable:
        raise UsageError(f"{flag} {shown!r} cannot be written (permission denied)")
    return target


def _replaceable(target: Path) -> bool:
    """A new file or a regular one is replaced whole; anything else (/dev/null, a named pipe)
    is written in place, never replaced."""
    return not target.exists() or target.is_file()


# -- errors, one line each


def _one_line(text: str, secrets: Sequence[str]) -> str:
    text = " ".join(text.split())
    for secret in secrets:
        text = text.replace(secret, "<redacted>")
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 1] + "…"
    return text


def _detail(data: object) -> str:
    """What a documented error body's `detail` adds to its message (422: which parameter)."""
    detail = getattr(data, "detail", None)
    if isinstance(detail, str) and detail:
        return f": {detail}"
    if isinstance(detail, list):
        parts = [
            f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg', '')}"
            for d in detail
            if isinstance(d, dict)
        ]
        return f": {'; '.join(parts)}" if parts else ""
    return ""


def describe_failure(error: Exception) -> str:
    """The error class, status (or "no answer"), message and request id, in one line."""
    from .errors import OpperError

    name = type(error).__name__
    if isinstance(error, OpperError):
        request_id = error.request_id or "none"
        message = error.message + _detail(getattr(error, "data", None))
        return f"{name}: status {error.status_code}: {message} (request id {request_id})"
    where = ""
    try:
        request = error.request if isinstance(error, httpx.RequestError) else None
    except RuntimeError:  # an httpx error raised without a request
        request = None
    if request is not None:
        where = f" from {request.method} {request.url.copy_with(query=None)}"
    return f"{name}: no answer{where}: {error or 'no details'} (request id none)"


def _key_values() -> list[str]:
    """The keys in the environment, to scrub from anything printed (a server may echo them)."""
    values = (os.environ.get(name, "").strip() for name in _credentials.ENV_VARIABLES)
    return [value for value in values if len(value) >= 4]


def _usage_line(error: InvalidArgumentError) -> str:
    flag = FLAGS.get(error.parameter, error.parameter)
    text = str(error)
    if text.startswith(error.parameter):
        return flag + text[len(error.parameter) :]
    return f"{flag}: {text}"


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


# -- output


def _write_file(target: Path, write: Callable[[IO[str]], object]) -> None:
    """Write a regular file through a temporary one in the same folder, renamed over it at the
    end (keeping its permissions): a reader never sees half a file, and a failure leaves none.
    A device or a named pipe is written in place."""
    if not _replaceable(target):
        with target.open("w", encoding="utf-8", newline="") as out:
            write(out)
        return
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8", newline="") as out:
            write(out)
        if target.exists():
            shutil.copymode(target, temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _write_stdout(write: Callable[[IO[str]], object], table: bool) -> None:
    """Data formats go out as UTF-8 whatever the locale; a table in the terminal's encoding."""
    sys.stdout.flush()
    if table:
        out = io.TextIOWrapper(sys.stdout.buffer, encoding=sys.stdout.encoding, errors="replace")
    else:
        out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
    try:
        write(out)
        out.flush()
    finally:
        out.detach()


def _writer(
    form: str, items: Sequence[Any], columns: Columns, width: int | None
) -> Callable[[IO[str]], object]:
    if form == "table":
        from ._table import render_table

        return lambda out: out.write(render_table(items, columns, width))
    write = {"csv": write_csv, "json": write_json, "jsonl": write_jsonl}[form]
    return lambda out: write(items, columns, out)


def _query_description(args: argparse.Namespace, arguments: dict[str, Any], sent: str) -> Any:
    from ._export import time_text
    from ._report import Query

    def shown(value: object) -> str:
        if value is None:
            return "the API's default"
        if isinstance(value, dt.datetime):
            return time_text(value)
        if isinstance(value, list):
            return ", ".join(value)
        return str(value)

    names = {"from_date": "from", "to_date": "to", "granularity": "granularity"}
    names |= {"group_by": "group by", "fields": "fields"}
    pairs = [(label, shown(arguments.get(key))) for key, label in names.items()]
    command = shlex.join([PROG, *args.argv])
    return Query(sent, pairs, command)


# -- the command


def run(args: argparse.Namespace) -> int:
    """Everything after parsing; raises `UsageError` or `InvalidArgumentError` for exit 2."""
    from_date, to_date = _time_range(args, dt.datetime.now(_UTC))
    fields: list[str] = args.fields or []
    group_by: list[str] = args.group_by or []
    columns = columns_for((), fields, group_by)  # a key used twice is refused here
    output = _check_output(args.output, "--output")
    report = _check_output(args.html, "--html")
    if output is not None and output == report:
        raise UsageError("--output and --html name the same file")
    if not any(os.environ.get(name, "").strip() for name in _credentials.ENV_VARIABLES):
        raise UsageError(
            f"no API key: set {_credentials.ENV_VARIABLES[0]} (or "
            f"{_credentials.ENV_VARIABLES[1]}); the command never takes it as an argument"
        )
    arguments: dict[str, Any] = {
        "from_date": from_date,
        "to_date": to_date,
        "granularity": args.granularity,
        "fields": fields or None,
        "group_by": group_by or None,
    }
    sent: list[str] = []  # the request line as sent (the last attempt's), for the report

    def record(request: httpx.Request) -> None:
        sent.append(f"{request.method} {request.url}")

    timeout_ms = max(1, round(args.timeout * 1000)) if args.timeout else None
    with (
        httpx.Client(follow_redirects=True, event_hooks={"request": [record]}) as client,
        Opper(server_url=args.server_url, timeout_ms=timeout_ms, client=client) as opper,
        Progress(sys.stderr, "waiting for the usage API"),
    ):
        items = opper.analytics.get_usage(**arguments)

    if report is not None:
        from ._report import render_report

        page = render_report(items, columns, _query_description(args, arguments, sent[-1]))
        _write_file(report, lambda out: out.write(page))
    table = args.format == "table"
    if output is not None:
        _write_file(output, _writer(args.format, items, columns, None))
    else:
        to_terminal = table and sys.stdout.isatty()
        width = shutil.get_terminal_size().columns if to_terminal else None
        _write_stdout(_writer(args.format, items, columns, width), table)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """The console script's entry point; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)  # bad usage: argparse exits with 2
    args.argv = arguments
    from .errors import OpperError

    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return run(args)
        except UsageError as error:
            print(f"{PROG}: error: {_one_line(str(error), _key_values())}", file=sys.stderr)
            return EXIT_USAGE
        except InvalidArgumentError as error:
            print(f"{PROG}: error: {_one_line(_usage_line(error), _key_values())}", file=sys.stderr)
            return EXIT_USAGE
        except (OpperError, httpx.HTTPError) as error:
            line = _one_line(describe_failure(error), _key_values())
            print(f"{PROG}: {line}", file=sys.stderr)
            return EXIT_FAILED
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            # The reader has gone (`| head`): stop quietly, and keep Python's own flush of
            # stdout at exit from failing again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return EXIT_BROKEN_PIPE
