"""`opper-usage check`'s budgets: amounts and shares as typed on the command line, and the
`--budgets FILE` TOML file, every mistake in it refused naming its line.

The file (USD for one calendar month):

    total = 500                # all usage together (optional)
    warn_at = "80%"            # optional: as --warn-at

    [per."project.name"]       # one budget per value of this tag (quote a name with a dot)
    alpha = 200
    beta = "150.50"            # a number, or a decimal string for exact cents
    "(untagged)" = 20          # usage without the tag, or with it null

    [per.customer_id]
    acme = 100
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from ._failures import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the same parser, as a package (the `tomli` dependency)
    import tomli as tomllib

#: The budget key for usage without the tag (or with it null).
UNTAGGED = "(untagged)"
TOP_KEYS = ("total", "warn_at", "per")


@dataclass
class Budgets:
    """The total (or None), the share of a budget past which to warn, and per tag, per value,
    a budget."""

    total: Decimal | None = None
    warn_at: Decimal | None = None
    per: dict[str, dict[str, Decimal]] = field(default_factory=dict)


def amount(value: object, what: str) -> Decimal:
    """A budget: a positive number of USD (an int, a float, or a decimal string)."""
    text = value if isinstance(value, str) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = str(value)
    try:
        number = Decimal(text.strip()) if text is not None else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or number <= 0:
        raise UsageError(f"{what} must be a positive amount of USD, such as 500, not {value!r}")
    return number


def share(value: object, what: str) -> Decimal:
    """A share of a budget, as a percentage: `80%`, `80`, `"80.5%"` (above 0, at most 100)."""
    text = str(value).strip().removesuffix("%") if not isinstance(value, bool) else ""
    try:
        number: Decimal | None = Decimal(text)
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or not 0 < number <= 100:
        raise UsageError(f"{what} must be a percentage above 0 and at most 100, such as 80%, "
                         f"not {value!r}")  # fmt: skip
    return number / 100


def load(path: Path) -> Budgets:
    """The budgets in `path`; `UsageError` (exit 2) naming the file and the line of a mistake."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"--budgets: cannot read {path}: {error}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{path}: not TOML: {error}") from None
    lines = _LineFinder(text)

    def fail(where: tuple[str, ...], message: str) -> UsageError:
        number = lines.of(where)
        return UsageError(f"{path}, line {number}: {message}" if number else f"{path}: {message}")

    budgets = Budgets()
    for key, value in data.items():
        if key not in TOP_KEYS:
            allowed = ", ".join(TOP_KEYS)
            raise fail((key,), f"unknown key {key!r} (a budgets file holds {allowed})")
        try:
            if key == "total":
                budgets.total = amount(value, "total")
            elif key == "warn_at":
                budgets.warn_at = share(value, "warn_at")
        except UsageError as error:
            raise fail((key,), str(error)) from None
    per = data.get("per", {})
    if not isinstance(per, dict):
        raise fail(("per",), 'per must be tables of budgets, such as [per."project.name"]')
    for tag, values in per.items():
        if not isinstance(values, dict):
            raise fail(("per", tag), f"per.{tag} must be a table of budgets, one per value")
        budgets.per[tag] = {}
        for name, value in values.items():
            if isinstance(value, dict):
                raise fail(
                    ("per", tag, name),
                    f"per.{tag}.{name} is a table: quote a tag name holding a dot, "
                    f'as in [per."{tag}.{name}"]',
                )
            try:
                budgets.per[tag][name] = amount(value, f"the budget for {tag} = {name!r}")
            except UsageError as error:
                raise fail(("per", tag, name), str(error)) from None
    if budgets.total is None and not any(budgets.per.values()):
        raise UsageError(f"{path}: no budget in it: set total, or [per.TAG] budgets")
    return budgets


class _LineFinder:
    """The line each key of a TOML text is set on, found by reading each line's key (or table
    header) with the TOML parser itself, so quoted and dotted names are read as TOML reads
    them."""

    def __init__(self, text: str) -> None:
        self.keys = list(self._keys(text))

    def of(self, path: tuple[str, ...]) -> int | None:
        """The first line that sets `path`, or a key under it."""
        for number, found in self.keys:
            if found[: len(path)] == path:
                return number
        return None

    @staticmethod
    def _keys(text: str) -> Iterator[tuple[int, tuple[str, ...]]]:
        table: tuple[str, ...] = ()
        for number, line in enumerate(text.splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith("["):
                found = _path(stripped)
                if found is not None:
                    table = found
                    yield number, table
                continue
            for cut in (i for i, char in enumerate(stripped) if char == "="):
                found = _path(stripped[:cut] + "= 0")
                if found is not None:
                    yield number, (*table, *found)
                    break


def _path(snippet: str) -> tuple[str, ...] | None:
    """The key path a one-line TOML snippet sets (`a."b.c" = 0` gives ('a', 'b.c')), or None."""
    try:
        data: Any = tomllib.loads(snippet)
    except tomllib.TOMLDecodeError:
        return None
    path: list[str] = []
    while isinstance(data, dict) and len(data) == 1:
        key, data = next(iter(data.items()))
        path.append(key)
    return tuple(path)
