"""`/docs` renders in Chromium with every request answered by our own server (no CDN)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from harness.server import live_server
from provenance.api.app import create_app
from provenance.core.config import Settings
from provenance.service import open_service
from tests.browser.test_web import CHROMIUM, CHROMIUM_ARGS, _screenshot_dir


@pytest.mark.slow
def test_docs_render_offline(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.is_file():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    settings = Settings(
        data_dir=tmp_path / "var", database_url=f"sqlite:///{tmp_path / 'docs.db'}", demo=False
    )
    service = open_service(settings)
    outside: list[str] = []
    problems: list[str] = []
    try:
        # No lifespan: the docs need neither the chain nor the worker.
        app = create_app(service)
        with live_server(app, lifespan="off") as url, sync_api.sync_playwright() as playwright:
            ours = urlsplit(url).netloc
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})

            def offline(route: object) -> None:
                request = route.request  # type: ignore[attr-defined]
                if urlsplit(request.url).scheme in ("data", "blob") or urlsplit(request.url).netloc == ours:
                    route.continue_()  # type: ignore[attr-defined]
                else:
                    outside.append(request.url)
                    route.abort()  # type: ignore[attr-defined]

            page.route("**/*", offline)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on(
                "response", lambda r: problems.append(f"{r.status}: {r.url}") if r.status >= 400 else None
            )
            page.goto(f"{url}/docs")
            page.locator(".swagger-ui .info .title").filter(has_text="Provenance").wait_for(timeout=30_000)
            page.locator(".opblock").first.wait_for(timeout=30_000)
            operations = page.locator(".opblock").count()
            assert page.get_by_text("/v1/verifications").count() > 0
            page.screenshot(path=str(_screenshot_dir(tmp_path) / "docs-desktop.png"))
            browser.close()
    finally:
        service.engine.dispose()
    assert operations > 10, operations
    assert not outside, f"the docs page asked another origin: {outside}"
    assert not problems, problems
