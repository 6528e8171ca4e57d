"""`opper-usage sync` as a subprocess, against the kit's server process, into a DuckDB file in a
temporary folder: what it prints, its exit codes, two runs at once, SIGKILL at several points."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opperai_usage import Opper
from tests.support import API_KEY
from tests.support.command_line import Process, Result, environment, run, start
from tests.support.servers import LocalServer
from tests.support.sync import UTC, expected_rows, table_rows

#: One worker runs them all, so that the table synced once (`synced`) is made once.
pytestmark = pytest.mark.xdist_group("cli-sync")
GROUP_BY = ["model", "project.name"]
QUERY = ["--granularity", "hour", "--group-by", "model", "--group-by", "project.name"]
TABLE = "SELECT time_bucket, model, project_name, cost, count FROM opper.usage"


def since() -> dt.datetime:
    """Three days ago, on an hour: where the first run starts."""
    return (dt.datetime.now(UTC) - dt.timedelta(days=3)).replace(minute=0, second=0, microsecond=0)


def sync(local: LocalServer, folder: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    command = ["sync", "--server-url", local.url, *QUERY, *args]
    return run(*command, env=env, cwd=folder)


@pytest.fixture
def started(local: LocalServer) -> Iterator[Callable[..., Process]]:
    """Starts sync runs in a folder; when the test ends, passed or failed, a run still going is
    killed and every run's pipes are read to their end, so none outlives its test."""
    runs: list[Process] = []

    def begin(folder: Path, *args: str) -> Process:
        runs.append(start("sync", "--server-url", local.url, *QUERY, *args, cwd=folder))
        return runs[-1]

    yield begin
    for leftover in runs:
        leftover.send_signal(signal.SIGKILL)  # nothing, once it has ended
        leftover.communicate(timeout=10)


def wait_for(condition: Callable[[], object], what: str, budget: float = 20) -> None:
    deadline = time.monotonic() + budget
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {budget} s: {what}")
        time.sleep(0.005)


@pytest.fixture(scope="module")
def synced(
    server: LocalServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dt.datetime]:
    """A folder where a run has synced three days (`since()`), and that start: a test that
    starts from an existing table copies it (a run is two seconds of CPU)."""
    folder, start = tmp_path_factory.mktemp("synced"), since()
    done = sync(server, folder, "--since", start.isoformat())
    assert done.code == 0, done.err
    return folder, start


def copy_of(synced: tuple[Path, dt.datetime], folder: Path) -> dt.datetime:
    """The synced table and its working files, copied into `folder`; the start they hold."""
    shutil.copytree(synced[0], folder, dirs_exist_ok=True)
    return synced[1]


def matches_one_call(local: LocalServer, folder: Path, start: dt.datetime, end: str) -> None:
    """The table equals one `get_usage` over [start, end), and no key is there twice."""
    held = table_rows(TABLE, 3, folder / "opper_usage.duckdb")
    with Opper(http_bearer=API_KEY, server_url=local.url) as opper:
        items = opper.analytics.get_usage(
            from_date=start, to_date=end, granularity="hour", group_by=GROUP_BY
        )
    assert held == expected_rows(items, GROUP_BY, [])
    assert len({row[:3] for row in held}) == len(held)


def test_a_sync_prints_what_it_did_and_a_second_changes_nothing(
    local: LocalServer, tmp_path: Path
) -> None:
    start = since()
    first = sync(local, tmp_path, "--since", start.isoformat())
    assert first.code == 0, first.err
    lines = first.out.splitlines()
    assert lines[0].startswith(f"fetched {start:%Y-%m-%dT%H:%M:%SZ} to ")
    assert lines[0].endswith(f" into opper.usage in {tmp_path / 'opper_usage.duckdb'}")
    fetched = int(lines[1].split()[1])
    assert fetched > 0
    assert lines[1] == (
        f"rows: {fetched} fetched, {fetched} inserted, 0 updated, 0 unchanged, 0 removed"
    )
    assert re.fullmatch(r"took [0-9]+\.[0-9] s", lines[2])
    second = sync(local, tmp_path, "--format", "json")
    assert second.code == 0, second.err
    report = json.loads(second.out)
    assert report["rows"] == report["unchanged"]
    assert report["inserted"] == report["updated"] == report["removed"] == 0
    assert set(report) == {"from", "to", "rows", "inserted", "updated", "unchanged", "removed",
                           "table", "seconds"}  # fmt: skip
    matches_one_call(local, tmp_path, start, report["to"])


def without_dlt(folder: Path) -> dict[str, str]:
    """An environment in which `import dlt` fails, as without the sync extra."""
    shadow = folder / "shadow"
    shadow.mkdir()
    (shadow / "dlt.py").write_text("raise ImportError('dlt is not installed here')\n")
    return environment(PYTHONPATH=os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")]))


def test_without_the_extra_it_says_what_to_install(local: LocalServer, tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    done = sync(local, tmp_path, env=without_dlt(tmp_path))
    assert done.code == 2
    assert done.err == (
        "opper-usage: error: opper-usage sync needs the sync extra: "
        'pip install "opperai-usage[sync]"\n'
    )
    assert local.requests() == []
    assert list(tmp_path.iterdir()) == [shadow]


def test_another_set_is_refused_naming_both(
    local: LocalServer, tmp_path: Path, synced: tuple[Path, dt.datetime]
) -> None:
    copy_of(synced, tmp_path)
    done = run("sync", "--server-url", local.url, "--group-by", "model", cwd=tmp_path)
    assert done.code == 2
    assert done.err == (
        "opper-usage: error: the table 'usage' holds granularity hour, group by model, "
        "project.name, fields none; this run asks for granularity day, group by model, fields "
        "none: ask for what it holds, or sync into another table (--table NAME)\n"
    )
    assert local.requests() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--since", "yesterday"],
            "argument --since: must be a span such as 30d or an ISO 8601 date",
        ),
        (["--refetch", "0d"], "argument --refetch: must be a count and a unit"),
        (["--granularity", "fortnight"], "--granularity"),
        (["--db", "nowhere/x.duckdb"], "not a file in an existing folder"),
        (["--destination", "postgres", "--db", "x.duckdb"], "--db is the DuckDB file"),
        (["--group-by", "model", "--field", "model"], "one of the fields too"),
    ],
)
def test_bad_usage_exits_2_before_any_request(
    local: LocalServer, tmp_path: Path, args: list[str], message: str
) -> None:
    """Refused before dlt is imported (it takes a second): without dlt, the same message."""
    done = sync(local, tmp_path, *args, env=without_dlt(tmp_path))
    assert done.code == 2
    *_, last = done.err.splitlines()  # argparse writes its usage lines first
    assert last.startswith(("opper-usage: error: ", "opper-usage sync: error: "))
    assert message in last
    assert local.requests() == []


def test_an_api_failure_exits_1_on_one_line_and_changes_nothing(
    local: LocalServer, tmp_path: Path, synced: tuple[Path, dt.datetime]
) -> None:
    copy_of(synced, tmp_path)
    before = table_rows(TABLE, 3, tmp_path / "opper_usage.duckdb")
    local.script({"status": 401, "json": {"detail": f"bad key {API_KEY}"}})
    done = sync(local, tmp_path)
    assert done.code == 1
    assert done.err.startswith("opper-usage: UnauthorizedError: status 401")
    assert API_KEY not in done.err
    assert len(done.err.splitlines()) == 1
    assert table_rows(TABLE, 3, tmp_path / "opper_usage.duckdb") == before


def test_a_destination_failure_exits_1_on_one_line(local: LocalServer, tmp_path: Path) -> None:
    (tmp_path / "notes.duckdb").write_text("not a database\n")
    done = sync(local, tmp_path, "--db", "notes.duckdb")
    assert done.code == 1
    (line,) = done.err.splitlines()
    assert line.startswith("opper-usage: error: sync failed: ")
    assert "is not a valid DuckDB database file" in line
    assert (tmp_path / "notes.duckdb").read_text() == "not a database\n"


def test_a_second_run_at_once_fails_and_harms_nothing(
    local: LocalServer, tmp_path: Path, started: Callable[..., Process]
) -> None:
    start = since()
    local.script({"delay_ms": 30_000})  # the first run holds its lock until the reset below
    first = started(tmp_path, "--since", start.isoformat(), "--format", "json")
    wait_for(local.requests, "the first run's request")
    second = sync(local, tmp_path)
    assert second.code == 1
    assert second.err == (
        "opper-usage: error: another opper-usage sync is running on opper.usage in "
        f"{tmp_path / 'opper_usage.duckdb'}; nothing was done\n"
    )
    assert len(local.requests()) == 1
    local.reset()  # the first run's answer comes now
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    matches_one_call(local, tmp_path, start, json.loads(out)["to"])


def _loading(folder: Path) -> bool:
    """dlt has a load package that is being loaded (its jobs started)."""
    return any((folder / ".opper_usage.duckdb.dlt").glob("opper_usage/load/normalized/*/*"))


def _normalizing(folder: Path) -> bool:
    """dlt has an extracted package that is not loaded yet."""
    return any((folder / ".opper_usage.duckdb.dlt").glob("opper_usage/normalize/*/*"))


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("point", "first_run"),
    [("fetching", True), ("fetching", False), ("extracted", True), ("loading", True),
     ("loading", False)],
)  # fmt: skip
def test_a_run_killed_at_any_point_is_completed_by_the_next(
    local: LocalServer,
    tmp_path: Path,
    point: str,
    first_run: bool,
    synced: tuple[Path, dt.datetime],
    started: Callable[..., Process],
) -> None:
    start = since()
    if not first_run:  # a table there already, the killed run re-fetching its last day
        start = copy_of(synced, tmp_path)
    before = table_rows(TABLE, 3, tmp_path / "opper_usage.duckdb") if not first_run else None
    local.reset()
    if point == "fetching":
        local.script({"delay_ms": 30_000})
    victim = started(tmp_path, "--since", start.isoformat(), "--refetch", "1d")
    ready: dict[str, Callable[[], object]] = {
        "fetching": local.requests,
        "extracted": lambda: _normalizing(tmp_path),
        "loading": lambda: _loading(tmp_path),
    }
    wait_for(lambda: ready[point]() or victim.poll() is not None, f"the run {point}")
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=10)
    if victim.returncode != -signal.SIGKILL:
        pytest.fail(f"the run ended before it was killed {point}: {victim.returncode}")
    if before is not None:  # left as it was, or as it should be: never less
        after = table_rows(TABLE, 3, tmp_path / "opper_usage.duckdb")
        assert {row[:3] for row in before} <= {row[:3] for row in after}
    local.reset()
    done = sync(local, tmp_path, "--since", start.isoformat(), "--format", "json")
    assert done.code == 0, done.err
    matches_one_call(local, tmp_path, start, json.loads(done.out)["to"])


def test_the_key_is_in_no_file_it_leaves(
    local: LocalServer, tmp_path: Path, synced: tuple[Path, dt.datetime]
) -> None:
    copy_of(synced, tmp_path)  # the files a run left
    local.script({"status": 401, "json": {"detail": "no"}})
    assert sync(local, tmp_path).code == 1
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.name == "opper_usage.duckdb" for path in files)
    assert len(files) > 5
    assert [path for path in files if API_KEY.encode() in path.read_bytes()] == []


def test_the_filesystem_destination_writes_a_delta_table_of_parquet_files(
    local: LocalServer, tmp_path: Path
) -> None:
    from deltalake import DeltaTable

    start = since()
    lake = tmp_path / "lake"
    env = environment(DESTINATION__FILESYSTEM__BUCKET_URL=lake.as_uri())
    for _ in range(2):
        done = sync(local, tmp_path, "--destination", "filesystem", "--since", start.isoformat(),
                    env=env)  # fmt: skip
        assert done.code == 0, done.err
    lines = done.out.splitlines()
    assert lines[0].endswith(" into opper.usage in filesystem")
    assert lines[1].endswith(" fetched, inserted and updated not counted (files are not read back)")
    to = lines[0].split(" to ")[1].split(" ")[0]
    files = DeltaTable(str(lake / "opper" / "usage")).file_uris()
    query = f"SELECT time_bucket, model, project_name, cost, count FROM read_parquet({files!r})"  # noqa: S608
    held = table_rows(query, 3)
    with Opper(http_bearer=API_KEY, server_url=local.url) as opper:
        items = opper.analytics.get_usage(
            from_date=start, to_date=to, granularity="hour", group_by=GROUP_BY
        )
    assert held == expected_rows(items, GROUP_BY, [])


@pytest.mark.postgres
def test_a_postgres_table_is_kept_in_sync(local: LocalServer, tmp_path: Path) -> None:
    """Against the server `nox -s sync-postgres` starts (OPPER_USAGE_POSTGRES, its URL)."""
    import psycopg2

    url = os.environ.get("OPPER_USAGE_POSTGRES")
    if not url:
        pytest.fail("OPPER_USAGE_POSTGRES is not set: run these tests with nox -s sync-postgres")
    start = since()
    table = f"t{os.getpid()}_{time.monotonic_ns()}"  # a table of its own on the shared server
    env = environment(DESTINATION__POSTGRES__CREDENTIALS=url, DLT_DATA_DIR=str(tmp_path))
    args = ["--destination", "postgres", "--table", table, "--since", start.isoformat()]
    first = sync(local, tmp_path, *args, env=env)
    assert first.code == 0, first.err
    assert f" into opper.{table} in postgres" in first.out
    second = sync(local, tmp_path, *args, "--format", "json", env=env)
    assert second.code == 0, second.err
    report = json.loads(second.out)
    assert report["unchanged"] == report["rows"] > 0
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT time_bucket, model, project_name, cost, count FROM opper.{table}")  # noqa: S608
        held = sorted(cursor.fetchall(), key=lambda row: row[:3])
    with Opper(http_bearer=API_KEY, server_url=local.url) as opper:
        items = opper.analytics.get_usage(
            from_date=start, to_date=report["to"], granularity="hour", group_by=GROUP_BY
        )
    assert [(row[0].astimezone(UTC), *row[1:]) for row in held] == expected_rows(
        items, GROUP_BY, []
    )
