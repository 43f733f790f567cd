"""Where a change is: flagged cells as boxes, time ranges merged, and overlap (IoU) in time and space.

Both comparers report regions with `regions_of`, the verdict merges tampered ranges with
`merge_ranges`, and every evaluation scores localisation with `time_iou` and `box_iou`, so a
figure measured offline means what the service reports.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

Box = Sequence[float]  # normalised [x, y, w, h]
Range = tuple[float, float]  # [start, end) in seconds

# Ranges closer than this (seconds) are one range: window edges computed two ways differ by float noise.
MERGE_GAP = 1e-6


def regions_of(mask: np.ndarray) -> list[list[float]]:
    """Bounding boxes, normalised [x, y, w, h], of the 8-connected groups of flagged cells (largest first)."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    rows, cols = mask.shape
    boxes = [
        [float(x) / cols, float(y) / rows, float(w) / cols, float(h) / rows]
        for x, y, w, h, _ in stats[1:count].tolist()
    ]
    return sorted(boxes, key=lambda b: (-b[2] * b[3], b[1], b[0]))


def merge_ranges(ranges: Sequence[Sequence[float]], gap: float = MERGE_GAP) -> list[Range]:
    """Overlapping or touching (within `gap`) time ranges joined, sorted by start."""
    merged: list[Range] = []
    for start, end in sorted((float(a), float(b)) for a, b in ranges):
        if merged and start <= merged[-1][1] + gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def total_length(ranges: Sequence[Range]) -> float:
    """Seconds covered by disjoint ranges (an inverted range counts 0)."""
    return sum(max(0.0, end - start) for start, end in ranges)


def time_iou(
    found: Sequence[Sequence[float]], truth: Sequence[Sequence[float]], cut_tolerance: float = 0.0
) -> float:
    """IoU in seconds of two sets of ranges; a zero-length truth (a cut) is widened by `cut_tolerance`."""
    widened = [(a - cut_tolerance, b + cut_tolerance) if b - a < 1e-6 else (a, b) for a, b in truth]
    f, t = merge_ranges(found), merge_ranges(widened)
    inter = total_length([(max(a, c), min(b, d)) for a, b in f for c, d in t])
    union = total_length(f) + total_length(t) - inter
    return inter / union if union > 0 else 0.0


def bounding_box(boxes: Sequence[Box]) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of the smallest box around normalised [x, y, w, h] boxes."""
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[0] + b[2] for b in boxes),
        max(b[1] + b[3] for b in boxes),
    )


def box_iou(found: Sequence[Box], truth: Sequence[Box]) -> float:
    """IoU of the bounding box of the flagged regions and that of the true regions (0 if either is empty)."""
    if not found or not truth:
        return 0.0
    a, b = bounding_box(found), bounding_box(truth)
    iw, ih = max(0.0, min(a[2], b[2]) - max(a[0], b[0])), max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
