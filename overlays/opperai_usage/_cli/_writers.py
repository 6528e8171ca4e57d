"""The data formats: CSV (RFC 4180), JSON and JSON Lines, written from the column model.

Tags are chosen by the end users of our users, and a spreadsheet runs a cell that starts with
`=`, `+`, `-` or `@` (or a tab or a carriage return before one) as a formula. So CSV text cells
that start with one of those get a leading `'`, as OWASP advises, which a spreadsheet shows as
text; numbers stay as they are (`-5` is no formula), `cost` too when it is a decimal number.
`raw=True` (`--csv-raw`) writes every cell as the API sent it.

JSON has no NaN or infinities: a field the API sent as `NaN` or `Infinity` is written `null`.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import IO, TYPE_CHECKING, Any

from .._columns import (
    Columns,
    Value,
    column_values,
    finite,
    records,
    time_texts,
    value_text,
)

if TYPE_CHECKING:
    from ..models import GetUsageResultItem

#: What makes the csv module quote a cell (its default dialect: QUOTE_MINIMAL).
_NEEDS_QUOTES = re.compile('[,"\r\n]')
#: How a cell that a spreadsheet would run as a formula starts (OWASP's list).
_FORMULA = re.compile("[=+\\-@\t\r]")
#: A decimal number as the API writes a cost (`-0.5` is a number, not a formula).
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_CSV_CHUNK = 8192
_EMPTY_FOR_NULL: dict[object, str] = {None: ""}
_PLAIN = frozenset({str, int, float, bool, type(None)})
_NUMBERS = frozenset({int, float, type(None)})


def _csv_cells(values: list[Any]) -> tuple[list[str], bool]:
    """A column's cells as the csv module writes values (`str()`, a null as empty; an object
    or an array as JSON text), with C-level maps, and whether any might need quoting (a column
    of numbers cannot)."""
    kinds = set(map(type, values))
    if kinds <= {str}:
        return values, True
    if kinds <= {str, type(None)}:
        return list(map(_EMPTY_FOR_NULL.get, values, values)), True
    if kinds <= _PLAIN:
        cells = list(map(_EMPTY_FOR_NULL.get, values, map(str, values)))
    else:  # an object or an array somewhere: unhashable, and written as JSON
        cells = ["" if v is None else value_text(v) for v in values]
    return cells, not kinds <= _NUMBERS


def neutralised(text: str) -> str:
    """`text` with a leading `'` if a spreadsheet would take it for a formula."""
    return "'" + text if _FORMULA.match(text) else text


def _neutralise(cells: list[str], values: list[Any], is_cost: bool) -> list[str]:
    """A column's cells with each text cell that starts like a formula neutralised; numbers
    (and costs that are decimal numbers) left as they are. Cheap when none does."""
    if not any(map(_FORMULA.match, cells)):
        return cells
    return [
        neutralised(cell)
        if type(value) is str and not (is_cost and _DECIMAL.fullmatch(value))
        else cell
        for cell, value in zip(cells, values, strict=True)
    ]


def write_csv(
    items: Sequence[GetUsageResultItem], columns: Columns, out: IO[str], *, raw: bool = False
) -> None:
    """RFC 4180 with the csv module's default dialect: a header line, CRLF line ends, quotes only
    where needed, a null as an empty cell. `out` must be opened with `newline=""`, so line breaks
    inside values stay as they are. Text cells that start like a formula get a leading `'`
    (the header's too), unless `raw`.

    When no cell holds a comma, a quote or a line break (the usual case), the lines are joined
    directly, byte for byte what the csv module writes (a test holds the two equal) and about
    twice as fast; otherwise the csv module writes every row.
    """
    writer = csv.writer(out)
    names = list(columns.names)
    writer.writerow(names if raw else [neutralised(name) for name in names])
    values = column_values(items, columns)
    cells = [time_texts(values[0])]  # ISO 8601: never quoted, never a formula
    quoted = False
    last = len(values) - 1
    for index, column in enumerate(values[1:], 1):
        column_cells, may_need_quotes = _csv_cells(column)
        if not raw and may_need_quotes:  # a column of numbers holds no text
            column_cells = _neutralise(column_cells, column, is_cost=index == last)
        cells.append(column_cells)
        quoted = quoted or (may_need_quotes and bool(_NEEDS_QUOTES.search("".join(column_cells))))
    if quoted:
        writer.writerows(zip(*cells, strict=False))
        return
    lines = map(",".join, zip(*cells, strict=False))
    while chunk := list(islice(lines, _CSV_CHUNK)):
        out.write("\r\n".join(chunk) + "\r\n")


def _dumps(record: dict[str, Value]) -> str:
    try:
        return json.dumps(record, ensure_ascii=False, allow_nan=False)
    except ValueError:  # NaN or an infinity: JSON has none, so null
        return json.dumps(finite(record), ensure_ascii=False, allow_nan=False)


def write_json(items: Iterable[GetUsageResultItem], columns: Columns, out: IO[str]) -> None:
    """One JSON array of objects, one object a line (valid JSON that still greps well)."""
    lines = map(_dumps, records(items, columns))
    first = next(lines, None)
    if first is None:
        out.write("[]\n")
        return
    out.write("[\n" + first)
    for line in lines:
        out.write(",\n" + line)
    out.write("\n]\n")


def write_jsonl(items: Iterable[GetUsageResultItem], columns: Columns, out: IO[str]) -> None:
    """JSON Lines: one object per line."""
    for record in records(items, columns):
        out.write(_dumps(record) + "\n")
