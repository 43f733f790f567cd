"""The v1 per-frame descriptor: PDQ and an 8x8 grid of cell descriptors of the bar-stripped frame.

Fingerprint v1 stores it per sampled frame; the verifier's PDQ/grid comparer and the detector's
baseline compare it. Written once here so they cannot drift apart.

1. Bars are stripped (`frames.bars`), then the content is area-resized to a `NORM_SIDE` (128)
   square: PDQ squashes any picture to 64x64 anyway, and grid cells are fractions of the content
   area, so the aspect ratio adds nothing.
2. PDQ (256 bits, with its quality 0..100) of that square, packed in the standard PDQ hex order.
3. Grid of that square: `GRID_ROWS` x `GRID_COLS` = 8 x 8 cells in row-major order,
   `CELL_BYTES` = 20 bytes per cell, `GRID_BYTES` = 1280 bytes per frame:

   ====== ====== ===========================================================================
   offset type   meaning
   ====== ====== ===========================================================================
   0..15  int8   4x4 luma thumbnail of the cell (row-major), zero-mean and divided by
                 max(std, 2), times 32 (|z| <= sqrt(15) for 16 samples, so it never clips)
   16     uint8  luma standard deviation of the thumbnail, in half levels (std * 2)
   17     uint8  mean luma (BT.601 full-range Y)
   18     uint8  mean Cb
   19     uint8  mean Cr
   ====== ====== ===========================================================================

   Thumbnail pixels are exact 4x4 block means of the square's luma (32 x 32 in all) and the
   chroma means 16x16 block means. Area averages survive re-encoding and rescaling, while
   anything pasted over a cell changes its shape, contrast or colour. `grid_distances`
   de-normalises the thumbnails and returns, per cell, the mean absolute difference of the
   thumbnails plus the difference of mean luma plus half the chroma differences, in 8-bit
   levels: ~2-9 for a low-bitrate half-size re-encode of bikes.mp4, ~25-130 for a pasted patch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
import pdqhash

from frames.bars import content_box

NORM_SIDE = 128
GRID_ROWS = 8
GRID_COLS = 8
THUMB = 4
CELL_BYTES = THUMB * THUMB + 4
CELLS = GRID_ROWS * GRID_COLS
GRID_BYTES = CELLS * CELL_BYTES
PDQ_BYTES = 32
# Thumbnails are divided by at least this standard deviation so flat cells do not amplify noise.
STD_FLOOR = 2.0
THUMB_SCALE = 32.0


@dataclass(frozen=True)
class Descriptor:
    """PDQ (packed bytes), its quality (0..100) and the grid (`GRID_BYTES`) of one frame."""

    pdq: bytes
    quality: int
    grid: bytes


@dataclass(frozen=True)
class GridFields:
    """A grid's fields decoded for comparing: de-normalised thumbnails (cells x 16), mean luma (cells)
    and mean Cb, Cr (cells x 2); `decode_grids` adds a leading frame axis."""

    thumbs: np.ndarray
    luma: np.ndarray
    chroma: np.ndarray


def describe(rgb: np.ndarray) -> Descriptor:
    """PDQ and grid of one upright RGB frame, after stripping black bars."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    top, bottom, left, right = content_box(rgb)
    # One area resize serves both: PDQ squashes any picture to 64x64 itself, and the grid's
    # cells are fractions of the (cropped) frame, so the aspect ratio carries no information.
    square = cv2.resize(rgb[top:bottom, left:right], (NORM_SIDE, NORM_SIDE), interpolation=cv2.INTER_AREA)
    bits, quality = pdqhash.compute(square)
    pdq = np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()
    grid = encode_grid(cv2.cvtColor(square, cv2.COLOR_RGB2YCrCb))
    return Descriptor(pdq=pdq, quality=int(quality), grid=grid)


def mirror_grid(grid: bytes) -> bytes:
    """The grid of the same frame mirrored left to right (exact: cells and their thumbnails flipped)."""
    if len(grid) != GRID_BYTES:
        raise ValueError(f"a grid has {GRID_BYTES} bytes, not {len(grid)}")
    cells = np.frombuffer(grid, dtype=np.uint8).reshape(GRID_ROWS, GRID_COLS, CELL_BYTES)[:, ::-1].copy()
    shapes = cells[:, :, : THUMB * THUMB].reshape(GRID_ROWS, GRID_COLS, THUMB, THUMB)[:, :, :, ::-1]
    cells[:, :, : THUMB * THUMB] = shapes.reshape(GRID_ROWS, GRID_COLS, THUMB * THUMB)
    return cells.tobytes()


def _block_means(plane: np.ndarray, rows: int, cols: int) -> npt.NDArray[np.float32]:
    """Exact area average of a plane whose size is a multiple of (rows, cols)."""
    height, width = plane.shape
    means: npt.NDArray[np.float32] = plane.reshape(rows, height // rows, cols, width // cols).mean(
        axis=(1, 3), dtype=np.float32
    )
    return means


def encode_grid(ycc: np.ndarray) -> bytes:
    """The 8x8 cell descriptors of a NORM_SIDE-square YCrCb frame (layout in the module docstring)."""
    luma = _block_means(ycc[:, :, 0], GRID_ROWS * THUMB, GRID_COLS * THUMB)
    cells = luma.reshape(GRID_ROWS, THUMB, GRID_COLS, THUMB).transpose(0, 2, 1, 3).reshape(-1, THUMB * THUMB)
    mean = cells.mean(axis=1, keepdims=True)
    std = cells.std(axis=1, keepdims=True)
    thumbs = np.clip(np.rint((cells - mean) / np.maximum(std, STD_FLOOR) * THUMB_SCALE), -127, 127)
    record = np.empty((CELLS, CELL_BYTES), dtype=np.uint8)
    record[:, :16] = thumbs.astype(np.int8).view(np.uint8)
    record[:, 16:17] = np.clip(np.rint(std * 2), 0, 255)
    record[:, 17:18] = np.clip(np.rint(mean), 0, 255)
    record[:, 18] = np.rint(_block_means(ycc[:, :, 2], GRID_ROWS, GRID_COLS)).ravel()  # Cb
    record[:, 19] = np.rint(_block_means(ycc[:, :, 1], GRID_ROWS, GRID_COLS)).ravel()  # Cr
    return record.tobytes()


def decode_grids(grids: Sequence[bytes]) -> GridFields:
    """The fields of many grids at once, with a leading frame axis (raises ValueError if mis-sized)."""
    if any(len(grid) != GRID_BYTES for grid in grids):
        raise ValueError(f"a grid has {GRID_BYTES} bytes")
    record = np.frombuffer(b"".join(grids), dtype=np.uint8).reshape(len(grids), CELLS, CELL_BYTES)
    std = record[:, :, 16:17].astype(np.float32) / 2
    thumbs = record[:, :, :16].view(np.int8).astype(np.float32) / THUMB_SCALE * np.maximum(std, STD_FLOOR)
    return GridFields(thumbs, record[:, :, 17].astype(np.float32), record[:, :, 18:20].astype(np.float32))


def grid_fields(grid: bytes) -> GridFields:
    """De-normalised thumbnails, mean luma and mean chroma of one grid (raises ValueError if mis-sized)."""
    if len(grid) != GRID_BYTES:
        raise ValueError(f"a grid has {GRID_BYTES} bytes, not {len(grid)}")
    fields = decode_grids([grid])
    return GridFields(fields.thumbs[0], fields.luma[0], fields.chroma[0])


def field_distances(a: GridFields, b: GridFields) -> npt.NDArray[np.float32]:
    """Per-cell distance of two decoded grids, shape (rows, cols), in 8-bit levels (0 = same)."""
    shape = np.abs(a.thumbs - b.thumbs).mean(axis=1)
    colour = np.abs(a.luma - b.luma) + 0.5 * np.abs(a.chroma - b.chroma).sum(axis=1)
    distances: npt.NDArray[np.float32] = (shape + colour).reshape(GRID_ROWS, GRID_COLS)
    return distances


def grid_distances(a: bytes, b: bytes) -> np.ndarray:
    """Per-cell distance of two encoded grids, shape (rows, cols), in 8-bit levels (0 = same)."""
    return field_distances(grid_fields(a), grid_fields(b))


def pdq_distance(a: bytes, b: bytes) -> int:
    """Hamming distance of two 256-bit PDQ hashes (a match is <= 31)."""
    if len(a) != PDQ_BYTES or len(b) != PDQ_BYTES:
        raise ValueError(f"PDQ hashes have {PDQ_BYTES} bytes")
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()
