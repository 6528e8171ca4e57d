"""opperai_usage: a fast, typed drop-in for the official SDK's `opper.analytics.get_usage`.

from opperai_usage import Opper

with Opper(http_bearer="...") as opper:
    items = opper.analytics.get_usage(fields=["total_tokens"], group_by=["model"])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from . import errors, models, types, utils
    from ._calendar import fetch_granularity, roll_up
    from ._chargeback import top
    from ._client import InsecureTransportWarning, Opper
    from ._frames import to_pandas, to_polars

__all__ = [
    "InsecureTransportWarning",
    "Opper",
    "__version__",
    "errors",
    "fetch_granularity",
    "models",
    "roll_up",
    "to_pandas",
    "to_polars",
    "top",
    "types",
    "utils",
]
_SUBMODULES = frozenset({"errors", "models", "types", "utils"})
#: Names whose module is loaded on first use (PEP 562): `Opper` brings in httpx, the submodules
#: the generated package and attrs, `to_pandas`/`to_polars` pandas or polars when called. So
#: `import opperai_usage` alone (as the pytest plugin's import does) loads nothing more.
_LAZY_NAMES = {
    "Opper": "._client",
    "InsecureTransportWarning": "._client",
    "roll_up": "._calendar",
    "fetch_granularity": "._calendar",
    "to_pandas": "._frames",
    "to_polars": "._frames",
    "top": "._chargeback",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(_LAZY_NAMES[name], __name__), name)
        globals()[name] = value  # found directly from now on
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
