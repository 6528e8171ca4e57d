"""`python -m opperai_usage`: the `opper-usage` command."""

from __future__ import annotations

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
