"""The "not given" sentinel, shared with the generated code (`opperai.types.UNSET`, as in the
official SDK)."""

from opperai_usage_generated.types import UNSET, Unset

__all__ = ["UNSET", "Unset"]
