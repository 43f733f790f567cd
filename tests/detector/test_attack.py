"""The shipped comparer as the generator's evasion target: its torch replay of the input
preparation, its windows, and the evasion and campaign measured through it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detector.attack import ComparerTarget, learned_comparer, prepare_torch, sample_indices, sample_windows
from detector.inputs import prepare
from detector.model import WEIGHTS_FILE
from frames.bars import content_box
from frames.samples import sample_clip
from generator import campaign
from generator.swap import DEFAULT_WEIGHTS, evade, load_model
from generator.swap.augment import to_tensor
from generator.variants import read_clip, write_clip

needs_weights = pytest.mark.skipif(not WEIGHTS_FILE.is_file(), reason="no detector weights")


def test_differentiable_prepare_matches_the_detectors() -> None:
    frames = read_clip(sample_clip("carphone_pristine.mp4")).frames
    for rgb in (frames[0], np.pad(frames[40], ((20, 20), (0, 0), (0, 0)))):  # and letterboxed
        ours = prepare_torch(to_tensor(rgb[None])[0], content_box(rgb), 64)
        assert np.abs(ours.permute(1, 2, 0).numpy() * 255 - prepare(rgb)).max() <= 0.5 + 1e-3


def test_sampled_frames_are_the_fingerprints_4_fps_picks() -> None:
    times = [k / 30 for k in range(31)]
    assert sample_indices(times) == [0, 8, 15, 23, 30]
    assert sample_windows([k / 30 for k in range(61)]) == [[0, 8, 15, 23], [30, 38, 45, 53], [60]]


@needs_weights
@pytest.mark.slow
def test_evasion_pulls_learned_embeddings_towards_the_originals(tmp_path: Path) -> None:
    """A few steps with the shipped swap lower the comparer's score; the face stays swapped."""
    clip = read_clip(sample_clip("carphone_pristine.mp4"))
    target = tmp_path / "carphone_2s.mp4"
    write_clip(target, clip.frames[:60], clip.fps)  # two windows of four 4 fps samples
    model, _ = load_model(DEFAULT_WEIGHTS)
    comparer = learned_comparer()
    assert comparer is not None
    _, report = evade(
        model, target, targets=("pdq", "embedding"), steps=12, progress=False, target=ComparerTarget(comparer)
    )
    print(report)
    before, after = report.embedding_before, report.embedding_after
    assert before is not None and after is not None and after.windows == 2
    assert after.mean_score < 0.8 * before.mean_score
    assert report.mean_distance_after < report.mean_distance_before
    # Still a swap: the face region differs from the original's by several levels, most of what
    # the plain swap changed.
    assert report.face_change_after > 5.0
    assert report.face_change_after > 0.6 * report.face_change_before


@needs_weights
@pytest.mark.slow
def test_campaign_swaps_measured_by_the_comparer(tmp_path: Path) -> None:
    """Handed the comparer, the campaign's evasion aims at it too: its window scores come down."""
    clip = read_clip(sample_clip("carphone_pristine.mp4"))
    face = tmp_path / "carphone-16.mp4"
    write_clip(face, clip.frames[:16], clip.fps)
    comparer = learned_comparer()
    assert comparer is not None and learned_comparer() is comparer  # loaded once
    target = ComparerTarget(comparer)
    truth = campaign.face_swap(face, tmp_path / "swap.mp4", target=target)
    evasive = campaign.face_swap(face, tmp_path / "evasive.mp4", evade_steps=10, target=target)
    assert truth.measures["embedding_mean_score"] > 0
    assert 0 <= truth.measures["embedding_flagged_rate"] <= 1
    assert evasive.measures["embedding_mean_score_before"] == truth.measures["embedding_mean_score"]
    assert evasive.measures["embedding_mean_score"] < truth.measures["embedding_mean_score"]
