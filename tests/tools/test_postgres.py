"""tools/postgres.py: the PostgreSQL server `nox -s sync-postgres` runs its tests against."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import tools.postgres


@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_a_server_on_loopback_for_the_block_then_gone() -> None:
    import psycopg2

    with tools.postgres.server(tools.postgres.run_checked) as url:
        parts = urlsplit(url)
        assert parts.hostname == "127.0.0.1"
        assert parts.path == "/opper_usage"
        with psycopg2.connect(url) as connection, connection.cursor() as cursor:
            cursor.execute("SHOW listen_addresses")
            assert cursor.fetchone() == ("127.0.0.1",)
            cursor.execute("SHOW data_directory")
            (data,) = cursor.fetchone() or ("",)
    assert not Path(data).exists()
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", parts.port or 0))
