"""`opper-usage check`: a month's spend against its budgets, with a forecast, for people (a
table) and for schedulers (`--format json`, and the exit status).

The forecast is the spend so far plus the mean spend of the month's complete days (local
days, in `--tz`'s zone, that ended before now), for each 24 hours left in the month. It is
made once a day is complete, and a month that has ended has none: its spend is final.

Exit status: 0 within every budget and every forecast within it; 3 a forecast over a budget,
or spend past `--warn-at`'s share of one; 4 spend over a budget; 1 the API failed; 2 bad usage
(nothing is sent). The worst of the budgets decides.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._calendar import fetch_granularity, first_day, label, local_start, next_first_day, roll_up
from .._client import Opper
from .._columns import decimal_text, time_text, value_text
from ._args import _month, _seconds
from ._budgets import UNTAGGED, Budgets, amount, load, share
from ._failures import EXIT_OK, PROG, UsageError
from ._files import write_stdout
from ._periods import _moment, month_range, time_zone
from ._table import cell_width
from ._text import REPLACE, printable

if TYPE_CHECKING:
    from ..models import GetUsageResultItem

EXIT_FORECAST_OVER, EXIT_SPEND_OVER = 3, 4
_UTC = dt.timezone.utc
_MICRO = Decimal("0.000001")
_DAY_SECONDS = Decimal(86_400)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} check",
        description=(
            "A month's spend against a budget (--budget) or budgets per tag value (--budgets "
            "FILE, TOML), with a forecast for the whole month at the run rate of its complete "
            "days. The API key is read from OPPER_API_KEY (or OPPER_HTTP_BEARER)."
        ),
        epilog=(
            "exit status: 0 within budget, forecast within it; 3 forecast over a budget, or "
            "spend past --warn-at; 4 spend over a budget; 1 the API failed; 2 bad usage. "
            "Example: opper-usage check --budget 500 --warn-at 80%"
        ),
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--budget", metavar="USD", help="the month's budget for all usage")
    which.add_argument(
        "--budgets", type=Path, metavar="FILE", help="a TOML file of budgets, per tag value"
    )
    parser.add_argument(
        "--month",
        type=_month,
        metavar="YYYY-MM",
        help="the month to check (default: this month, in --tz's zone)",
    )
    parser.add_argument(
        "--tz", metavar="ZONE", help="the IANA time zone of the month and its days (default UTC)"
    )
    parser.add_argument(
        "--warn-at",
        metavar="PERCENT",
        help="also exit 3 once spend is past this share of a budget, such as 80%%",
    )
    parser.add_argument(
        "--as-of",
        metavar="WHEN",
        help="check as of this moment (ISO 8601; without an offset, in --tz's zone) instead of "
        "now: usage up to it counts, and the days complete by then",
    )
    parser.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="table (default), for people; json, for programs",
    )
    parser.add_argument("--server-url", metavar="URL", help="the API's URL")
    parser.add_argument("--timeout", type=_seconds, metavar="SECONDS", help="each attempt's budget")
    return parser


@dataclass(frozen=True)
class Month:
    """The month checked: its label, zone and bounds (UTC), the moment of the check, how many
    of its days are complete and how many 24 hours are left in it."""

    label: str
    zone: str
    start: dt.datetime
    end: dt.datetime
    now: dt.datetime
    days: int
    complete_days: int

    @property
    def final(self) -> bool:
        return self.now >= self.end

    @property
    def days_left(self) -> Decimal:
        seconds = max((self.end - self.now).total_seconds(), 0.0)
        return Decimal(str(seconds)) / _DAY_SECONDS


@dataclass(frozen=True)
class Result:
    """One budget's status."""

    tag: str | None  # None: the total
    value: str | None
    budget: Decimal
    spent: Decimal
    forecast: Decimal | None
    warn_at: Decimal | None

    @property
    def scope(self) -> str:
        return "total" if self.tag is None else f"{self.tag} = {self.value}"

    @property
    def status(self) -> tuple[str, int]:
        if self.spent > self.budget:
            return "over", EXIT_SPEND_OVER
        if self.forecast is not None and self.forecast > self.budget:
            return "forecast over", EXIT_FORECAST_OVER
        if self.warn_at is not None and self.spent > self.warn_at * self.budget:
            return f"past {_percent(self.warn_at)}", EXIT_FORECAST_OVER
        return "ok", EXIT_OK

    @property
    def used(self) -> Decimal:
        return self.spent / self.budget * 100


def _percent(share: Decimal) -> str:
    """`Decimal("0.8")` as `80%`, `Decimal("0.805")` as `80.5%`."""
    text = decimal_text(share * 100)
    return (text.rstrip("0").rstrip(".") if "." in text else text) + "%"


def _month_of(args: argparse.Namespace, tz: dt.tzinfo, now: dt.datetime) -> Month:
    day = args.month[0].date() if args.month else first_day(now.astimezone(tz).date(), "month")
    start, end = month_range(day.year, day.month, tz)
    if now <= start:
        raise UsageError(f"{label(day, 'month')} has not begun as of {time_text(now)}")
    upto = min(now, end)
    days = complete = 0
    current: dt.date | None = day
    while current is not None and current.month == day.month:
        days += 1
        current = next_first_day(current, "day")
        if current is not None and local_start(current, tz) <= upto:
            complete += 1
    return Month(label(day, "month"), str(tz), start, end, now, days, complete)


def _matches(item: GetUsageResultItem, tag: str, value: str) -> bool:
    found = item.additional_properties.get(tag)
    return found is None if value == UNTAGGED else found is not None and value_text(found) == value


def _results(
    days: list[GetUsageResultItem], month: Month, budgets: Budgets, warn_at: Decimal | None
) -> list[Result]:
    scopes: list[tuple[str | None, str | None, Decimal]] = []
    if budgets.total is not None:
        scopes.append((None, None, budgets.total))
    for key, per in budgets.per.items():
        scopes += [(key, name, budget) for name, budget in per.items()]
    results = []
    for tag, value, budget in scopes:
        chosen = [d for d in days if tag is None or value is None or _matches(d, tag, value)]
        spent = sum((Decimal(d.cost) for d in chosen), Decimal(0))
        forecast = None
        if not month.final and month.complete_days:
            complete = sum((Decimal(d.cost) for d in chosen if not d["incomplete"]), Decimal(0))
            rate = complete / month.complete_days
            forecast = (spent + rate * month.days_left).quantize(_MICRO, ROUND_HALF_EVEN)
        results.append(Result(tag, value, budget, spent, forecast, warn_at))
    return results


def run(args: argparse.Namespace) -> int:
    """The check; returns the exit status (raises `UsageError` for exit 2)."""
    from ._main import _fetch, require_api_key, timeout_ms

    budgets = load(args.budgets) if args.budgets else Budgets(amount(args.budget, "--budget"))
    warn_at = budgets.warn_at if args.warn_at is None else share(args.warn_at, "--warn-at")
    tz = time_zone(args.tz or "UTC")
    now = dt.datetime.now(_UTC).replace(microsecond=0)  # as --last sends it
    now = now if args.as_of is None else _moment(args.as_of, "--as-of", tz)
    month = _month_of(args, tz, now)
    require_api_key()
    group_by = list(budgets.per)
    granularity = fetch_granularity(month.start, month.end, "day", tz)
    arguments: dict[str, Any] = {
        "from_date": month.start,
        "to_date": min(now, month.end),
        "granularity": granularity,
        "group_by": group_by or None,
    }
    with Opper(server_url=args.server_url, timeout_ms=timeout_ms(args)) as opper:
        items, _ = _fetch(opper, arguments)
    days = roll_up(
        items, "day", tz, start=month.start, end=arguments["to_date"], now=now,
        granularity=granularity, fields=[], group_by=group_by,
    )  # fmt: skip
    results = _results(days, month, budgets, warn_at)
    worst = max(result.status[1] for result in results)
    text = _json(month, results, worst) if args.format == "json" else _table(month, results)
    table = args.format == "table"
    write_stdout(lambda out: out.write(text), table, REPLACE if table else "backslashreplace")
    return worst


def _money(value: Decimal | None) -> str | None:
    return None if value is None else decimal_text(value)


def _json(month: Month, results: list[Result], worst: int) -> str:
    document = {
        "month": month.label,
        "time_zone": month.zone,
        "as_of": time_text(month.now),
        "final": month.final,
        "days": month.days,
        "complete_days": month.complete_days,
        "exit_status": worst,
        "budgets": [
            {
                "tag": result.tag,
                "value": result.value,
                "budget": _money(result.budget),
                "spent": _money(result.spent),
                "forecast": _money(result.forecast),
                "used_percent": float(round(result.used, 2)),
                "status": result.status[0],
            }
            for result in results
        ],
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def _table(month: Month, results: list[Result]) -> str:
    if month.final:
        head = f"{month.label} in {month.zone}: final, the month has ended"
        rule = "no forecast: the spend is final"
    else:
        head = (
            f"{month.label} in {month.zone}, as of {time_text(month.now)}: "
            f"{month.complete_days} of {month.days} days complete"
        )
        rule = (
            f"forecast: spent + the mean of the {month.complete_days} complete days x the "
            f"{month.days_left:.1f} days left"
            if month.complete_days
            else "no forecast yet: no day of the month is complete"
        )
    rows = [["scope", "spent", "forecast", "budget", "used", "status"]]
    for result in results:
        forecast = "-" if result.forecast is None else decimal_text(result.forecast)
        rows.append([
            printable(result.scope), decimal_text(result.spent), forecast,
            decimal_text(result.budget), f"{result.used:.1f}%", result.status[0],
        ])  # fmt: skip
    widths = [max(cell_width(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(cells: list[str]) -> str:
        padded = [
            cell + " " * (width - cell_width(cell))
            if index in (0, 5)
            else " " * (width - cell_width(cell)) + cell
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    ruler = "  ".join("-" * width for width in widths)
    return "\n".join([head, "", line(rows[0]), ruler, *map(line, rows[1:]), "", rule]) + "\n"
