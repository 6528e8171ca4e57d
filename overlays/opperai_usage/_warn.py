"""Warnings that point at the user's line, however many of this package's frames lie between
(a fixed `stacklevel` breaks whenever a call path inside the package changes)."""

from __future__ import annotations

import os
import sys
import warnings

_PACKAGE = os.path.dirname(__file__) + os.sep


def warn(message: str, category: type[Warning]) -> None:
    """`warnings.warn`, attributed to the first frame outside this package."""
    level, frame = 2, sys._getframe(1)  # 1 would be this function
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        level, frame = level + 1, frame.f_back
    warnings.warn(message, category, stacklevel=level)
