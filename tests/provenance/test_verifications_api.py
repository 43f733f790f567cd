"""Verification over HTTP: registered originals, benign copies, tampered copies and strangers."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from frames.samples import sample_clip
from generator import reposts
from generator.tampers import paste_region
from generator.variants import reencode, subclip
from harness.accounts import enrol_device
from provenance.models import Verification
from tests.provenance.conftest import Stack

BIKES = sample_clip("bikes.mp4")


def test_verify_benign_tampered_unknown(http: TestClient, stack: Stack, tmp_path: Path) -> None:
    registration_id = stack.register(BIKES)
    stack.register(sample_clip("carphone_pristine.mp4"))
    newsroom = stack.key("newsroom")

    reencode(BIKES, tmp_path / "copy.mp4", bitrate=150_000)
    response = stack.verify(newsroom, tmp_path / "copy.mp4")
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["schema"] == "provenance.verification/v1"
    assert result["verdict"] == "authentic", result
    match = result["match"]
    assert match["registration_id"] == registration_id
    assert match["device_id"] == stack.device.id
    assert match["signature_valid"] is True
    # Anchored or not yet, depending on how far the batcher got: either way the status says which.
    anchor = match["anchor"]
    assert anchor["status"] in ("pending", "anchored"), anchor
    assert (anchor["status"] == "anchored") == bool(anchor.get("transaction")), anchor
    assert match["original_range"][0] < 0.5 and match["original_range"][1] > 9.0
    assert match["tampered_ranges"] == []
    assert match["exact_copy"] is False and result["confidence"] < 1
    fetched = http.get(f"/v1/verifications/{result['id']}", headers=newsroom).json()
    assert fetched["verdict"] == "authentic"

    truth = paste_region(
        BIKES, tmp_path / "tampered.mp4", start=3.0, duration=2.0, box=(0.55, 0.2, 0.3, 0.45)
    )
    result = stack.verify(newsroom, tmp_path / "tampered.mp4").json()
    assert result["verdict"] == "tampered", result
    assert result["match"]["registration_id"] == registration_id
    [(t0, t1)] = truth.ranges
    flagged = result["match"]["tampered_ranges"]
    assert flagged and all(start < t1 + 0.6 and end > t0 - 0.6 for start, end in flagged), flagged

    result = stack.verify(newsroom, sample_clip("bigbuckbunny.mp4")).json()
    assert result["verdict"] == "unknown" and result["match"] is None
    assert result["nearest"]["usable_frames"] > 0

    # The same file registered later from a second device: the verification names the other registrant.
    second = enrol_device(http, stack.admin, "second camera")
    second_id = replace(stack, device=second).register(BIKES)

    # The registered file itself: identical bytes, and the result says so.
    result = stack.verify(newsroom, BIKES).json()
    [other] = result["match"]["also_registered"]
    pair = {result["match"]["registration_id"], other["registration_id"]}
    assert pair == {registration_id, second_id}, result["match"]
    assert other["order"] == ("later" if other["registration_id"] == second_id else "earlier")
    assert result["verdict"] == "authentic" and result["confidence"] == 1.0, result
    assert result["match"]["exact_copy"] is True and result["match"]["similarity"] == 1.0
    assert result["findings"][0]["kind"] == "exact_copy"
    assert hashlib.sha256(BIKES.read_bytes()).hexdigest() in result["findings"][0]["detail"]


def test_verify_refusals(http: TestClient, stack: Stack, tmp_path: Path) -> None:
    newsroom = stack.key("newsroom")
    bad = tmp_path / "random.mp4"
    bad.write_bytes(bytes(range(256)) * 100)
    response = stack.verify(newsroom, bad)
    assert response.status_code == 415 and response.json()["code"] == "media_unsupported_format"
    response = stack.verify(stack.camera, BIKES)
    assert response.status_code == 403 and response.json()["code"] == "scope_forbidden"
    with Session(stack.service.engine) as session:
        assert session.exec(select(func.count()).select_from(Verification)).one() == 0
    assert http.get("/v1/verifications/ver_nope", headers=newsroom).json()["code"] == "verification_not_found"


def test_long_clip_becomes_a_job(http: TestClient, stack: Stack) -> None:
    stack.register(BIKES)
    stack.service.settings.verify_sync_max_s = 1.0  # bikes.mp4 is 10 s: a "long" clip here
    newsroom = stack.key("newsroom")
    response = stack.verify(newsroom, BIKES)
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
    other = stack.key("newsroom")
    assert http.get(f"/v1/verifications/{job['id']}", headers=other).status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.slow
def test_a_mirrored_copy_and_a_vertical_crop_are_found_through_the_api(stack: Stack, tmp_path: Path) -> None:
    """The service's own Verifier: reposts come back authentic, with the original and a note."""
    original = tmp_path / "bunny.mp4"
    subclip(sample_clip("bigbuckbunny.mp4"), original, 0.0, 4.0)
    registration_id = stack.register(original)
    newsroom = stack.key("newsroom")
    for reframe, note in (
        (reposts.Reframe(mirror=True), "mirrored"),
        (reposts.Reframe(window=(0.5, 0.0, 0.42, 1.0)), "reframed"),
    ):
        copy = tmp_path / f"{note}.mp4"
        reposts.repost(original, copy, reframe)
        result = stack.verify(newsroom, copy).json()
        assert result["verdict"] == "authentic", result
        assert result["match"]["registration_id"] == registration_id
        assert [f["kind"] for f in result["findings"]] == [note], result["findings"]
        assert result["comparer"]["name"] == "pdq-grid" and result["comparer"]["note"]
