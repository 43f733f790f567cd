"""Fingerprint v2 through the API: uploads are re-fingerprinted with embeddings, results name the comparer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from sqlmodel import Session

from detector.comparer import default_comparer, encode_segments
from frames.samples import sample_clip
from generator.tampers import paste_region
from generator.variants import reencode, subclip
from provenance import fingerprint as fp
from provenance.core.config import DecodeLimits, Settings
from provenance.models import Registration
from provenance.service import Service
from tests.conftest import service_settings
from tests.provenance.conftest import Stack

torch.set_num_threads(1)
BIKES = sample_clip("bikes.mp4")
CARPHONE = sample_clip("carphone_pristine.mp4")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """The service under test forces the learned comparer (PROVENANCE_COMPARER=learned)."""
    return service_settings(tmp_path, database_url, comparer="learned")


def test_v2_and_v1_registrations_verify_each_with_its_comparer(
    http: TestClient, stack: Stack, tmp_path: Path
) -> None:
    bikes_id = stack.register(BIKES)
    # a camera app that still sends version 1: accepted, re-fingerprinted as version 1
    v1 = fp.compute_fingerprint(CARPHONE, limits=DecodeLimits(), version=fp.VERSION_1)
    carphone_id = stack.register(CARPHONE, v1)
    with Session(stack.service.engine) as session:
        stored = session.get(Registration, bikes_id)
        assert stored is not None
        assert fp.Fingerprint.decode(stored.fingerprint).version == 2
        old = session.get(Registration, carphone_id)
        assert old is not None and fp.Fingerprint.decode(old.fingerprint).version == 1
    newsroom = stack.key("newsroom")

    paste_region(BIKES, tmp_path / "edit.mp4", start=3.0, duration=2.0, box=(0.55, 0.2, 0.3, 0.45))
    result = stack.verify(newsroom, tmp_path / "edit.mp4").json()
    assert result["verdict"] == "tampered", result
    assert result["match"]["registration_id"] == bikes_id
    assert result["comparer"] == {
        "name": "triplet",
        "version": default_comparer().version,
        "note": "PROVENANCE_COMPARER=learned",
    }
    fetched = http.get(f"/v1/verifications/{result['id']}", headers=newsroom).json()
    assert fetched["comparer"] == result["comparer"]

    reencode(CARPHONE, tmp_path / "carphone.mp4", bitrate=150_000)
    result = stack.verify(newsroom, tmp_path / "carphone.mp4").json()
    assert result["verdict"] == "authentic", result
    assert result["match"]["registration_id"] == carphone_id
    assert result["comparer"]["name"] == "pdq-grid"
    assert "v1" in result["comparer"]["note"]


def test_an_upload_whose_embeddings_disagree_is_refused(stack: Stack) -> None:
    fpr = fp.compute_fingerprint(BIKES, limits=DecodeLimits())
    model, segments = fpr.segments()
    swapped = [dataclasses.replace(s, cells=s.cells[::-1]) for s in segments]
    forged = dataclasses.replace(fpr, embeddings=encode_segments(swapped, model))
    response = stack.upload(BIKES, forged)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "fingerprint_mismatch" and "embedding distance" in body["detail"]


def test_evaluation_run_records_the_comparer_its_verifications_used(
    http: TestClient, service: Service, admin_headers: dict[str, str], tmp_path: Path
) -> None:
    originals = [tmp_path / "bikes-3s.mp4", tmp_path / "carphone-3s.mp4"]
    subclip(BIKES, originals[0], 0.0, 3.0)
    subclip(CARPHONE, originals[1], 0.0, 3.0)
    run = service.evaluator.run(originals, ["reencode"])
    assert run.status == "done", run.error
    [stored] = http.get("/v1/evaluations", headers=admin_headers).json()["runs"]
    learned = f"triplet-{default_comparer().version}"
    assert stored["comparer"] == learned  # not the baseline the service falls back to
    assert stored["metrics"]["comparers"] == {learned: 2}
