"""What the fingerprint's grid descriptors still hold of a frame: a 32x32 luma thumbnail, 8x8 chroma.

The grid (see `frames.descriptor`) keeps, per 4x4-pixel cell of the 32x32 area-averaged luma
of the letterbox-stripped frame, the zero-mean shape, its standard deviation and mean, and the
cell's mean Cb/Cr. That is enough to rebuild the thumbnail to within rounding, so the verifier
can compare a clip with an original *geometrically* (after estimating crop and scale) without
ever seeing the original's pixels.

PDQ does not survive a 10% crop (distances of 60-100 bits are typical), so this module also
derives a crop-tolerant *centre hash* from the thumbnail: a PDQ-like 256-bit hash (signs of the
16x16 lowest DCT coefficients against their median) of the central `CENTRE_FRACTION` of the
original. A clip that is a centred crop of scale `s` (0.8..1) of the original shows that same
area as its own central ``CENTRE_FRACTION / s``, so hashing the clip at a few scales finds the
original again. All of it is matrix products over every frame at once: cheap next to decoding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from frames.descriptor import GRID_COLS, GRID_ROWS, THUMB, decode_grids
from provenance.fingerprint import FrameHash

SIDE = GRID_ROWS * THUMB
assert GRID_COLS * THUMB == SIDE, "the thumbnail is square"
# The centre hash covers the central 80% (per side) of an original, so crops down to 80% find it.
CENTRE_FRACTION = 0.8
# Crop scales (fraction of the original per side that a clip shows) tried when hashing a clip.
QUERY_SCALES: tuple[float, ...] = (1.0, 0.95, 0.9, 0.85, 0.8)
_HASH_SIDE = 16


def luma_thumbnails(frames: Sequence[FrameHash]) -> np.ndarray:
    """(frames, 32, 32) float32 luma of each frame, 8-bit levels, rebuilt from the grid."""
    if not frames:
        return np.zeros((0, SIDE, SIDE), dtype=np.float32)
    fields = decode_grids([f.grid for f in frames])
    cells = fields.thumbs + fields.luma[:, :, None]
    thumbs = cells.reshape(len(frames), GRID_ROWS, GRID_COLS, THUMB, THUMB).transpose(0, 1, 3, 2, 4)
    return np.ascontiguousarray(thumbs.reshape(len(frames), SIDE, SIDE))


def chroma_maps(frames: Sequence[FrameHash]) -> np.ndarray:
    """(frames, 8, 8, 2) float32 mean Cb and Cr per cell."""
    if not frames:
        return np.zeros((0, GRID_ROWS, GRID_COLS, 2), dtype=np.float32)
    return decode_grids([f.grid for f in frames]).chroma.reshape(len(frames), GRID_ROWS, GRID_COLS, 2)


@lru_cache(maxsize=32)
def _crop_matrix(fraction: float) -> np.ndarray:
    """(SIDE, SIDE) linear-interpolation matrix resampling the central `fraction` to full size."""
    return _resample((1 - fraction) / 2, fraction)


@lru_cache(maxsize=32)
def _hash_matrix(fraction: float) -> npt.NDArray[np.float32]:
    """(16, SIDE) float32: crop-and-resample followed by the 16 lowest DCT-II basis rows."""
    k = np.arange(_HASH_SIDE)[:, None]
    x = np.arange(SIDE)[None, :]
    dct = np.cos(np.pi * (2 * x + 1) * k / (2 * SIDE))
    matrix: npt.NDArray[np.float32] = (dct @ _crop_matrix(fraction)).astype(np.float32)
    return matrix


# A clip may show a little more than the original (a picture cut out of other content with a
# margin of it): scales up to this are hashed too.
MAX_SCALE = 1.25


def centre_hashes_of(thumbs: np.ndarray, scale: float = 1.0, scale_y: float | None = None) -> np.ndarray:
    """(frames, 32) uint8 centre hashes of thumbnails showing a crop of `scale` of the original
    (per axis when `scale_y` is given; over 1: the thumbnails show more than the original)."""
    sy = scale if scale_y is None else scale_y
    if not (0 < scale <= MAX_SCALE and 0 < sy <= MAX_SCALE):
        raise ValueError(f"scales are in (0, {MAX_SCALE}], not {scale}, {sy}")
    columns = _hash_matrix(round(min(1.0, CENTRE_FRACTION / scale), 6))
    rows = _hash_matrix(round(min(1.0, CENTRE_FRACTION / sy), 6))
    coeffs = (rows @ thumbs @ columns.T).reshape(len(thumbs), -1)
    median = np.median(coeffs, axis=1, keepdims=True)
    return np.packbits(coeffs > median, axis=1)


@lru_cache(maxsize=4096)
def _window_matrix(start: float, width: float) -> npt.NDArray[np.float32]:
    """(16, SIDE): resample [start, start + width] (fractions) to full size, then the 16 lowest DCT rows."""
    k = np.arange(_HASH_SIDE)[:, None]
    x = np.arange(SIDE)[None, :]
    dct = np.cos(np.pi * (2 * x + 1) * k / (2 * SIDE))
    matrix: npt.NDArray[np.float32] = (dct @ _resample(start, width)).astype(np.float32)
    return matrix


def window_hashes_of(thumbs: np.ndarray, windows: Sequence[tuple[float, float, float, float]]) -> np.ndarray:
    """(frames * windows, 32) uint8, window-major: the centre hash a thumbnail would have if it
    showed only `window` (normalised [x, y, w, h] of it) — the window taken for the whole original.

    A picture cut out of other content with a margin of a few percent on some sides finds the
    original again through the window that leaves the margin out.
    """
    out = []
    for x, y, w, h in windows:
        columns = _window_matrix(round(x + w * (1 - CENTRE_FRACTION) / 2, 6), round(w * CENTRE_FRACTION, 6))
        rows = _window_matrix(round(y + h * (1 - CENTRE_FRACTION) / 2, 6), round(h * CENTRE_FRACTION, 6))
        coeffs = (rows @ thumbs @ columns.T).reshape(len(thumbs), -1)
        out.append(np.packbits(coeffs > np.median(coeffs, axis=1, keepdims=True), axis=1))
    return np.concatenate(out) if out else np.zeros((0, 32), dtype=np.uint8)


def centre_hashes(frames: Sequence[FrameHash], scale: float = 1.0) -> np.ndarray:
    """(frames, 32) uint8 centre hashes of frames (see the module docstring)."""
    return centre_hashes_of(luma_thumbnails(frames), scale)


def pdq_codes(frames: Sequence[FrameHash]) -> np.ndarray:
    """(frames, 32) uint8 PDQ hashes, in the byte order FAISS and `pdq_distance` agree on."""
    return np.frombuffer(b"".join(f.pdq for f in frames), dtype=np.uint8).reshape(len(frames), 32)


def hamming_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) int32 Hamming distances of two sets of 256-bit codes."""
    a64 = np.ascontiguousarray(a).view(np.uint64)
    b64 = np.ascontiguousarray(b).view(np.uint64)
    out = np.zeros((len(a64), len(b64)), dtype=np.int32)
    for k in range(a64.shape[1]):
        out += np.bitwise_count(a64[:, k, None] ^ b64[None, :, k])
    return out


# --- Strip hashes: vertical strips of the picture, which a vertical (9:16) crop still shows whole ---
#
# A crop of a fraction f (down to 0.4) of the width at full height shows no frame hash and no
# centre of the original, but it does show whole vertical strips of it. The index keeps, per
# original frame, the hashes of `STRIP_COUNT` strips `STRIP_WIDTH` wide at offsets every
# `STRIP_STEP`; a clip of width fraction f at offset x contains at least one of them whole (for
# f >= STRIP_WIDTH + STRIP_STEP). The clip does not know f or x: it hashes, for each width
# hypothesis in `CROP_WIDTHS` (5% apart), every sub-window that would be a strip, sliding by 1% of
# the original's width. A strip hash is the sign, against their median, of the 2-D DCT
# coefficients with all 32 vertical and the 5 lowest horizontal frequencies of the strip
# resampled to 32x32 (the DC term dropped, the rest repeated to fill 256 bits): the vertical
# detail a full-height crop keeps exactly, and only as much horizontal detail as survives the
# 1% misplacement (measured on bikes: 9..14 bits at 0.5%, 23..29 at 1% with a 2.5% width error,
# against at least 78 for unrelated strips).
STRIP_WIDTH = 0.3
STRIP_STEP = 0.1
STRIP_COUNT = round((1 - STRIP_WIDTH) / STRIP_STEP) + 1
STRIP_OFFSETS: tuple[float, ...] = tuple(round(k * STRIP_STEP, 6) for k in range(STRIP_COUNT))
_STRIP_KX = 5
# Width hypotheses of a crop (fraction of the original's width) and the slide of its sub-windows.
CROP_WIDTHS: tuple[float, ...] = tuple(round(0.4 * 1.05**k, 4) for k in range(16))
CROP_SLIDE = 0.01


@lru_cache(maxsize=1024)
def _resample(start: float, width: float) -> npt.NDArray[np.float64]:
    """(SIDE, SIDE) linear interpolation: output pixel u samples input [start, start + width] (fractions)."""
    out = np.zeros((SIDE, SIDE), dtype=np.float64)
    for u in range(SIDE):
        x = (start + (u + 0.5) / SIDE * width) * SIDE - 0.5
        x = min(max(x, 0.0), SIDE - 1.0)
        lo = math.floor(x)
        hi = min(lo + 1, SIDE - 1)
        w = x - lo
        out[u, lo] += 1 - w
        out[u, hi] += w
    return out


@lru_cache(maxsize=1)
def _strip_rows() -> npt.NDArray[np.float32]:
    k = np.arange(SIDE)[:, None]
    x = np.arange(SIDE)[None, :]
    rows: npt.NDArray[np.float32] = np.cos(np.pi * (2 * x + 1) * k / (2 * SIDE)).astype(np.float32)
    return rows


@lru_cache(maxsize=1024)
def _strip_columns(start: float, width: float) -> npt.NDArray[np.float32]:
    """(_STRIP_KX, SIDE): the lowest horizontal DCT rows after resampling columns [start, start + width]."""
    k = np.arange(_STRIP_KX)[:, None]
    x = np.arange(SIDE)[None, :]
    dct = np.cos(np.pi * (2 * x + 1) * k / (2 * SIDE))
    matrix: npt.NDArray[np.float32] = (dct @ _resample(start, width)).astype(np.float32)
    return matrix


def strip_hashes_of(thumbs: np.ndarray, windows: Sequence[tuple[float, float]]) -> np.ndarray:
    """(frames, windows, 32) uint8: the strip hash of columns [start, start + width] of each thumbnail."""
    if not len(thumbs) or not windows:
        return np.zeros((len(thumbs), len(windows), 32), dtype=np.uint8)
    rows = _strip_rows()
    columns = np.stack([_strip_columns(round(s, 6), round(w, 6)) for s, w in windows])  # (W, KX, 32)
    vertical = np.einsum("ay,nyx->nax", rows, thumbs.astype(np.float32))  # (n, 32, 32)
    coeffs = np.einsum("nax,wbx->nwab", vertical, columns).reshape(len(thumbs), len(windows), -1)[:, :, 1:]
    bits = coeffs > np.median(coeffs, axis=2, keepdims=True)
    filled = np.concatenate([bits, bits[:, :, : 256 - bits.shape[2]]], axis=2)
    packed: np.ndarray = np.packbits(filled, axis=2)
    return packed


def strip_hashes(thumbs: np.ndarray) -> np.ndarray:
    """(frames, STRIP_COUNT, 32) uint8: the index's strips of each original thumbnail."""
    return strip_hashes_of(thumbs, [(a, STRIP_WIDTH) for a in STRIP_OFFSETS])


@dataclass(frozen=True)
class CropHypothesis:
    """A sub-window of a clip taken for an original's strip: the clip would be a crop of width
    `width` (fraction of the original), and its columns [start, start + STRIP_WIDTH / width] show a
    strip."""

    width: float
    start: float

    def offset(self, strip: float) -> float:
        """Where the clip starts in the original (fraction of its width) if the window is `strip`."""
        return strip - self.start * self.width


@lru_cache(maxsize=1)
def crop_hypotheses() -> tuple[CropHypothesis, ...]:
    """Every (width, sub-window) a clip is hashed under for the strip search."""
    out: list[CropHypothesis] = []
    for width in CROP_WIDTHS:
        span = STRIP_WIDTH / width
        steps = math.floor((1 - span) / (CROP_SLIDE / width) + 1e-9)
        out.extend(CropHypothesis(width, round(k * CROP_SLIDE / width, 6)) for k in range(steps + 1))
    return tuple(out)


def crop_hashes(thumbs: np.ndarray) -> np.ndarray:
    """(frames, hypotheses, 32) uint8: a clip's sub-windows hashed under every `crop_hypotheses()`."""
    hypotheses = crop_hypotheses()
    return strip_hashes_of(thumbs, [(h.start, STRIP_WIDTH / h.width) for h in hypotheses])


def crop_window_hash(thumbs: np.ndarray, width: float, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """For a clip known to be the crop [offset, offset + width] of the original: the clip's hashes of
    the one strip it shows best (the one nearest its middle, whole), and that strip's offset.

    Returns ((frames, 32) clip hashes, the strip's index in `STRIP_OFFSETS` as a 0-d array).
    """
    inside = [
        k
        for k, a in enumerate(STRIP_OFFSETS)
        if a >= offset - 0.02 and a + STRIP_WIDTH <= offset + width + 0.02
    ]
    middle = offset + width / 2
    pool = inside or list(range(len(STRIP_OFFSETS)))
    k = min(pool, key=lambda j: abs(STRIP_OFFSETS[j] + STRIP_WIDTH / 2 - middle))
    start = (STRIP_OFFSETS[k] - offset) / width
    return strip_hashes_of(thumbs, [(start, STRIP_WIDTH / width)])[:, 0], np.asarray(k)
