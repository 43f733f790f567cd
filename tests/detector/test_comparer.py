"""How the comparer turns distances into scores (`detector.comparer._evidence`)."""

from __future__ import annotations

import numpy as np

from detector.comparer import _evidence


def _cells(seed: int, level: float = 0.2) -> np.ndarray:
    return (level + 0.02 * np.random.default_rng(seed).standard_normal((8, 8))).astype(np.float32)


def test_a_rise_everywhere_is_no_evidence_but_a_local_one_is() -> None:
    """Re-encoding lifts every cell; an edit lifts a few: only the second raises the score."""
    plain = _cells(0)
    score, cells, _ = _evidence([(plain, 0.05)])
    degraded, _, _ = _evidence([(plain + 0.15, 0.05)])
    edited = plain.copy()
    edited[2:4, 5] += 0.25
    local, local_cells, _ = _evidence([(edited, 0.05)])
    assert abs(degraded - score) < 1e-5
    assert local > score + 0.1
    assert np.unravel_index(np.argmax(local_cells), local_cells.shape) in {(2, 5), (3, 5)}
    assert abs(float(np.median(cells))) < 1e-6


def test_a_change_of_the_whole_picture_scores_by_the_global_distance() -> None:
    score, _, glob = _evidence([(_cells(1, level=0.9), 0.8)])
    assert glob == 0.8 and score == 0.8


def test_two_looks_at_a_second_are_averaged() -> None:
    """A peak in one choice of frames is diluted; an edit seen in both stays."""
    a, b = _cells(2), _cells(3)
    a[6, 1] += 0.3
    b[6, 1] += 0.3
    a[0, 0] += 0.2  # a stray peak in one choice only
    _, cells, glob = _evidence([(a, 0.1), (b, 0.3)])
    assert glob == 0.2
    assert np.argmax(cells) == 6 * 8 + 1
    assert cells[0, 0] < cells[6, 1] - 0.1
