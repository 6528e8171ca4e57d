"""`opper-usage --html FILE`: one self-contained HTML page with an SVG chart of cost per time
bucket (stacked by the first group-by key), the data as a table, and the query behind it.

Nothing is loaded from anywhere: no scripts, fonts, images or style sheets, and a
Content-Security-Policy that forbids them, so the page opens the same offline, from a mail
attachment or from a ticket. Every value is escaped: tags are whatever the API's users put there.

The chart draws the costs that are numbers a chart can scale (finite, under `MAX_CHART_COST`);
any other (`NaN`, `Infinity`, `9E+999999`) is left out of the bars and shown as sent in the
data table, and the totals say what it makes of them (NaN, Infinity).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from html import escape
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from .._chargeback import OTHER, UNTAGGED
from .._columns import (
    Columns,
    Value,
    decimal_text,
    rows,
    sum_costs,
    sum_numbers,
    time_text,
    value_text,
)
from .._version import __version__

if TYPE_CHECKING:
    from ..models import GetUsageResultItem

#: Okabe-Ito and Tableau-like colours that stay apart for the common colour-vision deficiencies;
#: series past the last one are drawn together, as "other", in grey.
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f")
OTHER_COLOUR = "#bab0ac"
PLOT_HEIGHT = 280
TOP, RIGHT, BOTTOM, LEFT = 16, 16, 40, 80
#: Bars are this wide at most; narrower (down to MIN_BAND) to fit ~880 px, then the chart scrolls.
MAX_BAND, MIN_BAND, TARGET_WIDTH = 64.0, 5.0, 880.0
CHAR_PX = 7.0  # an 12 px sans-serif digit, roughly: spaces the bucket labels
#: Costs from this size on (a trillion dollars, per item) are not drawn: far past any real
#: cost, and a chart scaled to them would show nothing else.
MAX_CHART_COST = Decimal(10) ** 12

CSS = """
:root { color-scheme: light; --ink: #1f2328; --muted: #656d76; --line: #d0d7de; }
* { box-sizing: border-box; }
body { margin: 2rem auto; max-width: 1100px; padding: 0 1.5rem; color: var(--ink);
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .6rem; }
.sub { color: var(--muted); margin: 0 0 1.25rem; }
.stats { display: flex; flex-wrap: wrap; gap: 2.5rem; margin: 0 0 1.5rem; padding: 0; }
.stats div { display: flex; flex-direction: column-reverse; }
.stats dt { color: var(--muted); }
.stats dd { margin: 0; font-size: 1.45rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.chart { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; padding: .5rem; }
.chart svg { display: block; font-size: 12px; fill: var(--ink); }
.chart .grid { stroke: #eaeef2; } .chart .axis { stroke: #8c959f; }
.chart .ylab { text-anchor: end; fill: var(--muted); }
.chart .xlab { text-anchor: middle; fill: var(--muted); }
.legend { display: flex; flex-wrap: wrap; gap: .4rem 1.2rem; list-style: none; padding: 0;
          margin: .75rem 0 0; }
.legend li { display: flex; align-items: center; gap: .4rem; }
.swatch { width: .9rem; height: .9rem; border-radius: 2px; display: inline-block; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
.data { width: 100%; }
th, td { padding: .3rem .7rem; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: top; white-space: pre-wrap; }
thead th { position: sticky; top: 0; background: #f6f8fa; }
tfoot td { font-weight: 600; border-top: 2px solid var(--line); }
td.num, th.num { text-align: right; }
.null, .none { color: var(--muted); font-style: italic; }
code, pre { font: 12.5px/1.5 ui-monospace, "DejaVu Sans Mono", monospace; }
pre { background: #f6f8fa; padding: .75rem 1rem; border-radius: 6px; overflow-x: auto;
      white-space: pre-wrap; word-break: break-all; }
.query th { color: var(--muted); font-weight: normal; }
footer { color: var(--muted); margin-top: 2.5rem; font-size: .85rem; }
"""


@dataclass(frozen=True)
class Query:
    """What produced the data: the request sent (without its key), the arguments as given, and
    the command line that gave them (if any)."""

    request: str
    arguments: Sequence[tuple[str, str]]
    command: str | None = None


@dataclass(frozen=True)
class Series:
    """One stacked colour: a value of the first group-by key (or every value past the palette)."""

    label: str
    colour: str
    is_null: bool = False


@dataclass
class Bucket:
    """One bar: a time bucket's cost per series, exact."""

    when: dt.datetime
    costs: dict[int, Decimal]

    @property
    def total(self) -> Decimal:
        return sum(self.costs.values(), Decimal(0))


def _decimal(cost: str) -> Decimal:
    """A cost as the chart draws it: a number it can scale, else nothing (0)."""
    try:
        value = Decimal(cost)
    except InvalidOperation:
        return Decimal(0)
    return value if value.is_finite() and abs(value) < MAX_CHART_COST else Decimal(0)


def _item_cost(item: GetUsageResultItem) -> Decimal:
    return _decimal(item.cost)


def _stack(
    items: Sequence[GetUsageResultItem],
    key: str | None,
    measure: Callable[[GetUsageResultItem], Decimal] = _item_cost,
) -> tuple[list[Series], list[Bucket]]:
    """The series (largest total first) and the buckets (in time order) of the chart, of cost
    or of what `measure` reads off each item (the terminal chart's count or field)."""
    by_value: dict[str | None, Decimal] = {}
    cells: dict[tuple[dt.datetime, str | None], Decimal] = {}
    for item in items:
        raw = item.additional_properties.get(key) if key is not None else None
        value = None if raw is None else value_text(raw)
        cost = measure(item)
        by_value[value] = by_value.get(value, Decimal(0)) + cost
        cell = (item.time_bucket, value)
        cells[cell] = cells.get(cell, Decimal(0)) + cost
    ranked = sorted(by_value, key=lambda v: (v == OTHER, -by_value[v], v is None, v or ""))
    shown, rest = ranked[: len(PALETTE)], ranked[len(PALETTE) :]
    index = {value: slot for slot, value in enumerate(shown)}
    series = [
        Series(_series_label(value, key), PALETTE[slot], value is None and key is not None)
        for slot, value in enumerate(shown)
    ]
    if rest:
        index |= dict.fromkeys(rest, len(series))
        series.append(Series(f"{len(rest)} other{'s' if len(rest) > 1 else ''}", OTHER_COLOUR))
    buckets: dict[dt.datetime, Bucket] = {}
    for (when, value), cost in cells.items():
        bucket = buckets.setdefault(when, Bucket(when, {}))
        slot = index[value]
        bucket.costs[slot] = bucket.costs.get(slot, Decimal(0)) + cost
    return series, [buckets[when] for when in sorted(buckets, key=_utc)]


def _series_label(value: str | None, key: str | None) -> str:
    if value is not None:
        return value
    return UNTAGGED if key is not None else "all usage"


def _utc(when: dt.datetime) -> dt.datetime:
    return when.replace(tzinfo=dt.timezone.utc) if when.tzinfo is None else when


def _in_utc(when: dt.datetime) -> dt.datetime:
    """`when` in UTC; as it is when UTC is out of years 1-9999 (`0001-01-01T00:00+01:00`), and
    for a calendar roll-up's period (in its time zone, a `ZoneInfo`), which is drawn locally."""
    if isinstance(when.tzinfo, ZoneInfo):
        return when
    try:
        return _utc(when).astimezone(dt.timezone.utc)
    except OverflowError:
        return when


def _bucket_label(buckets: Sequence[Bucket]) -> str:
    """The shortest strftime format that tells these buckets apart (year, month, day, time)."""
    times = [_in_utc(b.when) for b in buckets]
    if all(t.time() == dt.time() for t in times):
        if all(t.day == 1 for t in times):
            return "%Y" if all(t.month == 1 for t in times) else "%Y-%m"
        return "%Y-%m-%d"
    return "%m-%d %H:%M"


def _nice_step(top: float, ticks: int = 5) -> float:
    """A round tick step (1, 2, 2.5 or 5 times a power of ten) giving about `ticks` ticks."""
    raw = top / ticks
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def _money(value: float, step: float) -> str:
    """A tick label: cents at least, and as many decimals as the step needs."""
    decimals = max(0, -math.floor(math.log10(step)))
    if round(step / 10 ** math.floor(math.log10(step)), 6) == 2.5:
        decimals += 1
    return f"${value:,.{max(2, decimals)}f}"


def _svg(series: list[Series], buckets: list[Bucket], key: str | None) -> str:
    """The stacked bar chart: one `<g class="bar">` per bucket, one `<rect>` per series in it."""
    count = max(len(buckets), 1)
    band = min(MAX_BAND, max(MIN_BAND, TARGET_WIDTH / count))
    plot_width = band * count
    width, height = LEFT + plot_width + RIGHT, TOP + PLOT_HEIGHT + BOTTOM
    peak = max((float(b.total) for b in buckets), default=0.0)
    step = _nice_step(peak) if peak > 0 else 0.25
    top = step * max(1, math.ceil(peak / step - 1e-9))
    fmt = _bucket_label(buckets) if buckets else "%Y-%m-%d"
    base = TOP + PLOT_HEIGHT
    what = f"by {key}" if key else "in all"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="chart-title" '
        f'width="{width:.0f}" height="{height}" viewBox="0 0 {width:.0f} {height}">',
        f'<title id="chart-title">Cost per time bucket, {escape(what)}</title>',
    ]
    ticks = round(top / step)
    for tick in range(ticks + 1):
        y = base - PLOT_HEIGHT * tick / ticks
        out.append(
            f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_width:.1f}" y1="{y:.1f}" '
            f'y2="{y:.1f}"/><text class="ylab" x="{LEFT - 8}" y="{y + 4:.1f}">'
            f"{_money(step * tick, step)}</text>"
        )
    labels = [_in_utc(b.when).strftime(fmt) for b in buckets]
    every = max(1, math.ceil((max(map(len, labels), default=0) * CHAR_PX + 12) / band))
    bar_width = max(1.0, band * 0.78)
    for position, bucket in enumerate(buckets):
        x = LEFT + band * position + (band - bar_width) / 2
        moment = time_text(bucket.when)
        total = bucket.total
        out.append(
            f'<g class="bar" data-bucket="{moment}" data-cost="{decimal_text(total)}">'
            f"<title>{escape(labels[position])}: ${decimal_text(total)}</title>"
        )
        y = float(base)
        for slot, colour in enumerate(series):
            cost = bucket.costs.get(slot)
            if cost is None:
                continue
            h = PLOT_HEIGHT * float(cost) / top
            y -= h
            out.append(
                f'<rect class="s{slot}" fill="{colour.colour}" x="{x:.2f}" y="{y:.2f}" '
                f'width="{bar_width:.2f}" height="{h:.2f}"><title>{escape(labels[position])}, '
                f"{escape(colour.label)}: ${decimal_text(cost)}</title></rect>"
            )
        out.append("</g>")
        if position % every == 0:
            out.append(
                f'<text class="xlab" x="{x + bar_width / 2:.1f}" y="{base + 18}">'
                f"{escape(labels[position])}</text>"
            )
    out.append(
        f'<line class="axis" x1="{LEFT}" x2="{LEFT + plot_width:.1f}" y1="{base}" y2="{base}"/>'
    )
    out.append("</svg>")
    return "\n".join(out)


def _cell(value: Value, numeric: bool) -> str:
    if value is None:
        return '<td class="null">null</td>'
    text = escape(value_text(value))
    return f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>"


def _data_table(items: Sequence[GetUsageResultItem], columns: Columns) -> str:
    names = columns.names
    first_number = columns.texts
    values = list(rows(items, columns))
    head = "".join(
        f'<th class="num">{escape(n)}</th>' if i >= first_number else f"<th>{escape(n)}</th>"
        for i, n in enumerate(names)
    )
    body = "\n".join(
        "<tr>" + "".join(_cell(v, i >= first_number) for i, v in enumerate(row)) + "</tr>"
        for row in values
    )
    by_column = list(zip(*values, strict=True)) or [() for _ in names]
    foot = [f"<td>total, {len(values)} item{'' if len(values) == 1 else 's'}</td>"]
    foot += ["<td></td>"] * (columns.texts - 1)
    foot += [
        f'<td class="num">{escape(value_text(sum_numbers(c)))}</td>'
        for c in by_column[first_number:-1]
    ]
    foot.append(f'<td class="num">{escape(sum_costs(by_column[-1]))}</td>')
    return (
        f'<table class="data"><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n'
        f"<tfoot><tr>{''.join(foot)}</tr></tfoot></table>"
    )


def render_report(
    items: Sequence[GetUsageResultItem],
    columns: Columns,
    query: Query,
    generated_at: dt.datetime | None = None,
) -> str:
    """The whole page, as text (write it as UTF-8)."""
    generated_at = (generated_at or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)
    key = columns.group_by[0] if columns.group_by else None
    series, buckets = _stack(items, key)
    total = sum_costs(item.cost for item in items)
    if buckets:
        fmt = _bucket_label(buckets)
        first, last = (_in_utc(b.when) for b in (buckets[0], buckets[-1]))
        zone = first.tzinfo if isinstance(first.tzinfo, ZoneInfo) else "UTC"
        span = f"time buckets from {first:{fmt}} to {last:{fmt}} ({zone})"
    else:
        span = "no usage in the range asked for"
    legend = "".join(
        f'<li><span class="swatch" style="background:{s.colour}"></span>'
        f'<span class="{"none" if s.is_null else "label"}">{escape(s.label)}</span></li>'
        for s in series
    )
    arguments = "".join(
        f"<tr><th>{escape(name)}</th><td><code>{escape(value)}</code></td></tr>"
        for name, value in query.arguments
    )
    command = (
        f"<p>Command line:</p><pre><code>{escape(query.command)}</code></pre>"
        if query.command
        else ""
    )
    stats = [
        (f"${escape(total)}", "total cost (USD)"),
        (f"{len(items):,}", "items"),
        (f"{len(buckets):,}", "time buckets"),
        (f"{len(series):,}", f"series ({escape(key)})" if key else "series"),
    ]
    stat_html = "".join(f"<div><dt>{label}</dt><dd>{value}</dd></div>" for value, label in stats)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Opper usage: {escape(span)}</title>
<style>{CSS}</style>
</head>
<body>
<h1>Opper usage</h1>
<p class="sub">{escape(span[0].upper() + span[1:])}</p>
<dl class="stats">{stat_html}</dl>
<h2>Cost per time bucket{escape(f", by {key}" if key else "")}</h2>
<div class="chart">
{_svg(series, buckets, key)}
</div>
<ul class="legend">{legend}</ul>
<h2>Data</h2>
{_data_table(items, columns)}
<h2>Query</h2>
<pre><code>{escape(query.request)}</code></pre>
<table class="query">{arguments}</table>
{command}
<footer>Made by opper-usage {escape(__version__)} at {time_text(generated_at)}.
Costs are in USD, as the API reports them.</footer>
</body>
</html>
"""
