"""Every route that takes a body is bounded while the body streams in: 413 `request_too_large`,
with or without a Content-Length, before any parsing, spooling or authentication."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from provenance.api.app import create_app
from provenance.core.config import DecodeLimits
from provenance.models import Registration, Verification
from provenance.service import Service, open_service
from tests.conftest import chainless_settings

MEDIA_LIMIT = 64 * 1024
# The middleware allows 1 MiB of multipart overhead on top of the media bound.
OVER = MEDIA_LIMIT + 1024 * 1024 + 4096

UPLOAD_ROUTES = [
    "/v1/registrations",
    "/v1/verifications",
    "/v1/c2pa/sign",
    "/matches/byContent",
    "/ui/verifications",
]


@pytest.fixture
def bounded(tmp_path: Path) -> Iterator[tuple[TestClient, Service]]:
    service = open_service(
        chainless_settings(
            tmp_path, f"sqlite:///{tmp_path / 'size.db'}", limits=DecodeLimits(max_upload_bytes=MEDIA_LIMIT)
        )
    )
    with TestClient(create_app(service), raise_server_exceptions=False) as http:
        yield http, service
    service.engine.dispose()


def test_schema_upload_routes_are_all_listed(bounded: tuple[TestClient, Service]) -> None:
    """A new upload route must be added here (and so be tested) to pass."""
    http, _ = bounded
    paths = http.get("/openapi.json").json()["paths"]
    with_bodies = {
        path
        for path, ops in paths.items()
        for method, op in ops.items()
        if method == "post" and "multipart/form-data" in op.get("requestBody", {}).get("content", {})
    }
    assert with_bodies <= set(UPLOAD_ROUTES), with_bodies - set(UPLOAD_ROUTES)


@pytest.mark.parametrize("path", UPLOAD_ROUTES)
def test_oversized_bodies_are_refused(bounded: tuple[TestClient, Service], path: str) -> None:
    http, service = bounded
    auth = {"Authorization": f"Bearer {service.new_admin_key}"}
    declared = http.post(path, content=b"\0" * OVER, headers={**auth, "Content-Type": "video/mp4"})
    assert declared.status_code == 413 and declared.json()["code"] == "request_too_large"

    boundary = "hostileboundary"
    raw = path == "/matches/byContent"

    def chunks() -> Iterator[bytes]:
        """No Content-Length: only counting while the body streams in can stop it."""
        if not raw:
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="media"; filename="big.mp4"\r\n'
                "Content-Type: video/mp4\r\n\r\n"
            ).encode()
        for _ in range(OVER // 65536 + 1):
            yield b"\0" * 65536
        if not raw:
            yield f"\r\n--{boundary}--\r\n".encode()

    kind = "video/mp4" if raw else f"multipart/form-data; boundary={boundary}"
    streamed = http.post(path, content=chunks(), headers={**auth, "Content-Type": kind})
    assert streamed.status_code == 413 and streamed.json()["code"] == "request_too_large"
    multipart = http.post(path, files={"media": ("big.mp4", b"\0" * OVER, "video/mp4")}, headers=auth)
    assert multipart.status_code == 413
    with Session(service.engine) as session:
        assert session.exec(select(func.count()).select_from(Registration)).one() == 0
        assert session.exec(select(func.count()).select_from(Verification)).one() == 0
    tmp = service.settings.data_dir / "tmp"
    assert not tmp.exists() or not any(tmp.iterdir())


def test_media_over_the_media_bound_but_under_the_body_bound_is_413(
    bounded: tuple[TestClient, Service],
) -> None:
    """Between the media bound and the body bound, the decoder's own size check answers 413."""
    http, service = bounded
    auth = {"Authorization": f"Bearer {service.new_admin_key}"}
    response = http.post(
        "/v1/verifications",
        files={"media": ("big.mp4", b"\0" * (MEDIA_LIMIT + 1), "video/mp4")},
        headers=auth,
    )
    assert response.status_code == 413 and response.json()["code"] == "media_too_large"
