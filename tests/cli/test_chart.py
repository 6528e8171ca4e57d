"""`opper-usage --chart`: the terminal bar chart, as text snapshots (tests/cli/snapshots/, one
per case, from scripted answers), on a pseudo-terminal (colours and blocks) and in tmux (a real
terminal emulator, at its width). Set UPDATE_SNAPSHOTS=1 to write the snapshots anew after a
deliberate change, and read the diff before committing it."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from tests.support.command_line import environment, run, run_in_terminal, run_in_tmux
from tests.support.servers import LocalServer

SNAPSHOTS = Path(__file__).parent / "snapshots"
MODELS: list[str | None] = ["gpt-4o", "claude-sonnet-4", "mistral-large", None]
ESCAPES = re.compile(r"\x1b\[[0-9;]*m")


def answer(days: int = 6, models: list[str | None] | None = None) -> list[dict[str, Any]]:
    """Daily items, each model on most days, with costs, counts and tokens that differ."""
    items = []
    for day in range(1, days + 1):
        for index, model in enumerate(models or MODELS):
            if (day + index) % 5 == 0:
                continue
            items.append(
                {
                    "time_bucket": f"2026-11-{day:02d}T00:00:00Z",
                    "cost": f"{((day * 7 + index * 3) % 11 + 1) / 100:.6f}",
                    "count": (day * 5 + index * 7) % 13 + 1,
                    "total_tokens": day * 1000 + index * 250,
                    "model": model,
                }
            )
    return items


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"differs from {path}"


def chart(local: LocalServer, items: list[dict[str, Any]], columns: int, *args: str) -> str:
    local.script({"json": items})
    result = run("--server-url", local.url, "--chart", *args,
                 env=environment(COLUMNS=str(columns)))  # fmt: skip
    assert (result.code, result.err) == (0, ""), result.err
    return result.out


def cells(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


CASES = {
    "cost_by_model": (answer(), 80, ["--group-by", "model"]),
    "count_by_model": (answer(), 72, ["count", "--group-by", "model"]),
    "tokens_no_group": (answer(3), 60, ["total_tokens", "--field", "total_tokens"]),
    "cost_top_2": (answer(), 80, ["--group-by", "model", "--top", "2"]),
    "narrow": (answer(2), 30, ["--group-by", "model"]),
    "many_series": (answer(2, [f"model-{n}" for n in range(11)]), 80, ["--group-by", "model"]),
    "hostile_names": (
        answer(2, ["\x1b]0;pwned\x07title", "a\nb", "=cmd|' /C calc'!A0", "名前" * 30]),
        70,
        ["--group-by", "model"],
    ),
    "empty": ([], 80, ["--group-by", "model"]),
}


@pytest.mark.parametrize("case", CASES)
def test_the_chart_as_text(local: LocalServer, case: str) -> None:
    items, columns, args = CASES[case]
    text = chart(local, items, columns, *args)
    check_snapshot(f"chart_{case}", text)
    assert not {"█", "│", "└"} & set(text)  # plain characters off a terminal
    assert not {"\x1b", "\x07"} & set(text)
    if case != "narrow":
        assert max(map(cells, text.splitlines())) <= columns


def test_the_bars_are_in_proportion_and_the_values_exact(local: LocalServer) -> None:
    text = chart(local, answer(), 80, "--group-by", "model")
    bars = {}
    for line in text.splitlines():
        match = re.fullmatch(r"(2026-11-\d\d) \|([#=+*.]*) *  ([0-9.]+)", line)
        if match:
            bars[match[1]] = (len(match[2]), match[3])
    exact: dict[str, float] = {}
    for item in answer():
        day = item["time_bucket"][:10]
        exact[day] = exact.get(day, 0.0) + float(item["cost"])
    assert sorted(bars) == sorted(exact)
    assert {day: float(value) for day, (_, value) in bars.items()} == pytest.approx(exact)
    longest = max(exact, key=exact.__getitem__)
    for day, (length, _) in bars.items():  # within a cell of its share of the longest bar
        assert abs(length - bars[longest][0] * exact[day] / exact[longest]) <= 1


def test_on_a_terminal_the_chart_has_colours_and_blocks(local: LocalServer) -> None:
    local.script({"json": answer()})
    code, screen, piped = run_in_terminal(
        ["--server-url", local.url, "--chart", "--group-by", "model"], "stdout", columns=80
    )
    text = screen.decode("utf-8").replace("\r\n", "\n")
    assert (code, piped) == (0, b"")
    check_snapshot("chart_cost_by_model_terminal", text)
    plain = ESCAPES.sub("", text)
    assert {"█", "└"} <= set(plain)
    assert "#" not in plain
    assert len(set(ESCAPES.findall(text))) == 5  # four series and the reset
    assert max(map(cells, plain.splitlines())) <= 80


def test_no_color_gives_plain_characters_on_a_terminal(
    local: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    local.script({"json": answer()})
    monkeypatch.setenv("NO_COLOR", "1")  # the command's environment is made from this one
    code, screen, _ = run_in_terminal(
        ["--server-url", local.url, "--chart", "--group-by", "model"], "stdout", columns=80
    )
    assert code == 0
    assert b"\x1b" not in screen
    assert b"#" in screen


@pytest.mark.parametrize("columns", [60, 120])
def test_in_tmux_the_chart_fills_the_terminal_and_escapes_names(
    local: LocalServer, tmp_path: Path, columns: int
) -> None:
    local.script({"json": answer(4, ["gpt-4o", "\x1b]0;pwned\x07x", None])})
    screen, title = run_in_tmux(
        tmp_path, ["--server-url", local.url, "--chart", "--group-by", "model"], columns
    )
    assert "pwned" not in title
    assert "MARK-BEFORE" in screen
    assert "EXIT:0" in screen
    lines = screen.splitlines()
    bars = [line for line in lines if line.startswith("2026-11-0")]
    assert len(bars) == 4
    assert any("└" in line for line in lines)
    widest = max(cells(line) for line in bars)  # a scale's tick falls on whole cells: -1 each
    assert columns - 8 <= widest <= columns
    assert all(cells(line) <= columns for line in lines)
    assert any("\\x1b]0;pwned\\x07x" in line for line in lines)  # escaped, in the legend
    assert any("(untagged)" in line for line in lines)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--chart", "tokens"], "--chart shows cost, count or a --field, not 'tokens'"),
        (["--chart", "--format", "csv"], "--chart prints to standard output"),
        (["--chart", "--format", "json", "-o", "-"], "--chart prints to standard output"),
    ],
)
def test_a_chart_that_cannot_be_drawn_exits_2_before_any_request(
    local: LocalServer, args: list[str], message: str
) -> None:
    result = run("--server-url", local.url, *args)
    assert result.code == 2
    assert message in result.err
    assert local.requests() == []


def test_with_output_the_data_goes_to_the_file_and_the_chart_to_stdout(
    local: LocalServer, tmp_path: Path
) -> None:
    local.script({"json": answer()})
    target = tmp_path / "usage.csv"
    result = run("--server-url", local.url, "--group-by", "model", "--chart", "--format", "csv",
                 "-o", str(target), env=environment(COLUMNS="80"))  # fmt: skip
    assert (result.code, result.err) == (0, "")
    assert result.out == chart(local, answer(), 80, "--group-by", "model")
    assert target.read_text(encoding="utf-8").startswith("time_bucket,model,")


def test_costs_a_chart_cannot_scale_draw_no_bar(local: LocalServer) -> None:
    items = [
        {"time_bucket": f"2026-11-0{day}T00:00:00Z", "cost": cost, "count": 1, "model": "m"}
        for day, cost in enumerate(["NaN", "-1.5", "9E+999999", "Infinity", "0.250000"], 1)
    ]
    text = chart(local, items, 60, "--group-by", "model")
    bars = [line for line in text.splitlines() if line.startswith("2026-11-0")]
    assert len(bars) == 5
    assert [line.count("#") > 0 for line in bars] == [False, False, False, False, True]
    assert bars[-1].endswith("0.250000")


def test_calendar_periods_are_charted_by_their_labels_in_their_zone(local: LocalServer) -> None:
    result = run("--server-url", local.url, "--tz", "Europe/Stockholm", "--granularity", "week",
                 "--from", "2026-11-02", "--to", "2026-11-16", "--chart",
                 env=environment(COLUMNS="70"))  # fmt: skip
    assert (result.code, result.err) == (0, "")
    lines = result.out.splitlines()
    assert lines[0] == "cost (USD) per time bucket (Europe/Stockholm)"
    assert [line.split()[0] for line in lines if line.startswith("2026-W")] == [
        "2026-W45",
        "2026-W46",
    ]
