"""`UNSET`: "not given", as distinct from `None` (`opperai.types.UNSET` in the official SDK).

The overlay's own sentinel, so that importing `opperai_usage` does not load the generated package;
arguments left `UNSET` are simply not passed on to the generated code.
"""

from __future__ import annotations

from typing import Final, Literal


class Unset:
    """The type of `UNSET`; falsy, like `None`, but means "use the default"."""

    __slots__ = ()

    def __bool__(self) -> Literal[False]:
        return False

    def __repr__(self) -> str:
        return "UNSET"

    def __reduce__(self) -> str:
        return "UNSET"


UNSET: Final = Unset()

__all__ = ["UNSET", "Unset"]
