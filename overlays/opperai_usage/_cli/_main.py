"""`opper-usage` (also `python -m opperai_usage`): usage from the command line, as a table,
CSV, JSON or JSON Lines, and optionally a self-contained HTML report.

Exit status: 0 when done; 1 when the API or the network failed (one line on stderr: the error
class, the status, the message and the request id), or the output could not be written (a full
disk); 2 for bad usage or bad arguments, including what the library refuses before sending
anything (nothing is sent then); 130 on Ctrl-C; 141 when whatever reads the output stops early
(`| head`), as for any program that meets a closed pipe; 143 (129) on SIGTERM (SIGHUP) while a
file is being written, which is then left as it was.

The API key is read from `OPPER_API_KEY` or `OPPER_HTTP_BEARER` only: a key given as an
argument would show in `ps` and in shell history.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import shutil
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import IO, Any

import httpx

from .. import _credentials
from .._client import Opper
from .._columns import Columns, columns_for
from .._connections import default_tls_context
from .._validation import InvalidArgumentError, fields_to_send
from ._args import build_parser, time_range, usage_line
from ._failures import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    OutputError,
    Terminated,
    UsageError,
    describe_failure,
    key_values,
    one_line,
    show_warning,
)
from ._files import check_output, silence_stdout, write_file, write_stdout
from ._periods import CALENDAR_ONLY, plan
from ._progress import Progress
from ._text import REPLACE
from ._writers import write_csv, write_json, write_jsonl

_UTC = dt.timezone.utc
#: Each format's encoding error handler, for what UTF-8 cannot hold (a lone surrogate in a
#: tag): JSON writes it as the escape `\ud800` (the same string, read back), text formats
#: as U+FFFD.
ERRORS = {"table": REPLACE, "csv": REPLACE, "json": "backslashreplace", "jsonl": "backslashreplace"}
ERRORS["focus"] = REPLACE


def _writer(
    args: argparse.Namespace, items: Sequence[Any], columns: Columns, width: int | None
) -> Callable[[IO[str]], object]:
    if args.format == "focus":
        from ._focus import focus_parquet, write_focus_csv

        if args.output is not None and str(args.output).lower().endswith(".parquet"):
            data = focus_parquet(items, columns, args.focus)
            return lambda out: (out.flush(), out.buffer.write(data))  # type: ignore[attr-defined]
        return lambda out: write_focus_csv(items, columns, args.focus, out)
    if args.format == "table":
        from ._table import render_table

        return lambda out: out.write(render_table(items, columns, width))
    if args.format == "csv":
        return lambda out: write_csv(items, columns, out, raw=args.csv_raw)
    write = {"json": write_json, "jsonl": write_jsonl}[args.format]
    return lambda out: write(items, columns, out)


def _query_description(args: argparse.Namespace, arguments: dict[str, Any], sent: str) -> Any:
    from .._columns import time_text
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
    if args.tz is not None or args.granularity in CALENDAR_ONLY:  # summed into local periods
        pairs.append(("periods", f"{args.granularity or 'day'} in {args.tz or 'UTC'}"))
    command = shlex.join([PROG, *args.argv])
    return Query(sent, pairs, command)


def _fetch(opper: Opper, arguments: dict[str, Any]) -> tuple[list[Any], int]:
    """The items and how many windows they took: one call, or window by window when the range
    needs more than one (`iter_usage`), with how many are done in the progress line."""
    windowed = opper.analytics.iter_usage(**arguments)
    if windowed.windows == 1:  # one request, exactly as the library's one call sends it
        windowed.close()
        with Progress(sys.stderr, "waiting for the usage API"):
            return opper.analytics.get_usage(**arguments), 1

    def done() -> str:
        return f"{windowed.windows_done} of {windowed.windows} windows"

    with Progress(sys.stderr, "waiting for the usage API", status=done):
        return list(windowed), windowed.windows


def _check_spend_options(args: argparse.Namespace, fields: list[str], group_by: list[str]) -> None:
    """--top, --chart and --format focus: refused before anything is sent when they cannot
    work (the FOCUS settings are kept in `args.focus`)."""
    from ._focus import check_focus_options, check_parquet, focus_settings

    if args.top and not group_by:
        raise UsageError("--top needs --group-by KEY: it ranks the values of the first key")
    if args.chart and args.chart not in ("cost", "count", *fields):
        raise UsageError(f"--chart shows cost, count or a --field, not {args.chart!r}")
    if args.chart and args.format != "table" and str(args.output or "-") == "-":
        raise UsageError("--chart prints to standard output: write --format data with -o FILE")
    check_focus_options(args)
    args.focus = focus_settings(args, fields) if args.format == "focus" else None
    if args.focus and args.output and str(args.output).lower().endswith(".parquet"):
        check_parquet()


def _chart_writer(
    args: argparse.Namespace, items: Sequence[Any], columns: Columns
) -> Callable[[IO[str]], object]:
    from ._chart import render_chart

    styled = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    styled = styled and os.environ.get("TERM") != "dumb"
    width = shutil.get_terminal_size().columns
    return lambda out: out.write(render_chart(items, columns, args.chart, width, styled))


def require_api_key() -> None:
    """Bad usage (exit 2, nothing sent) when the environment holds no API key."""
    if not any(os.environ.get(name, "").strip() for name in _credentials.ENV_VARIABLES):
        raise UsageError(
            f"no API key: set {_credentials.ENV_VARIABLES[0]} (or "
            f"{_credentials.ENV_VARIABLES[1]}); the command never takes it as an argument"
        )


def timeout_ms(args: argparse.Namespace) -> int | None:
    """`--timeout` in milliseconds, for `Opper`."""
    return max(1, round(args.timeout * 1000)) if args.timeout else None


def run(args: argparse.Namespace) -> int:
    """Everything after parsing; raises `UsageError` or `InvalidArgumentError` for exit 2."""
    if args.csv_raw and args.format != "csv":
        raise UsageError("--csv-raw is for --format csv")
    now = dt.datetime.now(_UTC)
    from_date, to_date = time_range(args, now)
    fields = fields_to_send(args.fields or [])  # `--field count` refused, `--field cost` dropped
    group_by: list[str] = args.group_by or []
    columns = columns_for((), fields, group_by)  # a key used twice is refused here
    _check_spend_options(args, fields, group_by)
    periods = plan(args, now)  # --tz, week, quarter: local periods summed from UTC buckets
    if periods is not None:
        columns = periods.columns(columns)
    output = check_output(args.output, "--output")
    report = check_output(args.html, "--html")
    if output is not None and output == report:
        raise UsageError("--output and --html name the same file")
    require_api_key()
    arguments: dict[str, Any] = {
        "from_date": from_date,
        "to_date": to_date,
        "granularity": args.granularity,
        "fields": fields or None,
        "group_by": group_by or None,
    }
    if periods is not None:
        arguments |= periods.arguments()
    sent: list[str] = []  # the request line as sent (the last attempt's), for the report

    def record(request: httpx.Request) -> None:
        sent.append(f"{request.method} {request.url}")

    hooks = {"request": [record]}
    tls = default_tls_context()  # what Opper's own clients trust, loaded once per process
    with (
        httpx.Client(follow_redirects=True, event_hooks=hooks, verify=tls) as client,
        Opper(server_url=args.server_url, timeout_ms=timeout_ms(args), client=client) as opper,
    ):
        items, windows = _fetch(opper, arguments)
    if periods is not None:
        items = periods.roll_up(items, columns, arguments["granularity"])
    if windows > 1:  # fetched at once: the earliest window's request stands for them all
        sent.append(f"{min(sent)} (the first of {windows} windows)")

    if args.top:
        from .._chargeback import top

        items = top(items, args.top, group_by[0], fields=fields, group_by=group_by)
    if report is not None:
        from ._report import render_report

        page = render_report(items, columns, _query_description(args, arguments, sent[-1]))
        write_file(report, lambda out: out.write(page), REPLACE)
    table = args.format == "table"
    errors = ERRORS[args.format]
    if output is not None:
        write_file(output, _writer(args, items, columns, None), errors)
    if args.chart:
        write_stdout(_chart_writer(args, items, columns), True)
    elif output is None:
        to_terminal = table and sys.stdout.isatty()
        width = shutil.get_terminal_size().columns if to_terminal else None
        write_stdout(_writer(args, items, columns, width), table, errors)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """The console script's entry point; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    command, parser = run, build_parser
    if arguments[:1] == ["check"]:  # `opper-usage check`: budgets (_check)
        from . import _check

        command, parser, arguments = _check.run, _check.build_parser, arguments[1:]
    elif arguments[:1] == ["sync"]:  # `opper-usage sync`: a history in a database (_sync)
        from . import _sync

        command, parser, arguments = _sync.run_sync, _sync.build_sync_parser, arguments[1:]
    args = parser().parse_args(arguments)  # bad usage: argparse exits with 2
    args.argv = arguments
    from ..errors import OpperError

    with warnings.catch_warnings():
        warnings.showwarning = show_warning
        try:
            return command(args)
        except UsageError as error:
            print(f"{PROG}: error: {one_line(str(error), key_values())}", file=sys.stderr)
            return EXIT_USAGE
        except InvalidArgumentError as error:
            print(f"{PROG}: error: {one_line(usage_line(error), key_values())}", file=sys.stderr)
            return EXIT_USAGE
        except (OpperError, httpx.HTTPError) as error:
            line = one_line(describe_failure(error), key_values())
            print(f"{PROG}: {line}", file=sys.stderr)
            return EXIT_FAILED
        except OutputError as error:
            print(f"{PROG}: error: {one_line(str(error), key_values())}", file=sys.stderr)
            return EXIT_FAILED
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Terminated as signalled:
            print(f"{PROG}: terminated", file=sys.stderr)
            return 128 + signalled.signal_number
        except BrokenPipeError:
            # The reader has gone (`| head`): stop quietly, and keep Python's own flush of
            # stdout at exit from failing again.
            silence_stdout()
            return EXIT_BROKEN_PIPE
        except OSError as error:  # anything else the system refused: one line all the same
            print(f"{PROG}: error: {one_line(str(error), key_values())}", file=sys.stderr)
            return EXIT_FAILED
