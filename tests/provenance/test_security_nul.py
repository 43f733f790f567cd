"""NUL characters in names, filenames and path ids (issue #17, item 9): PostgreSQL cannot store them,
so they are refused with 422 `nul_character` on every database, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from frames.samples import sample_clip
from harness.accounts import EnrolledDevice, make_key
from provenance.core.config import Settings
from provenance.models import ApiClient, AuditEvent, Device, Verification
from provenance.service import Service
from tests.conftest import chainless_settings
from tests.provenance.test_registrations_api import assert_refused


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return chainless_settings(tmp_path, database_url)


def _rows(service: Service) -> tuple[int, ...]:
    with Session(service.engine) as session:
        return tuple(
            session.exec(select(func.count()).select_from(table)).one()
            for table in (ApiClient, Device, Verification, AuditEvent)
        )


BOUNDARY = "nulboundary7d3f"


def _multipart(filename: bytes, content: bytes) -> bytes:
    """A form with one file whose name holds raw bytes (httpx would percent-encode a NUL)."""
    head = b'--%s\r\nContent-Disposition: form-data; name="media"; filename="%s"\r\n' % (
        BOUNDARY.encode(),
        filename,
    )
    return head + b"Content-Type: video/mp4\r\n\r\n" + content + b"\r\n--%s--\r\n" % BOUNDARY.encode()


def test_nul_in_names_filenames_and_path_ids_is_refused(
    http: TestClient, service: Service, admin_headers: dict[str, str], device: EnrolledDevice
) -> None:
    newsroom = make_key(http, admin_headers, "newsroom")
    before = _rows(service)
    refusals = {
        "client name": http.post(
            "/v1/clients", json={"name": "desk\x00", "scope": "camera"}, headers=admin_headers
        ),
        "device name": http.post(
            "/v1/devices", json={"name": "cam\x00", "public_key": "A" * 43 + "="}, headers=admin_headers
        ),
        "bound client": http.post(
            f"/v1/devices/{device.id}/bind", json={"client_id": "cli_\x00"}, headers=admin_headers
        ),
        "registration id": http.get("/v1/registrations/reg_%00x", headers=admin_headers),
        "receipt id": http.get("/v1/registrations/reg_%00x/receipt", headers=admin_headers),
        "device id": http.get("/v1/devices/dev_%00x", headers=admin_headers),
        "device revoke": http.post("/v1/devices/dev_%00x/revoke", headers=admin_headers),
        "client id": http.get("/v1/clients/cli_%00x", headers=admin_headers),
        "client rotate": http.post("/v1/clients/cli_%00x/rotate", json={}, headers=admin_headers),
        "verification id": http.get("/v1/verifications/ver_%00x", headers=admin_headers),
        "report id": http.get("/v1/verifications/ver_%00x/report", headers=admin_headers),
        "c2pa manifest id": http.get("/manifests/urn%00x", headers=admin_headers),
        "query": http.get("/v1/audit?before=2024-01-01T00:00:00Z%00", headers=admin_headers),
    }
    clip = sample_clip("carphone_pristine.mp4").read_bytes()
    refusals["filename"] = http.post(
        "/v1/verifications",
        content=_multipart(b"clip\x00.mp4", clip),
        headers={**newsroom, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    for what, response in refusals.items():
        assert response.status_code == 422, (what, response.text)
        assert_refused(response, 422, "nul_character")
    assert _rows(service) == before, "a refused request writes nothing"
