"""What the detector sees of a frame: the letterbox-stripped picture, area-resized to a small square.

The bars are those of fingerprint v1 (`frames.bars`, the same code), and the rest is squashed to
a square, so cells are fractions of the content area whatever the aspect ratio. A letterboxed or
pillarboxed copy of a clip therefore reaches the network exactly like its source.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from frames.bars import strip_bars

# Side of the square the network sees; 8x8 cells of 8x8 pixels.
SIDE = 64


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


def cell_fractions(mask: np.ndarray, grid: int) -> npt.NDArray[np.floating]:
    """(grid, grid) share of each cell covered by a (side, side) mask in 0..1."""
    side = mask.shape[0]
    step = side // grid
    fractions: npt.NDArray[np.floating] = mask.reshape(grid, step, grid, step).mean(axis=(1, 3))
    return fractions
