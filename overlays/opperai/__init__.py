"""opperai: a fast, typed drop-in for the official SDK's `opper.analytics.get_usage`.

from opperai import Opper

with Opper(http_bearer="...") as opper:
    items = opper.analytics.get_usage(fields=["total_tokens"], group_by=["model"])
"""

from . import errors, models, utils
from ._client import InsecureTransportWarning, Opper
from ._version import __version__

__all__ = ["InsecureTransportWarning", "Opper", "__version__", "errors", "models", "utils"]
