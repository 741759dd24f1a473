"""The report as a person sees it: the quickstart's report.html in headless Chromium (Debian's
``chromium`` package, driven by Playwright's Python API), with the network off.

Skips with a reason when chromium or playwright is absent (``.ci/run`` installs chromium,
the ``test`` extra installs playwright; ``playwright install`` is never needed)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("INSTRUCTKIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
#: a quiet, offline, throwaway browser (no sandbox as root in CI containers)
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-quic",
        "--disable-default-apps", "--disable-extensions", "--metrics-recording-only", "--mute-audio"]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"chromium is absent ({CHROMIUM}): apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is absent: pip install 'instructkit[test]'")
    with sync_api.sync_playwright() as p:
        # Playwright gives every launch a fresh temporary profile (--user-data-dir)
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def _open(browser, page_path: Path, *, js: bool = True):
    ctx = browser.new_context(offline=True, java_script_enabled=js, viewport={"width": 1280, "height": 900})
    requests: list[str] = []

    def route(r):
        if r.request.url.startswith("file:"):
            return r.continue_()
        requests.append(r.request.url)  # nothing may leave the machine
        return r.abort()

    ctx.route("**/*", route)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_path.resolve().as_uri())
    page.wait_for_load_state("load")
    return ctx, page, requests, errors


def test_charts_render_and_the_record_filter_counts(browser, report_quickstart, tmp_path):
    ctx, page, requests, errors = _open(browser, report_quickstart / "report.html")
    try:
        # the charts: SVG present, with a real size and drawn marks
        charts = page.locator("svg.chart")
        assert charts.count() >= 5
        for i in range(charts.count()):
            box = charts.nth(i).bounding_box()
            assert box and box["width"] > 200 and box["height"] > 30
        bars = page.eval_on_selector_all("[data-chart=composition] svg rect",
                                         "els => els.map(e => e.getBBox().width)")
        assert len(bars) >= 7 and all(w > 0 for w in bars)
        page.screenshot(path=str(tmp_path / "report-top.png"))

        # the record browser: all 51 records, then one task
        count = page.locator("[data-browser=records] [data-count]")
        assert count.get_attribute("data-matches") == "51"
        before = count.inner_text()
        page.select_option("[data-browser=records] select[data-facet=task]", "diagnosis")
        assert count.get_attribute("data-matches") == "5"
        after = count.inner_text()
        assert after != before and after.startswith("5 of 51")
        shown = page.locator("[data-browser=records] .item:not([hidden])")
        assert shown.count() == 5
        assert set(shown.evaluate_all("els => els.map(e => e.dataset.task)")) == {"diagnosis"}

        # keyboard: into the list, next record with j, provenance with Enter
        shown.nth(0).focus()
        page.keyboard.press("j")
        assert page.evaluate("document.activeElement === document.querySelectorAll("
                             "'[data-browser=records] .item:not([hidden])')[1]")
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.querySelector('details').open")
        # "/" searches; words narrow the count
        page.select_option("[data-browser=records] select[data-facet=task]", "")
        page.keyboard.press("Escape")
        page.evaluate("document.activeElement.blur()")
        page.keyboard.press("/")
        assert page.evaluate("document.activeElement.matches('[data-browser=records] input[data-search]')")
        page.keyboard.type("pneumothorax")
        n = int(count.get_attribute("data-matches"))
        assert 0 < n < 51
        page.locator("#records").scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "report-records.png"))
        page.screenshot(path=str(tmp_path / "report-full.png"), full_page=True)
        assert (tmp_path / "report-top.png").stat().st_size > 10_000
        assert not errors, errors
        assert not requests, requests
    finally:
        ctx.close()


def test_overview_and_charts_read_without_javascript(browser, report_quickstart, tmp_path):
    ctx, page, requests, _ = _open(browser, report_quickstart / "report.html", js=False)
    try:
        assert page.locator("[data-fact=records]").inner_text() == "51"
        assert page.locator(".gates li").count() == 5
        charts = page.locator("svg.chart")
        assert charts.count() >= 5 and charts.nth(0).is_visible()
        # every record is in the page and visible; the filters (which need JS) are hidden
        assert page.locator("[data-browser=records] .item:visible").count() == 51
        assert not page.locator("[data-browser=records] .filters").is_visible()
        page.screenshot(path=str(tmp_path / "report-nojs.png"))
        assert not requests
    finally:
        ctx.close()
