"""Letterbox and pillarbox bars: the content area of a frame.

A line (row or column) is a bar when the mean of its RGB samples is below 24 and none reaches 48;
bars are cropped unless that would leave under 40% of the frame (a fade to black is content, not
a bar). A letterboxed copy then hashes, and reaches the network, like its source.
"""

from __future__ import annotations

import cv2
import numpy as np

BAR_MEAN = 24.0
BAR_MAX = 48
BAR_MIN_KEEP = 0.4
# Lines scanned at a time from each edge: most frames have no bars, so a few lines decide.
_CHUNK = 16


def content_lines(rgb: np.ndarray, axis: int) -> np.ndarray:
    """Whether each row (axis=1) or column (axis=0) of `rgb` is not a near-black line."""
    height, width = rgb.shape[:2]
    flat = np.ascontiguousarray(rgb).reshape(height, width * 3)
    means = cv2.reduce(flat, axis, cv2.REDUCE_AVG, dtype=cv2.CV_32F).ravel()
    maxima = cv2.reduce(flat, axis, cv2.REDUCE_MAX).ravel()
    if axis == 0:  # per column: fold the three channels of each column together
        means = means.reshape(width, 3).mean(axis=1)
        maxima = maxima.reshape(width, 3).max(axis=1)
    return np.asarray((means >= BAR_MEAN) | (maxima >= BAR_MAX))


def bars(rgb: np.ndarray, axis: int, chunk: int = _CHUNK) -> tuple[int, int]:
    """First and one-past-last row (axis=1) or column (axis=0) that is not a near-black line.

    Scanned inwards from both edges a chunk at a time, so a frame without bars costs a few lines
    at each edge, not a pass over the whole frame. (0, 0) when every line is a bar.
    """
    count = rgb.shape[0] if axis == 1 else rgb.shape[1]

    def lines(start: int, stop: int) -> np.ndarray:
        return content_lines(rgb[start:stop] if axis == 1 else rgb[:, start:stop], axis)

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
    """(top, bottom, left, right) of an RGB frame without its letterbox and pillarbox bars."""
    height, width = rgb.shape[:2]
    top, bottom = bars(rgb, axis=1)
    if bottom - top < max(1, BAR_MIN_KEEP * height):
        top, bottom = 0, height
    left, right = bars(rgb[top:bottom], axis=0)
    if right - left < max(1, BAR_MIN_KEEP * width):
        left, right = 0, width
    return top, bottom, left, right


def strip_bars(rgb: np.ndarray) -> np.ndarray:
    """The content area of an RGB frame (a view, no copy)."""
    top, bottom, left, right = content_box(rgb)
    return rgb[top:bottom, left:right]
