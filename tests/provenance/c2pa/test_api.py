"""Content Credentials through the API: sign a registered original, read it back, find it again
after its manifest was stripped, and see credentials in verification results."""

from __future__ import annotations

import base64
from pathlib import Path

import cv2
import pytest
from fastapi.testclient import TestClient
from skimage import data

from frames.samples import sample_clip
from generator.variants import reencode, reencode_image
from harness.accounts import make_key
from provenance.c2pa import SOFT_BINDING_ALG, read_credentials
from tests.provenance.conftest import Stack

BIKES = sample_clip("bikes.mp4")


def sign(http: TestClient, headers: dict[str, str], path: Path, out: Path) -> str:
    response = http.post("/v1/c2pa/sign", headers=headers, files={"media": (path.name, path.read_bytes())})
    assert response.status_code == 200, response.text
    out.write_bytes(response.content)
    manifest_id: str = response.headers["X-C2PA-Manifest-Id"]
    return manifest_id


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


@pytest.mark.parametrize("kind", ["video", "photo"])
def test_sign_read_strip_and_resolve(
    http: TestClient, stack: Stack, tmp_path: Path, photo: Path, kind: str
) -> None:
    original = BIKES if kind == "video" else photo
    registration_id = stack.register(original)
    signed = tmp_path / f"signed{original.suffix}"
    manifest_id = sign(http, stack.camera, original, signed)

    anchors = (stack.service.settings.data_dir / "c2pa" / "root-ca.pem").read_bytes()
    trusted = read_credentials(signed, anchors)
    assert trusted is not None and trusted.signature_valid and trusted.trusted and trusted.hard_binding_valid
    assert trusted.manifest_id == manifest_id and trusted.registration_id == registration_id
    untrusted = read_credentials(signed, None)
    assert untrusted is not None and untrusted.signature_valid and not untrusted.trusted

    # Strip the manifest by re-encoding; the fingerprint still finds it.
    stripped = tmp_path / f"stripped{original.suffix}"
    if kind == "video":
        reencode(signed, stripped, bitrate=300_000)
    else:
        reencode_image(signed, stripped, quality=70, scale=0.8)
    assert read_credentials(stripped, anchors) is None
    reader = stack.key("factchecker")
    mime = "video/mp4" if kind == "video" else "image/jpeg"
    found = http.post(
        "/matches/byContent", headers={**reader, "content-type": mime}, content=stripped.read_bytes()
    )
    assert found.status_code == 200, found.text
    [match] = found.json()["matches"]
    assert match["manifestId"] == manifest_id and 50 <= match["similarityScore"] <= 100

    store = http.get(f"/manifests/{manifest_id}", headers=reader)
    assert store.status_code == 200 and store.headers["content-type"] == "application/c2pa"
    assert len(store.content) > 1000

    digest = http.get(f"/v1/registrations/{registration_id}", headers=reader).json()["fingerprint_digest"]
    value = base64.b64encode(bytes.fromhex(digest)).decode()
    by_get = http.get("/matches/byBinding", headers=reader, params={"alg": SOFT_BINDING_ALG, "value": value})
    by_post = http.post("/matches/byBinding", headers=reader, json={"alg": SOFT_BINDING_ALG, "value": value})
    assert (
        by_get.json() == by_post.json() == {"matches": [{"manifestId": manifest_id, "similarityScore": 100}]}
    )


def test_verification_reports_credentials(http: TestClient, stack: Stack, tmp_path: Path) -> None:
    stack.register(BIKES)
    signed = tmp_path / "signed.mp4"
    sign(http, stack.camera, BIKES, signed)
    # A file that already carries credentials registers with them on record.
    resigned_id = stack.register(signed)
    on_record = http.get(f"/v1/registrations/{resigned_id}", headers=stack.camera).json()["c2pa"]
    assert on_record["trusted"] is True and on_record["signature_valid"] is True
    newsroom = stack.key("newsroom")
    result = stack.verify(newsroom, signed).json()
    assert result["verdict"] == "authentic"
    assert result["c2pa"]["trusted"] is True and result["c2pa"]["hard_binding_valid"] is True

    # Valid credentials, but pixels changed afterwards: bytes flipped inside the media data.
    content = bytearray(signed.read_bytes())
    mdat = content.find(b"mdat")
    for offset in range(mdat + 5000, mdat + 5400):
        content[offset] ^= 0xFF
    changed = tmp_path / "changed.mp4"
    changed.write_bytes(bytes(content))
    response = stack.verify(newsroom, changed)
    assert response.status_code == 201, response.text
    c2pa = response.json()["c2pa"]
    assert c2pa["signature_valid"] is True and c2pa["hard_binding_valid"] is False
    assert "changed after signing" in c2pa["summary"]


def test_resolution_refusals(http: TestClient, admin_headers: dict[str, str]) -> None:
    reader = make_key(http, admin_headers, "factchecker")
    assert http.get("/services/supportedAlgorithms").json()["fingerprints"] == [{"alg": SOFT_BINDING_ALG}]
    r = http.get("/matches/byBinding", headers=reader, params={"alg": "com.other.1", "value": "AA=="})
    assert r.status_code == 400 and r.json()["code"] == "alg_unsupported"
    r = http.get("/matches/byBinding", headers=reader, params={"alg": SOFT_BINDING_ALG, "value": "!!"})
    assert r.status_code == 400 and r.json()["code"] == "binding_value_invalid"
    assert http.get("/manifests/urn:c2pa:nope", headers=reader).json()["code"] == "manifest_not_found"
    r = http.post("/matches/byContent", headers={**reader, "content-type": "text/plain"}, content=b"hello")
    assert r.status_code == 415
    r = http.post(
        "/v1/c2pa/sign",
        headers=make_key(http, admin_headers, "camera"),
        files={"media": ("x.mp4", BIKES.read_bytes())},
    )
    assert r.status_code == 404 and r.json()["code"] == "registration_not_found"
