"""An evaluation run on a tiny set stores its metrics, and a floor above them turns health degraded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from detector.attack import learned_comparer
from detector.comparer import default_comparer
from frames.samples import sample_clip
from generator import campaign
from generator.variants import subclip
from provenance import evaluation
from provenance.service import Service
from provenance.verify.compare import PdqGridComparer
from provenance.verify.policy import qualifies, weights_dir


@pytest.mark.slow
def test_run_stores_metrics_and_floors_degrade(
    http: TestClient, service: Service, admin_headers: dict[str, str], tmp_path: Path
) -> None:
    short = tmp_path / "bikes-4s.mp4"
    subclip(sample_clip("bikes.mp4"), short, 0.0, 4.0)
    originals = [short, sample_clip("carphone_pristine.mp4")]
    run = service.evaluator.run(originals, ["paste_region", "replace_range", "reencode"])
    assert run.status == "done", run.error

    body = http.get("/v1/evaluations", headers=admin_headers).json()
    [stored] = body["runs"]
    # With the default `auto`, the learned comparer judges when its held-out evaluation qualifies it.
    qualified, _ = qualifies(
        json.loads((weights_dir() / "evaluation.json").read_text()), default_comparer().version
    )
    expected = f"triplet-{default_comparer().version}" if qualified else f"pdq-grid-{PdqGridComparer.version}"
    assert stored["id"] == run.id and stored["comparer"] == expected
    attacks = stored["metrics"]["attacks"]
    assert set(attacks) == {"paste_region", "replace_range", "reencode"}
    assert attacks["paste_region"]["n"] == 2 and attacks["reencode"]["n"] == 2
    # The pipeline catches these classic tampers and passes the re-encode.
    assert attacks["paste_region"]["detection_rate"] >= 0.5
    assert attacks["replace_range"]["detection_rate"] >= 0.5
    assert attacks["reencode"]["false_positive_rate"] <= 0.5
    overall = stored["metrics"]["overall"]
    assert body["status"]["status"] == "ok"
    assert http.get("/health").json()["status"] == "ok"

    service.settings.eval_floors = {"overall.tamper_detection_rate": overall["tamper_detection_rate"] + 0.01}
    health = http.get("/health").json()
    assert health["status"] == "degraded"
    assert health["evaluation"]["status"] == "degraded"
    assert "overall.tamper_detection_rate" in health["evaluation"]["reasons"][0]

    page = http.get("/ui/operators", headers=admin_headers)
    assert page.status_code == 200 and 'data-evaluation-status="degraded"' in page.text
    assert "overall.tamper_detection_rate" in page.text and 'src="/v1/evaluations/plot.png"' in page.text

    plot = http.get("/v1/evaluations/plot.png", headers=admin_headers)
    assert plot.status_code == 200 and plot.content.startswith(b"\x89PNG")


@pytest.fixture
def swap_originals(tmp_path: Path) -> list[Path]:
    """Two seconds of the talking head (a face to swap) and of the bikes (none)."""
    face, street = tmp_path / "carphone-2s.mp4", tmp_path / "bikes-2s.mp4"
    subclip(sample_clip("carphone_pristine.mp4"), face, 0.0, 2.0)
    subclip(sample_clip("bikes.mp4"), street, 0.0, 2.0)
    return [face, street]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.slow
def test_face_swaps_are_verified_and_their_pdq_evasion_measured(
    service: Service, swap_originals: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert evaluation.SWAP_WEIGHTS.is_file(), "run make swap-weights"
    torch.set_num_threads(1)
    monkeypatch.setattr(evaluation, "EVADE_STEPS", 20)
    run = service.evaluator.run(swap_originals, ["face_swap", "evasive_face_swap"])
    assert run.status == "done", run.error
    digest = campaign.weights_digest(evaluation.SWAP_WEIGHTS)
    assert digest and run.generator.endswith(f"+swap.{digest[:12]}")
    metrics = json.loads(run.metrics or "{}")
    assert metrics["swap_weights"] == digest
    for name in ("face_swap", "evasive_face_swap"):
        row = metrics["attacks"][name]
        assert row["n"] == 1  # the talking head; the bikes have no face
        assert "no face in bikes-2s.mp4" in row["skipped"][0]
        assert row["detection_rate"] is not None and 0 <= row["pdq_frame_pass_rate"] <= 1
        assert row["pdq_mean_distance"] > 0
    evasion = metrics["evasion"]
    assert evasion["n"] == 1 and evasion["flagged_rate"] in (0.0, 1.0)
    assert evasion["pdq_frame_pass_rate"] == metrics["attacks"]["evasive_face_swap"]["pdq_frame_pass_rate"]
    # The evasive swap's fine-tuning pulls its hashes towards the original's.
    assert (
        metrics["attacks"]["evasive_face_swap"]["pdq_mean_distance"]
        < metrics["attacks"]["face_swap"]["pdq_mean_distance"]
    )
    if learned_comparer() is not None:  # and its learned embeddings (both attacks measure them)
        assert evasion["embedding_mean_score"] < metrics["attacks"]["face_swap"]["embedding_mean_score"]
        assert (
            evasion["embedding_mean_score_before"] == metrics["attacks"]["face_swap"]["embedding_mean_score"]
        )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_missing_swap_weights_skip_the_swaps_with_a_reason(
    service: Service, swap_originals: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(evaluation, "SWAP_WEIGHTS", tmp_path / "no-weights.pt")
    run = service.evaluator.run(swap_originals, ["face_swap", "evasive_face_swap", "recolour"])
    assert run.status == "done", run.error
    assert run.generator.endswith("+swap.none")
    metrics = json.loads(run.metrics or "{}")
    for name in ("face_swap", "evasive_face_swap"):
        row = metrics["attacks"][name]
        assert row["n"] == 0 and row["detection_rate"] is None
        assert all("no face-swap weights" in reason for reason in row["skipped"])
        assert len(metrics["skipped"][name]) == 2
    assert "evasion" not in metrics
    assert metrics["attacks"]["recolour"]["n"] == 2


@pytest.mark.slow
def test_eval_run_command_makes_swaps_and_reports_evasion(swap_originals: list[Path], tmp_path: Path) -> None:
    """`provenance eval run` in its own process, on its own data directory, as an operator runs it."""
    env = {**os.environ, "PROVENANCE_DATA_DIR": str(tmp_path / "var"), "OMP_NUM_THREADS": "1"}
    env.pop("PROVENANCE_DATABASE_URL", None)
    attacks = ["--attack", "face_swap", "--attack", "evasive_face_swap", "--attack", "reencode"]
    command = [sys.executable, "-m", "provenance.cli", "eval", "run", *map(str, swap_originals), *attacks]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "face_swap on carphone-2s.mp4: " in done.stderr
    assert "face_swap on bikes-2s.mp4: skipped, no face in bikes-2s.mp4" in done.stderr
    assert "skipped evasive_face_swap: no face in bikes-2s.mp4" in done.stdout
    assert "PDQ-only pass" in done.stdout and "evasive face swaps: " in done.stdout
    assert "+swap." in done.stdout.splitlines()[0] and "status: ok" in done.stdout
