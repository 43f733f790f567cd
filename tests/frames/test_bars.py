"""Letterbox stripping, scanned from the edges, finds the same bars as a whole-frame scan."""

from __future__ import annotations

import numpy as np

from frames import bars


def _whole_frame(rgb: np.ndarray, axis: int) -> tuple[int, int]:
    content = np.flatnonzero(bars.content_lines(rgb, axis))
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
            assert bars.bars(rgb, axis) == _whole_frame(rgb, axis)


def test_a_letterboxed_frame_is_cut_to_its_picture() -> None:
    picture = (np.random.default_rng(1).random((200, 320, 3)) * 255).astype(np.uint8)
    boxed = np.zeros((360, 320, 3), dtype=np.uint8)
    boxed[80:280] = picture
    assert bars.content_box(boxed) == (80, 280, 0, 320)
    assert np.array_equal(bars.strip_bars(boxed), picture)


def test_a_dark_frame_or_a_thin_strip_of_picture_keeps_the_whole_frame() -> None:
    black = np.zeros((90, 160, 3), dtype=np.uint8)
    assert bars.content_box(black) == (0, 90, 0, 160)  # a fade to black is content, not a bar
    strip = black.copy()
    strip[40:60] = 200  # 22% of the height: under the 40% kept, so not cropped to it
    assert bars.content_box(strip) == (0, 90, 0, 160)


def test_a_grey_line_under_the_mean_is_content_when_one_sample_is_bright() -> None:
    frame = np.full((40, 40, 3), 120, dtype=np.uint8)
    frame[:5] = 0
    frame[2, 7] = (bars.BAR_MAX, 0, 0)  # one sample at the limit makes row 2 content
    assert bars.content_box(frame) == (2, 40, 0, 40)
