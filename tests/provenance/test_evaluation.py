"""An evaluation run on a tiny set stores its metrics, and a floor above them turns health degraded."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from generator.variants import subclip
from provenance.evaluation import box_iou, time_iou
from provenance.service import Service
from tests.samples import sample_clip


def test_localisation_scores() -> None:
    assert time_iou([(3.0, 5.0)], [(3.0, 5.0)]) == 1.0
    assert time_iou([(4.0, 6.0)], [(3.0, 5.0)]) == 1 / 3
    assert time_iou([(3.75, 4.25)], [(4.0, 4.0)]) == 0.5  # a cut, widened by ±0.5 s
    assert time_iou([], [(1.0, 2.0)]) == 0.0
    assert box_iou([[0.5, 0.5, 0.5, 0.5]], [[0.5, 0.5, 0.5, 0.5]]) == 1.0
    assert box_iou([[0.0, 0.0, 0.5, 0.5]], [[0.5, 0.5, 0.5, 0.5]]) == 0.0


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
    assert stored["id"] == run.id and stored["comparer"] == "pdq-grid-1"
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
