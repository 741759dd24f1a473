"""Screenshots of a dataset report for the README (docs/report*.png), in headless Chromium.

    instructkit build quickstart --out quickstart-out
    python bench/report_screenshots.py quickstart-out            # writes docs/report.png, ...

Needs Debian's ``chromium`` and Playwright (the ``test`` extra). Offline: every request that is
not the file itself is refused, as in tests/test_report_browser.py."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("INSTRUCTKIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path, help="a built dataset folder (report.html is made if absent)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    ap.add_argument("--method", default="rag", help="the record browser shot shows records of this method")
    args = ap.parse_args()
    page_path = args.folder / "report.html"
    if not page_path.is_file():
        from instructkit import write_report

        write_report(args.folder)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        ctx = browser.new_context(offline=True, viewport={"width": 1200, "height": 1050})
        ctx.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort())
        page = ctx.new_page()
        page.goto(page_path.resolve().as_uri())
        page.wait_for_load_state("load")
        args.out.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out / "report.png"))
        page.set_viewport_size({"width": 1200, "height": 1460})
        page.locator("#composition").scroll_into_view_if_needed()
        page.screenshot(path=str(args.out / "report-charts.png"))
        page.set_viewport_size({"width": 1200, "height": 1050})
        page.locator("#records").scroll_into_view_if_needed()
        page.select_option("[data-browser=records] select[data-facet=method]", args.method)
        first = page.locator("[data-browser=records] .item:not([hidden])")
        if first.count():
            first.nth(0).locator("details").first.evaluate("d => d.open = true")
        page.wait_for_timeout(300)
        page.evaluate("window.scrollTo(0, document.querySelector('#records').getBoundingClientRect().top"
                      " + window.scrollY - 60)")
        page.screenshot(path=str(args.out / "report-records.png"))
        browser.close()
    print(f"wrote {', '.join(str(args.out / n) for n in ('report.png', 'report-charts.png', 'report-records.png'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
