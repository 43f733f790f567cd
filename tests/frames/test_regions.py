"""Flagged cells become boxes; ranges merge; time and box IoU score localisation."""

from __future__ import annotations

import numpy as np
import pytest

from frames.regions import bounding_box, box_iou, merge_ranges, regions_of, time_iou, total_length


def test_regions_are_normalised_boxes_of_connected_cells_largest_first() -> None:
    mask = np.zeros((8, 8), dtype=bool)
    mask[7, 7] = True
    mask[1:3, 2:5] = True
    mask[3, 5] = True  # touches the block diagonally: the same 8-connected region
    assert regions_of(mask) == [[0.25, 0.125, 0.5, 0.375], [0.875, 0.875, 0.125, 0.125]]
    assert regions_of(np.zeros((8, 8), dtype=bool)) == []


def test_ranges_merge_when_they_overlap_or_touch_within_float_noise() -> None:
    assert merge_ranges([(4.0, 5.0), (1.0, 2.0), (1.5, 3.0)]) == [(1.0, 3.0), (4.0, 5.0)]
    assert merge_ranges([(0.0, 1.0), (1.0 + 1e-9, 2.0)]) == [(0.0, 2.0)]
    assert merge_ranges([(0.0, 1.0), (1.01, 2.0)]) == [(0.0, 1.0), (1.01, 2.0)]
    assert merge_ranges([(0.0, 1.0), (1.01, 2.0)], gap=0.02) == [(0.0, 2.0)]
    assert total_length([(0.0, 1.0), (3.0, 2.0), (4.0, 4.5)]) == 1.5


def test_time_iou() -> None:
    assert time_iou([(3.0, 5.0)], [(3.0, 5.0)]) == 1.0
    assert time_iou([(4.0, 6.0)], [(3.0, 5.0)]) == 1 / 3
    assert time_iou([(3.75, 4.25)], [(4.0, 4.0)], cut_tolerance=0.5) == 0.5  # a cut, widened by ±0.5 s
    assert time_iou([(3.75, 4.25)], [(4.0, 4.0)]) == 0.0
    assert time_iou([], [(1.0, 2.0)]) == 0.0
    # Overlapping found ranges count once, not twice.
    assert time_iou([(3.0, 4.5), (4.0, 5.0)], [(3.0, 5.0)]) == 1.0


def test_box_iou_compares_bounding_boxes() -> None:
    assert box_iou([[0.5, 0.5, 0.5, 0.5]], [[0.5, 0.5, 0.5, 0.5]]) == 1.0
    assert box_iou([[0.0, 0.0, 0.5, 0.5]], [[0.5, 0.5, 0.5, 0.5]]) == 0.0
    assert box_iou([[0.0, 0.0, 0.5, 0.5]], [[0.0, 0.0, 0.25, 0.5]]) == pytest.approx(0.5)
    assert box_iou([], [[0.0, 0.0, 1.0, 1.0]]) == 0.0 and box_iou([[0.0, 0.0, 1.0, 1.0]], []) == 0.0
    # Two found boxes are scored by the box around both.
    found = [[0.0, 0.0, 0.25, 0.25], [0.75, 0.75, 0.25, 0.25]]
    assert bounding_box(found) == (0.0, 0.0, 1.0, 1.0)
    assert box_iou(found, [[0.0, 0.0, 1.0, 1.0]]) == 1.0
