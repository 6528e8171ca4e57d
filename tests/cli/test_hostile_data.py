"""Hostile data through the command line: tags chosen by end users reach a spreadsheet, a
terminal and a report; a server or a proxy writes the error text; every answer the decoder
accepts must print in every format. Also the DataFrames on such values, and arguments past
what the command can take. The command runs as a subprocess, over real sockets, and on a real
terminal (tmux) where escapes matter."""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from opperai_usage._cli._failures import one_line
from opperai_usage._cli._table import GAP, MIN_TEXT_WIDTH, _fit, render_table
from opperai_usage._columns import Columns
from opperai_usage._frames import to_pandas, to_polars
from opperai_usage.models import GetUsageResultItem
from tests.support.calls import ITEMS
from tests.support.command_line import environment, run, run_in_tmux
from tests.support.servers import LocalServer, serving

QUERY = ["--group-by", "model", "--field", "total_tokens"]


def answer(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A 200 whose body is `items` as Python's json writes them: NaN and Infinity as such,
    a lone surrogate as the escape `\\ud800`, ints of any length (a body the kit's `json`
    setting, which is strict JSON, would refuse)."""
    return {"body": json.dumps(items), "content_type": "application/json"}


def strict_json(text: str) -> Any:
    """`json.loads` that refuses NaN and Infinity, as JSON does (and most parsers)."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


# -- CSV formula injection


FORMULAS = ["=1+2", "+1", "-1", "@SUM(A1)", "-5"]  # a spreadsheet runs each (or reads -5)


def csv_items(tags: list[str]) -> list[dict[str, Any]]:
    costs = ["-0.500000", "=HYPERLINK(1)", "1E-7"]
    return [
        {
            "time_bucket": f"2026-11-{day:02d}T00:00:00Z",
            "cost": costs[day % len(costs)],
            "model": tag,
            "@team": "=cmd|' /C calc'!A0",
            "total_tokens": -5 * day,
        }
        for day, tag in enumerate(tags, 1)
    ]


def csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


@pytest.mark.parametrize(
    "tags",
    [
        [*FORMULAS, "plain", " =leading space", "a=b"],  # no quoting needed: the fast path
        [*FORMULAS, "\tTAB", "\rCR", "x,y"],  # quoted cells: the csv module's path
    ],
)
def test_csv_cells_that_start_like_formulas_get_a_leading_quote(
    local: LocalServer, tags: list[str]
) -> None:
    items = csv_items(tags)
    local.script(answer(items), answer(items))
    query = [*QUERY, "--group-by", "@team", "--format", "csv"]
    neutral = run("--server-url", local.url, *query)
    raw = run("--server-url", local.url, *query, "--csv-raw")
    assert (neutral.code, neutral.err, raw.code, raw.err) == (0, "", 0, "")

    rows = csv_rows(neutral.out)
    assert rows[0] == ["time_bucket", "model", "'@team", "total_tokens", "count", "cost"]
    expected_tags = ["'" + t if t[0] in "=+-@\t\r" else t for t in tags]
    assert [row[1] for row in rows[1:]] == expected_tags
    assert {row[2] for row in rows[1:]} == {"'=cmd|' /C calc'!A0"}
    assert [row[3] for row in rows[1:]] == [str(-5 * day) for day in range(1, len(tags) + 1)]
    costs = {row[5] for row in rows[1:]}
    assert costs == {"-0.500000", "'=HYPERLINK(1)", "1E-7"}  # decimal numbers stay numbers

    raw_rows = csv_rows(raw.out)
    assert raw_rows[0] == ["time_bucket", "model", "@team", "total_tokens", "count", "cost"]
    assert [row[1] for row in raw_rows[1:]] == tags
    assert {row[5] for row in raw_rows[1:]} == {"-0.500000", "=HYPERLINK(1)", "1E-7"}


def test_csv_raw_is_only_for_csv(local: LocalServer) -> None:
    result = run("--server-url", local.url, "--format", "json", "--csv-raw")
    assert (result.code, result.err) == (2, "opper-usage: error: --csv-raw is for --format csv\n")
    assert local.requests() == []


# -- the server's text on the terminal


ESCAPES = (
    "\x1b]0;pwned-title\x07"  # set the window title
    "\x1b[2J\x1b[3J\x1b[H"  # clear the screen and the scrollback
    "\x1b]8;;https://evil.example/\x07click\x1b]8;;\x07"  # a hidden link
    "\x9b31m"  # CSI as a C1 control
    "\u202e"  # right-to-left override
)
SHOWN = r"\x1b]0;pwned-title\x07\x1b[2J\x1b[3J\x1b[H\x1b]8;;https://evil.example/\x07click"

#: A 500 is retried: each of the three attempts gets one (see `script_error`).
HOSTILE_ERRORS = [
    {"status": 500, "body": f"boom {ESCAPES} end"},
    {"status": 401, "json": {"type": "UnauthorizedError", "message": ESCAPES, "detail": None}},
    {
        "status": 422,
        "json": {
            "type": "RequestValidationError",
            "message": "invalid",
            "detail": [{"loc": ["query", ESCAPES], "msg": ESCAPES}, {"loc": 7, "msg": "odd"}],
        },
    },
]


@pytest.mark.parametrize("error", HOSTILE_ERRORS, ids=["500-body", "401-message", "422-detail"])
def test_control_characters_from_the_server_are_escaped_in_the_error_line(
    local: LocalServer, error: dict[str, Any]
) -> None:
    script_error(local, error)
    result = run("--server-url", local.url)
    assert result.code == 1
    assert result.err.count("\n") == 1
    assert not any(c in result.err for c in "\x1b\x07\x9b\u202e")
    assert SHOWN in result.err
    assert r"\x9b31m\u202e" in result.err


def script_error(local: LocalServer, error: dict[str, Any]) -> None:
    """`error` as the answer to every attempt (the first and the two retries of a 500)."""
    local.script(*[error] * 3)


def test_a_servers_escapes_neither_retitle_nor_clear_a_real_terminal(
    local: LocalServer, tmp_path: Path
) -> None:
    script_error(local, HOSTILE_ERRORS[0])
    screen, title = run_in_tmux(tmp_path, ["--server-url", local.url])
    assert "pwned" not in title
    assert "MARK-BEFORE" in screen  # not cleared
    assert SHOWN in screen  # shown, escaped
    assert "EXIT:1" in screen


# -- the key, in any spelling a body gives it

KEYS = ['sk-"Zq9"\\w7Kp-quoted', "sk-Zq9  w7Kp-spaced", "sk-Zq9\\u00e9w7Kp-escaped"]


@pytest.fixture
def echo_server() -> Iterator[str]:
    """A server on loopback that sends the request's Authorization header back: in a 500
    JSON body (JSON-escaped) for /json, in a 401 text body for /text."""

    class Echo(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            sent = self.headers.get("Authorization", "")
            if self.path.startswith("/json/"):
                status, kind = 500, "application/json"
                body = json.dumps({"message": f"bad {sent}", "detail": [sent]}).encode()
            else:
                status, kind = 401, "text/plain; charset=utf-8"
                body = f"Unauthorized: {sent}\n  ({sent.replace(' ', '  ')})".encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Echo)) as server:
        yield f"http://127.0.0.1:{server.server_port}"


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("where", ["json", "text"])
def test_a_key_the_server_echoes_never_shows_in_any_spelling(
    echo_server: str, key: str, where: str
) -> None:
    result = run("--server-url", f"{echo_server}/{where}/v2", env=environment(key))
    assert result.code == 1
    assert result.err.count("\n") == 1
    assert "<redacted>" in result.err
    assert "Zq9" not in result.err, result.err
    assert "w7Kp" not in result.err, result.err


def test_the_error_line_redacts_a_key_in_every_spelling() -> None:
    key = 'sk-"Zq9"\\w7Kp  two'
    spelled = [key, json.dumps(key)[1:-1], key.replace("  ", " "), key.replace("  ", "\n")]
    line = one_line(" | ".join(spelled), [key])
    assert line == " | ".join(["<redacted>"] * 4)


# -- every answer the decoder accepts, in every format

HOSTILE_ITEMS: list[dict[str, Any]] = [
    {
        "time_bucket": "2026-11-01T00:00:00Z",
        "cost": "NaN",
        "count": 0,
        "model": "lone \ud800 surrogate",
        "total_tokens": math.nan,
    },
    {
        "time_bucket": "0001-01-01T00:00:00+01:00",
        "cost": "sNaN",
        "count": 1,
        "model": {"nested": ["=1+2", math.nan]},
        "total_tokens": math.inf,
    },
    {
        "time_bucket": "9999-12-31T23:00:00-05:00",
        "cost": "Infinity",
        "count": 2**64,
        "model": ["an", "array"],
        "total_tokens": -math.inf,
    },
    {
        "time_bucket": "2026-11-02T00:00:00Z",
        "cost": "9E+999999",
        "count": 7,
        "model": "plain",
        "total_tokens": 10**400,
    },
]


class Cells(HTMLParser):
    """The text of each `<td>` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self._in = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "td":
            self._in = True
            self.cells.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in = self._in and tag != "td"

    def handle_data(self, data: str) -> None:
        if self._in:
            self.cells[-1] += data


@pytest.mark.parametrize("form", ["table", "csv", "json", "jsonl", "html"])
def test_every_answer_the_decoder_accepts_prints_in_every_format(
    local: LocalServer, tmp_path: Path, form: str
) -> None:
    local.script(answer(HOSTILE_ITEMS))
    page = tmp_path / "report.html"
    extra = ["--html", str(page), "--format", "csv"] if form == "html" else ["--format", form]
    result = run("--server-url", local.url, *QUERY, *extra)
    assert (result.code, result.err) == (0, ""), result.err
    if form == "table":
        lines = result.out.splitlines()
        assert len(lines) == 4 + len(HOSTILE_ITEMS)
        assert "lone \\ud800 surrogate" in lines[2]
        assert lines[3].startswith('0001-01-01T00:00:00+01:00  {"nested": ["=1+2", null]}')
        assert lines[-1].split() == ["total,", "4", "items", "nan", str(2**64 + 8), "NaN"]
    elif form == "csv":
        rows = csv_rows(result.out)
        assert [row[0] for row in rows[1:]] == [i["time_bucket"] for i in HOSTILE_ITEMS]
        assert [row[1] for row in rows[1:]] == [
            "lone \ufffd surrogate", '{"nested": ["=1+2", null]}', '["an", "array"]', "plain",
        ]  # fmt: skip
        assert [row[2] for row in rows[1:]] == ["nan", "inf", "-inf", str(10**400)]
        assert [row[3] for row in rows[1:]] == [str(i["count"]) for i in HOSTILE_ITEMS]
        assert [row[4] for row in rows[1:]] == [i["cost"] for i in HOSTILE_ITEMS]
    elif form in ("json", "jsonl"):
        text = result.out
        records = strict_json(text) if form == "json" else list(map(strict_json, text.splitlines()))
        assert [r["model"] for r in records] == [
            "lone \ud800 surrogate", {"nested": ["=1+2", None]}, ["an", "array"], "plain",
        ]  # fmt: skip
        assert [r["total_tokens"] for r in records] == [None, None, None, 10**400]
        assert [r["time_bucket"] for r in records] == [i["time_bucket"] for i in HOSTILE_ITEMS]
        assert [r["cost"] for r in records] == [i["cost"] for i in HOSTILE_ITEMS]
        assert [r["count"] for r in records] == [i["count"] for i in HOSTILE_ITEMS]
    else:
        parser = Cells()
        report = page.read_text(encoding="utf-8")
        parser.feed(report[report.index('<table class="data">') : report.index("</tfoot>")])
        assert "lone \ufffd surrogate" in parser.cells
        assert "0001-01-01T00:00:00+01:00" in parser.cells
        assert '{"nested": ["=1+2", null]}' in parser.cells
        assert parser.cells[-3:] == ["nan", str(2**64 + 8), "NaN"]  # the totals


@pytest.mark.parametrize(
    ("costs", "total"),
    [
        (["9E+999999"], "9E+999999"),  # not a million digits
        (["9E+999999", "9E+999999"], "Infinity"),  # past Decimal's range
        (["Infinity", "-Infinity"], "NaN"),
        (["0.500000", "sNaN"], "NaN"),
        (["0.004200", "0.000350"], "0.004550"),
    ],
)
def test_the_cost_total_of_any_costs_is_short_and_a_number_or_nan(
    local: LocalServer, tmp_path: Path, costs: list[str], total: str
) -> None:
    items = [{"time_bucket": "2026-11-01T00:00:00Z", "cost": cost} for cost in costs]
    local.script({"json": items})
    page = tmp_path / "report.html"
    result = run("--server-url", local.url, "--html", str(page))
    assert (result.code, result.err) == (0, "")
    last = result.out.splitlines()[-1]
    assert last.split()[-1] == total
    assert len(last) < 80
    report = page.read_text(encoding="utf-8")
    assert f"<dd>${total}</dd>" in report
    assert len(report) < 20_000  # no million-digit attribute


def test_nan_and_infinity_fields_are_null_in_json(local: LocalServer) -> None:
    items = [
        {"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "ratio": value}
        for value in (math.nan, math.inf, -math.inf, 0.5)
    ]
    local.script(answer(items), answer(items))
    as_json = run("--server-url", local.url, "--field", "ratio", "--format", "json")
    as_jsonl = run("--server-url", local.url, "--field", "ratio", "--format", "jsonl")
    assert (as_json.code, as_jsonl.code) == (0, 0)
    assert [r["ratio"] for r in strict_json(as_json.out)] == [None, None, None, 0.5]
    lines = as_jsonl.out.splitlines()
    assert [strict_json(line)["ratio"] for line in lines] == [None, None, None, 0.5]


# -- DataFrames


def items_of(*dicts: dict[str, Any]) -> list[GetUsageResultItem]:
    return [GetUsageResultItem.from_dict(d) for d in dicts]


def test_fields_past_floats_range_become_infinite_floats_in_dataframes() -> None:
    items = items_of(
        {"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "big": 10**400},
        {"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "big": -(10**400)},
        {"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "big": 7},
        {"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "big": None},
    )
    frame = to_pandas(items, fields=["big"], group_by=[])
    assert str(frame["big"].dtype) == "float64"
    assert frame["big"].tolist()[:3] == [math.inf, -math.inf, 7.0]
    assert math.isnan(frame["big"].tolist()[3])
    polars_frame = to_polars(items, fields=["big"], group_by=[])
    assert polars_frame["big"].to_list() == [math.inf, -math.inf, 7.0, None]


def test_a_cost_that_is_no_number_names_the_item_and_the_column() -> None:
    items = items_of(
        {"time_bucket": "2026-11-01T00:00:00Z", "cost": "0.5"},
        {"time_bucket": "2026-11-01T00:00:00Z", "cost": "a lot"},
    )
    for convert in (to_pandas, to_polars):
        with pytest.raises(ValueError, match=r"^item 1: 'cost' is 'a lot', which is not a number$"):
            convert(items)


def test_nan_costs_are_nan_in_dataframes() -> None:
    items = items_of(
        *({"time_bucket": "2026-11-01T00:00:00Z", "cost": c} for c in ("NaN", "sNaN", "0.5"))
    )
    costs = to_pandas(items)["cost"].tolist()
    assert math.isnan(costs[0])
    assert math.isnan(costs[1])
    assert costs[2] == 0.5


# -- the table's fit to a terminal


def test_a_huge_tag_fits_the_terminal_in_well_under_a_second() -> None:
    items = items_of(
        {"time_bucket": "2026-11-01T00:00:00Z", "cost": "1", "model": "x" * 5_000_000},
        {"time_bucket": "2026-11-01T00:00:00Z", "cost": "2", "model": "y" * 4_000_000},
    )
    started = time.perf_counter()
    table = render_table(items, Columns(("model",), ()), width=80)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"{elapsed:.2f} s"
    assert max(map(len, table.splitlines())) <= 80
    assert "xxxxxxxx…" in table


def one_cell_at_a_time(widths: list[int], shrinkable: list[int], limit: int) -> list[int]:
    """What the fit did before: a cell off the widest text column until it fits."""
    widths = list(widths)
    excess = sum(widths) + len(GAP) * (len(widths) - 1) - limit
    while excess > 0:
        wide = [i for i in shrinkable if widths[i] > MIN_TEXT_WIDTH]
        if not wide:
            break
        widths[max(wide, key=lambda i: widths[i])] -= 1
        excess -= 1
    return widths


def test_the_fit_cuts_the_columns_as_one_cell_at_a_time_did() -> None:
    cases = [
        ([20, 30, 30, 12, 6], [1, 2, 3], 60),
        ([20, 30, 31, 12, 6], [1, 2], 40),
        ([20, 9, 100, 5, 6], [1, 2, 3], 1),
        ([20, 50, 50, 50, 9], [1, 2, 3], 100),
        ([20, 50, 50, 50, 9], [1, 2, 3], 200),
        ([20, 7, 3, 9], [1, 2], 10),
    ]
    for widths, shrinkable, limit in cases:
        assert _fit(widths, shrinkable, limit) == one_cell_at_a_time(widths, shrinkable, limit)


# -- arguments past what the command takes


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--last", "1000000d"], "argument --last: must be at most 100 years"),
        (["--last", "99999999999d"], "argument --last: must be at most 100 years"),
        (["--last", "876001h"], "(876000h, 36500d, 5214w), not '876001h'"),
        (["--last", "5215w"], "(876000h, 36500d, 5214w), not '5215w'"),
        (["--last", "1" + "0" * 5000 + "d"], "argument --last: must be at most 100 years"),
        (["--timeout", "1e308"], "argument --timeout: must be at most 86400 seconds (a day)"),
        (["--timeout", "86401"], "argument --timeout: must be at most 86400 seconds (a day)"),
        (["--month", "9999-12"], "argument --month: must be a month as YYYY-MM, such as 2026-11"),
    ],
)
def test_arguments_past_the_limits_exit_2_naming_the_limit(
    local: LocalServer, args: list[str], message: str
) -> None:
    result = run("--server-url", local.url, *args)
    assert result.code == 2
    assert "Traceback" not in result.err
    assert message in result.err
    assert local.requests() == []


def test_the_limits_themselves_are_taken(local: LocalServer) -> None:
    local.script({"json": ITEMS}, {"json": ITEMS})
    longest = run("--server-url", local.url, "--last", "36500d", "--timeout", "86400")
    latest = run("--server-url", local.url, "--month", "9999-11")
    assert (longest.code, longest.err, latest.code, latest.err) == (0, "", 0, "")
