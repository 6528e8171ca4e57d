"""`opper-usage check`, run as a subprocess against the testing kit (a process whose `now` is
fixed, checked `--as-of` that moment): spend, forecast and share as the README's rule makes
them from the kit's own buckets, each exit status, the budgets file and its mistakes, a past
month, and bad usage refused before anything is sent."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from opperai_usage import Opper
from tests.support import API_KEY
from tests.support.command_line import Result, run
from tests.support.fixed_kit import kit_at
from tests.support.servers import LocalServer

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 20, 15, tzinfo=UTC)  # data from 2026-09-22 to 2026-11-20
AS_OF = ["--as-of", "2026-11-20T15:00:00Z"]


@pytest.fixture(scope="module")
def kit() -> Iterator[LocalServer]:
    with kit_at(NOW) as server:
        yield server


@pytest.fixture
def fresh(kit: LocalServer) -> LocalServer:
    kit.reset()
    return kit


def check(kit: LocalServer, *args: str) -> Result:
    return run("check", "--server-url", kit.url, *AS_OF, *args)


@dataclass(frozen=True)
class Figures:
    spent: Decimal
    forecast: Decimal | None

    @property
    def forecast_made(self) -> Decimal:
        assert self.forecast is not None
        return self.forecast


def figures(
    kit: LocalServer,
    tz: str = "UTC",
    month: tuple[int, int] = (2026, 11),
    tag: str | None = None,
    value: str | None = None,
) -> Figures:
    """Spent and forecast by the README's rule, worked out here from the kit's buckets (days in
    UTC, hours elsewhere, grouped by `tag` when given, as the command asks: the API rounds each
    bucket's cost): spent so far + the mean of the complete local days x the 24-hour days
    left; none once the month has ended. `value`: only that value's buckets."""
    zone = ZoneInfo(tz)
    start = dt.datetime(*month, 1, tzinfo=zone)
    end = dt.datetime(month[0] + month[1] // 12, month[1] % 12 + 1, 1, tzinfo=zone)
    upto = min(NOW, end.astimezone(UTC))
    with Opper(api_key=API_KEY, server_url=kit.url) as opper:
        items = opper.analytics.get_usage(
            from_date=start, to_date=upto, granularity="day" if tz == "UTC" else "hour",
            group_by=[tag] if tag else None,
        )  # fmt: skip
    if tag is not None and value is not None:
        items = [i for i in items if (i[tag] is None if value == "(untagged)" else i[tag] == value)]
    spent = sum((Decimal(i.cost) for i in items), Decimal(0))
    if end <= NOW:
        return Figures(spent, None)
    today = NOW.astimezone(zone).date()
    today_start = dt.datetime(today.year, today.month, today.day, tzinfo=zone).astimezone(UTC)
    complete = sum((Decimal(i.cost) for i in items if i.time_bucket < today_start), Decimal(0))
    complete_days = (today - start.date()).days
    days_left = Decimal(str((end.astimezone(UTC) - NOW).total_seconds())) / 86_400
    forecast = spent + complete / complete_days * days_left
    return Figures(spent, forecast.quantize(Decimal("0.000001"), ROUND_HALF_EVEN))


def report(result: Result) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(result.out)
    return document


def test_within_budget_exits_0_and_reports_spend_forecast_and_share(fresh: LocalServer) -> None:
    want = figures(fresh)
    assert want.forecast_made > want.spent > 0
    budget = (want.forecast_made * 2).quantize(Decimal("0.01"))
    result = check(fresh, "--budget", str(budget), "--format", "json")
    assert (result.code, result.err) == (0, "")
    document = report(result)
    assert {k: document[k] for k in ("month", "time_zone", "as_of", "final")} == {
        "month": "2026-11", "time_zone": "UTC", "as_of": "2026-11-20T15:00:00Z", "final": False,
    }  # fmt: skip
    assert (document["days"], document["complete_days"], document["exit_status"]) == (30, 19, 0)
    (total,) = document["budgets"]
    assert Decimal(total["spent"]) == want.spent
    assert Decimal(total["forecast"]) == want.forecast_made
    assert Decimal(total["budget"]) == budget
    assert total["used_percent"] == float(round(want.spent / budget * 100, 2))
    assert (total["tag"], total["status"]) == (None, "ok")
    # The table, for people: the same figures.
    table = check(fresh, "--budget", str(budget))
    assert table.code == 0
    lines = table.out.splitlines()
    assert lines[0] == "2026-11 in UTC, as of 2026-11-20T15:00:00Z: 19 of 30 days complete"
    assert lines[2].split() == ["scope", "spent", "forecast", "budget", "used", "status"]
    assert lines[4].split()[:4] == ["total", str(want.spent), str(want.forecast_made), str(budget)]
    assert lines[4].split()[-1] == "ok"
    assert lines[-1].startswith("forecast: spent + the mean of the 19 complete days x the 10.4")


def test_forecast_over_exits_3_and_spend_over_exits_4(fresh: LocalServer) -> None:
    want = figures(fresh)
    between = ((want.spent + want.forecast_made) / 2).quantize(Decimal("0.000001"))
    below = (want.spent - Decimal("0.000001")).quantize(Decimal("0.000001"))
    at_risk = check(fresh, "--budget", str(between), "--format", "json")
    over = check(fresh, "--budget", str(below), "--format", "json")
    assert (at_risk.code, over.code, at_risk.err, over.err) == (3, 4, "", "")
    assert report(at_risk)["budgets"][0]["status"] == "forecast over"
    assert report(over)["budgets"][0]["status"] == "over"
    exactly = check(fresh, "--budget", str(want.forecast_made))  # not over: at it
    assert exactly.code == 0


def test_warn_at_exits_3_once_spend_passes_the_share(fresh: LocalServer) -> None:
    """In a past month (no forecast): 90 % used is past 80 %, and not past 95 %."""
    want = figures(fresh, month=(2026, 10))
    budget = (want.spent / Decimal("0.9")).quantize(Decimal("0.000001"))
    warned = check(fresh, "--month", "2026-10", "--budget", str(budget), "--warn-at", "80%")
    quiet = check(fresh, "--month", "2026-10", "--budget", str(budget), "--warn-at", "95")
    plain = check(fresh, "--month", "2026-10", "--budget", str(budget))
    assert (warned.code, quiet.code, plain.code) == (3, 0, 0)
    assert warned.out.splitlines()[4].split()[-2:] == ["past", "80%"]


def test_a_past_month_is_final_with_no_forecast(fresh: LocalServer) -> None:
    want = figures(fresh, month=(2026, 10))
    result = check(fresh, "--month", "2026-10", "--budget", "1000", "--format", "json")
    assert result.code == 0
    document = report(result)
    assert (document["final"], document["days"], document["complete_days"]) == (True, 31, 31)
    (total,) = document["budgets"]
    assert (Decimal(total["spent"]), total["forecast"], want.forecast) == (want.spent, None, None)
    table = check(fresh, "--month", "2026-10", "--budget", "1000")
    assert table.out.splitlines()[0] == "2026-10 in UTC: final, the month has ended"
    assert table.out.splitlines()[4].split()[2] == "-"
    queried = fresh.requests()[-1]["query"]
    assert queried["from_date"] == ["2026-10-01T00:00:00Z"]
    assert queried["to_date"] == ["2026-11-01T00:00:00Z"]


def test_the_first_day_of_a_month_has_no_forecast_yet(fresh: LocalServer) -> None:
    result = run("check", "--server-url", fresh.url, "--as-of", "2026-11-01T09:00Z",
                 "--budget", "0.01", "--format", "json")  # fmt: skip
    document = report(result)
    assert (document["complete_days"], document["budgets"][0]["forecast"]) == (0, None)
    assert result.code == 4  # spend alone decides: over a cent by 09:00


def test_a_time_zone_moves_the_month_and_its_days(fresh: LocalServer) -> None:
    result = check(fresh, "--tz", "America/New_York", "--budget", "1000", "--format", "json")
    assert result.code == 0
    (request,) = fresh.requests()
    assert request["query"]["from_date"] == ["2026-11-01T04:00:00Z"]  # EDT until the 1st, 02:00
    assert request["query"]["granularity"] == ["hour"]
    want = figures(fresh, tz="America/New_York")
    document = report(result)
    assert (document["time_zone"], document["complete_days"]) == ("America/New_York", 19)
    (total,) = document["budgets"]
    assert (Decimal(total["spent"]), Decimal(total["forecast"])) == (
        want.spent,
        want.forecast_made,
    )


BUDGETS = """\
# November
total = 1000
warn_at = "99%"

[per."project.name"]
alpha = 0.000001
beta = "1000.00"
"(untagged)" = {untagged}
"""


def test_a_budgets_file_reports_each_budget_and_exits_with_the_worst(
    fresh: LocalServer, tmp_path: Path
) -> None:
    untagged = figures(fresh, tag="project.name", value="(untagged)")
    midway = ((untagged.spent + untagged.forecast_made) / 2).quantize(Decimal("0.000001"))
    path = tmp_path / "budgets.toml"
    path.write_text(BUDGETS.format(untagged=midway))
    result = check(fresh, "--budgets", str(path), "--format", "json")
    document = report(result)
    statuses = [(b["tag"], b["value"], b["status"]) for b in document["budgets"]]
    assert statuses == [
        (None, None, "ok"),
        ("project.name", "alpha", "over"),
        ("project.name", "beta", "ok"),
        ("project.name", "(untagged)", "forecast over"),
    ]
    assert (result.code, document["exit_status"]) == (4, 4)
    for entry in document["budgets"][1:]:
        want = figures(fresh, tag="project.name", value=entry["value"])
        assert (Decimal(entry["spent"]), Decimal(entry["forecast"])) == (
            want.spent, want.forecast_made,
        )  # fmt: skip
    everything = figures(fresh, tag="project.name")
    assert Decimal(document["budgets"][0]["spent"]) == everything.spent
    (request,) = [r for r in fresh.requests() if r["query"].get("group_by")][:1]
    assert request["query"]["group_by"] == ["project.name"]
    # Without alpha's budget the worst is the untagged forecast: 3.
    path.write_text(BUDGETS.format(untagged=midway).replace("alpha = 0.000001\n", ""))
    assert check(fresh, "--budgets", str(path)).code == 3


def test_group_values_are_escaped_for_the_terminal(fresh: LocalServer, tmp_path: Path) -> None:
    evil = "\x1b]0;pwned\x07\x1b[2J"
    fresh.script(
        {"json": [{"time_bucket": "2026-11-02T00:00:00Z", "cost": "5.000000", "customer": evil}]}
    )
    path = tmp_path / "budgets.toml"
    path.write_text('[per.customer]\n"\\u001b]0;pwned\\u0007\\u001b[2J" = 1\n')
    result = check(fresh, "--budgets", str(path))
    assert result.code == 4
    assert "\x1b" not in result.out
    assert "\x07" not in result.out
    assert "customer = \\x1b]0;pwned\\x07\\x1b[2J" in result.out
    fresh.script(
        {"json": [{"time_bucket": "2026-11-02T00:00:00Z", "cost": "5.000000", "customer": evil}]}
    )
    as_json = report(check(fresh, "--budgets", str(path), "--format", "json"))
    assert as_json["budgets"][0]["value"] == evil  # JSON keeps the value as it is


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("total = 5\ntotl = 6\n", "budgets.toml, line 2: unknown key 'totl'"),
        ("total = 5\n\n[per.project.name]\nalpha = 1\n",
         'budgets.toml, line 3: per.project.name is a table: quote a tag name holding a dot, '
         'as in [per."project.name"]'),
        ('[per."project.name"]\nalpha = -1\n',
         "budgets.toml, line 2: the budget for project.name = 'alpha' must be a positive"),
        ("total = 5\nwarn_at = '180%'\n", "budgets.toml, line 2: warn_at must be a percentage"),
        ("total = \n", "budgets.toml: not TOML: Invalid value (at line 1, column 9)"),
        ("# nothing\n", "budgets.toml: no budget in it"),
        ("per = 5\n", "budgets.toml, line 1: per must be tables of budgets"),
    ],
)  # fmt: skip
def test_mistakes_in_the_budgets_file_exit_2_naming_the_line(
    fresh: LocalServer, tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text(text)
    result = check(fresh, "--budgets", str(path))
    assert result.code == 2
    assert result.out == ""
    assert result.err.startswith("opper-usage: error: " + str(tmp_path / message)), result.err
    assert fresh.requests() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget", "-5"], "--budget must be a positive amount of USD"),
        (["--budget", "lots"], "--budget must be a positive amount of USD"),
        (["--budget", "5", "--warn-at", "150%"], "--warn-at must be a percentage"),
        (["--budget", "5", "--tz", "Mars/Olympus"], "--tz: 'Mars/Olympus' is not a time zone"),
        (["--budget", "5", "--month", "2026-12"], "2026-12 has not begun as of"),
        (["--budget", "5", "--budgets", "x.toml"], "argument --budgets: not allowed with"),
        ([], "one of the arguments --budget --budgets is required"),
        (["--budgets", "/nonexistent/b.toml"], "--budgets: cannot read /nonexistent/b.toml"),
    ],
)
def test_bad_usage_exits_2_before_any_request(
    fresh: LocalServer, args: list[str], message: str
) -> None:
    result = check(fresh, *args)
    assert result.code == 2
    assert result.out == ""
    assert message in result.err
    assert fresh.requests() == []


def test_an_api_failure_exits_1_in_one_line(fresh: LocalServer) -> None:
    fresh.script({"status": 401, "json": {"detail": "bad key"}})
    result = check(fresh, "--budget", "5")
    assert (result.code, result.out) == (1, "")
    assert result.err.startswith("opper-usage: UnauthorizedError: status 401: ")
    assert result.err.count("\n") == 1


def test_without_as_of_it_checks_this_month_up_to_now(local: LocalServer) -> None:
    before = dt.datetime.now(UTC).replace(microsecond=0)
    result = run("check", "--server-url", local.url, "--budget", "1000000", "--format", "json")
    after = dt.datetime.now(UTC)
    assert (result.code, result.err) == (0, "")
    document = report(result)
    as_of = dt.datetime.fromisoformat(document["as_of"].replace("Z", "+00:00"))
    assert before <= as_of <= after
    assert document["month"] == f"{as_of:%Y-%m}"
    assert document["complete_days"] == as_of.day - 1
    (request,) = local.requests()
    assert request["query"]["from_date"] == [f"{as_of:%Y-%m}-01T00:00:00Z"]
    assert request["query"]["to_date"] == [document["as_of"]]  # whole seconds, as --last
