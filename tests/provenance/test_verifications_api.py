"""Verification over HTTP: registered originals, benign copies, tampered copies and strangers."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from frames.samples import sample_clip
from generator import reposts
from generator.tampers import paste_region
from generator.variants import reencode, subclip
from provenance import fingerprint as fp
from provenance.core.timeutil import utcnow
from provenance.models import Verification
from provenance.service import Service
from provenance.signing import build_manifest, sign_manifest
from tests.conftest import EnrolledDevice, make_key
from tests.provenance.test_registrations_api import fingerprint_of

BIKES = sample_clip("bikes.mp4")


def post_upload(
    http: TestClient,
    headers: dict[str, str],
    device: EnrolledDevice,
    clip: Path,
    fpr: fp.Fingerprint | None = None,
) -> httpx.Response:
    """A camera app's signed upload of `clip`, claiming `fpr` (by default the clip's own fingerprint)."""
    fpr = fpr or fingerprint_of(clip)
    content = clip.read_bytes()
    manifest = build_manifest(
        kind="image" if fpr.kind == "image" else "video",
        content_sha256=hashlib.sha256(content).hexdigest(),
        fingerprint_version=fpr.version,
        fingerprint_bytes=fpr.encode(),
        fingerprint_digest=fpr.digest(),
        captured_at=utcnow(),
        device_id=device.id,
    ).to_json()
    return http.post(
        "/v1/registrations",
        headers=headers,
        data={"manifest": json.dumps(manifest), "signature": sign_manifest(manifest, device.key)},
        files={"media": (clip.name, content, "video/mp4")},
    )


def register_upload(
    http: TestClient,
    headers: dict[str, str],
    device: EnrolledDevice,
    clip: Path,
    fpr: fp.Fingerprint | None = None,
) -> str:
    response = post_upload(http, headers, device, clip, fpr)
    assert response.status_code == 201, response.text
    registration_id: str = response.json()["id"]
    return registration_id


def verify(http: TestClient, headers: dict[str, str], clip: Path) -> Any:
    return http.post(
        "/v1/verifications", headers=headers, files={"media": (clip.name, clip.read_bytes(), "video/mp4")}
    )


def test_verify_benign_tampered_unknown(
    http: TestClient,
    service: Service,
    device: EnrolledDevice,
    camera_headers: dict[str, str],
    admin_headers: dict[str, str],
    tmp_path: Path,
) -> None:
    registration_id = register_upload(http, camera_headers, device, BIKES)
    register_upload(http, camera_headers, device, sample_clip("carphone_pristine.mp4"))
    newsroom = make_key(http, admin_headers, "newsroom")

    reencode(BIKES, tmp_path / "copy.mp4", bitrate=150_000)
    response = verify(http, newsroom, tmp_path / "copy.mp4")
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["schema"] == "provenance.verification/v1"
    assert result["verdict"] == "authentic", result
    match = result["match"]
    assert match["registration_id"] == registration_id
    assert match["device_id"] == device.id
    assert match["signature_valid"] is True
    # Anchored or not yet, depending on how far the batcher got: either way the status says which.
    anchor = match["anchor"]
    assert anchor["status"] in ("pending", "anchored"), anchor
    assert (anchor["status"] == "anchored") == bool(anchor.get("transaction")), anchor
    assert match["original_range"][0] < 0.5 and match["original_range"][1] > 9.0
    assert match["tampered_ranges"] == []
    fetched = http.get(f"/v1/verifications/{result['id']}", headers=newsroom).json()
    assert fetched["verdict"] == "authentic"

    truth = paste_region(
        BIKES, tmp_path / "tampered.mp4", start=3.0, duration=2.0, box=(0.55, 0.2, 0.3, 0.45)
    )
    result = verify(http, newsroom, tmp_path / "tampered.mp4").json()
    assert result["verdict"] == "tampered", result
    assert result["match"]["registration_id"] == registration_id
    [(t0, t1)] = truth.ranges
    flagged = result["match"]["tampered_ranges"]
    assert flagged and all(start < t1 + 0.6 and end > t0 - 0.6 for start, end in flagged), flagged

    result = verify(http, newsroom, sample_clip("bigbuckbunny.mp4")).json()
    assert result["verdict"] == "unknown" and result["match"] is None


def test_verify_refusals(
    http: TestClient,
    service: Service,
    camera_headers: dict[str, str],
    admin_headers: dict[str, str],
    tmp_path: Path,
) -> None:
    newsroom = make_key(http, admin_headers, "newsroom")
    bad = tmp_path / "random.mp4"
    bad.write_bytes(bytes(range(256)) * 100)
    response = verify(http, newsroom, bad)
    assert response.status_code == 415 and response.json()["code"] == "media_unsupported_format"
    response = verify(http, camera_headers, BIKES)
    assert response.status_code == 403 and response.json()["code"] == "scope_forbidden"
    with Session(service.engine) as session:
        assert session.exec(select(func.count()).select_from(Verification)).one() == 0
    assert http.get("/v1/verifications/ver_nope", headers=newsroom).json()["code"] == "verification_not_found"


def test_long_clip_becomes_a_job(
    http: TestClient,
    service: Service,
    device: EnrolledDevice,
    camera_headers: dict[str, str],
    admin_headers: dict[str, str],
) -> None:
    register_upload(http, camera_headers, device, BIKES)
    service.settings.verify_sync_max_s = 1.0  # bikes.mp4 is 10 s: a "long" clip here
    newsroom = make_key(http, admin_headers, "newsroom")
    response = verify(http, newsroom, BIKES)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] in ("queued", "running", "done")
    assert response.headers["location"] == f"/v1/verifications/{job['id']}"
    deadline = time.monotonic() + 120
    while (polled := http.get(f"/v1/verifications/{job['id']}", headers=newsroom).json())["status"] != "done":
        assert polled["status"] in ("queued", "running"), polled
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert polled["verdict"] == "authentic" and polled["schema"] == "provenance.verification/v1"
    other = make_key(http, admin_headers, "newsroom")
    assert http.get(f"/v1/verifications/{job['id']}", headers=other).status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.slow
def test_a_mirrored_copy_and_a_vertical_crop_are_found_through_the_api(
    http: TestClient,
    device: EnrolledDevice,
    camera_headers: dict[str, str],
    admin_headers: dict[str, str],
    tmp_path: Path,
) -> None:
    """The service's own Verifier: reposts come back authentic, with the original and a note."""
    original = tmp_path / "bunny.mp4"
    subclip(sample_clip("bigbuckbunny.mp4"), original, 0.0, 4.0)
    registration_id = register_upload(http, camera_headers, device, original)
    newsroom = make_key(http, admin_headers, "newsroom")
    for reframe, note in (
        (reposts.Reframe(mirror=True), "mirrored"),
        (reposts.Reframe(window=(0.5, 0.0, 0.42, 1.0)), "reframed"),
    ):
        copy = tmp_path / f"{note}.mp4"
        reposts.repost(original, copy, reframe)
        result = verify(http, newsroom, copy).json()
        assert result["verdict"] == "authentic", result
        assert result["match"]["registration_id"] == registration_id
        assert [f["kind"] for f in result["findings"]] == [note], result["findings"]
        assert result["comparer"]["name"] == "pdq-grid" and result["comparer"]["note"]
