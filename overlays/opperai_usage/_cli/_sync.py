"""`opper-usage sync`: usage loaded into a table and kept up to date, by dlt
(`opperai_usage.sync`, the `sync` extra), into a DuckDB file by default.

dlt's working folder (load packages between fetching and loading) is private to one
destination: for a DuckDB file, `.NAME.dlt/` beside it; for another destination, dlt's own
(`~/.dlt/pipelines/`). What the table holds and how far it is synced is kept in the
destination, by dlt, so a run on another machine continues from there. A lock file in the
working folder lets one run at a time use it; a second fails at once and changes nothing.
dlt's anonymous telemetry is off unless the environment turns it on.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from dateutil.parser import isoparse

from .._columns import time_text
from .._validation import InvalidArgumentError
from ._args import _span, add_connection
from ._failures import EXIT_OK, PROG, OutputError, UsageError

INSTALL = 'pip install "opperai-usage[sync]"'
DEFAULT_DB = Path("opper_usage.duckdb")
DEFAULT_DATASET = "opper"
COUNTS = ("inserted", "updated", "unchanged", "removed")


def _since(text: str) -> dt.datetime | dt.timedelta:
    """A span before now (30d) or an ISO 8601 date or date-time (UTC when it has no offset)."""
    if text.strip()[-1:] in ("h", "d", "w") and text.strip()[:1].isdigit():
        return _span(text)
    try:
        moment = isoparse(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a span such as 30d or an ISO 8601 date such as 2026-11-01, not {text!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def build_sync_parser() -> argparse.ArgumentParser:
    from ..models import Granularity

    parser = argparse.ArgumentParser(
        prog=f"{PROG} sync",
        description=(
            "Load usage into a table and keep it up to date: the first run from --since, each "
            "later one from the last run's end less --refetch, up to now, rows merged on the "
            "time bucket and group values. Into a DuckDB file by default, or any dlt "
            f"destination. Needs the sync extra: {INSTALL}."
        ),
        epilog="exit status: 0 done; 1 the API or the destination failed; 2 bad usage "
        "(nothing is fetched). Example: opper-usage sync --granularity hour --group-by model "
        "--field total_tokens",
    )
    what = parser.add_argument_group("what the table holds (fixed for a table)")
    what.add_argument(
        "--granularity",
        default="day",
        metavar="UNIT",
        help=f"time bucket size: {', '.join(g.value for g in Granularity)} (default: day)",
    )
    what.add_argument(
        "--group-by", dest="group_by", action="append", default=[], metavar="KEY",
        help="a tag key, a text column (a missing tag reads (untagged)); repeat for more",
    )  # fmt: skip
    what.add_argument(
        "--field", dest="fields", action="append", default=[], metavar="KEY",
        help="an event_metadata key to sum, a double column; repeat for more",
    )  # fmt: skip
    when = parser.add_argument_group("how far back")
    when.add_argument(
        "--since",
        type=_since,
        default=dt.timedelta(days=30),
        metavar="WHEN",
        help="the first run's start: a span before now (30d, the default) or a date",
    )
    when.add_argument(
        "--refetch",
        type=_span,
        default=dt.timedelta(days=1),
        metavar="SPAN",
        help="how far before the last run's end each run starts again (default 1d)",
    )
    where = parser.add_argument_group("where the rows go")
    where.add_argument("--db", type=Path, metavar="PATH", help=f"the DuckDB file ({DEFAULT_DB})")
    where.add_argument(
        "--destination",
        metavar="NAME",
        help="a dlt destination (postgres, bigquery, filesystem, ...), configured as dlt "
        "reads it (environment, .dlt/secrets.toml); default duckdb",
    )
    where.add_argument("--dataset", default=DEFAULT_DATASET, metavar="NAME", help="default: opper")
    where.add_argument("--table", default="usage", metavar="NAME", help="default: usage")
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="what it prints: text or json"
    )
    add_connection(parser)
    return parser


@contextlib.contextmanager
def _locked(folder: Path, name: str, what: str) -> Iterator[None]:
    """One run at a time of pipeline `name` in `folder`: another one fails at once, having
    changed nothing."""
    import fcntl

    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    with (folder / f"{name}.lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(
                f"another opper-usage sync is running on {what}; nothing was done"
            ) from None
        yield


def _db(args: argparse.Namespace) -> Path:
    """The DuckDB file, checked; for another destination, --db refused."""
    if args.destination not in (None, "duckdb") and args.db is not None:
        raise UsageError(
            f"--db is the DuckDB file: it does not go with --destination {args.destination}"
        )
    db = Path(os.path.abspath(args.db or DEFAULT_DB))
    if db.is_dir() or not db.parent.is_dir():
        raise UsageError(f"--db {str(db)!r}: not a file in an existing folder")
    return db


def _destination(args: argparse.Namespace, db: Path) -> tuple[Any, str, Path, str]:
    """The dlt destination, the pipeline's name, its working folders' folder, and where the
    rows go, in words."""
    import dlt
    from dlt.common.pipeline import get_dlt_pipelines_dir

    name = args.destination or "duckdb"
    if name != "duckdb":
        pipeline = f"opper_usage_{name}_{args.dataset}"
        return (
            name,
            pipeline,
            Path(get_dlt_pipelines_dir()),
            f"{args.dataset}.{args.table} in {name}",
        )
    where = f"{args.dataset}.{args.table} in {db}"
    return dlt.destinations.duckdb(str(db)), "opper_usage", db.parent / f".{db.name}.dlt", where


def _cause(error: BaseException) -> BaseException:
    """What failed inside dlt's wrapping (the extract step wraps the source's errors)."""
    from ..errors import OpperError
    from ..sync import TableMismatchError

    known = (OpperError, httpx.HTTPError, TableMismatchError, InvalidArgumentError)
    seen: BaseException | None = error
    while seen is not None and not isinstance(seen, known):
        seen = seen.__cause__ or seen.__context__
    return seen or error


def run_sync(args: argparse.Namespace) -> int:
    """Everything after parsing; raises what `main` turns into an exit status."""
    from .. import _credentials
    from .._analytics import DEFAULT_CONCURRENCY, DEFAULT_WINDOW
    from .._client import Opper
    from .._sync_query import check_sync_query

    if not any(os.environ.get(name, "").strip() for name in _credentials.ENV_VARIABLES):
        raise UsageError(f"no API key: set {_credentials.ENV_VARIABLES[0]}")
    db = _db(args)  # bad usage is refused before dlt is imported
    with Opper(server_url=args.server_url) as opper:
        check_sync_query(opper, args.granularity, args.group_by, args.fields,
                         DEFAULT_WINDOW, DEFAULT_CONCURRENCY)  # fmt: skip
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")  # no call off this machine
    try:
        import dlt
        import pyarrow  # noqa: F401
    except ImportError:
        raise UsageError(f"opper-usage sync needs the sync extra: {INSTALL}") from None
    from dlt.common.exceptions import DltException
    from dlt.pipeline.exceptions import PipelineStepFailed

    from ..sync import TableMismatchError, usage_source

    started = time.monotonic()
    until = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    timeout_ms = max(1, round(args.timeout * 1000)) if args.timeout else None
    destination, name, folder, where = _destination(args, db)
    files = args.destination == "filesystem"  # a Delta table: Parquet files that can be merged
    if files and importlib.util.find_spec("deltalake") is None:
        raise UsageError("--destination filesystem writes a Delta table: pip install deltalake")
    with Opper(server_url=args.server_url, timeout_ms=timeout_ms) as opper:
        source = usage_source(
            opper, granularity=args.granularity, group_by=args.group_by, fields=args.fields,
            since=args.since, refetch=args.refetch, until=until, table=args.table,
            table_format="delta" if files else None,
        )  # fmt: skip
        with _locked(folder, name, where):
            # Each run starts from the state in the destination: what a killed run left in
            # the working folder (a half-written load package) is dropped; the destination
            # counts a load only once it is complete, and the buckets it held are fetched
            # again.
            try:
                pipeline = dlt.pipeline(
                    name, pipelines_dir=str(folder), destination=destination,
                    dataset_name=args.dataset,
                ).drop()  # fmt: skip
            except DltException as error:  # an unknown destination, a bad dataset name
                raise UsageError(f"--destination {args.destination or 'duckdb'}: {error}") from None
            try:
                pipeline.run(source, loader_file_format="parquet")
            except PipelineStepFailed as failed:
                cause = _cause(failed)
                if isinstance(cause, TableMismatchError):
                    raise UsageError(f"{cause} (--table NAME)") from None
                if cause is not failed:
                    raise cause from None
                raise OutputError(f"{failed.step} failed: {failed.exception}") from None
            state = pipeline.state["sources"]["opper_usage"]["resources"][args.table]["last_run"]
            pipeline.drop()  # the loaded package (the rows, again) is not kept
    report = {**state, "table": where, "seconds": round(time.monotonic() - started, 3)}
    for end in ("from", "to"):
        report[end] = time_text(dt.datetime.fromisoformat(report[end]))
    if args.format == "json":
        print(json.dumps(report))
    else:
        counts = ", ".join(f"{report[name]} {name}" for name in COUNTS)
        if report["inserted"] is None:
            counts = "inserted and updated not counted (files are not read back)"
        print(
            f"fetched {report['from']} to {report['to']} into {where}\n"
            f"rows: {report['rows']} fetched, {counts}\n"
            f"took {report['seconds']:.1f} s"
        )
    sys.stdout.flush()
    return EXIT_OK
