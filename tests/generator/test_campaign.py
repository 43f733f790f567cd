"""The evaluation's face-swap fakes: truth and PDQ measures from real files, clear skips otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from frames.samples import sample_clip
from generator import campaign
from generator.swap import DEFAULT_WEIGHTS
from generator.swap.evasion import pdq_distance
from generator.variants import read_clip, write_clip


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """16 frames of the talking head and of the bikes (no face)."""
    folder = tmp_path_factory.mktemp("campaign")
    out = []
    for name in ("carphone_pristine.mp4", "bikes.mp4"):
        clip = read_clip(sample_clip(name))
        path = folder / f"short-{name}"
        write_clip(path, clip.frames[:16], clip.fps)
        out.append(path)
    return out[0], out[1]


def test_pdq_measures_count_frames_within_the_match_distance() -> None:
    frames = read_clip(sample_clip("carphone_pristine.mp4")).frames[:4]
    far = [np.ascontiguousarray(f[::-1, ::-1]) for f in frames]  # turned upside down: far in PDQ
    mixed = [frames[0], frames[1], far[2], far[3]]
    assert pdq_distance(frames[2], far[2]) > 31
    measures = campaign.pdq_measures(frames, mixed, [True] * 4)
    assert measures["pdq_frame_pass_rate"] == 0.5 and measures["pdq_clip_pass"] == 0.0
    assert campaign.pdq_measures(frames, mixed, [True, True, False, False])["pdq_clip_pass"] == 1.0
    assert campaign.pdq_measures(frames, mixed, [False] * 4) == {}


@pytest.mark.slow
def test_face_swap_of_an_original_with_its_truth_and_measures(
    tmp_path: Path, clips: tuple[Path, Path]
) -> None:
    face, _ = clips
    truth = campaign.face_swap(face, tmp_path / "swap.mp4")
    assert truth.kind == "face_swap"
    assert truth.ranges == [pytest.approx((0.0, 16 / float(read_clip(face).fps)))]
    (region,) = truth.regions
    assert 0.2 < region[0] + region[2] / 2 < 0.8  # around the face, not the whole frame
    assert region[2] * region[3] < 0.5
    assert 0 <= truth.measures["pdq_frame_pass_rate"] <= 1
    assert truth.measures["pdq_mean_distance"] > 0
    assert len(read_clip(tmp_path / "swap.mp4").frames) == 16
    evasive = campaign.face_swap(face, tmp_path / "evasive.mp4", evade_steps=10)
    assert evasive.kind == "evasive_face_swap"
    assert evasive.measures["pdq_mean_distance"] < truth.measures["pdq_mean_distance"]
    assert evasive.measures["pdq_mean_distance_before"] == truth.measures["pdq_mean_distance"]
    # No learned comparer handed over: nothing learned is measured (tests/detector/test_attack.py).
    assert not any(key.startswith("embedding_") for key in (*truth.measures, *evasive.measures))


def test_what_cannot_be_faked_is_not_applicable(tmp_path: Path, clips: tuple[Path, Path]) -> None:
    face, street = clips
    with pytest.raises(campaign.NotApplicable, match=r"no face in short-bikes\.mp4"):
        campaign.face_swap(street, tmp_path / "x.mp4")
    with pytest.raises(campaign.NotApplicable, match="no face-swap weights"):
        campaign.face_swap(face, tmp_path / "x.mp4", weights=tmp_path / "missing.pt")
    assert campaign.weights_digest(tmp_path / "missing.pt") is None
    assert campaign.weights_digest(DEFAULT_WEIGHTS) is not None
