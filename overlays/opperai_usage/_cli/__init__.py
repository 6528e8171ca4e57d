"""The `opper-usage` command: arguments, one-line failures, output files, and what only the
command line writes (the table, the HTML report, CSV/JSON/JSON Lines, the progress line)."""

from ._main import main

__all__ = ["main"]
