"""Result and enum types: the generated models, extended only where users of the official SDK
need it."""

from __future__ import annotations

import copyreg
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

from ._generated.models import GetUsageResultItem as _GeneratedItem
from ._generated.models import Granularity
from ._generated.types import UNSET, Unset

__all__ = ["GetUsageResultItem", "Granularity"]


def _unset() -> Unset:
    return UNSET


# The generated `UNSET` (an item's `count` when the answer lacked it) stays the one object
# through pickle and deepcopy, so that `item.count is UNSET` and equality hold for copies.
copyreg.pickle(Unset, lambda _: (_unset, ()))


class GetUsageResultItem(_GeneratedItem, Mapping[str, Any]):
    """One time bucket (and group) of usage.

    The generated model (`time_bucket`, `cost`, `count`, the extra keys in
    `additional_properties`), plus:

    - a read-only mapping of all its keys: `item["cost"]`, `item["total_tokens"]`,
      `dict(item)`, `list(item)`, `len(item)`, `"model" in item`, `item.get("model")`; so
      `dict(item)` is what the official SDK's pydantic model gives, and a list of items is a
      list of records to anything that takes mappings (`pandas.DataFrame(items)`);
    - attribute access to the extra keys (`item.total_tokens`, as pydantic's `extra="allow"`
      gives the official SDK's users), where no method has the name (`keys`, `items`,
      `values`, `get`: use `item["items"]` for a tag called "items");
    - `model_dump()`, a new dict of it, as the official SDK's model has.

    `count` is `UNSET` (and no key of the mapping) when the answer lacked it.
    """

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        try:
            return self.additional_properties[key]
        except KeyError:
            if key == "time_bucket":
                return self.time_bucket
            if key == "cost":
                return self.cost
            if key == "count" and self.count is not UNSET:
                return self.count
            raise

    def _fields(self) -> tuple[str, ...]:
        return ("time_bucket", "cost") if self.count is UNSET else ("time_bucket", "cost", "count")

    def __iter__(self) -> Iterator[str]:
        yield from self._fields()
        yield from self.additional_properties

    def __len__(self) -> int:
        return len(self._fields()) + len(self.additional_properties)

    def __contains__(self, key: object) -> bool:
        return key in self._fields() or key in self.additional_properties

    def __setitem__(self, key: str, value: Any) -> NoReturn:
        raise TypeError(f"{type(self).__name__} is read-only; model_dump() gives a dict to change")

    def __delitem__(self, key: str) -> NoReturn:
        raise TypeError(f"{type(self).__name__} is read-only; model_dump() gives a dict to change")

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
        """The item as a new dict with Python values, like the official SDK's pydantic model."""
        fields: dict[str, Any] = {"time_bucket": self.time_bucket, "cost": self.cost}
        if self.count is not UNSET:
            fields["count"] = self.count
        return {**fields, **self.additional_properties}
