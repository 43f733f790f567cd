"""The web interface: session cookie and headers over HTTP, then the whole flow in Chromium.

The browser test drives Debian's Chromium with Playwright against a real uvicorn server on a
loopback port: sign in, upload a tampered clip, watch it verify, read the report.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from frames.samples import sample_clip
from generator.tampers import paste_region
from harness.accounts import enrol_device, make_key
from harness.manifests import signed_form
from harness.server import live_server
from provenance import fingerprint as fp
from provenance.api.app import create_app
from provenance.api.web import SESSION_COOKIE
from provenance.core.config import DecodeLimits, Settings
from provenance.core.db import session_scope
from provenance.core.timeutil import utcnow
from provenance.models import Verification
from provenance.service import Service, open_service
from tests.provenance.test_reports import BOX

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ORIGIN = {"Origin": "http://testserver"}
# The element reaching furthest right, to say what overflows a phone's screen.
WIDEST = """() => [...document.querySelectorAll('body *')]
  .map(e => [e.getBoundingClientRect().right, e.tagName + '.' + e.className])
  .sort((a, b) => b[0] - a[0])[0]"""


def _key(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def _sign_in(http: TestClient, key: str, **headers: str) -> httpx.Response:
    return http.post(
        "/ui/sign-in", data={"api_key": key, "next": "/ui/"}, headers=headers, follow_redirects=False
    )


def test_session_cookie_and_page_headers(http: TestClient, admin_headers: dict[str, str]) -> None:
    newsroom = _key(make_key(http, admin_headers, "newsroom"))
    camera = _key(make_key(http, admin_headers, "camera"))

    first = http.get("/ui/", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/ui/sign-in?next=/ui/"
    form = http.get("/ui/sign-in")
    assert form.status_code == 200
    assert form.headers["content-security-policy"].startswith("default-src 'self'")
    for header in ("x-frame-options", "x-content-type-options", "referrer-policy", "permissions-policy"):
        assert header in form.headers
    assert '<label for="api_key">' in form.text and 'id="api_key"' in form.text

    assert _sign_in(http, "pvk_not-a-key", **ORIGIN).status_code == 401
    assert _sign_in(http, camera, **ORIGIN).status_code == 403
    assert _sign_in(http, newsroom).status_code == 403, "a sign-in must come from our own page"
    assert SESSION_COOKIE not in http.cookies
    signed_in = _sign_in(http, newsroom, **ORIGIN)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/ui/"
    cookie = signed_in.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=pvs_") and newsroom not in cookie, "a session id, not the key"
    assert (
        "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie and "Max-Age=" in cookie
    )

    home = http.get("/ui/")
    assert home.status_code == 200 and "Verify a clip" in home.text and "newsroom client" in home.text
    assert home.headers["cache-control"] == "no-store"
    # The cookie stands in for the bearer key on same-origin requests only.
    assert http.get("/v1/verifications").json() == {"items": [], "limit": 20}
    cross = http.get("/v1/verifications", headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 401
    clip = sample_clip("carphone_pristine.mp4")
    files = {"media": (clip.name, clip.read_bytes(), "video/mp4")}
    assert http.post("/v1/verifications", files=files).status_code == 401, "no Origin: not ours"
    forged = http.post("/v1/verifications", files=files, headers={"Origin": "http://evil.example"})
    assert forged.status_code == 401
    assert http.post("/v1/verifications", files=files, headers=ORIGIN).status_code == 201

    assert http.get("/ui/operators").status_code == 403
    assert http.get("/static/app.css").headers["content-type"].startswith("text/css")
    assert http.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert http.get("/static/base.html").status_code == 404
    assert http.get("/ui/sign-in?next=//evil.example", follow_redirects=False).headers["location"] == "/ui/"

    out = http.post("/ui/sign-out", headers=ORIGIN, follow_redirects=False)
    assert out.status_code == 303 and SESSION_COOKIE not in http.cookies
    assert http.get("/v1/verifications").status_code == 401

    # An operator's session reaches the operators' page, but not the admin API by cookie.
    admin = _key(admin_headers)
    assert _sign_in(http, admin, **ORIGIN).status_code == 303
    operators = http.get("/ui/operators")
    assert operators.status_code == 200 and "No evaluation has run yet." in operators.text
    created = http.post("/v1/clients", json={"name": "x", "scope": "camera"}, headers=ORIGIN)
    assert created.status_code == 401


def test_upload_form_without_javascript(http: TestClient, admin_headers: dict[str, str]) -> None:
    newsroom = _key(make_key(http, admin_headers, "newsroom"))
    assert _sign_in(http, newsroom, **ORIGIN).status_code == 303
    clip = sample_clip("carphone_pristine.mp4")
    response = http.post(
        "/ui/verifications",
        files={"media": (clip.name, clip.read_bytes(), "video/mp4")},
        headers=ORIGIN,
        follow_redirects=False,
    )
    assert response.status_code == 303
    report = http.get(response.headers["location"], headers={"Accept": "text/html"})
    assert report.status_code == 200 and "No registered original matches this clip." in report.text
    listed = http.get("/ui/").text
    assert "no match" in listed and "100 %" not in listed, "an unknown verdict is not 'UNKNOWN 100 %'"
    bad = http.post(
        "/ui/verifications", files={"media": ("x.mp4", b"not a video" * 50, "video/mp4")}, headers=ORIGIN
    )
    assert bad.status_code == 415 and 'role="alert"' in bad.text and "media_unsupported_format" in bad.text


def test_report_page_while_running_and_after_failure(
    http: TestClient, service: Service, admin_headers: dict[str, str]
) -> None:
    newsroom = make_key(http, admin_headers, "newsroom")
    client = service.clients.authenticate(_key(newsroom))
    assert client is not None
    with session_scope(service.engine) as session:
        result = json.dumps({"verdict": "unknown", "confidence": 0.9, "match": None})
        for vid, status, error, finished in (
            ("ver_running", "running", None, None),
            (
                "ver_failed",
                "failed",
                json.dumps({"code": "media_undecodable", "detail": "not media"}),
                utcnow(),
            ),
            ("ver_drawing", "done", None, utcnow()),
            ("ver_undrawn", "done", None, utcnow() - timedelta(minutes=10)),
        ):
            session.add(
                Verification(
                    id=vid,
                    client_id=client.id,
                    status=status,
                    filename="clip.mp4",
                    media_sha256="0" * 64,
                    created_at=utcnow(),
                    error=error,
                    result=result if status == "done" else None,
                    finished_at=finished,
                )
            )
    html = {**newsroom, "Accept": "text/html"}
    running = http.get("/v1/verifications/ver_running/report", headers=html)
    assert running.status_code == 200 and "Verification in progress" in running.text
    assert 'data-poll="/v1/verifications/ver_running"' in running.text and 'role="status"' in running.text
    failed = http.get("/v1/verifications/ver_failed/report", headers=html)
    assert "Verification failed" in failed.text and "media_undecodable: not media" in failed.text
    missing = http.get("/v1/verifications/ver_nope/report", headers=html)
    assert missing.status_code == 404 and "Not available" in missing.text
    drawing = http.get("/v1/verifications/ver_drawing/report", headers=html)
    assert "Preparing the report" in drawing.text and 'data-reload="2000"' in drawing.text
    undrawn = http.get("/v1/verifications/ver_undrawn/report", headers=html)
    assert (
        "Report unavailable" in undrawn.text
        and "Verdict: unknown (no registered original matches this clip)." in undrawn.text
    )
    codes = {
        vid: http.get(f"/v1/verifications/{vid}/report", headers=newsroom)
        for vid in ("ver_running", "ver_failed", "ver_drawing", "ver_undrawn")
    }
    assert {vid: (r.status_code, r.json()["code"]) for vid, r in codes.items()} == {
        "ver_running": (409, "verification_pending"),
        "ver_failed": (409, "verification_failed"),
        "ver_drawing": (409, "report_pending"),
        "ver_undrawn": (404, "report_unavailable"),
    }
    listed = http.get("/v1/verifications", headers=newsroom).json()["items"]
    assert {item["id"]: item["status"] for item in listed} == {
        "ver_running": "running",
        "ver_failed": "failed",
        "ver_drawing": "done",
        "ver_undrawn": "done",
    }


# --- the whole flow in Chromium ---


def _register(api: httpx.Client, admin: dict[str, str], clip: Path) -> str:
    """Enrol a device, register `clip` with its media, wait until its root is anchored."""
    device = enrol_device(api, admin, "browser test camera")
    camera = make_key(api, admin, "camera", "cam")
    fingerprint = fp.compute_fingerprint(clip, limits=DecodeLimits(), sample_fps=4.0)
    content = clip.read_bytes()
    response = api.post(
        "/v1/registrations",
        headers=camera,
        data=signed_form(fingerprint, device.key, device.id, hashlib.sha256(content).hexdigest()),
        files={"media": (clip.name, content, "video/mp4")},
    )
    assert response.status_code == 201, response.text
    registration_id: str = response.json()["id"]
    deadline = time.monotonic() + 90
    while (
        api.get(f"/v1/registrations/{registration_id}/receipt", headers=camera).json()["anchor"]["status"]
        != "anchored"
    ):
        assert time.monotonic() < deadline, "the registration was not anchored within 90 s"
        time.sleep(0.5)
    return registration_id


def _screenshot_dir(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("PROVENANCE_SCREENSHOTS", str(tmp_path / "screenshots")))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.mark.slow
def test_browser_sign_in_upload_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.is_file():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    settings = Settings(
        data_dir=tmp_path / "var",
        database_url=f"sqlite:///{tmp_path / 'web.db'}",
        anchor_interval_s=1.0,
        demo=False,
        limits=DecodeLimits(max_upload_bytes=20 * 1024 * 1024, max_decode_seconds=60),
    )
    service = open_service(settings)
    bikes = sample_clip("bikes.mp4")
    tampered = tmp_path / "bikes-tampered.mp4"
    truth = paste_region(bikes, tampered, start=3.0, duration=2.0, box=BOX)
    [(t0, t1)] = truth.ranges
    shots = _screenshot_dir(tmp_path)
    problems: list[str] = []
    try:
        with live_server(create_app(service)) as url, httpx.Client(base_url=url, timeout=120) as api:
            admin = {"Authorization": f"Bearer {service.new_admin_key}"}
            registration_id = _register(api, admin, bikes)
            newsroom_key = api.post(
                "/v1/clients", json={"name": "Example Newsroom", "scope": "newsroom"}, headers=admin
            ).json()["api_key"]

            with sync_api.sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                page = context.new_page()
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: problems.append(str(e)))
                page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
                page.on(
                    "response", lambda r: problems.append(f"{r.status}: {r.url}") if r.status >= 400 else None
                )

                page.goto(f"{url}/ui/")
                assert page.url.endswith("/ui/sign-in?next=/ui/")
                page.screenshot(path=str(shots / "sign-in-desktop.png"))
                page.keyboard.press("Tab")
                assert page.evaluate("document.activeElement.textContent") == "Skip to content"
                page.get_by_label("API key").fill(newsroom_key)
                page.get_by_label("API key").press("Enter")  # by keyboard, as anyone may
                page.wait_for_url(f"{url}/ui/")
                [cookie] = [c for c in context.cookies() if c["name"] == SESSION_COOKIE]
                assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
                assert page.evaluate("document.cookie") == "", "scripts cannot read the session"

                page.get_by_label("Clip or photo").set_input_files(str(tampered))
                page.get_by_role("button", name="Verify").click()
                page.get_by_role("status").filter(has_text=re.compile("Upload|Verif|Done")).wait_for(
                    timeout=30_000
                )
                page.wait_for_url(re.compile(r"/v1/verifications/ver_[0-9a-f]+/report$"), timeout=180_000)

                headline = page.get_by_role("heading", level=1).inner_text()
                assert (
                    headline
                    == f"This clip is a tampered copy of the original registered as {registration_id}."
                )
                timeline = page.locator("img#timeline")
                alt = timeline.get_attribute("alt") or ""
                assert "Tampered ranges, shaded:" in alt, alt
                ranges = [
                    tuple(float(v) for v in part.split("-"))
                    for part in (timeline.get_attribute("data-tampered-ranges") or "").split(";")
                ]
                assert ranges and all(a < t1 + 0.6 and b > t0 - 0.6 for a, b in ranges), ranges
                sizes = page.eval_on_selector_all(
                    "img.heatmap", "images => images.map(i => i.complete ? i.naturalWidth : 0)"
                )
                assert sizes and all(width > 0 for width in sizes), sizes
                assert page.eval_on_selector("img#timeline", "i => i.naturalWidth") > 0
                text = page.locator("main").inner_text()
                assert "anchored" in text and "provenance receipt verify" in text and "valid" in text
                # Heat map, outline and verdict from one comparer, named under the legend.
                comparer = json.loads(page.locator("pre.json code").last.text_content() or "")["comparer"][
                    "name"
                ]
                assert f"comparer that gave the verdict ({comparer})" in text or comparer == "pdq-grid", (
                    comparer
                )
                receipt_shown = page.locator("#receipt-json").text_content() or ""
                assert json.loads(receipt_shown)["registration_id"] == registration_id, "receipt embedded"
                full = shots / "report-desktop.png"
                page.screenshot(path=str(full), full_page=True)

                # The receipt link works with the session cookie.
                with page.expect_download() as download:
                    page.get_by_role("link", name="Download the receipt").click()
                receipt = json.loads(Path(download.value.path()).read_text())
                assert receipt["registration_id"] == registration_id

                # Readable on a phone: nothing wider than the screen.
                phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1)
                phone.add_cookies([cookie])
                mobile = phone.new_page()
                mobile.goto(page.url)
                widest = mobile.evaluate(WIDEST)
                assert mobile.evaluate("document.documentElement.scrollWidth") <= 390, widest
                mobile.screenshot(path=str(shots / "report-phone.png"), full_page=True)
                mobile.goto(f"{url}/ui/")
                assert mobile.evaluate("document.documentElement.scrollWidth") <= 390
                assert mobile.get_by_role("link", name=re.compile("^Report")).count() == 1
                mobile.screenshot(path=str(shots / "home-phone.png"), full_page=True)
                page.goto(f"{url}/ui/")
                page.screenshot(path=str(shots / "home-desktop.png"), full_page=True)
                browser.close()
    finally:
        service.engine.dispose()
    assert not problems, problems  # no CSP violation, script error or failed request
    with capsys.disabled():
        print(
            f"\nscreenshots: {full} (and sign-in-desktop, home-desktop, report-phone, home-phone beside it)"
        )
