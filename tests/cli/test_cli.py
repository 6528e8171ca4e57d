"""`opper-usage`, run as a person runs it: a subprocess against the local server, its stdout,
stderr and exit status read as they are (bytes, a real terminal where one matters)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import stat
import subprocess
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from opperai_usage._query import build_query
from tests.support import API_KEY, ROOT
from tests.support.calls import ITEMS
from tests.support.command_line import (
    MODULE,
    SCRIPT,
    environment,
    fork_server,
    run,
    run_in_terminal,
)
from tests.support.net import closed_port_url
from tests.support.servers import LocalServer

QUERY = ["--group-by", "model", "--group-by", "project.name", "--field", "total_tokens"]
COLUMNS = ["time_bucket", "model", "project.name", "total_tokens", "count", "cost"]
#: Tag values that break naive CSV, JSON or table writers.
ODD_TAGS: list[str | None] = [
    "comma, inside",
    'say "hi"',
    "two\nlines",
    "cr\r\nlf",
    "ünïcødé ✓ 日本語 🚀",
    " padded ",
    "",
    None,
    "<b>&amp;</b>",
    "tab\there",
    "=1+2",
    "'single'",
]


def odd_items() -> list[dict[str, Any]]:
    return [
        {
            "time_bucket": f"2026-11-{day:02d}T00:00:00Z",
            "cost": f"0.{day:06d}",
            "total_tokens": day * 10,
            "model": tag,
            "project.name": None if tag is None else f"p-{tag}",
        }
        for day, tag in enumerate(ODD_TAGS, 1)
    ]


def expected_records(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{name: item.get(name) for name in COLUMNS} for item in items]


def query_of(local: LocalServer) -> dict[str, list[str]]:
    (request,) = local.requests()
    return parse_qs(request["raw_query"], keep_blank_values=True)


# -- output in each format


def test_csv_is_rfc_4180_with_columns_in_order(local: LocalServer) -> None:
    local.script({"json": ITEMS})
    result = run("--server-url", local.url, *QUERY, "--format", "csv")
    assert (result.code, result.err) == (0, "")
    assert result.out.endswith("\r\n")
    assert "\n" not in result.out.replace("\r\n", "")
    rows = list(csv.reader(io.StringIO(result.out, newline="")))
    assert rows[0] == COLUMNS
    assert rows[1:] == [
        ["" if value is None else str(value) for value in record.values()]
        for record in expected_records(ITEMS)
    ]


def test_json_is_one_array_and_jsonl_one_object_a_line(local: LocalServer) -> None:
    local.script({"json": ITEMS}, {"json": ITEMS})
    as_json = run("--server-url", local.url, *QUERY, "--format", "json")
    as_jsonl = run("--server-url", local.url, *QUERY, "--format", "jsonl")
    assert (as_json.code, as_json.err, as_jsonl.code, as_jsonl.err) == (0, "", 0, "")
    records = json.loads(as_json.out)
    assert records == expected_records(ITEMS)
    assert [list(record) for record in records] == [COLUMNS] * len(ITEMS)
    assert records[1]["project.name"] is None  # a null tag is null, not ""
    assert isinstance(records[0]["cost"], str)  # the API's decimal string, kept
    lines = as_jsonl.out.splitlines()
    assert [json.loads(line) for line in lines] == records
    assert as_jsonl.out.endswith("\n")


def test_empty_answers_in_every_format(local: LocalServer) -> None:
    local.script(*[{"json": []}] * 4)
    outputs = {
        form: run("--server-url", local.url, *QUERY, "--format", form)
        for form in ("csv", "json", "jsonl", "table")
    }
    assert all(result.code == 0 for result in outputs.values())
    assert outputs["csv"].out == ",".join(COLUMNS) + "\r\n"
    assert json.loads(outputs["json"].out) == []
    assert outputs["jsonl"].out == ""
    assert outputs["table"].out.splitlines()[-1].split() == ["total,", "0", "items", "0", "0", "0"]


def test_table_aligns_columns_and_totals_the_numbers(local: LocalServer) -> None:
    local.script({"json": ITEMS})
    result = run("--server-url", local.url, *QUERY)  # table is the default
    assert (result.code, result.err) == (0, "")
    header, rule, *body, rule2, totals = result.out.splitlines()
    assert header.split() == COLUMNS
    assert rule == rule2
    assert set(rule) == {"-", " "}
    assert len(body) == len(ITEMS)
    # numbers are right-aligned: every line ends where the header's "cost" ends, and each
    # total_tokens value ends where its header does
    assert {len(line) for line in [header, *body, totals]} == {len(rule)}
    tokens_end = header.index("total_tokens") + len("total_tokens")
    for line, item in zip(body, ITEMS, strict=True):
        assert line[:tokens_end].endswith(str(item["total_tokens"]))
        assert line.endswith(str(item["cost"]))
        assert line.split()[2] == (item["project.name"] or "-")  # a null tag shows as "-"
    cost = sum((Decimal(str(item["cost"])) for item in ITEMS), Decimal(0))
    tokens = sum(int(str(item["total_tokens"])) for item in ITEMS)
    count = sum(int(str(item["count"])) for item in ITEMS)
    assert totals.split() == ["total,", "2", "items", str(tokens), str(count), str(cost)]


def test_columns_follow_the_order_given(local: LocalServer) -> None:
    result = run(
        "--server-url", local.url, "--format", "csv",
        "--field", "total_tokens", "--group-by", "project.name",
        "--field", "completion_tokens", "--group-by", "model",
    )  # fmt: skip
    assert result.code == 0, result.err
    header = result.out.split("\r\n", 1)[0]
    assert header == "time_bucket,project.name,model,total_tokens,completion_tokens,count,cost"
    query = query_of(local)
    assert query["fields"] == ["total_tokens", "completion_tokens"]
    assert query["group_by"] == ["project.name", "model"]


def test_console_script_and_module_print_the_same(local: LocalServer) -> None:
    assert SCRIPT.exists(), f"{SCRIPT} is not installed: is the package installed in this venv?"
    local.script({"json": ITEMS}, {"json": ITEMS})
    by_script = run("--server-url", local.url, *QUERY, command=[str(SCRIPT)])
    by_module = run("--server-url", local.url, *QUERY, command=MODULE)
    assert by_script.code == by_module.code == 0
    assert by_script.stdout == by_module.stdout
    assert "gpt-4o" in by_script.out


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["--format", "csv"], 0),  # success: every byte of stdout
        (["--granularity", "fortnight"], 2),  # bad usage: argparse's message
        (["--format", "json", "-o", "/dev/full"], 1),  # a failure, on one line
    ],
    ids=["csv", "usage", "failure"],
)
def test_a_forked_run_is_a_fresh_run(local: LocalServer, args: list[str], status: int) -> None:
    """The tests fork most runs from a warm interpreter (tests/support/forkserver.py): what a
    run prints and its status must be those of `python -m opperai_usage` started afresh."""
    local.script({"json": ITEMS}, {"json": ITEMS})
    server = fork_server()
    assert server is not None, "no os.pidfd_open here: every run starts afresh"
    forked = server.run(["--server-url", local.url, *QUERY, *args], environment(), ROOT)
    fresh = run("--server-url", local.url, *QUERY, *args, command=MODULE)
    assert (forked.code, forked.stdout, forked.stderr) == (fresh.code, fresh.stdout, fresh.stderr)
    assert forked.code == status, forked.err


def test_output_file_is_written_whole_and_stdout_stays_empty(
    local: LocalServer, tmp_path: Path
) -> None:
    local.script({"json": ITEMS})
    target = tmp_path / "usage.csv"
    result = run("--server-url", local.url, *QUERY, "--format", "csv", "-o", str(target))
    assert (result.code, result.stdout, result.stderr) == (0, b"", b"")
    written = target.read_bytes().decode("utf-8")
    assert written.startswith(",".join(COLUMNS) + "\r\n")
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left behind


def test_a_failed_call_leaves_no_output_file(local: LocalServer, tmp_path: Path) -> None:
    local.script(
        {"status": 404, "json": {"type": "NotFoundError", "message": "gone", "detail": None}}
    )
    target = tmp_path / "usage.json"
    result = run("--server-url", local.url, "--format", "json", "-o", str(target))
    assert result.code == 1
    assert list(tmp_path.iterdir()) == []


def test_a_named_pipe_is_written_in_place_not_replaced(local: LocalServer, tmp_path: Path) -> None:
    local.script({"json": ITEMS})
    pipe = tmp_path / "usage.pipe"
    os.mkfifo(pipe)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()), daemon=True)
    reader.start()
    result = run("--server-url", local.url, *QUERY, "--format", "csv", "-o", str(pipe))
    reader.join(timeout=30)
    assert (result.code, result.err) == (0, "")
    assert stat.S_ISFIFO(pipe.stat().st_mode)  # still a pipe (as /dev/null stays a device)
    assert received[0].startswith(",".join(COLUMNS).encode() + b"\r\n")


def test_a_link_is_followed_and_a_files_permissions_kept(
    local: LocalServer, tmp_path: Path
) -> None:
    local.script({"json": ITEMS})
    real = tmp_path / "real.json"
    real.write_text("old")
    real.chmod(0o640)
    link = tmp_path / "usage.json"
    link.symlink_to(real)
    result = run("--server-url", local.url, *QUERY, "--format", "json", "-o", str(link))
    assert (result.code, result.err) == (0, "")
    assert link.is_symlink()
    assert json.loads(real.read_text()) == expected_records(ITEMS)
    assert stat.S_IMODE(real.stat().st_mode) == 0o640


# -- what is sent


def test_dates_go_as_the_library_sends_them(local: LocalServer) -> None:
    args = {"from_date": "2026-11-01", "to_date": "2026-11-08T12:30:00+02:00"}
    result = run(
        "--server-url", local.url, "--from", args["from_date"], "--to", args["to_date"],
        "--granularity", "hour",
    )  # fmt: skip
    assert result.code == 0, result.err
    _, _, params = build_query({**args, "granularity": "hour"})
    assert query_of(local) == {name: [str(value)] for name, value in params.items()}


def test_month_is_one_calendar_month_in_utc(local: LocalServer) -> None:
    assert run("--server-url", local.url, "--month", "2026-12").code == 0
    query = query_of(local)
    assert (query["from_date"], query["to_date"]) == (
        ["2026-12-01T00:00:00Z"],
        ["2027-01-01T00:00:00Z"],
    )


def test_last_is_a_span_ending_now(local: LocalServer) -> None:
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    assert run("--server-url", local.url, "--last", "36h").code == 0
    after = dt.datetime.now(dt.timezone.utc)
    query = query_of(local)
    start, end = (
        dt.datetime.fromisoformat(query[k][0][:-1] + "+00:00") for k in ("from_date", "to_date")
    )
    assert end - start == dt.timedelta(hours=36)
    assert before <= end <= after


def test_base_url_comes_from_the_environment_and_the_flag_overrides_it(
    local: LocalServer,
) -> None:
    from_env = run(env=environment(OPPER_BASE_URL=local.base))
    assert from_env.code == 0, from_env.err
    overridden = run(
        "--server-url", local.url, env=environment(OPPER_BASE_URL="http://127.0.0.1:9")
    )
    assert overridden.code == 0, overridden.err
    assert len(local.requests()) == 2


def test_the_second_key_variable_works_and_a_conflict_warns_in_one_line(
    local: LocalServer,
) -> None:
    bearer_only = run("--server-url", local.url, env=environment(None, OPPER_HTTP_BEARER=API_KEY))
    assert (bearer_only.code, bearer_only.err) == (0, "")
    both = run("--server-url", local.url, env=environment(OPPER_HTTP_BEARER="another-key"))
    assert both.code == 0
    assert both.err == (
        "opper-usage: warning: OPPER_API_KEY and OPPER_HTTP_BEARER are both set and differ; "
        "using OPPER_API_KEY\n"
    )


def test_field_cost_is_accepted_and_not_sent(local: LocalServer) -> None:
    """The API ignores `cost` as a field (every item carries it): asked for, it is left out."""
    local.script({"json": ITEMS})
    result = run("--server-url", local.url, "--format", "csv", "--field", "cost")
    assert result.code == 0, result.err
    assert result.out.split("\r\n", 1)[0] == "time_bucket,count,cost"
    assert "fields" not in query_of(local)


# -- exit status 2: nothing is sent


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--granularity", "weekly"], {}, "--granularity must be one of"),
        (["--from", "last tuesday"], {}, "--from must be"),
        (["--group-by", "model", "--field", "model"], {}, "--group-by holds 'model'"),
        (["--field", "count"], {}, "--field must not include 'count': every item carries it"),
        (["--last", "7d", "--from", "2026-11-01"], {}, "--last sets the time range"),
        (["-o", "/nonexistent-folder/usage.csv"], {}, "does not exist"),
        (["--html", "."], {}, "is a folder"),
        ([], {"OPPER_API_KEY": ""}, "no API key: set OPPER_API_KEY"),
        ([], {"OPPER_API_KEY": "   "}, "no API key: set OPPER_API_KEY"),
        ([], {"OPPER_API_KEY": "two\nlines"}, "OPPER_API_KEY holds a line feed"),
    ],
)
def test_bad_arguments_exit_2_in_one_line_and_send_nothing(
    local: LocalServer, args: list[str], env: dict[str, str], message: str
) -> None:
    result = run("--server-url", local.url, *args, env=environment(**env))
    assert result.code == 2, result.err
    assert result.stdout == b""
    assert result.err.startswith("opper-usage: error: ")
    assert result.err.count("\n") == 1
    assert message in result.err
    assert "Traceback" not in result.err
    assert local.requests() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timeout", "0"], "must be a positive number of seconds"),
        (["--last", "7x"], "must be a count and a unit"),
        (["--month", "2026-13"], "must be a month as YYYY-MM"),
        (["--last", "7d", "--month", "2026-11"], "not allowed with argument"),
        (["--format", "xml"], "invalid choice"),
        (["--api-key", "k"], "unrecognized arguments"),  # the key is never a flag
    ],
)
def test_bad_usage_exits_2_with_argparse_usage(
    local: LocalServer, args: list[str], message: str
) -> None:
    result = run("--server-url", local.url, *args)
    assert result.code == 2
    assert result.err.startswith("usage: opper-usage")
    assert message in result.err
    assert local.requests() == []


def test_a_bad_server_url_exits_2(local: LocalServer) -> None:
    result = run("--server-url", "ftp://example.invalid/v2")
    assert result.code == 2
    assert result.err.startswith("opper-usage: error: --server-url must be an http(s) URL")


# -- exit status 1: the API or the network failed


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            {
                "status": 401,
                "json": {"type": "UnauthorizedError", "message": "Bad key", "detail": None},
            },
            "UnauthorizedError: status 401: Bad key",
        ),
        (
            {
                "status": 422,
                "json": {
                    "type": "RequestValidationError",
                    "message": "The request is invalid",
                    "detail": [{"loc": ["query", "granularity"], "msg": "Input should be"}],
                },
            },
            "RequestValidationError: status 422: The request is invalid: "
            "query.granularity: Input should be",
        ),
        (
            {"status": 501, "body": "<html>\n<body>Not\nImplemented</body>\n</html>"},
            "APIError: status 501: API error occurred: Status 501 Content-Type "
            '"text/plain; charset=utf-8". Body: <html> <body>Not Implemented</body> </html>',
        ),
    ],
)
def test_api_errors_exit_1_in_one_line(
    local: LocalServer, answer: dict[str, Any], expected: str
) -> None:
    local.script({**answer, "headers": {"x-request-id": "req_cli_0123"}})
    result = run("--server-url", local.url, *QUERY)
    assert result.code == 1
    assert result.stdout == b""
    assert result.err == f"opper-usage: {expected} (request id req_cli_0123)\n"


def test_an_answer_that_does_not_fit_the_spec_exits_1(local: LocalServer) -> None:
    local.script({"json": [{"time_bucket": "2026-11-01T00:00:00Z", "cost": 0.5}]})
    result = run("--server-url", local.url, "--format", "csv")
    assert (result.code, result.stdout) == (1, b"")
    assert result.err.startswith("opper-usage: ResponseValidationError: status 200: ")
    assert "'cost'" in result.err
    assert result.err.count("\n") == 1


def test_the_key_never_shows_even_when_the_server_echoes_it(local: LocalServer) -> None:
    secret = "sk-opper-cli-5f3c9a7e1d"  # noqa: S105 (a made-up key, to look for)
    echo = {"type": "BadRequestError", "message": f"bad token Bearer {secret}", "detail": secret}
    local.script({"status": 400, "json": echo})
    result = run("--server-url", local.url, env=environment(secret))
    assert result.code == 1
    assert secret.encode() not in result.stdout + result.stderr
    assert "bad token Bearer <redacted>" in result.err


def test_network_failures_exit_1_naming_the_error(local: LocalServer) -> None:
    secret = "sk-opper-cli-network-77"  # noqa: S105 (a made-up key, to look for)
    url = closed_port_url()
    result = run("--server-url", url, env=environment(secret))
    assert result.code == 1
    assert result.err == (
        f"opper-usage: ConnectError: no answer from GET {url}/analytics/usage: "
        "[Errno 111] Connection refused (request id none)\n"
    )
    assert secret.encode() not in result.stdout + result.stderr


def test_a_timeout_exits_1(local: LocalServer) -> None:
    local.script(*[{"delay_ms": 3_000}] * 3)  # every attempt (the first and two retries)
    result = run("--server-url", local.url, "--timeout", "0.3")
    assert result.code == 1
    assert result.err.startswith("opper-usage: ReadTimeout: no answer from GET ")


def test_a_closed_pipe_ends_the_command_quietly(local: LocalServer) -> None:
    local.script({"items": 50_000})
    proc = subprocess.Popen(
        [*MODULE, "--server-url", local.url, "--format", "jsonl"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment(), cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # as `| head -1` does
    assert proc.wait(timeout=60) == 141
    assert json.loads(first)["time_bucket"] == "2026-01-01T00:00:00Z"
    assert proc.stderr.read() == b""
    proc.stderr.close()


# -- odd values


def test_odd_tags_round_trip_through_csv_and_json(local: LocalServer) -> None:
    items = odd_items()
    local.script({"json": items}, {"json": items}, {"json": items})
    as_csv = run("--server-url", local.url, *QUERY, "--format", "csv", "--csv-raw")
    as_json = run("--server-url", local.url, *QUERY, "--format", "json")
    as_jsonl = run("--server-url", local.url, *QUERY, "--format", "jsonl")
    assert as_csv.code == as_json.code == as_jsonl.code == 0
    expected = expected_records(items)
    rows = list(csv.reader(io.StringIO(as_csv.out, newline="")))
    assert rows == [COLUMNS] + [
        ["" if v is None else str(v) for v in record.values()] for record in expected
    ]
    assert json.loads(as_json.out) == expected
    assert [json.loads(line) for line in as_jsonl.out.split("\n")[:-1]] == expected


def test_odd_tags_keep_the_table_one_line_per_item(local: LocalServer) -> None:
    local.script({"json": odd_items()})
    result = run("--server-url", local.url, *QUERY)
    assert result.code == 0
    lines = result.out.splitlines()
    assert len(lines) == len(ODD_TAGS) + 4  # header, rule, items, rule, totals
    assert "two\\nlines" in result.out
    assert "tab\\there" in result.out


# -- on a terminal


def test_progress_shows_on_a_terminal_while_a_call_is_slow(local: LocalServer) -> None:
    local.script({"delay_ms": 900, "json": ITEMS})  # the line shows after 0.5 s
    code, terminal, stdout = run_in_terminal(["--server-url", local.url, *QUERY], "stderr")
    assert code == 0
    shown = [float(s) for s in re.findall(rb"waiting for the usage API (\d+\.\d) s", terminal)]
    assert len(shown) >= 2, terminal  # redrawn as time passes,
    assert shown == sorted(shown)  # counting up
    assert shown[-1] > shown[0]
    assert terminal.endswith(b"\r\x1b[K")  # and is erased before the output is used
    assert stdout.decode().splitlines()[0].split() == COLUMNS


def test_no_progress_when_stderr_is_a_pipe(local: LocalServer) -> None:
    local.script({"delay_ms": 900, "json": ITEMS})  # long enough to show on a terminal
    result = run("--server-url", local.url, *QUERY)
    assert (result.code, result.stderr) == (0, b"")


def test_the_table_fits_the_terminal(local: LocalServer) -> None:
    items = [
        {**item, "model": f"a-very-long-model-name-{index}-" + "x" * 40}
        for index, item in enumerate(ITEMS)
    ]
    local.script({"json": items})
    code, terminal, stderr = run_in_terminal(["--server-url", local.url, *QUERY], "stdout", 80)
    assert (code, stderr) == (0, b"")
    lines = terminal.decode().replace("\r\n", "\n").splitlines()
    assert lines[0].split() == COLUMNS
    assert max(len(line) for line in lines) <= 80
    assert "a-very-lon" in lines[2]
    assert "…" in lines[2]
    assert lines[2].endswith(str(items[0]["cost"]))  # numbers are never cut
