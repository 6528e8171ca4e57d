"""opperai_usage: a fast, typed drop-in for the official SDK's `opper.analytics.get_usage`.

from opperai_usage import Opper

with Opper(http_bearer="...") as opper:
    items = opper.analytics.get_usage(fields=["total_tokens"], group_by=["model"])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._client import InsecureTransportWarning, Opper
from ._version import __version__

if TYPE_CHECKING:
    from . import errors, models, types, utils
    from ._frames import to_pandas, to_polars

__all__ = [
    "InsecureTransportWarning",
    "Opper",
    "__version__",
    "errors",
    "models",
    "to_pandas",
    "to_polars",
    "types",
    "utils",
]
_SUBMODULES = frozenset({"errors", "models", "types", "utils"})
#: Functions whose module is loaded on first use; pandas and polars only when they are called.
_LAZY_FUNCTIONS = {"to_pandas": "._frames", "to_polars": "._frames"}


def __getattr__(name: str) -> Any:
    """`opperai_usage.errors` and the like, loaded on first use (PEP 562): they bring in the
    generated package and attrs, which `from opperai_usage import Opper` alone does not need."""
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY_FUNCTIONS:
        return getattr(importlib.import_module(_LAZY_FUNCTIONS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
