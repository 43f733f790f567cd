"""`/docs` renders in Chromium with every request answered by our own server (no CDN)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import uvicorn
from fastapi import FastAPI

from harness.server import free_port
from provenance.api.app import create_app
from provenance.core.config import Settings
from provenance.service import open_service
from tests.browser.test_web import CHROMIUM, CHROMIUM_ARGS, _screenshot_dir


@contextmanager
def docs_server(app: FastAPI) -> Iterator[str]:
    """uvicorn without the lifespan: the docs need neither the chain nor the worker."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="uvicorn-docs", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


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
        with docs_server(create_app(service)) as url, sync_api.sync_playwright() as playwright:
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
