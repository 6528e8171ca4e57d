"""opperai_usage: a fast, typed drop-in for the official SDK's `opper.analytics.get_usage`.

from opperai_usage import Opper

with Opper(http_bearer="...") as opper:
    items = opper.analytics.get_usage(fields=["total_tokens"], group_by=["model"])
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from ._client import InsecureTransportWarning, Opper
from ._version import __version__

if TYPE_CHECKING:
    from . import errors, models, types, utils

__all__ = [
    "InsecureTransportWarning",
    "Opper",
    "__version__",
    "errors",
    "models",
    "types",
    "utils",
]
_SUBMODULES = frozenset({"errors", "models", "types", "utils"})


def __getattr__(name: str) -> ModuleType:
    """`opperai_usage.errors` and the like, loaded on first use (PEP 562): they bring in the
    generated package and attrs, which `from opperai_usage import Opper` alone does not need."""
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
