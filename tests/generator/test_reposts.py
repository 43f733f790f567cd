"""Reposts: each form writes a clip of its shape, and a box of the source lands where `Reframe.box` says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from frames.samples import sample_clip
from generator import reposts
from generator.reposts import Reframe
from generator.variants import read_clip, write_clip


@pytest.fixture(scope="module")
def marked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two seconds of grey with a pure red square at [0.2, 0.3, 0.2, 0.2] of a 16:9 frame."""
    frames = []
    for _ in range(10):
        rgb = np.full((180, 320, 3), 90, np.uint8)
        rgb[54:90, 64:128] = (255, 0, 0)
        frames.append(rgb)
    path = tmp_path_factory.mktemp("reposts") / "marked.mp4"
    write_clip(path, frames, read_clip(sample_clip("carphone_pristine.mp4"), until=0.1).fps)
    return path


def _red_box(rgb: np.ndarray) -> list[float]:
    # Redder than anything a player draws (its colours stay within 30..230).
    red = (rgb[:, :, 0] > 235) & (rgb[:, :, 1] < 40) & (rgb[:, :, 2] < 40)
    ys, xs = np.nonzero(red)
    height, width = red.shape
    return [
        xs.min() / width,
        ys.min() / height,
        (xs.max() + 1 - xs.min()) / width,
        (ys.max() + 1 - ys.min()) / height,
    ]


@pytest.mark.parametrize(
    "reframe",
    [
        Reframe(window=(0.1, 0.0, 0.5, 1.0)),
        Reframe(mirror=True),
        Reframe(mirror=True, window=(0.3, 0.0, 0.6, 1.0)),
        Reframe(canvas=9 / 16, picture=(0.05, 0.35, 0.9, 0.28), fill="solid", colour=(0, 200, 0)),
        Reframe(canvas=16 / 9, picture=(0.3, 0.2, 0.6, 0.6), fill="player", seed=1),
        Reframe(degrees=4.0),
        Reframe(degrees=-4.0, zoom=False),
    ],
    ids=lambda r: r.describe(),
)
def test_a_source_box_lands_where_the_reframe_says(marked: Path, tmp_path: Path, reframe: Reframe) -> None:
    out = tmp_path / "repost.mp4"
    truth = reposts.repost(marked, out, reframe)
    assert truth.transform == reframe.describe() and truth.original_range[1] > 0.3
    (rgb, *_) = read_clip(out).frames
    expected = reframe.box((0.2, 0.3, 0.2, 0.2), 320 / 180)
    found = _red_box(rgb)
    assert np.allclose(found, expected, atol=0.03), (found, expected)
    if reframe.canvas:
        assert rgb.shape[1] / rgb.shape[0] == pytest.approx(reframe.canvas, abs=0.02)


def test_forms_are_drawn_per_seed_and_within_the_issue_bounds() -> None:
    assert reposts.form("crop_offcentre", 7, 16 / 9) == reposts.form("crop_offcentre", 7, 16 / 9)
    assert reposts.form("crop_offcentre", 7, 16 / 9) != reposts.form("crop_offcentre", 8, 16 / 9)
    for seed in range(20):
        crop = reposts.form("crop_offcentre", seed, 16 / 9)
        assert 0.4 <= crop.window[2] <= 0.6 and crop.window[0] + crop.window[2] <= 1.0
        player = reposts.form("screen_recording", seed, 16 / 9)
        assert 0.5 <= player.picture[2] <= 0.9
        turn = reposts.form("rotate", seed, 16 / 9)
        assert 2.0 <= abs(turn.degrees) <= 5.0
    assert set(reposts.FORMS) >= {"crop_centre", "fill_blurred", "screen_recording", "mirror", "mirror_crop"}
    with pytest.raises(KeyError):
        reposts.form("shear", 0, 1.0)
