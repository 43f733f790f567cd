"""Sign → register → fetch over HTTP, and every refusal with its status, code and nothing written."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from frames.samples import sample_clip
from harness.accounts import EnrolledDevice, make_key
from harness.manifests import signed_manifest
from provenance.core.timeutil import utcnow
from provenance.models import Registration, UsedNonce
from provenance.service import Service
from provenance.signing import sign_manifest
from tests.provenance.conftest import fingerprint_of

CARPHONE = sample_clip("carphone_pristine.mp4")
BIKES = sample_clip("bikes.mp4")


def signed(
    device: EnrolledDevice,
    content: bytes,
    *,
    fingerprint_from: Path = CARPHONE,
    captured_offset: timedelta = timedelta(0),
    key: Ed25519PrivateKey | None = None,
) -> tuple[dict[str, Any], str]:
    return signed_manifest(
        fingerprint_of(fingerprint_from),
        key or device.key,
        device.id,
        hashlib.sha256(content).hexdigest(),
        captured_at=utcnow() + captured_offset,
    )


def post(
    http: TestClient,
    headers: dict[str, str],
    manifest: dict[str, Any],
    signature: str,
    media: tuple[str, bytes] | None = None,
) -> Any:
    files = {"media": (media[0], media[1], "application/octet-stream")} if media else None
    return http.post(
        "/v1/registrations",
        data={"manifest": json.dumps(manifest), "signature": signature},
        files=files,
        headers=headers,
    )


def counts(service: Service) -> tuple[int, int]:
    with Session(service.engine) as session:
        regs = session.exec(select(func.count()).select_from(Registration)).one()
        nonces = session.exec(select(func.count()).select_from(UsedNonce)).one()
    return regs, nonces


def assert_refused(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code
    assert body["status"] == status and body["detail"]


def test_sign_register_fetch(
    http: TestClient, service: Service, device: EnrolledDevice, camera_headers: dict[str, str]
) -> None:
    content = CARPHONE.read_bytes()
    manifest, signature = signed(device, content)
    response = post(http, camera_headers, manifest, signature, media=("clip.mp4", content))
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["device_id"] == device.id
    assert created["content_sha256"] == hashlib.sha256(content).hexdigest()
    assert created["media_uploaded"] is True
    assert created["anchor_status"] == "pending"

    fetched = http.get(f"/v1/registrations/{created['id']}", headers=camera_headers)
    assert fetched.status_code == 200
    assert fetched.json()["manifest"] == manifest
    assert fetched.json()["signature"] == signature
    assert counts(service) == (1, 1)
    stored = service.settings.data_dir / "media" / f"{created['content_sha256']}.mp4"
    assert stored.read_bytes() == content


def test_register_without_media_and_photo(
    http: TestClient, device: EnrolledDevice, camera_headers: dict[str, str], tmp_path: Path
) -> None:
    manifest, signature = signed(device, CARPHONE.read_bytes())
    assert post(http, camera_headers, manifest, signature).status_code == 201

    import cv2
    from skimage import data

    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    fpr = fingerprint_of(photo)
    assert fpr.kind == "image" and len(fpr.frames) == 1
    content = photo.read_bytes()
    manifest, signature = signed_manifest(fpr, device.key, device.id, hashlib.sha256(content).hexdigest())
    response = post(http, camera_headers, manifest, signature, media=("astronaut.jpg", content))
    assert response.status_code == 201, response.text
    assert response.json()["kind"] == "image"


def test_manifest_refusals_write_nothing(
    http: TestClient,
    service: Service,
    device: EnrolledDevice,
    camera_headers: dict[str, str],
    admin_headers: dict[str, str],
) -> None:
    content = CARPHONE.read_bytes()

    manifest, _ = signed(device, content)
    forged = sign_manifest(manifest, Ed25519PrivateKey.generate())
    assert_refused(post(http, camera_headers, manifest, forged), 422, "signature_invalid")

    manifest, signature = signed(device, content)
    manifest["captured_at"] = "2020-01-01T00:00:00.000Z"
    assert_refused(post(http, camera_headers, manifest, signature), 422, "signature_invalid")

    stranger = EnrolledDevice(key=Ed25519PrivateKey.generate(), id="dev_" + "0" * 32)
    manifest, signature = signed(stranger, content)
    assert_refused(post(http, camera_headers, manifest, signature), 403, "device_unknown")

    manifest, signature = signed(device, content, captured_offset=timedelta(hours=1))
    assert_refused(post(http, camera_headers, manifest, signature), 422, "capture_time_in_future")

    manifest, signature = signed(device, content)
    manifest["extra"] = "unsigned"
    assert_refused(post(http, camera_headers, manifest, signature), 422, "manifest_invalid")

    assert_refused(
        http.post(
            "/v1/registrations", data={"manifest": "{not json", "signature": "x"}, headers=camera_headers
        ),
        422,
        "manifest_invalid",
    )
    assert counts(service) == (0, 0)

    # A replayed nonce: the first use is accepted; another client sending it is refused and nothing
    # more is written (the same client's identical retry gets the stored registration back).
    manifest, signature = signed(device, content)
    created = post(http, camera_headers, manifest, signature)
    assert created.status_code == 201
    assert_refused(
        post(http, make_key(http, admin_headers, "camera"), manifest, signature), 409, "nonce_replayed"
    )
    retried = post(http, camera_headers, manifest, signature)
    assert retried.status_code == 200 and retried.json()["id"] == created.json()["id"]
    assert counts(service) == (1, 1)

    # Revoked before the capture time: refused.
    assert http.post(f"/v1/devices/{device.id}/revoke", headers=admin_headers).status_code == 200
    manifest, signature = signed(device, content, captured_offset=timedelta(seconds=1))
    assert_refused(post(http, camera_headers, manifest, signature), 403, "device_revoked")
    assert counts(service) == (1, 1)


def test_revoked_device_keeps_captures_made_before_revocation(
    http: TestClient, device: EnrolledDevice, camera_headers: dict[str, str], admin_headers: dict[str, str]
) -> None:
    manifest, signature = signed(device, CARPHONE.read_bytes(), captured_offset=timedelta(minutes=-10))
    assert http.post(f"/v1/devices/{device.id}/revoke", headers=admin_headers).status_code == 200
    assert post(http, camera_headers, manifest, signature).status_code == 201


def test_access_control(http: TestClient, device: EnrolledDevice, admin_headers: dict[str, str]) -> None:
    manifest, signature = signed(device, CARPHONE.read_bytes())
    assert_refused(post(http, {}, manifest, signature), 401, "api_key_missing")
    assert_refused(
        post(http, {"Authorization": "Bearer pvk_wrong"}, manifest, signature), 401, "api_key_invalid"
    )
    newsroom = make_key(http, admin_headers, "newsroom")
    assert_refused(post(http, newsroom, manifest, signature), 403, "scope_forbidden")
    camera = make_key(http, admin_headers, "camera")
    assert_refused(
        http.post("/v1/clients", json={"name": "x", "scope": "admin"}, headers=camera), 403, "scope_forbidden"
    )
    assert_refused(
        http.post("/v1/devices", json={"name": "x", "public_key": "AAAA"}, headers=newsroom),
        403,
        "scope_forbidden",
    )
    assert http.get("/health").status_code == 200
    docs = http.get("/docs")
    assert docs.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower(), "Swagger UI comes from our own origin"
    assert http.get("/docs/assets/swagger-ui.css").headers["content-type"].startswith("text/css")
    assert http.get("/docs/assets/index.html").status_code == 404


def _png_bomb() -> bytes:
    """A valid PNG header declaring 30000×30000 pixels, with a few bytes of compressed data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("name", "make", "status", "code"),
    [
        ("truncated.mp4", lambda: BIKES.read_bytes()[: BIKES.stat().st_size // 2], 422, None),
        ("empty.mp4", lambda: b"", 422, None),
        ("random.mp4", lambda: bytes(range(256)) * 400, 415, "media_unsupported_format"),
        ("bomb.png", _png_bomb, 422, "media_frame_too_large"),
    ],
)
def test_bad_media_refused(
    http: TestClient,
    service: Service,
    device: EnrolledDevice,
    camera_headers: dict[str, str],
    name: str,
    make: Any,
    status: int,
    code: str | None,
) -> None:
    content = make()
    manifest, signature = signed(device, content)
    response = post(http, camera_headers, manifest, signature, media=(name, content))
    assert response.status_code == status, response.text
    assert response.json()["code"].startswith("media_")
    if code:
        assert response.json()["code"] == code
    assert counts(service) == (0, 0)
    assert (
        not list((service.settings.data_dir / "media").glob("*"))
        if (service.settings.data_dir / "media").exists()
        else True
    )


def test_fingerprint_disagreeing_with_media(
    http: TestClient, service: Service, device: EnrolledDevice, camera_headers: dict[str, str]
) -> None:
    content = BIKES.read_bytes()
    manifest, signature = signed(device, content, fingerprint_from=CARPHONE)
    assert_refused(
        post(http, camera_headers, manifest, signature, media=("bikes.mp4", content)),
        422,
        "fingerprint_mismatch",
    )
    manifest, signature = signed(device, content)
    assert_refused(
        post(http, camera_headers, manifest, signature, media=("other.mp4", CARPHONE.read_bytes())),
        422,
        "content_hash_mismatch",
    )
    assert counts(service) == (0, 0)


def test_oversize_upload(
    http: TestClient, service: Service, device: EnrolledDevice, camera_headers: dict[str, str]
) -> None:
    limit = service.settings.limits.max_upload_bytes
    content = b"\x00" * (limit + 2 * 1024 * 1024)
    manifest, signature = signed(device, content)
    assert_refused(
        post(http, camera_headers, manifest, signature, media=("big.mp4", content)), 413, "request_too_large"
    )
    assert counts(service) == (0, 0)
