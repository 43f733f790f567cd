"""The v1 descriptor: bars do not change it, a pasted patch changes its cells, and the grid round-trips."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from frames import descriptor as d


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.ascontiguousarray(skimage.data.astronaut())


def test_letterbox_does_not_change_the_descriptor(photo: np.ndarray) -> None:
    boxed = np.zeros((photo.shape[0] + 128, photo.shape[1], 3), dtype=np.uint8)
    boxed[64:-64] = photo
    a, b = d.describe(photo), d.describe(boxed)
    assert d.pdq_distance(a.pdq, b.pdq) == 0 and a.grid == b.grid
    assert len(a.pdq) == d.PDQ_BYTES and len(a.grid) == d.GRID_BYTES and 0 <= a.quality <= 100


def test_a_pasted_patch_changes_its_cells_only(photo: np.ndarray) -> None:
    pasted = photo.copy()
    pasted[:128, :128] = skimage.data.coffee()[:128, :128]  # the top-left 2x2 cells of 8x8
    cells = d.grid_distances(d.describe(photo).grid, d.describe(pasted).grid)
    assert cells.shape == (d.GRID_ROWS, d.GRID_COLS)
    assert cells[:2, :2].min() > 12.0
    assert cells[3:, 3:].max() == 0.0


def test_grid_fields_rebuild_the_cell_means(photo: np.ndarray) -> None:
    import cv2

    square = cv2.resize(photo, (d.NORM_SIDE, d.NORM_SIDE), interpolation=cv2.INTER_AREA)
    ycc = cv2.cvtColor(square, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    fields = d.grid_fields(d.encode_grid(cv2.cvtColor(square, cv2.COLOR_RGB2YCrCb)))
    step = d.NORM_SIDE // d.GRID_ROWS
    luma = ycc[:, :, 0].reshape(d.GRID_ROWS, step, d.GRID_COLS, step).mean(axis=(1, 3)).ravel()
    assert np.abs(fields.luma - luma).max() <= 0.5  # stored rounded to whole levels
    # Each cell's rebuilt 4x4 thumbnail (shape + mean) averages back to the cell's mean.
    assert np.abs(fields.thumbs.mean(axis=1)).max() < 0.5
    batch = d.decode_grids([d.describe(photo).grid] * 3)
    assert batch.thumbs.shape == (3, d.CELLS, d.THUMB * d.THUMB) and batch.chroma.shape == (3, d.CELLS, 2)


def test_malformed_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        d.grid_fields(bytes(d.GRID_BYTES - 1))
    with pytest.raises(ValueError):
        d.pdq_distance(bytes(31), bytes(32))
    assert d.pdq_distance(bytes(32), b"\xff" + bytes(31)) == 8


def test_a_mirrored_grid_is_the_grid_of_the_mirrored_frame() -> None:
    from frames.descriptor import describe, mirror_grid

    image = skimage.data.astronaut()
    flipped = np.ascontiguousarray(image[:, ::-1])
    assert mirror_grid(describe(image).grid) == describe(flipped).grid
    assert mirror_grid(mirror_grid(describe(image).grid)) == describe(image).grid
