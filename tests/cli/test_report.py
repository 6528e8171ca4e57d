"""`opper-usage --html FILE`: the report, opened in a real headless browser (Debian's chromium,
driven by Playwright): it renders, the chart has one bar per time bucket, stacked by the first
group-by key, with heights in proportion to cost, nothing is fetched from anywhere, tags are
escaped, and a screenshot is kept in .artifacts/report.png."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support import ROOT
from tests.support.command_line import run
from tests.support.servers import LocalServer

#: One worker runs them all, so that Chromium is launched once (`browser`), not once per worker.
pytestmark = pytest.mark.xdist_group("chromium")
ARTIFACTS = ROOT / ".artifacts"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MODELS: list[str | None] = ["gpt-4o", "claude-sonnet-4", "<script>alert(1)</script>", None]
DAYS = 10


def report_items() -> list[dict[str, Any]]:
    """Ten daily buckets; each model has usage on most days, so bars differ in segments."""
    items = []
    for day in range(1, DAYS + 1):
        for index, model in enumerate(MODELS):
            if (day + index) % 4 == 0:
                continue  # this model had no usage that day
            items.append(
                {
                    "time_bucket": f"2026-11-{day:02d}T00:00:00Z",
                    "cost": f"{((day * 7 + index * 3) % 11 + 1) / 1000:.6f}",
                    "total_tokens": day * 100 + index,
                    "model": model,
                }
            )
    return items


def write_report(local: LocalServer, folder: Path, items: list[dict[str, Any]], *args: str) -> Path:
    local.script({"json": items})
    page = folder / "report.html"
    result = run("--server-url", local.url, "--html", str(page), *args)
    assert (result.code, result.err) == (0, ""), result.err
    return page


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium (CHROMIUM_BIN, which `nox -s tests` sets, or `chromium` on PATH),
    launched by Playwright on a fresh temporary profile."""
    executable = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium")
    if not executable:
        pytest.fail(
            "the report tests need Debian's chromium: `apt-get install chromium`, or run them "
            "through `nox -s tests`, which installs it (or set CHROMIUM_BIN)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_FLAGS, timeout=60_000
        )
        try:
            yield launched
        finally:
            launched.close()


def open_page(browser: Browser, path: Path) -> tuple[Page, list[str], list[str]]:
    """The page, loaded; the URLs it requested and the errors (console, page, dialogs) it met."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.set_default_timeout(20_000)
    requested: list[str] = []
    problems: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on(
        "console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))
    page.goto(path.as_uri(), wait_until="load")
    return page, requested, problems


def test_the_report_renders_one_bar_per_bucket(
    local: LocalServer, tmp_path: Path, browser: Browser
) -> None:
    items = report_items()
    path = write_report(local, tmp_path, items, "--group-by", "model", "--field", "total_tokens")
    page, requested, problems = open_page(browser, path)
    try:
        bars: list[dict[str, Any]] = page.evaluate(
            """() => Array.from(document.querySelectorAll('svg g.bar')).map(bar => {
                const box = bar.getBoundingClientRect();
                return {bucket: bar.dataset.bucket, cost: Number(bar.dataset.cost),
                        x: box.x, height: box.height, width: box.width,
                        segments: bar.querySelectorAll('rect').length};
            })"""
        )
        legend = page.locator(".legend li").all_inner_texts()
        rows = page.locator("table.data tbody tr").count()
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "report.png"
        page.screenshot(path=str(shot), full_page=True)
    finally:
        page.close()

    assert requested == [path.as_uri()]  # nothing but the page itself
    assert problems == []  # no script ran (no dialog), nothing was blocked or failed
    buckets = sorted({item["time_bucket"] for item in items})
    assert [bar["bucket"] for bar in bars] == buckets  # one bar per bucket, in time order
    assert [bar["x"] for bar in bars] == sorted(bar["x"] for bar in bars)
    for bar in bars:
        day = [item for item in items if item["time_bucket"] == bar["bucket"]]
        assert bar["segments"] == len(day)  # stacked: one segment per model that day
        assert bar["cost"] == pytest.approx(sum(float(item["cost"]) for item in day))
        assert bar["width"] > 10
    per_dollar = [bar["height"] / bar["cost"] for bar in bars]
    assert max(per_dollar) == pytest.approx(min(per_dollar), rel=0.02)  # heights ∝ cost
    assert sorted(legend) == sorted(
        ["gpt-4o", "claude-sonnet-4", "<script>alert(1)</script>", "(untagged)"]
    )
    assert rows == len(items)
    assert shot.stat().st_size > 20_000


class Inventory(HTMLParser):
    """Every tag and attribute of a page, and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(tag, name) for name, _ in attrs]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_report_loads_nothing_and_escapes_every_value(
    local: LocalServer, tmp_path: Path
) -> None:
    path = write_report(local, tmp_path, report_items(), "--group-by", "model")
    html = path.read_text(encoding="utf-8")
    inventory = Inventory()
    inventory.feed(html)
    loaders = {"script", "link", "img", "iframe", "object", "embed", "image", "use", "source"}
    assert loaders.isdisjoint(inventory.tags)
    assert not [
        (tag, name)
        for tag, name in inventory.attributes
        if name in {"src", "href", "srcset", "xlink:href", "action", "data", "poster"}
    ]
    assert "url(" not in html
    assert "@import" not in html
    assert "default-src 'none'" in html  # and the browser is told to refuse anything else
    assert "<script>alert(1)</script>" in "".join(inventory.text)  # shown as text...
    assert "<script>alert" not in html  # ...because it is escaped


def test_the_chart_stacks_many_keys_into_others_and_needs_no_group_by(
    local: LocalServer, tmp_path: Path, browser: Browser
) -> None:
    items = [
        {"time_bucket": f"2026-11-0{day}T00:00:00Z", "cost": f"0.00{n}000", "model": f"m{n}"}
        for day in (1, 2)
        for n in range(1, 10)
    ]
    many = write_report(local, tmp_path, items, "--group-by", "model")
    page, _, problems = open_page(browser, many)
    try:
        legend = page.locator(".legend li").all_inner_texts()
        segments = page.locator("svg g.bar").first.locator("rect").count()
    finally:
        page.close()
    assert problems == []
    assert len(legend) == 9
    assert legend[-1] == "1 other"
    assert legend[0] == "m9"  # the largest first, at the bottom of the stack
    assert segments == 9

    plain = write_report(local, tmp_path, items)  # no --group-by: one series
    page, _, problems = open_page(browser, plain)
    try:
        legend = page.locator(".legend li").all_inner_texts()
        bars = page.locator("svg g.bar").count()
    finally:
        page.close()
    assert (problems, legend, bars) == ([], ["all usage"], 2)
