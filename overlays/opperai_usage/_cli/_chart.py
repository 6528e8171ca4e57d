"""`--chart`: a bar chart in the terminal, one bar per time bucket, stacked by the first
group-by key, of cost, of `count` or of a summed field.

Bars are horizontal, so bucket labels, bars and values each keep a column of their own
however many buckets there are; the scale's ticks fall on whole cells, with their labels
under them; the legend gives each series' total and share, aligned. On a terminal the bars are
Unicode blocks in colours (eighths of a cell at the end of a bar); elsewhere, and with
NO_COLOR or TERM=dumb, plain ASCII, one character per series. Series are ranked and grouped as
the HTML report's chart does (the largest eight, the rest together), from the same code.
Group values are escaped for the terminal, as in the table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from .._columns import COST, COUNT, PERIOD, Columns, decimal_text
from .._generated.types import Unset
from ._report import (
    Bucket,
    Series,
    _bucket_label,
    _decimal,
    _in_utc,
    _money,
    _nice_step,
    _stack,
)
from ._table import cell_width, shorten
from ._text import printable

if TYPE_CHECKING:
    from ..models import GetUsageResultItem

#: 256-colour codes near the HTML report's palette, in its order; the last is "others".
COLOURS = (67, 208, 71, 167, 109, 221, 139, 137)
OTHER_COLOUR = 248
#: Plain characters, one per series in the same order, and the one for "others".
PLAIN = "#=+*o%x@"
PLAIN_OTHER = "."
FULL = "█"
EIGHTHS = " ▏▎▍▌▋▊▉"  # 0 to 7 eighths of a cell
MIN_BAR = 10
GAP = "  "


def _measure(what: str) -> Callable[[GetUsageResultItem], Decimal]:
    """What each item adds to its bar, as a number the chart can scale (else 0)."""
    if what == COST:
        return lambda item: _decimal(item.cost)
    if what == COUNT:  # an answer without counts charts none
        return lambda item: Decimal(0 if isinstance(item.count, Unset) else item.count)

    def field(item: GetUsageResultItem) -> Decimal:
        value = item.additional_properties.get(what)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return Decimal(0)
        return _decimal(repr(value) if isinstance(value, float) else str(value))

    return field


def _amount(value: Decimal, what: str) -> str:
    """Cost exact, as the table shows it; counts and fields with thousands separators."""
    return decimal_text(value) if what == COST else f"{value.normalize():,f}"


def _tick(value: float, step: float, what: str) -> str:
    if what == COST:
        return _money(value, step)
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return f"{value:,.{decimals}f}"


def _paint(text: str, colour: int | None) -> str:
    return text if colour is None or not text else f"\x1b[38;5;{colour}m{text}\x1b[0m"


def _mark(slot: int, styled: bool) -> tuple[str, int | None]:
    """A series' character and colour: the report's order; past it, "others"."""
    if slot < len(COLOURS):
        return (FULL, COLOURS[slot]) if styled else (PLAIN[slot], None)
    return (FULL, OTHER_COLOUR) if styled else (PLAIN_OTHER, None)


def render_chart(
    items: Sequence[GetUsageResultItem],
    columns: Columns,
    what: str,
    width: int,
    styled: bool,
) -> str:
    """The chart as text, `width` cells wide (wider only where a terminal is too narrow for
    the labels and a bar of MIN_BAR cells); `styled`: Unicode blocks and colours, else ASCII."""
    key = columns.group_by[0] if columns.group_by else None
    series, buckets = _stack(items, key, _measure(what))
    unit = " (USD)" if what == COST else ""
    zone = buckets[0].when.tzinfo if buckets else None  # a calendar roll-up's (--tz)
    where = zone if isinstance(zone, ZoneInfo) else "UTC"
    title = f"{what}{unit} per time bucket ({where})" + (f", stacked by {key}" if key else "")
    if not buckets:
        return f"{printable(title)}\nno usage in the range asked for\n"
    marks = [_mark(slot, styled) for slot in range(len(series))]
    fmt = _bucket_label(buckets)
    periods = (
        {i.time_bucket: i.additional_properties.get(PERIOD) for i in items}
        if columns.labels
        else {}
    )
    labels = [printable(str(periods.get(b.when) or _in_utc(b.when).strftime(fmt))) for b in buckets]
    values = [_amount(b.total, what) for b in buckets]
    label_width, value_width = max(map(len, labels)), max(map(len, values))
    room = max(MIN_BAR, width - label_width - 2 - len(GAP) - value_width)
    peak = float(max(max(b.total for b in buckets), Decimal(0)))
    step = _nice_step(peak) if peak > 0 else 1.0
    ticks = max(1, math.ceil(peak / step - 1e-9))
    per_tick = max(1, room // ticks)
    cells = per_tick * ticks
    scale = Decimal(cells) / Decimal(repr(step * ticks))  # cells per unit of the value

    axis, corner, rule, mark = ("│", "└", "─", "┴") if styled else ("|", "+", "-", "+")
    lines = [printable(title), ""]
    for label, bucket, value in zip(labels, buckets, values, strict=True):
        bar, used = _bar(bucket.costs, scale, marks, styled)
        lines.append(
            f"{label:<{label_width}} {axis}{bar}{' ' * (cells - used)}{GAP}{value:>{value_width}}"
        )
    pad = " " * (label_width + 1)
    ruler = "".join(mark if (cell + 1) % per_tick == 0 else rule for cell in range(cells))
    lines.append(pad + corner + ruler)
    tick_texts = [_tick(step * index, step, what) for index in range(ticks + 1)]
    lines.append(_tick_line(tick_texts, label_width + 1, per_tick))
    lines.append("")
    lines.extend(_legend(series, buckets, marks, width, what))
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _bar(
    amounts: dict[int, Decimal],
    scale: Decimal,
    marks: Sequence[tuple[str, int | None]],
    styled: bool,
) -> tuple[str, int]:
    """One stacked bar and the cells it takes: each series from where the one before ends,
    in whole cells rounded on the running total (so a bar's length is its total's, whatever
    the parts); when styled, the last one ends in eighths of a cell."""
    parts, running, drawn = [], Decimal(0), 0
    slots = sorted(amounts)
    for index, slot in enumerate(slots):
        running += max(amounts[slot], Decimal(0))
        char, colour = marks[slot]
        if styled and index == len(slots) - 1:
            eighths = max(drawn * 8, int((running * scale * 8).to_integral_value()))
            full, rest = divmod(eighths - drawn * 8, 8)
            parts.append(_paint(char * full + (EIGHTHS[rest] if rest else ""), colour))
            drawn += full + (1 if rest else 0)
        else:
            end = max(drawn, int((running * scale).to_integral_value()))
            parts.append(_paint(char * (end - drawn), colour))
            drawn = end
    return "".join(parts), drawn


def _tick_line(texts: Sequence[str], origin: int, per_tick: int) -> str:
    """The scale's labels, each centred under its mark (the first at the corner, column
    `origin`), left out where one would touch the one before; the last is always shown."""
    placed: list[tuple[int, str]] = []
    for index, text in enumerate(texts):
        start = max(0, origin + index * per_tick - len(text) // 2)
        last = index == len(texts) - 1
        while placed and placed[-1][0] + len(placed[-1][1]) >= start and last:
            placed.pop()  # the top of the scale wins over the label before it
        if not placed or placed[-1][0] + len(placed[-1][1]) < start:
            placed.append((start, text))
    line = ""
    for start, text in placed:
        line = line.ljust(start) + text
    return line


def _legend(
    series: Sequence[Series],
    buckets: Sequence[Bucket],
    marks: Sequence[tuple[str, int | None]],
    width: int,
    what: str,
) -> list[str]:
    """One line per series: its mark, its name (escaped, cut to fit), its total and share."""
    sums = [Decimal(0)] * len(series)
    for bucket in buckets:
        for slot, part in bucket.costs.items():
            sums[slot] += part
    whole = sum(sums, Decimal(0))
    names = [printable(s.label) for s in series]
    amounts = [_amount(total, what) for total in sums]
    shares = [f"{total / whole * 100:.1f} %" if whole > 0 else "-" for total in sums]
    amount_width, share_width = max(map(len, amounts)), max(map(len, shares))
    room = max(8, width - 2 - amount_width - share_width - 2 * len(GAP))
    name_width = min(room, max(map(cell_width, names)))
    lines = []
    for (char, colour), name, amount, share in zip(marks, names, amounts, shares, strict=True):
        name = shorten(name, name_width)
        lines.append(
            f"{_paint(char, colour)} {name}{' ' * (name_width - cell_width(name))}{GAP}"
            f"{amount:>{amount_width}}{GAP}{share:>{share_width}}"
        )
    return lines
