"""The crop and tone the comparer searches: they undo a re-framed or re-graded copy, not an edit."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from detector import adjust, data
from detector.adjust import IDENTITY, Adjustment
from detector.comparer import TripletComparer
from detector.inputs import prepare
from detector.model import WEIGHTS_FILE, SegmentEmbedding, dequantise, load_weights, quantise


@pytest.fixture(scope="module")
def bikes() -> data.VideoFootage:
    return data.load_video("bikes.mp4")


@pytest.fixture(scope="module")
def comparer() -> TripletComparer:
    return TripletComparer(load_weights(WEIGHTS_FILE))


def _crop(rgb: np.ndarray, left: float, top: float, right: float, bottom: float) -> np.ndarray:
    height, width = rgb.shape[:2]
    return rgb[
        round(height * top) : height - round(height * bottom),
        round(width * left) : width - round(width * right),
    ]


def _window(
    comparer: TripletComparer, bikes: data.VideoFootage, start: float
) -> tuple[list[float], list[np.ndarray], SegmentEmbedding]:
    """The 4 fps instants of bikes' window at `start`, its frames, and the embedding stored for it."""
    times = [start + k / 4 for k in range(4)]
    originals = [bikes.frame(t) for t in times]
    embedding = comparer.embed_window(list(zip(times, originals, strict=True)))
    return times, originals, dequantise(quantise(embedding), embedding.start, embedding.end, embedding.frames)


def test_identity_changes_nothing_and_a_crop_is_put_back(bikes: data.VideoFootage) -> None:
    original = prepare(bikes.frame(2.0))
    assert np.array_equal(IDENTITY.apply(original), original)
    cropped = prepare(_crop(bikes.frame(2.0), 0.05, 0.0, 0.025, 0.05))
    restored = Adjustment(crop=(0.05, 0.0, 0.025, 0.05)).apply(cropped)
    inside = (slice(8, 56), slice(8, 56))  # away from the edges the crop cut off
    error_before = np.abs(cropped.astype(float) - original)[inside].mean()
    error_after = np.abs(restored.astype(float) - original)[inside].mean()
    assert error_after < 0.5 * error_before


def test_tone_inverts_a_gamma_change(bikes: data.VideoFootage) -> None:
    original = prepare(bikes.frame(2.0))
    table = np.clip(255 * (np.arange(256) / 255) ** 1.3, 0, 255).astype(np.uint8)
    graded = cv2.LUT(original, table)
    restored = Adjustment(gamma=0.77).apply(graded)
    assert (
        np.abs(restored.astype(float) - original).mean()
        < 0.25 * np.abs(graded.astype(float) - original).mean()
    )


def test_search_keeps_the_identity_unless_a_candidate_fits_better() -> None:
    calls: list[int] = []

    def flat(candidates: list[Adjustment]) -> list[float]:
        calls.append(len(candidates))
        return [1.0] * len(candidates)

    assert adjust.search(flat) == IDENTITY
    assert calls == [1, 8, 8, 8]  # the identity, then each stage's other candidates in one batch
    target = Adjustment(crop=(0.05, 0.0, 0.0, 0.025), gamma=1.3)

    def distance(candidates: list[Adjustment]) -> list[float]:
        return [
            abs(c.crop[0] - 0.05)
            + abs(c.crop[3] - 0.025)
            + c.crop[1]
            + c.crop[2]
            + abs(c.gamma - 1.3)
            + abs(c.saturation - 1.0)
            for c in candidates
        ]

    assert adjust.search(distance) == target


def test_comparer_finds_the_crop_of_a_cropped_copy_and_scores_it_closer(
    comparer: TripletComparer, bikes: data.VideoFootage
) -> None:
    _, originals, stored = _window(comparer, bikes, 3.0)
    copies = [_crop(f, 0.05, 0.0, 0.0, 0.05) for f in originals]
    found = comparer.fit_adjustment([(copies, stored)])
    assert found.crop[0] > 0 and found.crop[3] > 0  # left and bottom were cut
    plain = comparer.score(copies, stored)[0]
    adjusted = comparer.score(copies, stored, found)[0]
    assert adjusted < plain


def test_an_edit_stays_flagged_through_the_adjustment(
    comparer: TripletComparer, bikes: data.VideoFootage
) -> None:
    """The search fits the picture as a whole: a pasted patch cannot be searched away."""
    times, originals, stored = _window(comparer, bikes, 5.0)
    edited = []
    for f in originals:
        copy = _crop(f, 0.025, 0.0, 0.025, 0.0).copy()
        height, width = copy.shape[:2]
        copy[height // 3 : height // 3 + height // 4, width // 2 : width // 2 + width // 5] = (230, 40, 40)
        edited.append(copy)
    query = [(t, f) for t, f in zip(times, edited, strict=True)]
    score, cells, _, _ = comparer.search(query, stored)
    assert score > comparer.threshold
    row, col = np.unravel_index(int(np.argmax(cells)), cells.shape)
    assert 2 <= row <= 5 and 3 <= col <= 7  # the patch's cells
