"""Helpers shared by the tests, each written once; `tests/conftest.py` holds only fixtures."""

from __future__ import annotations

from pathlib import Path

#: The repository's root.
ROOT = Path(__file__).resolve().parent.parent.parent
#: The key the tests' clients send, and the one the `keyed` server accepts.
API_KEY = "test-key-0123456789abcdef"
