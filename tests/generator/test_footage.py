"""Offline talking-head footage: a fixed split by identity, and clips whose faces dlib finds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dlib")
if importlib.util.find_spec("face_recognition_models") is None:
    pytest.skip("face-recognition-models (dlib's model files) is not installed", allow_module_level=True)

from generator import footage, landmarks
from generator.variants import read_clip, stream_fps


def _iou(a: list[float], b: list[float]) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_catalogue_splits_by_identity() -> None:
    sources = footage.catalogue()
    split_of: dict[str, set[str]] = {}
    for s in sources:
        split_of.setdefault(s.identity, set()).add(s.split)
    assert all(len(splits) == 1 for splits in split_of.values()), "an identity in two splits"
    assert {"train", "validation", "heldout"} <= {s.split for s in sources}
    assert footage.source("grace_hopper").split == "heldout"
    assert footage.source("carphone_distorted").identity == "carphone"
    assert all(s.quality == "low" for s in sources if s.name.startswith("lfw_"))
    assert len(footage.sources("heldout")) >= 10


def _check_clip(truth: footage.FootageTruth, *, seconds: float, size: tuple[int, int], fps: int) -> None:
    clip = read_clip(truth.path)
    assert len(clip.frames) == truth.frame_count == round(seconds * fps)
    assert clip.size == size and stream_fps(truth.path) == fps
    picks = range(0, len(clip.frames), 2)
    found, overlap = 0, []
    for k in picks:
        faces = landmarks.detect(clip.frames[k])
        box = truth.face_boxes[k]
        assert box is not None
        if faces:
            found += 1
            overlap.append(_iou(faces[0].normalised_box(*size), box))
    assert found >= 0.9 * len(picks)
    # The ground-truth box is dlib's box moved by the camera: a detection lands on it.
    assert float(np.median(overlap)) > 0.6


def test_still_is_animated_with_moving_camera_and_expressions(tmp_path: Path) -> None:
    truth = footage.make_clip("astronaut", tmp_path / "a.mp4", seconds=2.0, fps=25, seed=3)
    _check_clip(truth, seconds=2.0, size=(320, 240), fps=25)
    boxes = np.array(truth.face_boxes)
    assert np.ptp(boxes[:, 0]) > 0.01 and np.ptp(boxes[:, 2]) > 0.005  # the camera pans and zooms
    assert max(truth.mouth_open) > 0.5
    first = footage.make_clip("astronaut", tmp_path / "b.mp4", seconds=0.4, fps=25, seed=3)
    again = footage.make_clip("astronaut", tmp_path / "c.mp4", seconds=0.4, fps=25, seed=3)
    assert again.face_boxes == first.face_boxes  # fixed seeds
    assert [f.tobytes() for f in read_clip(again.path).frames] == [
        f.tobytes() for f in read_clip(first.path).frames
    ]


def test_held_out_and_low_quality_sources(tmp_path: Path) -> None:
    truth = footage.make_clip("grace_hopper", tmp_path / "g.mp4", seconds=1.2, size=(480, 360), seed=0)
    _check_clip(truth, seconds=1.2, size=(480, 360), fps=25)
    assert truth.split == "heldout"
    low = footage.make_clip("lfw_010", tmp_path / "l.mp4", seconds=1.2, seed=0)
    _check_clip(low, seconds=1.2, size=(320, 240), fps=25)
    assert low.quality == "low"


def test_video_source_plays_back_and_forth(tmp_path: Path) -> None:
    truth = footage.make_clip("carphone", tmp_path / "c.mp4", seconds=1.0, fps=25, seed=0)
    _check_clip(truth, seconds=1.0, size=(320, 240), fps=25)
    assert max(truth.blink) == 0.0 and truth.identity == "carphone"
