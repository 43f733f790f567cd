"""The hand-made baseline the learned comparer is measured against: PDQ plus a grid of cell descriptors.

Per frame, the v1 descriptor (`frames.descriptor`, the code fingerprint v1 stores): PDQ of the
letterbox-stripped frame area-resized to 128x128, and an 8x8 grid of cell descriptors compared
by `frames.descriptor.field_distances`.

A segment is compared like `PdqGridComparer` minus its geometry and motion search: each query
frame against the original frames nearest its time (the nearest and one either side), best
match per cell; the segment's cell score is the median over its frames. The segment score is the
larger of the worst cell and the PDQ distance of the best-matching frame scaled so PDQ's match
limit (31 bits) lands on the cell threshold (12 levels): either one saying "different" counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from frames import descriptor

CELL_THRESHOLD = 12.0
PDQ_MATCH = 31


@dataclass(frozen=True)
class FrameDescriptor:
    """PDQ (packed bytes) and the decoded grid of one frame, exactly as fingerprint v1 stores them."""

    pdq: bytes
    fields: descriptor.GridFields


def describe(rgb: np.ndarray) -> FrameDescriptor:
    """PDQ and grid of one RGB frame (bars stripped), decoded once for many comparisons."""
    described = descriptor.describe(rgb)
    return FrameDescriptor(pdq=described.pdq, fields=descriptor.grid_fields(described.grid))


def grid_distances(a: FrameDescriptor, b: FrameDescriptor) -> np.ndarray:
    """(8, 8) per-cell distance in 8-bit levels (0 = same)."""
    return descriptor.field_distances(a.fields, b.fields)


def pdq_distance(a: FrameDescriptor, b: FrameDescriptor) -> int:
    return descriptor.pdq_distance(a.pdq, b.pdq)


@dataclass(frozen=True)
class BaselineResult:
    """Segment score (cell levels), per-cell scores and the PDQ distance of the best frames."""

    score: float
    cells: np.ndarray
    pdq: float


def compare(
    query: Sequence[tuple[float, FrameDescriptor]], original: Sequence[tuple[float, FrameDescriptor]]
) -> BaselineResult:
    """Query frames (times on the original's timeline) against the original's frames around them."""
    if not query or not original:
        raise ValueError("compare needs frames on both sides")
    times = np.array([t for t, _ in original])
    per_frame = []
    pdqs = []
    for t, q in query:
        nearest = int(np.argmin(np.abs(times - t)))
        chosen = [j for j in (nearest - 1, nearest, nearest + 1) if 0 <= j < len(original)]
        per_frame.append(np.min([grid_distances(q, original[j][1]) for j in chosen], axis=0))
        pdqs.append(min(pdq_distance(q, original[j][1]) for j in chosen))
    cells = np.median(np.stack(per_frame), axis=0)
    pdq = float(np.median(pdqs))
    score = max(float(cells.max()), pdq * CELL_THRESHOLD / PDQ_MATCH)
    return BaselineResult(score=score, cells=cells, pdq=pdq)
