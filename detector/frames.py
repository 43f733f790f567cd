"""What the detector sees of a frame: the letterbox-stripped picture, area-resized to a small square.

This mirrors fingerprint v1's normalisation (near-black uniform bars are cropped unless that
would leave under 40% of the frame; the rest is squashed to a square, so cells are fractions of
the content area whatever the aspect ratio) without importing `provenance`: the detector is a
library the service uses, never the other way round. A letterboxed or pillarboxed copy of a clip
therefore reaches the network exactly like its source.
"""

from __future__ import annotations

import cv2
import numpy as np

# Side of the square the network sees; 8x8 cells of 8x8 pixels.
SIDE = 64
# Letterbox detection on 8-bit RGB, the same rule as fingerprint v1.
_BAR_MEAN = 24.0
_BAR_MAX = 48
_BAR_MIN_KEEP = 0.4


def _content_lines(rgb: np.ndarray, axis: int) -> np.ndarray:
    """Whether each row (axis=1) or column (axis=0) of `rgb` is not a near-black line."""
    height, width = rgb.shape[:2]
    flat = np.ascontiguousarray(rgb).reshape(height, width * 3)
    means = cv2.reduce(flat, axis, cv2.REDUCE_AVG, dtype=cv2.CV_32F).ravel()
    maxima = cv2.reduce(flat, axis, cv2.REDUCE_MAX).ravel()
    if axis == 0:  # per column: fold the three channels of each column together
        means = means.reshape(width, 3).mean(axis=1)
        maxima = maxima.reshape(width, 3).max(axis=1)
    return np.asarray((means >= _BAR_MEAN) | (maxima >= _BAR_MAX))


def _bars(rgb: np.ndarray, axis: int, chunk: int = 16) -> tuple[int, int]:
    """First and one-past-last row (axis=1) or column (axis=0) that is not a near-black line.

    Scanned inwards from both edges a chunk at a time: most frames have no bars, so a few lines
    at each edge decide, not the whole frame.
    """
    count = rgb.shape[0] if axis == 1 else rgb.shape[1]

    def lines(start: int, stop: int) -> np.ndarray:
        return _content_lines(rgb[start:stop] if axis == 1 else rgb[:, start:stop], axis)

    first = None
    for start in range(0, count, chunk):
        found = np.flatnonzero(lines(start, min(count, start + chunk)))
        if found.size:
            first = start + int(found[0])
            break
    if first is None:
        return 0, 0
    for stop in range(count, first, -chunk):
        start = max(first, stop - chunk)
        found = np.flatnonzero(lines(start, stop))
        if found.size:
            return first, start + int(found[-1]) + 1
    return first, first + 1


def content_box(rgb: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the frame without its letterbox and pillarbox bars."""
    height, width = rgb.shape[:2]
    top, bottom = _bars(rgb, axis=1)
    if bottom - top < max(1, _BAR_MIN_KEEP * height):
        top, bottom = 0, height
    left, right = _bars(rgb[top:bottom], axis=0)
    if right - left < max(1, _BAR_MIN_KEEP * width):
        left, right = 0, width
    return top, bottom, left, right


def strip_bars(rgb: np.ndarray) -> np.ndarray:
    """The content area of an RGB frame (a view, no copy)."""
    top, bottom, left, right = content_box(rgb)
    return rgb[top:bottom, left:right]


class Prepared(np.ndarray):
    """A frame `prepare` already made: `prepare` passes it through.

    Callers that hold many frames until they compare them (a verifier keeping a clip's samples)
    keep these 64x64 squares instead of the analysis-size frames.
    """


def prepare_frame(rgb: np.ndarray, side: int = SIDE) -> Prepared:
    """`prepare`, marked as done so the comparer does not strip and resize it again."""
    return prepare(rgb, side).view(Prepared)


def prepare(rgb: np.ndarray, side: int = SIDE) -> np.ndarray:
    """(side, side, 3) uint8: bars stripped, then area-resized, as the network's input."""
    if isinstance(rgb, Prepared) and rgb.shape == (side, side, 3):
        return rgb.view(np.ndarray)
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB frame (H, W, 3), not shape {rgb.shape}")
    return cv2.resize(strip_bars(rgb), (side, side), interpolation=cv2.INTER_AREA)


def prepare_mask(mask: np.ndarray, box: tuple[int, int, int, int], side: int = SIDE) -> np.ndarray:
    """A float altered-pixel mask cut to a frame's content `box` and resized like the frame."""
    top, bottom, left, right = box
    crop = np.ascontiguousarray(mask[top:bottom, left:right], dtype=np.float32)
    return cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)


def cell_fractions(mask: np.ndarray, grid: int) -> np.ndarray:
    """(grid, grid) share of each cell covered by a (side, side) mask in 0..1."""
    side = mask.shape[0]
    step = side // grid
    return mask.reshape(grid, step, grid, step).mean(axis=(1, 3))
