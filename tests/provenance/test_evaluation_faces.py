"""The faces evaluation on one source: registered as version 3 through the evaluator, a swap is
caught over its seconds with the face box as the region, a benign copy stays authentic, and the
figures say so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from provenance import evaluation_faces as faces_eval
from provenance import fingerprint as fp
from provenance.models import Registration
from provenance.service import Service


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.slow
def test_a_swap_is_caught_on_the_face_and_a_benign_copy_is_authentic(
    service: Service, tmp_path: Path
) -> None:
    torch.set_num_threads(1)
    lines: list[str] = []
    figures = faces_eval.evaluate(
        service.evaluator,
        media=tmp_path / "media",
        progress=lines.append,
        only=[("heldout", "grace_hopper")],
        methods=["poisson"],
        variants=["reencode"],
    )
    # Registered once, as version 3 (with its face channel), by the evaluation device.
    with service.engine.connect() as connection:
        stored = connection.execute(Registration.__table__.select()).all()  # type: ignore[attr-defined]
    [registration] = stored
    assert fp.Fingerprint.decode(registration.fingerprint).version == 3
    original = tmp_path / "media" / "grace_hopper" / "original.mp4"
    assert service.evaluator.register(original, version=3) == registration.id

    [swap] = [s for s in figures["samples"] if s["kind"] == "swap"]
    start, end = faces_eval.SWAP_AT
    assert swap["swapped_s"] == pytest.approx(end - start, abs=0.05)
    # Caught: a face finding over those seconds whose region is the true face box (IoU >= 0.5).
    assert swap["caught_s"] >= 0.5 * swap["swapped_s"], (swap, lines)
    row = figures["swaps"]["poisson"]["heldout"]
    assert row["n"] == 1 and row["caught_rate"] == pytest.approx(
        swap["caught_s"] / swap["swapped_s"], abs=1e-3
    )
    assert figures["swaps"]["poisson"]["validation"]["caught_rate"] is None

    [benign] = [s for s in figures["samples"] if s["kind"] == "benign"]
    assert benign["verdict"] == "authentic" and benign["right_original"], benign
    assert benign["face_findings"] == 0 and benign["picture_findings"] == []
    assert figures["benign"]["reencode"]["heldout"]["authentic"] == 1
    assert any("caught" in line for line in lines)
    text = "\n".join(faces_eval.table(figures))
    assert "poisson" in text and "reencode" in text
    json.dumps(figures)  # what `provenance eval faces` writes to DATA_DIR/eval/faces.json


def test_a_swap_is_scored_by_time_and_box() -> None:
    """Scoring alone: a finding over the right seconds on the wrong box, or none, is a miss."""
    original = faces_eval.Original(
        "x", "validation", Path("x.mp4"), 4.0, [[0.4, 0.3, 0.2, 0.3]] * 8, (0.5, 1.5)
    )
    swap = faces_eval.Swap("poisson", Path("s.mp4"), [False, False, True, True, True, True, False, False])
    on_face = {"kind": "face_swap", "query_range": [0.5, 1.0], "regions": [[0.41, 0.3, 0.2, 0.3]]}
    elsewhere = {"kind": "face_swap", "query_range": [1.0, 1.5], "regions": [[0.0, 0.0, 0.1, 0.1]]}
    result = {"match": {"registration_id": "r"}, "findings": [on_face, elsewhere]}
    row = faces_eval.score_swap(result, swap, original, "r")
    assert row == {
        "swapped_s": 1.0,
        "caught_s": 0.5,
        "no_finding_s": 0.0,
        "elsewhere_s": 0.5,
        "other_match_s": 0.0,
    }
    assert faces_eval.score_swap(result, swap, original, "another")["other_match_s"] == 1.0
    assert faces_eval.score_swap({**result, "findings": []}, swap, original, "r")["no_finding_s"] == 1.0
