"""Result and enum types: the generated models, extended only where users of the official SDK
need it."""

from __future__ import annotations

from typing import Any

from ._generated.models import GetUsageResultItem as _GeneratedItem
from ._generated.models import Granularity

__all__ = ["GetUsageResultItem", "Granularity"]


class GetUsageResultItem(_GeneratedItem):
    """One time bucket (and group) of usage.

    The generated model, plus attribute access to the extra keys (`item.total_tokens`,
    as pydantic's `extra="allow"` gives the official SDK's users) besides `item["total_tokens"]`.
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails; never for private names, so that
        # copying and unpickling (which probe before the slots are set) stay safe.
        if name.startswith("_") or name == "additional_properties":
            raise AttributeError(name)
        try:
            return self.additional_properties[name]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute or extra key {name!r}"
            ) from None

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *self.additional_properties]

    def model_dump(self) -> dict[str, Any]:
        """The item as a dict with Python values, like the official SDK's pydantic model."""
        return {
            "time_bucket": self.time_bucket,
            "cost": self.cost,
            **self.additional_properties,
        }
