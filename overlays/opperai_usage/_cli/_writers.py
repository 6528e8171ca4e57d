"""The data formats: CSV (RFC 4180), JSON and JSON Lines, written from the column model."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import IO, TYPE_CHECKING, Any

from .._columns import Columns, Value, column_values, records, time_texts

if TYPE_CHECKING:
    from ..models import GetUsageResultItem

#: What makes the csv module quote a cell (its default dialect: QUOTE_MINIMAL).
_NEEDS_QUOTES = re.compile('[,"\r\n]')
_CSV_CHUNK = 8192
_EMPTY_FOR_NULL: dict[object, str] = {None: ""}


def _csv_cells(values: list[Any]) -> tuple[list[str], bool]:
    """A column's cells as the csv module writes values (`str()`, a null as empty), with C-level
    maps, and whether any might need quoting (a column of numbers cannot)."""
    kinds = set(map(type, values))
    if kinds <= {str}:
        return values, True
    if kinds <= {str, type(None)}:
        return list(map(_EMPTY_FOR_NULL.get, values, values)), True
    cells = list(map(_EMPTY_FOR_NULL.get, values, map(str, values)))
    return cells, not kinds <= {int, float, type(None)}


def write_csv(items: Sequence[GetUsageResultItem], columns: Columns, out: IO[str]) -> None:
    """RFC 4180 with the csv module's default dialect: a header line, CRLF line ends, quotes only
    where needed, a null as an empty cell. `out` must be opened with `newline=""`, so line breaks
    inside values stay as they are.

    When no cell holds a comma, a quote or a line break (the usual case), the lines are joined
    directly, byte for byte what the csv module writes (a test holds the two equal) and about
    twice as fast; otherwise the csv module writes every row.
    """
    writer = csv.writer(out)
    writer.writerow(columns.names)
    values = column_values(items, columns)
    cells = [time_texts(values[0])]  # ISO 8601: never quoted
    quoted = False
    for column in values[1:]:
        column_cells, may_need_quotes = _csv_cells(column)
        cells.append(column_cells)
        quoted = quoted or (may_need_quotes and bool(_NEEDS_QUOTES.search("".join(column_cells))))
    if quoted:
        writer.writerows(zip(*cells, strict=False))
        return
    lines = map(",".join, zip(*cells, strict=False))
    while chunk := list(islice(lines, _CSV_CHUNK)):
        out.write("\r\n".join(chunk) + "\r\n")


def _dumps(record: dict[str, Value]) -> str:
    return json.dumps(record, ensure_ascii=False)


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
