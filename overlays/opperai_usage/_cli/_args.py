"""The command's arguments: the parser, the value types it reads (`--last`, `--month`,
`--timeout`) and the time range they make."""

from __future__ import annotations

import argparse
import datetime as dt
import re
from pathlib import Path

from .._validation import InvalidArgumentError
from .._version import __version__
from ._failures import PROG, UsageError

#: The command-line flag for each library parameter, for error messages.
FLAGS = {
    "from_date": "--from",
    "to_date": "--to",
    "granularity": "--granularity",
    "fields": "--field",
    "group_by": "--group-by",
    "server_url": "--server-url",
    "timeout_ms": "--timeout",
    "tz": "--tz",
}
FORMATS = ("table", "csv", "json", "jsonl", "focus")
_SPAN = re.compile(r"([0-9]+)([hdw])")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}
_UTC = dt.timezone.utc
#: `--timeout` at most: a day per attempt (far past any real answer, and inside what the
#: timers below the client take).
MAX_TIMEOUT_S = 86_400
#: `--last` at most: 100 years, in each unit.
MAX_SPAN = {"h": 876_000, "d": 36_500, "w": 5_214}


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    if value > MAX_TIMEOUT_S:
        raise argparse.ArgumentTypeError(
            f"must be at most {MAX_TIMEOUT_S} seconds (a day), not {text!r}"
        )
    return value


def _span(text: str) -> dt.timedelta:
    match = _SPAN.fullmatch(text.strip())
    if not match or not match[1].lstrip("0"):
        raise argparse.ArgumentTypeError(
            f"must be a count and a unit, h (hours), d (days) or w (weeks), such as 7d, "
            f"not {text!r}"
        )
    digits, unit = match[1].lstrip("0"), match[2]
    count = int(digits) if len(digits) <= len(str(MAX_SPAN[unit])) else MAX_SPAN[unit] + 1
    if count > MAX_SPAN[unit]:
        limits = ", ".join(f"{limit}{name}" for name, limit in MAX_SPAN.items())
        raise argparse.ArgumentTypeError(f"must be at most 100 years ({limits}), not {text!r}")
    return dt.timedelta(**{_UNITS[unit]: count})


def _month(text: str) -> tuple[dt.datetime, dt.datetime]:
    try:
        start = dt.datetime.strptime(text.strip(), "%Y-%m").replace(tzinfo=_UTC)
        following = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    except ValueError:  # not a month, or 9999-12 (which ends in year 10000)
        raise argparse.ArgumentTypeError(
            f"must be a month as YYYY-MM, such as 2026-11 (0001-01 to 9999-11), not {text!r}"
        ) from None
    return start, following


def build_parser() -> argparse.ArgumentParser:
    """The command's arguments. Granularities are the generated enum's values."""
    from ..models import Granularity  # the spec's list, not a copy of it

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
            "--field total_tokens --format csv -o november.csv. Budgets: opper-usage check --help"
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
        help="one calendar month in UTC, or in --tz's zone (instead of --from/--to)",
    )
    query = parser.add_argument_group("what to sum and group by")
    query.add_argument(
        "--granularity",
        metavar="UNIT",
        help=f"time bucket size: {granularities} (the API's default: day), or week or quarter",
    )
    query.add_argument(
        "--tz",
        metavar="ZONE",
        help="sum into the days, ISO weeks, months, quarters or years of this IANA time zone "
        "(such as Europe/Stockholm), with a period and an incomplete column; --from/--to "
        "without an offset, and --month, are read in it (week and quarter work without it, "
        "in UTC)",
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
        "array); jsonl (one object a line); focus (FOCUS 1.2 CSV, or Parquet for -o "
        "FILE.parquet)",
    )
    output.add_argument(
        "--csv-raw",
        action="store_true",
        help="with --format csv: write text cells exactly as the API sent them; by default a "
        "cell that starts with =, +, -, @, a tab or a carriage return gets a leading ' so "
        "that a spreadsheet shows it as text instead of running it as a formula",
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
    _add_spend_arguments(parser)
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


def _positive(text: str) -> int:
    digits = text.strip()
    if not (digits.isascii() and digits.isdigit() and len(digits) < 10 and int(digits) > 0):
        raise argparse.ArgumentTypeError(
            f"must be a whole number from 1 to 999999999, not {text[:40]!r}"
        )
    return int(digits)


def _add_spend_arguments(parser: argparse.ArgumentParser) -> None:
    """Chargeback (--top), the terminal chart (--chart) and FOCUS export (--format focus)."""
    spend = parser.add_argument_group("chargeback, chart and FOCUS export")
    spend.add_argument(
        "--top",
        type=_positive,
        metavar="N",
        help="with --group-by: keep the N values of the first group-by key that cost the most "
        "over the range, fold the rest into one (other) row per time bucket; missing or null "
        "values read (untagged)",
    )
    spend.add_argument(
        "--chart",
        nargs="?",
        const="cost",
        metavar="WHAT",
        help="print a bar chart per time bucket instead of the table, stacked by the first "
        "group-by key: of cost (the default), count, or a --field",
    )
    spend.add_argument(
        "--billing-account",
        metavar="ID",
        help="with --format focus: the BillingAccountId (default: OPPER_BILLING_ACCOUNT)",
    )
    spend.add_argument(
        "--focus-quantity",
        metavar="WHAT",
        help="with --format focus: ConsumedQuantity from count (the default) or a --field",
    )


def time_range(args: argparse.Namespace, now: dt.datetime) -> tuple[object, object]:
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


def usage_line(error: InvalidArgumentError) -> str:
    flag = FLAGS.get(error.parameter, error.parameter)
    text = str(error)
    if text.startswith(error.parameter):
        return flag + text[len(error.parameter) :]
    return f"{flag}: {text}"
