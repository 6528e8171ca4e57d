"""The command line's table: aligned columns, a totals line, and a fit to the terminal's width.

Numbers (the summed fields and `cost`) are right-aligned and never cut; when the rows are wider
than the terminal, the widest text columns (tags first) are shortened with an ellipsis. Widths
count terminal cells: East Asian wide characters take two, combining marks none.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._columns import Columns, Value, rows, sum_costs, sum_numbers, value_text
from ._text import printable

if TYPE_CHECKING:
    from ..models import GetUsageResultItem

GAP = "  "
NULL = "-"
ELLIPSIS = "…"
#: Text columns are not shortened below this many cells (or their own width, if less).
MIN_TEXT_WIDTH = 8


def cell_width(text: str) -> int:
    """How many terminal cells `text` takes."""
    if text.isascii():
        return len(text)
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


def shorten(text: str, width: int) -> str:
    """`text` cut to `width` cells, an ellipsis marking the cut."""
    if cell_width(text) <= width:
        return text
    kept, used = [], 0
    for char in text:
        used += cell_width(char)
        if used > width - 1:
            break
        kept.append(char)
    return "".join(kept) + ELLIPSIS


def _printable(value: Value) -> str:
    """A cell's text: control characters (a line break in a tag) escaped, as `repr` shows them;
    an object or an array as JSON."""
    if value is None:
        return NULL
    return printable(value_text(value))


def _fit(widths: list[int], shrinkable: Sequence[int], limit: int) -> list[int]:
    """Widths that fit `limit` cells (with the gaps), taking from the widest text column first:
    the text columns wider than MIN_TEXT_WIDTH are cut to one level (and one cell less for the
    first of them, as far as needed), never below MIN_TEXT_WIDTH. Found by bisection, so a
    tag of 50 MB costs no more than a short one."""
    widths = list(widths)
    excess = sum(widths) + len(GAP) * (len(widths) - 1) - limit
    wide = [i for i in shrinkable if widths[i] > MIN_TEXT_WIDTH]
    if excess <= 0 or not wide:
        return widths

    def cut(level: int) -> int:  # cells saved by cutting every wide column to `level`
        return sum(max(0, widths[i] - level) for i in wide)

    if cut(MIN_TEXT_WIDTH) <= excess:
        for i in wide:
            widths[i] = MIN_TEXT_WIDTH
        return widths
    low, high = MIN_TEXT_WIDTH, max(widths[i] for i in wide)  # cut(low) > excess >= cut(high)
    while high - low > 1:
        middle = (low + high) // 2
        if cut(middle) > excess:
            low = middle
        else:
            high = middle
    left = excess - cut(high)  # cut to `high`, then one cell more from the first `left` of them
    for i in wide:
        if widths[i] >= high:
            widths[i] = high
            if left > 0:
                widths[i], left = high - 1, left - 1
    return widths


def render_table(
    items: Sequence[GetUsageResultItem], columns: Columns, width: int | None = None
) -> str:
    """The table, with a rule under the header and a totals line; at most `width` cells wide
    when it can be (`None`: as wide as the values)."""
    names = columns.names
    numeric = set(range(columns.texts, len(names)))
    values = list(rows(items, columns))
    by_column: list[list[Value]] = [list(column) for column in zip(*values, strict=True)] or [
        [] for _ in names
    ]
    totals: list[Value] = [f"total, {len(values)} item{'' if len(values) == 1 else 's'}"]
    totals += [None] * (columns.texts - 1)
    totals += [sum_numbers(column) for column in by_column[columns.texts : -1]]
    totals.append(sum_costs(by_column[-1]))

    body = [[_printable(v) for v in row] for row in values]
    footer = ["" if v is None else _printable(v) for v in totals]
    lines = [list(map(printable, names)), *body, footer]
    widths = [max(cell_width(line[i]) for line in lines) for i in range(len(names))]
    if width is not None:
        text_columns = range(1, columns.texts)
        widths = _fit(widths, text_columns, width)

    def line(cells: list[str]) -> str:
        out = []
        for index, (cell, size) in enumerate(zip(cells, widths, strict=True)):
            cell = shorten(cell, size)
            pad = " " * (size - cell_width(cell))
            out.append(pad + cell if index in numeric else cell + pad)
        return GAP.join(out).rstrip()

    rule = GAP.join("-" * size for size in widths)
    return "\n".join([line(lines[0]), rule, *map(line, body), rule, line(footer)]) + "\n"
