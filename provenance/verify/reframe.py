"""Finding the original of a reframed or mirrored clip, and showing the clip to the comparer as the original.

A repost rarely shows the original's frame as it was: a vertical 9:16 crop of a 16:9 original,
the picture shrunk inside a blurred copy of itself or a solid colour, a screen recording of a
player, a picture in picture, a small rotation, a mirror. None of them keeps the frame hashes,
so the plain search (`FrameIndex.search`) finds nothing. When it finds nothing strong,
`search` looks at the clip through *views*, each a way of turning the clip's frames back into
the original's, cheapest first:

1. *mirrored* (from the fingerprint alone): the grid of a mirrored frame is exact
   (`frames.descriptor.mirror_grid`); its PDQ is taken from the mirrored 32x32 thumbnail;
2. *crop* (from the fingerprint alone): the strip search (`FrameIndex.search_crops`) of the clip,
   and of it mirrored, finds a vertical crop of 40% of the width and more, and where it lies;
3. *picture* (needs the clip's pixels, `ClipPixels`): the rectangles a picture inside other
   content most likely occupies (`frames.inner.inner_boxes`: fills, players, picture in
   picture), each cut out and described like a clip of its own, and mirrored;
4. *rotated* (needs the pixels): the clip turned back by each of `ROTATIONS` degrees.

Each view is first probed with `PROBE_FRAMES` of the clip's frames; a view whose best candidate
matches at least `STRONG` of them ends the search. The candidates of the views are then aligned
in full (`CANDIDATES_ALIGNED` at most, the most matched first) and the best alignment wins. A
crop view aligns on the one strip of the original it shows whole (`thumbs.crop_window_hash`).

What the comparer then sees: a frame view's own frames (cut out, mirrored, turned back), with
a mask of what the clip does not show (the corners a rotation brings in), so only the clip's
visible content counts; a crop view's frames as they are, with the crop's geometry as the
comparer's prior (`Geometry`: offset and scale of the original the clip shows). Regions come
back to the clip's frame through `View.to_clip`, and the view becomes the notes on the match:
`reframed` and `mirrored` findings.

Costs (`python -m bench.reframe`, through two server processes, search on and off, 2026-12-06):
nothing measurable for a clip the plain search finds (the pixels are kept small as the clip is
decoded, `PIXEL_SIDE` px, at most `MAX_KEPT` frames: x0.92..1.12 of the fingerprint, in noise);
for a 5 s repost of bigbuckbunny the search adds 0.5 s (mirror, vertical crop: ~480 strip
lookups per probed frame) to 1.4 s (a rotation: six turned probes, then the angle fitted), so
x1.7..3.4 of the request that answers `unknown` without it. The index keeps `thumbs.STRIP_COUNT`
strip codes per frame beside PDQ and the centre hash.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np
import numpy.typing as npt
import pdqhash

from frames.bars import content_box
from frames.descriptor import describe, mirror_grid
from frames.inner import Box, inner_boxes
from provenance.fingerprint import Fingerprint, FrameHash
from provenance.verify import thumbs
from provenance.verify.align import NO_MATCH, Alignment, align
from provenance.verify.compare import Geometry
from provenance.verify.index import Candidate, FrameIndex, usable

# Small copies of the clip's frames kept for views that need pixels: longest side, how many.
PIXEL_SIDE = 256
MAX_KEPT = 480
# Frames the inner-picture detection looks at (the first ones: 4 s at 4 fps).
DETECT_FRAMES = 16
# Frames of the clip a view is probed with, and the share of them that ends the search.
PROBE_FRAMES = 8
STRONG = 0.5
# Rotations tried (degrees, anticlockwise: the clip is turned by these to undo its own turn).
ROTATIONS: tuple[float, ...] = (-5.0, -3.5, -2.0, 2.0, 3.5, 5.0)
# Candidates (over all views) aligned in full, and the fewest probed frames one must match.
CANDIDATES_ALIGNED = 4
MIN_PROBE_MATCHES = 2
# A view's alignment must beat the plain one's score by this factor to replace it.
VIEW_MARGIN = 1.2
# A detected picture may be off by a few percent on any side (a border, a shadow, a progress bar
# under it, a blurred edge): it is probed widened by `BOX_MARGIN` of its size on every side, and
# every window of that leaving out 0..3 `BOX_TRIM`s of it on each side is looked up
# (`FrameIndex.search_windows`): 256 windows, one of them within half a trim (1.5%) of the true
# box on every side (validation: at 2.25% a picture in picture was still 39 bits away).
BOX_MARGIN = 0.05
BOX_TRIM = 0.03
_TRIMS = tuple(k * BOX_TRIM for k in range(4))
BOX_WINDOWS: tuple[tuple[float, float, float, float], ...] = tuple(
    (left, top, 1 - left - right, 1 - top - bottom)
    for left in _TRIMS
    for top in _TRIMS
    for right in _TRIMS
    for bottom in _TRIMS
)
# Before a picture is aligned, its box is fitted to the original: each side moves by up to this
# many pixels (of the kept frames) at a time, in this many rounds, on this many matched frames.
REFINE_REACH = 4
REFINE_ROUNDS = 3
REFINE_FRAMES = 8
# Before a rotation is aligned, its angle is fitted to the original this far either way, in steps.
ANGLE_REACH = 1.0
ANGLE_STEP = 0.25
# A picture view's edge (thumbnail pixels) is left out of the comparison: a box a pixel off
# carries a sliver of what surrounds the picture (a frame, a shadow, the player).
EDGE_LEFT_OUT = 1


class ClipPixels:
    """Small copies of a clip's hashed frames, kept as it is decoded (a `FrameSink`).

    Beyond `limit` frames every other one is dropped, and from then on only every other one kept,
    so a long clip costs at most `limit` small frames.
    """

    def __init__(self, side: int = PIXEL_SIDE, limit: int = MAX_KEPT) -> None:
        self.side = side
        self.limit = limit
        self.times: list[float] = []
        self.frames: list[np.ndarray] = []
        self._stride = 1
        self._seen = 0

    def add(self, t: float, rgb: np.ndarray) -> None:
        seen = self._seen
        self._seen += 1
        if seen % self._stride:
            return
        height, width = rgb.shape[:2]
        scale = min(1.0, self.side / max(height, width))
        size = (max(2, round(width * scale)), max(2, round(height * scale)))
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) if scale < 1 else rgb.copy()
        self.times.append(round(t, 3))
        self.frames.append(np.ascontiguousarray(small))
        if len(self.frames) > self.limit:
            self.frames = self.frames[::2]
            self.times = self.times[::2]
            self._stride *= 2

    def __len__(self) -> int:
        return len(self.frames)


@dataclass(frozen=True)
class View:
    """A way of looking at a clip's frames so that they show the original as it was.

    In order: `box` (normalised [x, y, w, h] of the clip's frame) is cut out, the result is
    `mirrored` left to right, then turned by `degrees` (anticlockwise). `crop` says instead that
    the clip *is* the part (offset, width, fractions of the original's width, full height) of the
    original: its frames stay as they are (mirrored when `mirrored`) and the comparer gets the
    geometry. `score` is what found the view (the inner-picture detection's score).
    """

    mirrored: bool = False
    box: Box | None = None
    degrees: float = 0.0
    crop: tuple[float, float] | None = None
    score: float = 0.0

    @property
    def plain(self) -> bool:
        return not (self.mirrored or self.box is not None or self.degrees or self.crop is not None)

    @property
    def needs_pixels(self) -> bool:
        return self.box is not None or bool(self.degrees)

    @property
    def name(self) -> str:
        parts = ["mirrored"] if self.mirrored else []
        if self.crop is not None:
            parts.append("crop")
        if self.box is not None:
            parts.append("picture")
        if self.degrees:
            parts.append("rotated")
        return "+".join(parts) or "plain"

    def geometry(self, aspect: float) -> Geometry | None:
        """The comparer's prior: where the clip's frames lie in the original's 32x32 thumbnail.

        A crop lies where the strip search put it; a rotation turned back shows the original's
        centre at the zoom that hides a turn's corners in a frame of `aspect` (width / height),
        the usual way a picture is straightened (a framed rotation's bars are stripped, and the
        comparer's search reaches full scale from there)."""
        if self.crop is not None:
            offset, width = self.crop
            return Geometry(sx=width, sy=1.0, dx=offset * thumbs.SIDE, dy=0.0)
        if self.degrees and self.box is None:
            a = math.radians(abs(self.degrees))
            scale = 1.0 / (math.cos(a) + math.sin(a) * max(aspect, 1.0 / aspect))
            margin = (1.0 - scale) * thumbs.SIDE / 2
            return Geometry(sx=scale, sy=scale, dx=margin, dy=margin)
        return None

    def frames(
        self, query: Fingerprint, pixels: ClipPixels | None, only: Sequence[int] | None = None
    ) -> list[FrameHash]:
        """The view's frames (all, or those at `only`: indexes into `times`)."""
        if not self.needs_pixels:
            source = list(query.frames)
            picked = source if only is None else [source[k] for k in only]
            return mirrored_frames(picked) if self.mirrored else picked
        assert pixels is not None
        return self.pixel_frames(pixels, only)

    def pixel_frames(self, pixels: ClipPixels, only: Sequence[int] | None = None) -> list[FrameHash]:
        """The frames of a view made from the clip's kept pixels (a picture, a rotation)."""
        indexes = range(len(pixels)) if only is None else only
        return [self._describe(pixels.times[k], pixels.frames[k]) for k in indexes]

    def times(self, query: Fingerprint, pixels: ClipPixels | None) -> list[float]:
        return list(pixels.times) if self.needs_pixels and pixels is not None else [f.t for f in query.frames]

    def _pixels(self, rgb: np.ndarray) -> np.ndarray:
        if self.box is not None:
            height, width = rgb.shape[:2]
            x, y, w, h = self.box
            x0, y0 = round(x * width), round(y * height)
            x1, y1 = max(x0 + 2, round((x + w) * width)), max(y0 + 2, round((y + h) * height))
            rgb = rgb[y0:y1, x0:x1]
        if self.mirrored:
            rgb = rgb[:, ::-1]
        rgb = np.ascontiguousarray(rgb)
        if self.degrees:
            rgb = _turn(rgb, self.degrees)
        return rgb

    def _describe(self, t: float, rgb: np.ndarray) -> FrameHash:
        described = describe(self._pixels(rgb))
        return FrameHash(t=t, pdq=described.pdq, quality=described.quality, grid=described.grid)

    def mask(self, pixels: ClipPixels | None) -> npt.NDArray[np.float32] | None:
        """(32, 32) 1 where the view's thumbnail shows the clip, 0 where a rotation brought in
        corners the clip does not have, or on a picture's edge (None: the clip everywhere)."""
        if self.box is not None and not self.degrees:
            edge = np.zeros((thumbs.SIDE, thumbs.SIDE), dtype=np.float32)
            edge[EDGE_LEFT_OUT:-EDGE_LEFT_OUT, EDGE_LEFT_OUT:-EDGE_LEFT_OUT] = 1
            return edge
        if not self.degrees or pixels is None or not len(pixels):
            return None
        frame = self._pixels(pixels.frames[0])
        inside = self._pixels(np.full_like(pixels.frames[0], 255))
        top, bottom, left, right = content_box(frame)
        cut = inside[top:bottom, left:right, 0].astype(np.float32) / 255
        small = cv2.resize(cut, (thumbs.SIDE, thumbs.SIDE), interpolation=cv2.INTER_AREA)
        mask: npt.NDArray[np.float32] = (small > 0.98).astype(np.float32)
        return None if mask.all() else mask

    def to_clip(self, region: Sequence[float], aspect: float) -> list[float]:
        """A region of the view's frames (normalised [x, y, w, h]) as a region of the clip's frame."""
        x, y, w, h = (float(v) for v in region)
        corners = np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h]], dtype=np.float64)
        if self.degrees:
            box_aspect = aspect * (self.box[2] / self.box[3] if self.box else 1.0)
            a = math.radians(-self.degrees)
            px = (corners[:, 0] - 0.5) * box_aspect
            py = corners[:, 1] - 0.5
            rx = math.cos(a) * px + math.sin(a) * py
            ry = -math.sin(a) * px + math.cos(a) * py
            corners = np.clip(np.stack([rx / box_aspect + 0.5, ry + 0.5], axis=1), 0, 1)
        if self.mirrored:
            corners[:, 0] = 1 - corners[:, 0]
        if self.box is not None:
            bx, by, bw, bh = self.box
            corners = corners * [bw, bh] + [bx, by]
        x0, y0 = corners.min(axis=0)
        x1, y1 = corners.max(axis=0)
        return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]

    def notes(self) -> list[tuple[str, str, list[list[float]]]]:
        """(kind, detail, regions of the clip) of the findings that describe this view."""
        out: list[tuple[str, str, list[list[float]]]] = []
        whole = [[0.0, 0.0, 1.0, 1.0]]
        shown = [list(self.box)] if self.box is not None else whole
        if self.crop is not None:
            offset, width = self.crop
            out.append(
                (
                    "reframed",
                    f"a crop of the original: {max(0.0, offset):.0%} to {min(1.0, offset + width):.0%} "
                    "of its width, at full height",
                    whole,
                )
            )
        if self.box is not None:
            out.append(
                ("reframed", "the original's picture inside other content (a fill, a player, a frame)", shown)
            )
        if self.degrees:
            out.append(("reframed", f"the picture is turned by {-self.degrees:+.1f} degrees", shown))
        if self.mirrored:
            out.append(("mirrored", "the picture is mirrored left to right", shown))
        return out


def _turn(rgb: np.ndarray, degrees: float) -> np.ndarray:
    """`rgb` turned by `degrees` about its centre, what falls outside it black."""
    height, width = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return np.asarray(
        cv2.warpAffine(rgb, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    )


def thumbnail_pdq(luma: np.ndarray) -> bytes:
    """A PDQ hash of a 32x32 luma thumbnail (upsampled): within ~6..17 bits of the frame's own."""
    grey = cv2.resize(np.clip(luma, 0, 255).astype(np.uint8), (128, 128), interpolation=cv2.INTER_CUBIC)
    bits, _ = pdqhash.compute(np.ascontiguousarray(np.dstack([grey, grey, grey])))
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()


def mirrored_frames(frames: Sequence[FrameHash]) -> list[FrameHash]:
    """The frames mirrored left to right: exact grids, PDQ from the mirrored thumbnails."""
    if not frames:
        return []
    luma = thumbs.luma_thumbnails(frames)[:, :, ::-1]
    return [
        FrameHash(t=f.t, pdq=thumbnail_pdq(thumb), quality=f.quality, grid=mirror_grid(f.grid))
        for f, thumb in zip(frames, luma, strict=True)
    ]


@dataclass(frozen=True)
class Found:
    """The original a view of the clip lays along: the view, the clip as it sees it, the alignment."""

    registration_id: str
    original: Fingerprint
    alignment: Alignment
    view: View
    query: Fingerprint


def seen_as(query: Fingerprint, frames: Sequence[FrameHash]) -> Fingerprint:
    """The clip's fingerprint with the frames of a view (version 1: a view has no embeddings)."""
    return replace(query, version=1, frames=tuple(frames), embeddings=None, faces=None)


def crop_distances(query: Fingerprint, original: Fingerprint, crop: tuple[float, float]) -> np.ndarray:
    """(clip frames, original frames) distances of the one strip of the original the crop shows whole."""
    offset, width = crop
    codes, strip = thumbs.crop_window_hash(thumbs.luma_thumbnails(query.frames), width, offset)
    start = thumbs.STRIP_OFFSETS[int(strip)]
    originals = thumbs.strip_hashes_of(thumbs.luma_thumbnails(original.frames), [(start, thumbs.STRIP_WIDTH)])
    distances = thumbs.hamming_matrix(codes, originals[:, 0])
    q_ok = np.array([usable(f) for f in query.frames])
    o_ok = np.array([usable(f) for f in original.frames])
    return np.where(q_ok[:, None] & o_ok[None, :], distances, NO_MATCH)


def refine_box(
    pixels: ClipPixels, view: View, original: Fingerprint, matches: dict[int, tuple[int, ...]]
) -> Box:
    """The box of a picture view moved, side by side, to where the cut-out looks most like the
    original (summed normalised correlation of 32x32 grey thumbnails with the original frames
    matched to each clip frame and their neighbours: a match may be a sample early or late)."""
    assert view.box is not None
    targets = _targets(original, matches)
    if not targets:
        return view.box
    greys = [cv2.cvtColor(pixels.frames[q], cv2.COLOR_RGB2GRAY).astype(np.float32) for q, _ in targets]
    height, width = greys[0].shape
    x, y, w, h = view.box
    sides = [round(x * width), round(y * height), round((x + w) * width), round((y + h) * height)]

    def fit(edges: Sequence[int]) -> float:
        x0, y0, x1, y1 = edges
        if x1 - x0 < 8 or y1 - y0 < 8 or x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            return -math.inf
        total = 0.0
        for grey, (_, near) in zip(greys, targets, strict=True):
            cut = cv2.resize(grey[y0:y1, x0:x1], (thumbs.SIDE, thumbs.SIDE), interpolation=cv2.INTER_AREA)
            total += _likeness(cut[:, ::-1] if view.mirrored else cut, near)
        return total

    best = fit(sides)
    for _ in range(REFINE_ROUNDS):
        moved = False
        for k in range(4):
            for step in range(-REFINE_REACH, REFINE_REACH + 1):
                if not step:
                    continue
                trial = list(sides)
                trial[k] += step
                score = fit(trial)
                if score > best + 1e-6:
                    best, sides, moved = score, trial, True
        if not moved:
            break
    x0, y0, x1, y1 = sides
    return (x0 / width, y0 / height, (x1 - x0) / width, (y1 - y0) / height)


def _targets(original: Fingerprint, matches: dict[int, tuple[int, ...]]) -> list[tuple[int, np.ndarray]]:
    """Per matched clip frame (up to `REFINE_FRAMES`): the original's normalised thumbnails of the
    matched frame and its neighbours (a match may be a sample early or late)."""
    pairs = [(q, found[0]) for q, found in sorted(matches.items()) if found][:REFINE_FRAMES]
    everything = thumbs.luma_thumbnails(original.frames)
    out = []
    for q, o in pairs:
        near = everything[max(0, o - 1) : o + 2]
        near = near - near.mean(axis=(1, 2), keepdims=True)
        out.append((q, near / (np.sqrt((near * near).sum(axis=(1, 2), keepdims=True)) + 1e-6)))
    return out


def _likeness(thumb: np.ndarray, near: np.ndarray) -> float:
    """Best normalised correlation of a 32x32 thumbnail with any of `near`."""
    a = thumb - thumb.mean()
    a = a / (np.sqrt((a * a).sum()) + 1e-6)
    return float((near * a).sum(axis=(1, 2)).max())


def refine_angle(
    pixels: ClipPixels, view: View, original: Fingerprint, matches: dict[int, tuple[int, ...]]
) -> float:
    """The turn of a rotated view, within `ANGLE_REACH` degrees, whose frames' centre hashes come
    closest to the matched original frames' (at the best crop scale: a rotation is often zoomed
    so that no corner shows, and the centre hash is what survives both the zoom and the corners)."""
    pairs = [(q, found) for q, found in sorted(matches.items()) if found][:REFINE_FRAMES]
    if not pairs:
        return view.degrees
    originals = thumbs.centre_hashes([original.frames[o] for _, found in pairs for o in found[:1]])

    def distance(degrees: float) -> float:
        frames = replace(view, degrees=degrees).pixel_frames(pixels, [q for q, _ in pairs])
        luma = thumbs.luma_thumbnails(frames)
        best = np.full(len(pairs), np.inf)
        for scale in thumbs.QUERY_SCALES:
            codes = thumbs.centre_hashes_of(luma, scale)
            best = np.minimum(best, np.diag(thumbs.hamming_matrix(codes, originals)))
        return float(best.mean())

    # Coarse to fine: every other step first, then the steps either side of the best.
    steps = round(ANGLE_REACH / ANGLE_STEP)
    coarse = [view.degrees + k * ANGLE_STEP for k in range(-steps, steps + 1, 2)]
    best = min(coarse, key=distance)
    return min([best - ANGLE_STEP, best, best + ANGLE_STEP], key=distance)


def _widen(box: Box, margin: float) -> Box:
    """`box` grown by `margin` of its size on every side, inside the frame."""
    x, y, w, h = box
    x0, y0 = max(0.0, x - margin * w), max(0.0, y - margin * h)
    x1, y1 = min(1.0, x + w + margin * w), min(1.0, y + h + margin * h)
    return (x0, y0, x1 - x0, y1 - y0)


def _within(box: Box, window: Sequence[float], mirrored: bool) -> Box:
    """The part of the frame that `window` (normalised, of a view of `box`) shows."""
    x, y, w, h = window
    if mirrored:
        x = 1 - x - w
    bx, by, bw, bh = box
    return (bx + x * bw, by + y * bh, w * bw, h * bh)


def _probe(count: int) -> list[int]:
    return sorted(set(np.linspace(0, count - 1, min(PROBE_FRAMES, count)).round().astype(int).tolist()))


def search(
    query: Fingerprint,
    index: FrameIndex,
    load: Callable[[str], Fingerprint],
    pixels: ClipPixels | None = None,
) -> Found | None:
    """The best alignment of some view of the clip along a registered original (see the docstring)."""
    found: list[tuple[View, Candidate]] = []
    # Frames flat as a whole (a small dark picture in a dark fill) leave only the pixel views.
    whole_frames = any(usable(f) for f in query.frames)
    if not whole_frames and (pixels is None or len(pixels) < 3):
        return None

    def strong() -> bool:
        return any(c.matched_query_frames >= max(MIN_PROBE_MATCHES, STRONG * PROBE_FRAMES) for _, c in found)

    def probe(view: View) -> None:
        times = view.times(query, pixels)
        probed = _probe(len(times))
        enough = min(MIN_PROBE_MATCHES, len(probed))
        if view.box is None:
            for candidate in index.search_frames(view.frames(query, pixels, probed), probed, limit=2):
                if candidate.matched_query_frames >= enough:
                    found.append((view, candidate))
            return
        wide = replace(view, box=_widen(view.box, BOX_MARGIN))
        assert wide.box is not None
        for candidate in index.search_windows(
            wide.frames(query, pixels, probed), probed, BOX_WINDOWS, limit=2
        ):
            if candidate.matched_query_frames >= enough and candidate.window is not None:
                found.append(
                    (replace(view, box=_within(wide.box, candidate.window, view.mirrored)), candidate)
                )

    if whole_frames:
        probe(View(mirrored=True))
        for mirrored in (False, True):
            for candidate in index.search_crops(query.frames, mirrored=mirrored, limit=2):
                if candidate.crop is not None and candidate.matched_query_frames >= MIN_PROBE_MATCHES:
                    found.append((View(mirrored=mirrored, crop=candidate.crop), candidate))
    if not strong() and pixels is not None and len(pixels) >= 3:
        for inner in inner_boxes(pixels.frames[:DETECT_FRAMES]):
            for mirrored in (False, True):
                probe(View(box=inner.box, mirrored=mirrored, score=inner.score))
            if strong():
                break
        if not strong():
            for degrees in ROTATIONS:
                probe(View(degrees=degrees))
    if not found:
        return None
    found.sort(key=lambda item: (-item[1].matched_query_frames, item[1].mean_distance))
    best: Found | None = None
    tried: set[tuple[str, View]] = set()
    for view, candidate in found:
        if len(tried) >= CANDIDATES_ALIGNED:
            break
        if (candidate.registration_id, view) in tried:
            continue
        tried.add((candidate.registration_id, view))
        original = load(candidate.registration_id)
        matches = candidate.matches
        # A box is fitted twice (to the probe's matches, then to the alignment's pairs).
        rounds = 2 if view.box is not None and pixels is not None else 1
        alignment: Alignment | None = None
        for _ in range(rounds):
            if view.box is not None and pixels is not None:
                view = replace(view, box=refine_box(pixels, view, original, matches))
            elif view.degrees and pixels is not None:
                view = replace(view, degrees=refine_angle(pixels, view, original, matches))
            seen = seen_as(query, view.frames(query, pixels))
            if view.crop is not None:
                alignment = align(seen, original, distances=crop_distances(seen, original, view.crop))
            else:
                alignment = align(seen, original, scale=candidate.scale)
            if alignment is None:
                break
            # The second round fits the box to the frames the alignment pairs.
            matches = {p.query_index: (p.original_index,) for p in alignment.chain}
        if alignment is not None and (best is None or alignment.score > best.alignment.score):
            best = Found(candidate.registration_id, original, alignment, view, seen)
    return best
