"""The pytest plugin of opperai-usage: the `opper_usage_server` fixtures.

pytest loads it through the `pytest11` entry point in every run of every project that has
opperai-usage installed, so it must cost next to nothing: it imports only pytest (the package's
`__init__` loads nothing until a name is asked for), and the server is imported when a test
asks for it. `-p no:opperai_usage` turns it off.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from opperai_usage.testing import UsageServer

#: The key the fixtures' servers accept, and the only one: the convention for tests.
API_KEY = "test"


@pytest.fixture
def opper_usage_server() -> Iterator[UsageServer]:
    """A started `UsageServer(api_key="test")` of this test's own, closed after it.

    Point the code under test at `opper_usage_server.url` with the key `"test"`; any other
    key gets a 401, as a wrong key would from Opper.
    """
    from opperai_usage.testing import UsageServer

    with UsageServer(api_key=API_KEY) as server:
        yield server


@pytest.fixture(scope="session")
def opper_usage_server_session() -> Iterator[UsageServer]:
    """One started `UsageServer(api_key="test")` for the whole run, for session-scoped
    fixtures that need its URL once; tests that script it or count its requests call
    `reset()` first."""
    from opperai_usage.testing import UsageServer

    with UsageServer(api_key=API_KEY) as server:
        yield server
