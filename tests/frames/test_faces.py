"""dlib's face models load from checked files, once, for the fingerprint and the generator alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data

from frames.faces import (
    MODEL_SHA256,
    FaceModelError,
    FaceModels,
    face_models,
    landmark_points,
    model_dir,
)


def test_damaged_or_missing_model_file_stops_loading(tmp_path: Path) -> None:
    for name in MODEL_SHA256:
        (tmp_path / name).write_bytes((model_dir() / name).read_bytes()[:1000])
    with pytest.raises(FaceModelError, match="damaged"):
        FaceModels(tmp_path)
    with pytest.raises(FaceModelError, match="cannot be read"):
        FaceModels(tmp_path / "missing")


def test_one_checked_set_finds_a_face_its_points_and_identity() -> None:
    models = face_models()
    assert face_models() is models  # loaded once per process
    assert len(models.version) == 16
    rgb = np.ascontiguousarray(skimage.data.astronaut())
    rects = models.detector(rgb, 0)
    assert len(rects) == 1
    shape = models.shape(rgb, rects[0])
    points = landmark_points(shape)
    assert points.shape == (5, 2)
    left, top, right, bottom = rects[0].left(), rects[0].top(), rects[0].right(), rects[0].bottom()
    assert (points[:, 0] > left).all() and (points[:, 0] < right).all()
    assert (points[:, 1] > top).all() and (points[:, 1] < bottom).all()
    same = models.embedding(rgb, shape)
    flipped = np.ascontiguousarray(rgb[:, ::-1])
    mirror_rect = models.detector(flipped, 0)[0]
    mirrored = models.embedding(flipped, models.shape(flipped, mirror_rect))
    assert same.shape == (128,) and same.dtype == np.float64
    assert np.linalg.norm(same - mirrored) < 0.6  # the same person, mirrored
