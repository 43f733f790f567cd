"""Comparison of one aligned segment (about a second) of a clip with the original it shows.

`Comparer` is the seam: this module's `PdqGridComparer` works from the version 1 fingerprint
alone; the learned triplet-network comparer (`provenance.verify.learned`) plugs in behind the
same Protocol. Both sides come on the original's timeline: each clip frame carries, as its `t`,
the moment of the original the alignment put it at (and, as a `PlacedFrame`, its own time in
the clip), and the original's sampled frames cover that span plus one on each side. A comparer
that needs more than the hashes (the learned one: the clip's pixels and the original's stored
embeddings) is made per verification by a `ComparerFactory` once the original is chosen.

`PdqGridComparer` rebuilds both sides' 32x32 luma thumbnails and 8x8 chroma from the grid
descriptors (`thumbs`) and then, per segment:

1. estimates the geometry: the part of the original the clip shows, as scales 0.8..1.0 per axis
   and an offset (a 10% centre crop is scale 0.9 at offset 1.6 px), by normalised
   cross-correlation (`cv2.matchTemplate`) summed over the segment's frames. Letterbox and
   pillarbox bars are already gone (the fingerprint strips them), and a downscale changes
   nothing at 32x32;
2. compares each clip frame with the original frames sampled just before and after its moment
   (the clip's 4 fps samples fall between the original's: in a fast pan or past a cut, the
   nearest original sample can be a different picture). For each, it finds the frame's own
   motion (a translation of up to `MOTION_RADIUS` thumbnail pixels) by correlation, fits gain and
   offset (brightness and contrast changes are not edits) and a saturation gain for chroma;
3. scores each of the 8x8 cells: the luma residual, taking for each pixel the best of the
   original shifted by up to one more pixel (resampling), plus half the chroma falling outside
   the range the original's neighbourhood spans; the best of the candidate frames per cell.
   Pixels the original does not cover after the motion (an edge revealed by a pan) score 0;
4. takes the per-cell median over the segment's frames, so one odd frame does not flag a segment
   and an edit lasting most of it does. Cells over `CELL_THRESHOLD` are tampered; their connected
   groups are the regions.
5. also flags (`cell_scores`) what the sum in 3 dilutes, when two neighbouring cells share it
   (benign changes leave lone cells): a chroma residual over `LOCAL_COLOUR_LEVEL` (a recoloured
   object: 9-21 against at most 3.3 for benign variants) and, for a clip on the original's own
   grid (no crop or rescale found in 1) and where the original is still between its samples, a
   *structure* change over `STRUCTURE_LEVEL`: the cell's residual with its block shifted as a
   whole, relative to the original's texture there (an inpainted area: 0.38; benign variants at
   most 0.18). Per-pixel shifts forgive resampling, and with it any change that keeps the
   picture's features within a pixel of the old ones.

Scores are in 8-bit luma levels; `distance` maps the worst cell so that the threshold (12) is
0.5. Seen on real clips (bikes 640x272, bigbuckbunny 720p, carphone 176x144), as distances:
re-encodes, resizes, letterbox and pillarbox 0.04-0.31, 10% crops up to 0.30 (16%: 0.48), +-10%
colour up to 0.41, frame-rate changes and subclips cut between samples up to 0.43; pasted
textures and solid blocks 1.0 (scores of 24 and far more), a copy-move from elsewhere in the same
clip 0.55-1.0, and missed once (a 1.2 s copy-move in a talking head with a still background).
Region recolours (hue +60, saturation x1.6) scored 10-12 before step 5, under the threshold;
with it they flag at distance 1 (benign variants of bikes and carphone stay at or under 0.33).
Still missed: the shipped face swap of carphone (a talking head: the face moves between
samples). Its whole-block structure change (0.34-0.37) is clear of re-encodes and grades (0.18)
but not of a subclip cut between samples of a moving scene (bikes from 3.1 s: 0.48), which only
finer temporal alignment would tell apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import cv2
import numpy as np
import numpy.typing as npt

from frames.descriptor import GRID_COLS, GRID_ROWS
from frames.regions import regions_of
from provenance.fingerprint import Fingerprint, FrameHash
from provenance.verify import thumbs

if TYPE_CHECKING:
    from provenance.verify.align import Alignment

CELL_THRESHOLD = 12.0
CHROMA_WEIGHT = 0.5
# A colour change (chroma levels) two neighbouring cells share (`shared`) from which they are
# tampered. Half the chroma added to luma needs 24 levels on its own: it missed every recolour.
LOCAL_COLOUR_LEVEL = 5.0
LOCAL_COLOUR_GAIN = CELL_THRESHOLD / LOCAL_COLOUR_LEVEL
# The same for a clip seen through a reframe view (`provenance.verify.reframe`: mirrored, cut out
# of other content, turned back, cropped), which the frame comparer judges alone: on validation
# footage (saturated reds of the coffee scene) benign re-encodes share chroma residuals up to
# 9.7 between neighbours, over the 5 tuned on bikes and carphone.
VIEW_COLOUR_LEVEL = 10.0
# Per-pixel match reach (pixels) for a view that turned the clip back (a rotation): one
# resampling more than any other clip (validation: a thin moving bar after a 2.8 degree turn
# left 14.2 at reach 1).
RESAMPLED_SLACK = 2
# A structure change (`luma_parts`) two neighbouring cells share from which they are tampered,
# in still areas of clips that show the original uncropped (benign variants: at most 0.18); and
# the texture floor it is measured against.
STRUCTURE_LEVEL = 0.28
STRUCTURE_GAIN = CELL_THRESHOLD / STRUCTURE_LEVEL
STRUCTURE_FLOOR = 4.0
SCALES: tuple[float, ...] = (1.0, 0.95, 0.9, 0.85, 0.8)
# Prefer "no crop" unless a crop explains the frames clearly better (correlation units).
_IDENTITY_BONUS = 0.01
# A mean correlation this high at scale 1 leaves no room for a crop to explain the frames better.
_CLEARLY_UNCROPPED = 0.95
# After the best uniform scale, each axis is searched this far around it.
_REFINE = 0.05
_UPSAMPLE = 2
# How far (thumbnail pixels, 1/32 of the picture) a frame may move between the clip's sampled
# instant and the original's: a fast pan moves ~5 px per 25 fps frame.
MOTION_RADIUS = 4
# Objects move within the frame too: where the original changes between two samples (by more
# than `_MOVING_LEVEL`), a cell may match a block up to this many pixels away.
LOCAL_RADIUS = 3
_MOVING_LEVEL = 6.0
# A frame whose cells all score under this share of the threshold against its nearest sample
# needs no other candidate.
_PLAINLY_SAME = 0.5
# Prefer no motion when a shift does not explain the frame clearly better (correlation units).
_STILL_BONUS = 0.02
_FLAT_STD = 2.0
# The chroma curves are fitted again on the cells within this many levels of the first fit,
# when there are at least this many (half the frame).
_CHROMA_REFIT_LEVEL = 2.0
_CHROMA_REFIT_CELLS = 32
_QUANTILES = 17
_SIDE = thumbs.SIDE
_CELL = _SIDE // GRID_COLS


@dataclass(frozen=True)
class SegmentComparison:
    """How one aligned segment of a clip differs from the original.

    `distance` is 0 (same) .. 1 (unrelated); `regions` are normalised ``[x, y, w, h]`` of the
    clip's picture (its letterbox-stripped content area) that differ.
    """

    distance: float
    tampered: bool
    regions: list[list[float]] = field(default_factory=list)


@runtime_checkable
class Comparer(Protocol):
    """Compares one aligned segment of a clip with the original, both on the original's timeline.

    `query_frames` are the clip's frames of the segment, each with `t` set to the moment of the
    original the alignment maps it to; `original_frames` are the original's sampled frames over
    that span, with the one before and the one after when the original has them.
    """

    name: str
    version: str

    def compare(
        self, query_frames: Sequence[FrameHash], original_frames: Sequence[FrameHash]
    ) -> SegmentComparison: ...


@dataclass(frozen=True)
class PlacedFrame(FrameHash):
    """A clip frame handed to a comparer: `t` on the original's timeline, `clip_t` on the clip's."""

    clip_t: float = 0.0


@dataclass(frozen=True)
class Chosen:
    """The comparer a verification uses, and why when it is not the one asked for."""

    comparer: Comparer
    note: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {"name": self.comparer.name, "version": self.comparer.version, "note": self.note}


# Makes the comparer for one verification once its original is chosen:
# (registration id, original, query, alignment) -> Chosen.
ComparerFactory = Callable[[str, Fingerprint, Fingerprint, "Alignment"], Chosen]


@dataclass(frozen=True)
class Geometry:
    """The original's area a clip shows, in original thumbnail pixels: x = dx + sx * u."""

    sx: float = 1.0
    sy: float = 1.0
    dx: float = 0.0
    dy: float = 0.0


IDENTITY = Geometry()


def _correlation(
    query: Sequence[np.ndarray], big: Sequence[np.ndarray], sx: float, sy: float
) -> tuple[float, Geometry]:
    """Mean best normalised correlation of the clip thumbnails inside the original at scale (sx, sy)."""
    size = big[0].shape[0]
    width, height = round(size * sx), round(size * sy)
    total: np.ndarray | None = None
    for q, image in zip(query, big, strict=True):
        template = cv2.resize(q, (width, height), interpolation=cv2.INTER_AREA)
        scores = np.nan_to_num(cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED))
        total = scores if total is None else total + scores
    assert total is not None
    y, x = np.unravel_index(int(np.argmax(total)), total.shape)
    return float(total[y, x]) / len(query), Geometry(sx, sy, x / _UPSAMPLE, y / _UPSAMPLE)


def _textured_pairs(
    query: np.ndarray, original: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """The frame pairs with texture on both sides: the clip's thumbnails and the original's,
    upsampled for the correlation (None: no such pair, nothing to fit)."""
    textured = [k for k in range(len(query)) if query[k].std() > _FLAT_STD and original[k].std() > _FLAT_STD]
    if not textured:
        return None
    size = _SIDE * _UPSAMPLE
    q = [query[k] for k in textured]
    big = [cv2.resize(original[k], (size, size), interpolation=cv2.INTER_CUBIC) for k in textured]
    return q, big


def estimate_geometry(query: np.ndarray, original: np.ndarray, scales: Sequence[float] = SCALES) -> Geometry:
    """Best crop/scale over frame pairs of (n, 32, 32) thumbnails, by summed normalised correlation.

    Uncropped clips, the common case, stop after one correlation; otherwise a uniform scale is
    searched first and then each axis around it.
    """
    pairs = _textured_pairs(query, original)
    if pairs is None:
        return IDENTITY
    q, big = pairs
    tried: dict[tuple[float, float], tuple[float, Geometry]] = {}

    def attempt(sx: float, sy: float) -> float:
        if (sx, sy) not in tried:
            score, geometry = _correlation(q, big, sx, sy)
            tried[(sx, sy)] = (score + (_IDENTITY_BONUS if sx == sy == 1.0 else 0.0), geometry)
        return tried[(sx, sy)][0]

    if 1.0 in scales and attempt(1.0, 1.0) >= _CLEARLY_UNCROPPED:
        return IDENTITY
    uniform = max(scales, key=lambda s: attempt(s, s))
    near = [s for s in scales if abs(s - uniform) <= _REFINE + 1e-9]
    for sx in near:
        for sy in near:
            attempt(sx, sy)
    return max(tried.values(), key=lambda item: item[0])[1]


# Around a prior geometry (a vertical crop found by the strip search), each scale is searched
# this much either way (relative steps), the position everywhere.
_PRIOR_STEPS = (0.9, 0.92, 0.94, 0.96, 0.98, 1.0, 1.02, 1.04, 1.06, 1.08, 1.1)
_PRIOR_HEIGHTS = (0.97, 1.0)
_PRIOR_ASPECTS = (0.98, 1.0, 1.02)
# Below this scale a clip is sharper than the original's thumbnail there: it is softened to match.
_SOFTEN_BELOW = 0.9


def refine_geometry(query: np.ndarray, original: np.ndarray, prior: Geometry) -> Geometry:
    """The geometry near `prior` that fits (n, 32, 32) clip thumbnails inside the original's best.

    A uniform prior (a rotation undone: the zoom that hid its corners) keeps the two scales
    together; otherwise (a vertical crop) the height is searched on its own, near full height.
    """
    pairs = _textured_pairs(query, original)
    if pairs is None:
        return prior
    q, big = pairs
    uniform = math.isclose(prior.sx, prior.sy)
    best: tuple[float, Geometry] | None = None
    for fx in _PRIOR_STEPS:
        for fy in _PRIOR_ASPECTS if uniform else _PRIOR_HEIGHTS:
            sx = min(1.0, prior.sx * fx)
            sy = min(1.0, sx * fy if uniform else prior.sy * fy)
            score, geometry = _correlation(q, big, sx, sy)
            if best is None or score > best[0]:
                best = (score, geometry)
    assert best is not None
    return best[1]


def soften(image: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """(n, s, s[, c]) maps of a clip that shows the original at scale (sx, sy): resampled down to the
    original's sampling there and back, so both sides carry the same detail."""
    if min(sx, sy) >= _SOFTEN_BELOW:
        return image
    side = image.shape[1]
    small = (max(2, round(side * min(1.0, sx))), max(2, round(side * min(1.0, sy))))
    out = np.empty_like(image)
    for k in range(len(image)):
        down = cv2.resize(image[k], small, interpolation=cv2.INTER_AREA)
        out[k] = cv2.resize(down, (side, side), interpolation=cv2.INTER_LINEAR).reshape(image[k].shape)
    return out


def warp(
    image: np.ndarray, geometry: Geometry, size: int, margin: int = 0, fill: float | None = None
) -> np.ndarray:
    """Resample an original map (covering the 32-unit frame) onto the clip's `size` x `size` grid.

    `margin` extra pixels of the clip's grid are added on every side (output `size + 2 margin`),
    so shifted comparisons are slices rather than more resampling. Outside the original, the
    edge is repeated, or `fill` is used when given.
    """
    k = image.shape[0] / _SIDE
    step = _SIDE / size
    sx, sy = geometry.sx * step, geometry.sy * step
    matrix = np.array(
        [
            [sx * k, 0, (geometry.dx + sx * (0.5 - margin)) * k - 0.5],
            [0, sy * k, (geometry.dy + sy * (0.5 - margin)) * k - 0.5],
        ],
        dtype=np.float32,
    )
    out = size + 2 * margin
    return cv2.warpAffine(
        np.ascontiguousarray(image, dtype=np.float32),
        matrix,
        (out, out),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE if fill is None else cv2.BORDER_CONSTANT,
        borderValue=0.0 if fill is None else fill,
    )


def _valid(geometry: Geometry, margin: int) -> np.ndarray:
    """1 where the margined warp of `geometry` samples inside the original, else 0."""
    inside = warp(np.ones((_SIDE, _SIDE), dtype=np.float32), geometry, _SIDE, margin, fill=0.0)
    return (inside > 0.5).astype(np.float32)


def motion(query: np.ndarray, warped: np.ndarray, radius: int) -> tuple[int, int]:
    """(ux, uy): the shift of `query` inside a warp with `radius` pixels of margin that fits best."""
    if query.std() <= _FLAT_STD or warped.std() <= _FLAT_STD:
        return 0, 0
    scores = np.nan_to_num(cv2.matchTemplate(warped, query, cv2.TM_CCOEFF_NORMED), copy=False)
    scores[radius, radius] += _STILL_BONUS
    uy, ux = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return int(ux) - radius, int(uy) - radius


def luma_cells(
    query: np.ndarray, original: np.ndarray, geometry: Geometry, moving: np.ndarray | None = None
) -> tuple[np.ndarray, Geometry]:
    """(8, 8) mean absolute luma residual per cell, motion-compensated, and the geometry it used."""
    cells, _, moved = luma_parts(query, original, geometry, moving)
    return cells, moved


def luma_parts(
    query: np.ndarray,
    original: np.ndarray,
    geometry: Geometry,
    moving: np.ndarray | None = None,
    shown: np.ndarray | None = None,
    slack: int = 1,
) -> tuple[np.ndarray, np.ndarray, Geometry]:
    """(8, 8) luma residual per cell, (8, 8) structure change per cell, and the geometry used.

    The frame's own motion is found first; gain and offset are fitted there over the pixels the
    original covers. Each pixel then takes the best of the original shifted by up to one more
    pixel; cells marked `moving` (where the original itself changes between samples) may
    instead match a block up to `LOCAL_RADIUS` pixels away, as a moving object would.

    The structure change is stricter: the residual of the cell's block shifted as a whole (by up
    to one pixel, or `LOCAL_RADIUS` where `moving`), over the original's texture there (mean
    gradient plus `STRUCTURE_FLOOR`): per-pixel shifts forgive resampling, but also an edit
    that keeps the features within a pixel of the old ones.
    """
    margin = MOTION_RADIUS + LOCAL_RADIUS
    big = warp(original, geometry, _SIDE, margin=margin)
    valid = _valid(geometry, margin)
    inner = LOCAL_RADIUS
    ux, uy = motion(query, big[inner:-inner, inner:-inner], MOTION_RADIUS)
    y0, x0 = MOTION_RADIUS + uy, MOTION_RADIUS + ux  # top-left of the window around the motion
    window = big[y0 : y0 + _SIDE + 2 * inner, x0 : x0 + _SIDE + 2 * inner]
    covered = valid[y0 : y0 + _SIDE + 2 * inner, x0 : x0 + _SIDE + 2 * inner]
    centre = window[inner:-inner, inner:-inner]
    inside = covered[inner:-inner, inner:-inner]
    if shown is not None:
        inside = inside * shown
    fitted = tone_map(window, centre[inside > 0], query[inside > 0])
    shifted = np.lib.stride_tricks.sliding_window_view(fitted, (_SIDE, _SIDE))
    masks = np.lib.stride_tricks.sliding_window_view(covered, (_SIDE, _SIDE))
    residual = np.abs(query - shifted) * masks  # (2L+1, 2L+1, 32, 32)
    if shown is not None:
        residual = residual * shown
    near = slice(inner - slack, inner + slack + 1)
    strict = residual[near, near].min(axis=(0, 1))
    cells = strict.reshape(GRID_ROWS, _CELL, GRID_COLS, _CELL).mean(axis=(1, 3))
    blocks = residual.reshape(*residual.shape[:2], GRID_ROWS, _CELL, GRID_COLS, _CELL).mean(axis=(3, 5))
    whole = blocks[near, near].min(axis=(0, 1))
    if moving is not None and moving.any():
        anywhere = blocks.min(axis=(0, 1))
        cells = np.where(moving, np.minimum(cells, anywhere), cells)
        whole = np.where(moving, anywhere, whole)
    gy, gx = np.gradient(fitted[inner:-inner, inner:-inner])
    texture = (np.abs(gx) + np.abs(gy)).reshape(GRID_ROWS, _CELL, GRID_COLS, _CELL).mean(axis=(1, 3))
    structure = whole / (STRUCTURE_FLOOR + texture)
    moved = Geometry(geometry.sx, geometry.sy, geometry.dx + geometry.sx * ux, geometry.dy + geometry.sy * uy)
    return cells, structure, moved


def tone_map(image: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Map `image` levels by the monotone curve taking `source`'s quantiles to `target`'s.

    Brightness, contrast and gamma changes, and the clipping of highlights they bring, are all
    monotone in luma: matching quantiles undoes them where a straight gain and offset cannot. A
    local edit moves few quantiles and stays a local difference.
    """
    count = min(_QUANTILES, source.size, target.size)
    if count < 2:
        return image
    src = _quantiles(source, count)
    dst = _quantiles(target, count)
    # Strictly increasing knots for np.interp; flat stretches (a uniform area) keep their level.
    src = src + np.arange(count) * 1e-4
    mapped: npt.NDArray[np.float32] = np.interp(image, src, dst).astype(np.float32)
    return mapped


def _quantiles(values: np.ndarray, count: int) -> np.ndarray:
    """`count` evenly spaced order statistics, lowest to highest (np.quantile is 10x slower)."""
    ordered = np.sort(values, axis=None)
    return ordered[np.linspace(0, len(ordered) - 1, count).round().astype(np.intp)]


def changes(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(8, 8) 1 where two consecutive original samples differ after the frame's motion: moving things."""
    cells, _ = luma_cells(second, first, IDENTITY)
    return (cells > _MOVING_LEVEL).astype(np.uint8)


def chroma_parts(
    query: np.ndarray, original: np.ndarray, geometry: Geometry
) -> tuple[np.ndarray, np.ndarray]:
    """(8, 8) chroma outside the range of the original's neighbourhood, after a colour-curve fit,
    and the same with the curves fitted again on the cells the first fit explains.

    The neighbourhood is a third of a cell either way (cell means cannot be resampled any finer),
    or wider where the clip shows the original magnified (a vertical crop: `geometry` at a scale
    of 0.4..0.9): there one of the original's cells spans several of the clip's, and its mean
    mixes in what lies beside it, so the neighbourhood reaches about half such a cell.
    Each of Cb and Cr is mapped by a monotone curve (a saturation change, and its clipping in
    saturated colours, is monotone per channel). `query` and `original` are (8, 8, 2) maps.

    A pasted or recoloured object moves the chroma quantiles of the whole frame, so the first
    curve leaves residuals in untouched saturated cells too (13.7 in a carphone edge cell beside
    a paste, which then widens the flagged region); the refit does not.
    """
    fine = GRID_ROWS * 3
    # Reach (thirds of a cell) either way along each axis.
    rx = max(1, round(1.0 / min(1.0, geometry.sx)))
    ry = max(1, round(1.0 / min(1.0, geometry.sy)))
    margin = max(rx, ry)
    # On a grid of thirds of a cell, pixel 3c+1 is the centre of cell c (+margin on each side).
    warped = warp(original, geometry, fine, margin=margin)
    ys = [margin + 1 + dy for dy in range(-ry, ry + 1)]
    xs = [margin + 1 + dx for dx in range(-rx, rx + 1)]
    options = np.stack([warped[y : y + fine : 3, x : x + fine : 3] for y in ys for x in xs])
    centre = ry * len(xs) + rx
    first = _chroma_outside(query, options, np.ones((GRID_ROWS, GRID_COLS), dtype=bool), centre)
    keep = first <= _CHROMA_REFIT_LEVEL
    if keep.sum() < _CHROMA_REFIT_CELLS or keep.all():
        return first, first
    return first, _chroma_outside(query, options, keep, centre)


def _chroma_outside(query: np.ndarray, options: np.ndarray, fit: np.ndarray, centre: int = 4) -> np.ndarray:
    """(8, 8) chroma outside the neighbourhood's range, each channel's curve fitted on the `fit` cells."""
    total = np.zeros((GRID_ROWS, GRID_COLS), dtype=np.float32)
    for channel in range(2):
        observed = query[:, :, channel]
        mapped = tone_map(options[..., channel], options[centre, :, :, channel][fit], observed[fit])
        total += np.maximum(observed - mapped.max(axis=0), 0) + np.maximum(mapped.min(axis=0) - observed, 0)
    return total


def shared(values: np.ndarray) -> npt.NDArray[np.float32]:
    """(8, 8) the part of each cell's score its strongest 8-neighbour shares: min(cell, neighbour).

    Benign changes leave lone cells over the level: a 10% crop of bikes resamples a small
    saturated object at a cell's edge to a chroma residual of 8.6 in one cell, but no two
    neighbouring cells reach 3.3. A recoloured object (9-21) spans neighbours.
    """
    ring = np.ones((3, 3), np.uint8)
    ring[1, 1] = 0
    values = np.ascontiguousarray(values, dtype=np.float32)
    strongest = cv2.dilate(values, ring, borderType=cv2.BORDER_CONSTANT, borderValue=0.0)
    neighbour: npt.NDArray[np.float32] = np.minimum(values, strongest)
    return neighbour


def candidates(t: float, times: np.ndarray) -> list[int]:
    """Original frames to compare a clip frame at moment `t` with: the samples around it.

    The nearest, and the ones either side of it: an aligned moment is only known to within a
    sample or so, and a cut or fast motion between two samples makes them different pictures.
    """
    nearest = int(np.argmin(np.abs(times - t)))
    return [j for j in (nearest - 1, nearest, nearest + 1) if 0 <= j < len(times)]


@dataclass(frozen=True)
class CellParts:
    """(8, 8) measures of a frame or segment: luma + half chroma and chroma (levels), structure (ratio).

    `structure` is 0 where it does not apply (a cropped or rescaled clip).
    """

    combined: np.ndarray
    chroma: np.ndarray
    structure: np.ndarray

    def minimum(self, other: CellParts) -> CellParts:
        """Per cell and measure, the better match of two candidate original frames."""
        return CellParts(
            np.minimum(self.combined, other.combined),
            np.minimum(self.chroma, other.chroma),
            np.minimum(self.structure, other.structure),
        )


def _combine(
    combined: np.ndarray, chroma: np.ndarray, structure: np.ndarray, colour_gain: float = LOCAL_COLOUR_GAIN
) -> npt.NDArray[np.floating]:
    """(8, 8) cell scores in luma levels: the worst of the three measures, each scaled to the threshold."""
    scores: npt.NDArray[np.floating] = np.maximum(
        combined,
        np.maximum(colour_gain * shared(chroma), STRUCTURE_GAIN * shared(structure)),
    )
    return scores


class PdqGridComparer:
    """The fingerprint-only comparer (see the module docstring)."""

    name = "pdq-grid"
    version = "2"

    def __init__(
        self,
        threshold: float = CELL_THRESHOLD,
        scales: Sequence[float] = SCALES,
        *,
        prior: Geometry | None = None,
        shown: np.ndarray | None = None,
        colour_level: float = LOCAL_COLOUR_LEVEL,
        structure: bool = True,
        slack: int = 1,
    ) -> None:
        """`prior`: where the clip lies in the original when the search already knows (a vertical
        crop: the geometry is refined around it, and the clip softened to the original's detail);
        `shown`: (32, 32) 1 where the clip's frames show the clip's own content (cells mostly
        outside it never count as changed); `colour_level`: the local colour change that counts;
        `structure`: whether whole-block structure changes count (not for a view made from the
        clip's small kept frames, softer than the original's own thumbnails); `slack`: see
        `luma_parts`."""
        self.threshold = threshold
        self.scales = tuple(scales)
        self.prior = prior
        self.shown = None if shown is None else np.asarray(shown, dtype=np.float32)
        # A magnified view (a vertical crop) sees the original's cell colours spread over several of
        # its own cells: a local colour change must be as much larger to count.
        self.colour_level = colour_level
        self.structure = structure
        self.slack = min(slack, LOCAL_RADIUS)
        gain = CELL_THRESHOLD / colour_level
        self._colour_gain = gain * (1.0 if prior is None else min(1.0, prior.sx, prior.sy))
        fractions = (
            None
            if self.shown is None
            else self.shown.reshape(GRID_ROWS, _CELL, GRID_COLS, _CELL).mean(axis=(1, 3))
        )
        self._cells_shown = None if fractions is None else fractions >= 0.5
        # A cell's mean colour is only the clip's where it shows (nearly) all of the cell.
        self._chroma_shown = None if fractions is None else (fractions >= 0.7).astype(np.float32)

    def with_view(
        self, prior: Geometry | None, shown: np.ndarray | None, *, resampled: bool = False
    ) -> PdqGridComparer:
        """This comparer (threshold, scales) for a clip seen through a reframe view (see `__init__`);
        `resampled`: the view turned the clip's pixels (a rotation undone), one resampling more."""
        level = max(self.colour_level, VIEW_COLOUR_LEVEL)
        return PdqGridComparer(
            self.threshold,
            self.scales,
            prior=prior,
            shown=shown,
            colour_level=level,
            structure=False,
            slack=RESAMPLED_SLACK if resampled else 1,
        )

    def cell_scores(
        self, query_frames: Sequence[FrameHash], original_frames: Sequence[FrameHash]
    ) -> np.ndarray:
        """(8, 8) per-cell score of the segment, in luma levels against `CELL_THRESHOLD`.

        The highest of: the median over its frames of luma + half chroma; the local colour change
        (`shared`) scaled so that `LOCAL_COLOUR_LEVEL` meets the threshold; and, for a clip
        showing the whole original, the local structure change scaled by `STRUCTURE_GAIN`.
        """
        parts = self.cell_parts(query_frames, original_frames)
        scores = _combine(parts.combined, parts.chroma, parts.structure, self._colour_gain)
        if self._cells_shown is not None:
            scores = np.where(self._cells_shown, scores, 0.0)
        return scores

    def cell_parts(
        self, query_frames: Sequence[FrameHash], original_frames: Sequence[FrameHash]
    ) -> CellParts:
        """Per-cell medians over the segment's frames of each measure (see `CellParts`)."""
        if not query_frames or not original_frames:
            raise ValueError("compare needs frames on both sides")
        times = np.array([f.t for f in original_frames])
        q_luma, o_luma = thumbs.luma_thumbnails(query_frames), thumbs.luma_thumbnails(original_frames)
        q_chroma, o_chroma = thumbs.chroma_maps(query_frames), thumbs.chroma_maps(original_frames)
        options = [candidates(f.t, times) for f in query_frames]
        nearest = [int(np.argmin(np.abs(times - f.t))) for f in query_frames]
        if self.prior is not None:
            q_luma = soften(q_luma, self.prior.sx, self.prior.sy)
            q_chroma = soften(q_chroma, self.prior.sx, self.prior.sy)
            geometry = refine_geometry(q_luma, o_luma[nearest], self.prior)
        else:
            geometry = estimate_geometry(q_luma, o_luma[nearest], self.scales)
        # A crop or rescale resamples the 32x32 thumbnail: whole-block residuals then measure the
        # resampling (up to 0.68 of the texture on a 10% crop), not the content.
        same_grid = geometry == IDENTITY and self.structure
        moving: dict[int, np.ndarray] = {}

        def moves(j: int) -> np.ndarray:
            """Cells where the original changes between samples j and j + 1 (cached per segment)."""
            if j not in moving:
                moving[j] = changes(o_luma[j], o_luma[j + 1])
            return moving[j]

        per_frame: list[CellParts] = []
        plainly = _PLAINLY_SAME * self.threshold
        for k, chosen in enumerate(options):
            around = np.zeros((GRID_ROWS, GRID_COLS), dtype=np.uint8)
            for j in chosen[:-1]:
                around |= moves(j)
            near = cv2.dilate(around, np.ones((3, 3), np.uint8)).astype(bool)
            # Where the original itself moves between samples, a clip sampled between them shows
            # an in-between picture no whole block matches (a subclip cut 0.1 s off the samples:
            # 0.48): only a still area has a structure to keep.
            still = same_grid & ~near

            def score(j: int, around: np.ndarray | None, k: int = k, still: np.ndarray = still) -> CellParts:
                luma, structure, moved = luma_parts(
                    q_luma[k], o_luma[j], geometry, around, self.shown, self.slack
                )
                chroma, refit = chroma_parts(q_chroma[k], o_chroma[j], moved)
                if self._chroma_shown is not None:
                    chroma, refit = chroma * self._chroma_shown, refit * self._chroma_shown
                return CellParts(luma + CHROMA_WEIGHT * chroma, refit, np.where(still, structure, 0.0))

            # Most frames match their nearest sample outright; only the others pay for the rest.
            best = score(nearest[k], None)
            if (
                _combine(best.combined, best.chroma, best.structure, self._colour_gain).max() > plainly
                and len(chosen) > 1
            ):
                for j in chosen:
                    best = best.minimum(score(j, near))
            per_frame.append(best)
        return CellParts(
            np.asarray(np.median(np.stack([p.combined for p in per_frame]), axis=0)),
            np.asarray(np.median(np.stack([p.chroma for p in per_frame]), axis=0)),
            np.asarray(np.median(np.stack([p.structure for p in per_frame]), axis=0)),
        )

    def compare(
        self, query_frames: Sequence[FrameHash], original_frames: Sequence[FrameHash]
    ) -> SegmentComparison:
        scores = self.cell_scores(query_frames, original_frames)
        mask = scores > self.threshold
        distance = float(np.clip(scores.max() / (2 * self.threshold), 0.0, 1.0))
        tampered = bool(mask.any())
        return SegmentComparison(
            distance=distance, tampered=tampered, regions=regions_of(mask) if tampered else []
        )


def calibrate_threshold(
    comparer: PdqGridComparer,
    benign: Sequence[tuple[Sequence[FrameHash], Sequence[FrameHash]]],
    margin: float = 1.5,
    floor: float = CELL_THRESHOLD,
) -> float:
    """A per-original threshold: `margin` times the worst cell score over benign segments, at least `floor`.

    `benign` holds aligned (clip frames, original frames) segments of variants of one original
    known to be authentic (re-encodes, resizes, crops of it).
    """
    worst = max((float(comparer.cell_scores(q, o).max()) for q, o in benign), default=0.0)
    return max(floor, margin * worst)
