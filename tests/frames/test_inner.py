"""The picture inside a frame: a moving picture inside a solid fill or still chrome is boxed."""

from __future__ import annotations

import numpy as np
import pytest

from frames.inner import box_iou, inner_boxes


def _moving_picture(count: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """Frames of a textured picture panning right: edges inside it move from frame to frame."""
    rng = np.random.default_rng(seed)
    texture = (rng.random((height, width * 2, 3)) * 255).astype(np.uint8)
    blocks = np.repeat(np.repeat(texture[::8, ::8], 8, axis=0), 8, axis=1)[:height]
    return [np.ascontiguousarray(blocks[:, 4 * k : 4 * k + width]) for k in range(count)]


@pytest.mark.parametrize("colour", [(250, 250, 250), (40, 120, 200)])
def test_a_picture_on_a_solid_canvas_is_boxed(colour: tuple[int, int, int]) -> None:
    picture = _moving_picture(8, 72, 128)
    frames = []
    for inner in picture:
        canvas = np.full((256, 144, 3), colour, np.uint8)  # a vertical 9:16 canvas
        canvas[92:164, 8:136] = inner
        frames.append(canvas)
    (best, *_) = inner_boxes(frames)
    truth = (8 / 144, 92 / 256, 128 / 144, 72 / 256)
    assert box_iou(best.box, truth) > 0.9, best


def test_a_picture_inside_still_chrome_is_boxed() -> None:
    picture = _moving_picture(8, 90, 160, seed=1)
    chrome = (np.random.default_rng(2).random((180, 320, 3)) * 60).astype(np.uint8)
    chrome[10:20, 10:200] = 220  # a title bar with text-like contrast, still
    frames = []
    for inner in picture:
        canvas = chrome.copy()
        canvas[40:130, 30:190] = inner
        frames.append(canvas)
    boxes = inner_boxes(frames)
    truth = (30 / 320, 40 / 180, 160 / 320, 90 / 180)
    assert boxes and max(box_iou(b.box, truth) for b in boxes) > 0.9, boxes


def test_too_few_frames_say_nothing() -> None:
    assert inner_boxes(_moving_picture(2, 90, 160)) == []
