"""The picture inside a frame: a clip shown inside a fill, a player's window or another video.

Reposts put the original inside other content: a vertical canvas with a blurred copy of the clip
(or a solid colour) above and below, a screen recording of a video player with its bars, text and
moving controls, a picture in picture over another video. `inner_boxes` finds the rectangle(s)
the picture most likely occupies, from a few frames of the clip (grey, small), by three cues:

- *edges that stay*: the border of an inserted picture is a straight edge in every frame, where
  the picture's own edges move (median over time of the gradient across each line);
- *activity*: the picture changes from frame to frame; a player's chrome and a solid fill do not;
- *detail*: the picture is sharp; a blurred fill is not (median over time of |Laplacian|).

Candidate lines are the rows and columns along which a stayed edge runs for a good part of the
frame, or where the detail profile steps; the frame's own borders are candidates too. Every
rectangle of candidate lines that is not most of the frame is scored by the share of its sides
that stayed edges support and by how much more active and detailed its inside is than its
outside; the best few distinct rectangles are returned, best first, as normalised
``[x, y, w, h]``. The verifier hashes what is inside each and looks it up like a clip of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

Box = tuple[float, float, float, float]

# Frames are looked at this wide (pixels): enough for a picture at half the width.
WORK_SIDE = 160
# A stayed edge: the median over time of the grey step across a line, in levels.
EDGE_LEVEL = 8.0
# A line is a candidate when a stayed edge runs along this share of the frame.
LINE_RUN = 0.25
# Candidate lines kept per axis (the strongest), besides the frame's borders.
MAX_LINES = 12
# A picture covers between these shares of the frame (per axis: 0.2; in area below `MAX_AREA`).
MIN_SIDE = 0.2
MAX_AREA = 0.97
# Rectangles whose IoU with a better one is over this are not returned as other candidates.
DISTINCT_IOU = 0.9
# Scores below this are no picture at all.
MIN_SCORE = 0.75
# What a side on the frame's border counts as edge support (the picture may touch the border).
BORDER_SUPPORT = 0.5
# A side's support: the stayed edge along it, plus this much of how much more active or detailed
# the picture is in a band `STEP_BAND` pixels wide just inside it than just outside (a player's
# progress bar under the picture is an edge too, but with the same still chrome on both sides).
STEP_BONUS = 0.5
STEP_BAND = 2


@dataclass(frozen=True)
class InnerBox:
    """A rectangle the picture may occupy (normalised [x, y, w, h]) and its score."""

    box: Box
    score: float


def _grey(frames: Sequence[np.ndarray]) -> npt.NDArray[np.float32]:
    """(n, h, w) grey frames at most `WORK_SIDE` wide or high."""
    out = []
    for rgb in frames:
        height, width = rgb.shape[:2]
        scale = min(1.0, WORK_SIDE / max(height, width))
        size = (max(8, round(width * scale)), max(8, round(height * scale)))
        grey = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
        out.append(cv2.resize(grey, size, interpolation=cv2.INTER_AREA).astype(np.float32))
    return np.stack(out)


def _longest_runs(mask: np.ndarray) -> npt.NDArray[np.int64]:
    """Per row of a boolean (rows, n) mask, the length of its longest run of True."""
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    steps = np.diff(padded, axis=1)
    best = np.zeros(mask.shape[0], dtype=np.int64)
    for row in range(mask.shape[0]):
        starts = np.flatnonzero(steps[row] == 1)
        ends = np.flatnonzero(steps[row] == -1)
        if len(starts):
            best[row] = int((ends - starts).max())
    return best


def _lines(edges: np.ndarray, profiles: Sequence[np.ndarray], length: int) -> list[int]:
    """Candidate line positions (between pixel i - 1 and i) along one axis, borders included.

    `edges` is (lines - 1, length): the stayed edge between consecutive lines; `profiles` are
    (lines,) profiles of detail and activity, whose steps (a sharp, moving picture beside a
    blurred or still fill) and crossings of their mid level (where a fill's band begins) are
    candidates too.
    """
    count = edges.shape[0] + 1
    runs = _longest_runs(edges > EDGE_LEVEL)
    strength = runs / length
    picked = [int(i) + 1 for i in np.argsort(-strength)[:MAX_LINES] if strength[i] >= LINE_RUN]
    steps: list[int] = []
    for profile in profiles:
        smooth = np.convolve(profile, np.ones(3) / 3, mode="same")
        high, low = float(np.percentile(smooth, 90)), float(np.percentile(smooth, 10))
        jumps = np.abs(np.diff(smooth))
        steps.extend(int(i) + 1 for i in np.argsort(-jumps)[:4] if jumps[i] > 0.25 * max(high, 1e-3))
        if high > 2 * low + 1e-3:
            above = smooth > (high + low) / 2
            steps.extend(int(i) + 1 for i in np.flatnonzero(above[1:] != above[:-1]))
    # Edges are the precise lines: a profile step within two pixels of one adds nothing.
    kept = list(dict.fromkeys(picked))
    for p in steps:
        if all(abs(p - q) > 2 for q in kept):
            kept.append(p)
    return sorted({0, count, *kept})


def inner_boxes(frames: Sequence[np.ndarray], limit: int = 6) -> list[InnerBox]:
    """The rectangles a picture inside other content most likely occupies (see the module docstring).

    `frames` are RGB frames of the clip, a few seconds' worth (at least 3); empty when the clip
    seems to be one picture filling its frame.
    """
    if len(frames) < 3:
        return []
    grey = _grey(frames)
    _, height, width = grey.shape
    across_rows = np.median(np.abs(np.diff(grey, axis=1)), axis=0)  # (h - 1, w): edges between rows
    across_cols = np.median(np.abs(np.diff(grey, axis=2)), axis=0)  # (h, w - 1): edges between columns
    activity = np.mean(np.abs(np.diff(grey, axis=0)), axis=0)
    laplacian = np.median(np.abs(np.stack([cv2.Laplacian(g, cv2.CV_32F) for g in grey])), axis=0)
    rows = _lines(across_rows, (laplacian.mean(axis=1), activity.mean(axis=1)), width)
    cols = _lines(across_cols.T, (laplacian.mean(axis=0), activity.mean(axis=0)), height)
    # Prefix sums: edge support along lines, and activity and detail over areas.
    row_edges = np.zeros((height + 1, width + 1), dtype=np.float64)
    row_edges[1:height, 1:] = np.cumsum(across_rows > EDGE_LEVEL, axis=1)
    col_edges = np.zeros((height + 1, width + 1), dtype=np.float64)
    col_edges[1:, 1:width] = np.cumsum(across_cols > EDGE_LEVEL, axis=0)
    act = _integral(activity)
    det = _integral(laplacian)
    total_act, total_det = act[-1, -1], det[-1, -1]
    found: list[tuple[float, Box]] = []
    for i, top in enumerate(rows):
        for bottom in rows[i + 1 :]:
            if bottom - top < MIN_SIDE * height:
                continue
            for j, left in enumerate(cols):
                for right in cols[j + 1 :]:
                    if right - left < MIN_SIDE * width:
                        continue
                    area = (bottom - top) * (right - left)
                    if area > MAX_AREA * height * width:
                        continue
                    edges = (
                        _row_support(row_edges, top, left, right, height),
                        _row_support(row_edges, bottom, left, right, height),
                        _col_support(col_edges, left, top, bottom, width),
                        _col_support(col_edges, right, top, bottom, width),
                    )
                    steps = _steps((act, det), top, bottom, left, right, height, width)
                    sides = [
                        e if s is None else e + STEP_BONUS * s for e, s in zip(edges, steps, strict=True)
                    ]
                    support = 0.5 * min(sides) + 0.5 * sum(sides) / 4
                    outside = height * width - area
                    contrast = 0.0
                    for table, total in ((act, total_act), (det, total_det)):
                        inside = _area(table, top, bottom, left, right)
                        mean_in = inside / area
                        mean_out = (total - inside) / max(outside, 1)
                        contrast += 0.25 * float(np.tanh((mean_in - mean_out) / (mean_in + 1e-3)))
                    score = support + contrast
                    box = (left / width, top / height, (right - left) / width, (bottom - top) / height)
                    found.append((score, box))
    found.sort(key=lambda item: -item[0])
    picked: list[InnerBox] = []
    for score, box in found:
        if score < MIN_SCORE or len(picked) >= limit:
            break
        if all(box_iou(box, other.box) <= DISTINCT_IOU for other in picked):
            picked.append(InnerBox(box, round(score, 3)))
    return picked


def _steps(
    tables: Sequence[np.ndarray], top: int, bottom: int, left: int, right: int, height: int, width: int
) -> list[float | None]:
    """Per side (top, bottom, left, right): how much more active or detailed the picture is just
    inside it than just outside (0..1), None on the frame's border."""
    b = STEP_BAND
    bands = (
        ((top, top + b, left, right), (top - b, top, left, right), top >= b),
        ((bottom - b, bottom, left, right), (bottom, bottom + b, left, right), bottom + b <= height),
        ((top, bottom, left, left + b), (top, bottom, left - b, left), left >= b),
        ((top, bottom, right - b, right), (top, bottom, right, right + b), right + b <= width),
    )
    out: list[float | None] = []
    for inner, outer, inside_frame in bands:
        if not inside_frame:
            out.append(None)
            continue
        best = 0.0
        for table in tables:
            a = _area(table, *inner) / max(1, (inner[1] - inner[0]) * (inner[3] - inner[2]))
            o = _area(table, *outer) / max(1, (outer[1] - outer[0]) * (outer[3] - outer[2]))
            best = max(best, (a - o) / (a + 1e-3))
        out.append(float(np.clip(best, 0.0, 1.0)))
    return out


def _integral(values: np.ndarray) -> npt.NDArray[np.float64]:
    table = np.zeros((values.shape[0] + 1, values.shape[1] + 1), dtype=np.float64)
    table[1:, 1:] = np.cumsum(np.cumsum(values, axis=0), axis=1)
    return table


def _area(table: np.ndarray, top: int, bottom: int, left: int, right: int) -> float:
    return float(table[bottom, right] - table[top, right] - table[bottom, left] + table[top, left])


def _row_support(prefix: np.ndarray, line: int, left: int, right: int, height: int) -> float:
    """Share of the horizontal side at `line` (between rows line - 1 and line) on a stayed edge."""
    if line in (0, height):
        return BORDER_SUPPORT
    return float(prefix[line, right] - prefix[line, left]) / max(1, right - left)


def _col_support(prefix: np.ndarray, line: int, top: int, bottom: int, width: int) -> float:
    if line in (0, width):
        return BORDER_SUPPORT
    return float(prefix[bottom, line] - prefix[top, line]) / max(1, bottom - top)


def box_iou(a: Box, b: Box) -> float:
    """IoU of two normalised [x, y, w, h] boxes."""
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0
