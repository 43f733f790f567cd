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
    out = np.zeros((SIDE, SIDE), dtype=np.float64)
    offset = SIDE * (1 - fraction) / 2
    for u in range(SIDE):
        x = offset + (u + 0.5) * fraction - 0.5
        x = min(max(x, 0.0), SIDE - 1.0)
        lo = math.floor(x)
        hi = min(lo + 1, SIDE - 1)
        w = x - lo
        out[u, lo] += 1 - w
        out[u, hi] += w
    return out


@lru_cache(maxsize=32)
def _hash_matrix(fraction: float) -> npt.NDArray[np.float32]:
    """(16, SIDE) float32: crop-and-resample followed by the 16 lowest DCT-II basis rows."""
    k = np.arange(_HASH_SIDE)[:, None]
    x = np.arange(SIDE)[None, :]
    dct = np.cos(np.pi * (2 * x + 1) * k / (2 * SIDE))
    matrix: npt.NDArray[np.float32] = (dct @ _crop_matrix(fraction)).astype(np.float32)
    return matrix


def centre_hashes_of(thumbs: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """(frames, 32) uint8 centre hashes of thumbnails showing a crop of `scale` of the original."""
    if not 0 < scale <= 1:
        raise ValueError(f"scale is in (0, 1], not {scale}")
    fraction = min(1.0, CENTRE_FRACTION / scale)
    matrix = _hash_matrix(round(fraction, 6))
    coeffs = (matrix @ thumbs @ matrix.T).reshape(len(thumbs), -1)
    median = np.median(coeffs, axis=1, keepdims=True)
    return np.packbits(coeffs > median, axis=1)


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
