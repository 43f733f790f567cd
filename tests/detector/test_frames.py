"""Letterbox stripping, scanned from the edges, finds the same bars as a whole-frame scan."""

from __future__ import annotations

import numpy as np

from detector import frames


def _whole_frame(rgb: np.ndarray, axis: int) -> tuple[int, int]:
    content = np.flatnonzero(frames._content_lines(rgb, axis))
    return (0, 0) if content.size == 0 else (int(content[0]), int(content[-1]) + 1)


def test_bars_scanned_from_the_edges_match_a_whole_frame_scan() -> None:
    rng = np.random.default_rng(7)
    for _ in range(400):
        height, width = int(rng.integers(1, 120)), int(rng.integers(1, 120))
        rgb = (rng.random((height, width, 3)) * float(rng.choice([20, 60, 255]))).astype(np.uint8)
        rgb[: int(rng.integers(0, height + 1))] = 0  # bars of any size, up to the whole frame
        rgb[height - int(rng.integers(0, height + 1)) :] = 0
        rgb[:, : int(rng.integers(0, width + 1))] = 0
        rgb[:, width - int(rng.integers(0, width + 1)) :] = 0
        for axis in (0, 1):
            assert frames._bars(rgb, axis) == _whole_frame(rgb, axis)


def test_a_letterboxed_frame_is_cut_to_its_picture() -> None:
    picture = (np.random.default_rng(1).random((200, 320, 3)) * 255).astype(np.uint8)
    boxed = np.zeros((360, 320, 3), dtype=np.uint8)
    boxed[80:280] = picture
    assert frames.content_box(boxed) == (80, 280, 0, 320)
    assert np.array_equal(frames.strip_bars(boxed), picture)
