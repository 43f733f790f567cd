"""Synthetic version 1 fingerprints from raw PDQ codes: the index's tests and its benchmark build
millions of frames without decoding any video."""

from __future__ import annotations

import numpy as np

from frames.descriptor import GRID_BYTES
from provenance.fingerprint import VERSION_1, Fingerprint, FrameHash


def synthetic_fingerprint(
    codes: np.ndarray, quality: int = 100, size: tuple[int, int] = (64, 64)
) -> Fingerprint:
    """A 4-fps fingerprint whose frames carry `codes` (n, 32) as PDQ hashes and a flat grid."""
    grid = bytes(GRID_BYTES)
    frames = tuple(
        FrameHash(t=k / 4, pdq=c.tobytes(), quality=quality, grid=grid) for k, c in enumerate(codes)
    )
    return Fingerprint(
        version=VERSION_1,
        kind="video",
        width=640,
        height=360,
        duration=len(codes) / 4,
        sample_fps=4.0,
        frames=frames,
    )


def flip_bits(codes: np.ndarray, rng: np.random.Generator, most: int) -> np.ndarray:
    """A copy of `codes` with up to `most` random bits flipped in each row."""
    out = codes.copy()
    for row in out:
        for bit in rng.choice(256, int(rng.integers(0, most + 1)), replace=False):
            row[bit // 8] ^= np.uint8(1 << (bit % 8))
    return out
