"""The saved report on a phone in Chromium: the timeline's legend and axis text stay at least 12 px,
and the embedded receipt downloads from the file itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provenance.reports import render_report
from provenance.reports.timeline import DPI, PHONE_FONT_PT
from tests.browser.test_web import CHROMIUM, CHROMIUM_ARGS, _screenshot_dir
from tests.provenance.test_reports import BIKES, LIMITS, Tampered, tampered  # noqa: F401  (the fixture)


@pytest.mark.slow
def test_report_on_a_phone(tampered: Tampered, tmp_path: Path) -> None:  # noqa: F811
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.is_file():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    _, _, original, result, seen = tampered
    receipt = {
        "schema": "provenance.receipt/v1",
        "registration_id": "reg_original",
        "anchor": {"status": "anchored"},
    }
    path = render_report(result, *seen, BIKES, original, tmp_path / "report", LIMITS, receipt=receipt)
    shots = _screenshot_dir(tmp_path)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        phone = browser.new_context(
            viewport={"width": 390, "height": 844}, device_scale_factor=1, accept_downloads=True
        )
        page = phone.new_page()
        page.goto(path.as_uri())
        timeline = page.locator("img#timeline")
        timeline.scroll_into_view_if_needed()
        shown = timeline.evaluate(
            "i => [i.currentSrc === i.src, i.naturalWidth, i.getBoundingClientRect().width]"
        )
        desktop_src, natural, width = shown
        assert not desktop_src, "the phone gets the narrow timeline"
        text_px = PHONE_FONT_PT * DPI / 72 * width / natural
        assert text_px >= 12, (text_px, natural, width)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        legend_px = page.eval_on_selector(".legend-labels", "e => parseFloat(getComputedStyle(e).fontSize)")
        assert legend_px >= 12, legend_px
        page.screenshot(path=str(shots / "saved-report-phone.png"), full_page=True)
        timeline.screenshot(path=str(shots / "timeline-phone.png"))
        with page.expect_download() as download:
            page.get_by_role("link", name="Download the receipt").click()
        assert json.loads(Path(download.value.path()).read_text()) == receipt
        assert download.value.suggested_filename == "receipt-reg_original.json"
        browser.close()
