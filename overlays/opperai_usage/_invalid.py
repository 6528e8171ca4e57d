"""`InvalidArgumentError`, in a module of its own so that checking arguments (done before any
request, often before the generated code is loaded) costs no imports."""

from __future__ import annotations

from typing import Any


class InvalidArgumentError(ValueError):
    """An argument was rejected before any request was sent; `parameter` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its own arguments, so it pickles and copies (multiprocessing, task
        # queues) like any ValueError.
        return type(self), (self.parameter, str(self)), self.__dict__


InvalidArgumentError.__module__ = "opperai_usage.errors"  # where users import it from


def invalid(parameter: str, message: str) -> InvalidArgumentError:
    """The error for `parameter`, its message starting with the parameter's name."""
    return InvalidArgumentError(parameter, f"{parameter} {message}")
