"""Every web page (signed in or not), static file and redirect carries the security headers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from provenance.api.app import create_app
from provenance.api.web import static_files
from provenance.service import open_service
from tests.conftest import chainless_settings

REQUIRED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}


@pytest.fixture
def web(tmp_path: Path) -> Iterator[TestClient]:
    service = open_service(chainless_settings(tmp_path, f"sqlite:///{tmp_path / 'web.db'}"))
    with TestClient(create_app(service), raise_server_exceptions=False, follow_redirects=False) as client:
        client.headers["X-Admin-Key"] = service.new_admin_key or ""
        yield client
    service.engine.dispose()


def _assert_secure(response: object, where: str) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    for name, value in REQUIRED.items():
        assert headers.get(name) == value, (where, name, dict(headers))
    csp = headers.get("content-security-policy", "")
    assert "default-src 'self'" in csp or "default-src 'none'" in csp, (where, csp)
    assert "frame-ancestors 'none'" in csp, (where, csp)


def test_pages_signed_out_and_in(web: TestClient) -> None:
    admin_key = web.headers.pop("X-Admin-Key")
    for path in ("/ui/sign-in", "/ui/", "/ui/operators", "/"):
        response = web.get(path)
        assert response.status_code < 500, (path, response.status_code)
        _assert_secure(response, f"signed out {path}")
    signed_in = web.post("/ui/sign-in", data={"api_key": admin_key}, headers={"Origin": "http://testserver"})
    assert signed_in.status_code in (200, 303), signed_in.text
    _assert_secure(signed_in, "sign-in post")
    for path in ("/ui/", "/ui/operators"):
        response = web.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers.get("cache-control") == "no-store"
        _assert_secure(response, f"signed in {path}")


def test_static_files(web: TestClient) -> None:
    names = sorted(static_files())
    assert names
    for name in names:
        response = web.get(f"/static/{name}")
        assert response.status_code == 200
        assert response.headers["x-content-type-options"] == "nosniff"
