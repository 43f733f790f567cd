"""Faces through the service that ships: a talking head registered with a face channel (version 3)
is verified by the API; a face swapped in is a `face_swap` finding over its seconds, a benign copy
stays authentic. And the server refuses to start on a damaged face model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from frames.faces import MODEL_SHA256, model_dir
from frames.samples import sample_clip
from generator.classic_swaps import Method, classic_swap
from generator.footage import still
from generator.variants import reencode
from harness.server import refused_start
from provenance import fingerprint as fp
from provenance.core.config import DecodeLimits
from tests.provenance.conftest import Stack

CARPHONE = sample_clip("carphone_pristine.mp4")
SWAPPED = (1.0, 3.0)  # carphone is about 4 s long


@pytest.fixture
def newsroom(stack: Stack) -> dict[str, str]:
    """Carphone registered with its face channel; a newsroom key to verify copies of it."""
    stack.register(CARPHONE, fp.compute_fingerprint(CARPHONE, limits=DecodeLimits(), version=3))
    return stack.key("newsroom")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["poisson", "triangle"])
def test_a_swapped_face_is_a_face_swap_finding_over_its_seconds(
    stack: Stack, newsroom: dict[str, str], tmp_path: Path, method: Method
) -> None:
    fake = tmp_path / f"{method}.mp4"
    classic_swap(method, CARPHONE, still("grace_hopper"), fake, start=SWAPPED[0], end=SWAPPED[1])
    result = stack.verify(newsroom, fake).json()
    assert result["verdict"] == "tampered", result
    swaps = [f for f in result["findings"] if f["kind"] == "face_swap"]
    assert swaps, result["findings"]
    covered = sum(
        max(0.0, min(end, SWAPPED[1]) - max(start, SWAPPED[0]))
        for start, end in (f["query_range"] for f in swaps)
    )
    assert covered >= 0.75 * (SWAPPED[1] - SWAPPED[0]), swaps
    assert all(
        start >= SWAPPED[0] - 1.0 and end <= SWAPPED[1] + 1.0
        for start, end in (f["query_range"] for f in swaps)
    )
    assert all(f["regions"] for f in swaps), "the face box is the region"


@pytest.mark.slow
def test_a_benign_copy_of_a_face_clip_stays_authentic(
    stack: Stack, newsroom: dict[str, str], tmp_path: Path
) -> None:
    copy = tmp_path / "copy.mp4"
    reencode(CARPHONE, copy, crf=32)
    result = stack.verify(newsroom, copy).json()
    assert result["verdict"] == "authentic", result
    assert not [f for f in result["findings"] if f["kind"].startswith("face")], result["findings"]


def test_a_damaged_face_model_stops_start_up_with_one_line(tmp_path: Path) -> None:
    """A real process finds a face-recognition-models package whose predictor is truncated."""
    fake = tmp_path / "site" / "face_recognition_models"
    (fake / "models").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    for name in MODEL_SHA256:
        data = (model_dir() / name).read_bytes()
        (fake / "models" / name).write_bytes(data[: len(data) // 2])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
    env.update(PYTHONPATH=str(fake.parent), PROVENANCE_DATA_DIR=str(tmp_path / "var"), PROVENANCE_PORT="9")
    done = refused_start(env, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.strip()]
    assert "face model" in line and "damaged" in line, line
