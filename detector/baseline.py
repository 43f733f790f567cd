"""The hand-made baseline the learned comparer is measured against: PDQ plus a grid of cell descriptors.

Per frame, as fingerprint v1 does it (re-implemented: the detector never imports `provenance`):
the letterbox-stripped frame is area-resized to 128x128; PDQ (256 bits) of that square; and an
8x8 grid of 20-byte cell descriptors (a 4x4 luma thumbnail normalised by its standard deviation,
the standard deviation, mean luma, mean Cb and Cr). Cell distance: mean absolute difference of
the de-normalised thumbnails plus the mean-luma difference plus half the chroma differences,
in 8-bit levels.

A segment is compared like `PdqGridComparer` minus its geometry and motion search: each query
frame against the original frames nearest its time (the nearest and one either side), best
match per cell; the segment's cell score is the median over its frames. The segment score is the
larger of the worst cell and the PDQ distance of the best-matching frame scaled so PDQ's match
limit (31 bits) lands on the cell threshold (12 levels): either one saying "different" counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import pdqhash

from detector.frames import strip_bars

NORM_SIDE = 128
GRID = 8
THUMB = 4
CELL_THRESHOLD = 12.0
PDQ_MATCH = 31
_STD_FLOOR = 2.0
_THUMB_SCALE = 32.0


@dataclass(frozen=True)
class FrameDescriptor:
    """PDQ bits and the grid's fields of one frame, already quantised as v1 stores them."""

    pdq: np.ndarray  # (256,) bool
    thumbs: np.ndarray  # (64, 16) de-normalised thumbnails
    luma: np.ndarray  # (64,)
    chroma: np.ndarray  # (64, 2)


def describe(rgb: np.ndarray) -> FrameDescriptor:
    """PDQ and grid of one RGB frame (bars stripped), with v1's rounding."""
    square = cv2.resize(
        np.ascontiguousarray(strip_bars(np.ascontiguousarray(rgb, dtype=np.uint8))),
        (NORM_SIDE, NORM_SIDE),
        interpolation=cv2.INTER_AREA,
    )
    bits, _quality = pdqhash.compute(square)
    ycc = cv2.cvtColor(square, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    side = GRID * THUMB
    luma = ycc[:, :, 0].reshape(side, NORM_SIDE // side, side, NORM_SIDE // side).mean(axis=(1, 3))
    cells = luma.reshape(GRID, THUMB, GRID, THUMB).transpose(0, 2, 1, 3).reshape(-1, THUMB * THUMB)
    mean = cells.mean(axis=1, keepdims=True)
    std = np.clip(np.rint(cells.std(axis=1, keepdims=True) * 2), 0, 255) / 2
    shape = np.clip(np.rint((cells - mean) / np.maximum(std, _STD_FLOOR) * _THUMB_SCALE), -127, 127)
    thumbs = shape / _THUMB_SCALE * np.maximum(std, _STD_FLOOR)
    step = NORM_SIDE // GRID
    cr = ycc[:, :, 1].reshape(GRID, step, GRID, step).mean(axis=(1, 3)).ravel()
    cb = ycc[:, :, 2].reshape(GRID, step, GRID, step).mean(axis=(1, 3)).ravel()
    return FrameDescriptor(
        pdq=np.asarray(bits, dtype=bool),
        thumbs=thumbs.astype(np.float32),
        luma=np.rint(mean.ravel()).astype(np.float32),
        chroma=np.rint(np.stack([cb, cr], axis=1)).astype(np.float32),
    )


def grid_distances(a: FrameDescriptor, b: FrameDescriptor) -> np.ndarray:
    """(8, 8) per-cell distance in 8-bit levels (0 = same)."""
    shape = np.abs(a.thumbs - b.thumbs).mean(axis=1)
    colour = np.abs(a.luma - b.luma) + 0.5 * np.abs(a.chroma - b.chroma).sum(axis=1)
    return (shape + colour).reshape(GRID, GRID)


def pdq_distance(a: FrameDescriptor, b: FrameDescriptor) -> int:
    return int(np.count_nonzero(a.pdq != b.pdq))


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
