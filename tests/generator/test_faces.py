"""Face detection, alignment and pasting back on real footage: the carphone talking head."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from frames.samples import sample_clip
from generator.faces import (
    CANONICAL_EYES,
    Face,
    align,
    detect_faces,
    haarcascade_dir,
    landmarks_from_eyes,
    paste_back,
    track_faces,
)
from generator.variants import read_clip


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Every third frame of the clip: upright and tilted heads, open and closed mouths."""
    return read_clip(sample_clip("carphone_pristine.mp4")).frames[::3]


@pytest.fixture(scope="module")
def detections(frames: list[np.ndarray]) -> list[list[Face]]:
    return [detect_faces(rgb) for rgb in frames]


def test_detects_the_face_in_most_frames(frames: list[np.ndarray], detections: list[list[Face]]) -> None:
    found = [faces[0] for faces in detections if faces]
    assert len(found) >= 0.9 * len(frames)
    height, width = frames[0].shape[:2]
    for face in found:
        x, y, w, h = face.box
        cx, cy = x + w / 2, y + h / 2
        # The man sits in the middle of the frame, his face 50–80 pixels across.
        assert 0.2 * width < cx < 0.8 * width and 0.1 * height < cy < 0.6 * height
        assert 40 <= w <= 100
        assert face.eyes[0][0] < face.eyes[1][0]
    assert sum(f.eye_source == "detected" for f in found) >= 0.6 * len(found)
    # Tilted frames are found by searching rotated copies.
    assert any(f.angle != 0 for f in found)


def test_landmarks_follow_the_eyes() -> None:
    points = landmarks_from_eyes((10.0, 20.0), (30.0, 20.0))
    assert points.shape == (5, 2)
    nose, mouth_l, mouth_r = points[2], points[3], points[4]
    assert nose[0] == pytest.approx(20) and 20 < nose[1] < mouth_l[1]
    assert mouth_l[0] < 20 < mouth_r[0]


def _cascade_eyes(face: np.ndarray) -> list[tuple[float, float]] | None:
    """The eye pair the eye cascade finds on its own in an aligned face (left, right), if any."""
    gray = cv2.equalizeHist(cv2.cvtColor(face, cv2.COLOR_RGB2GRAY))
    cascade = cv2.CascadeClassifier(haarcascade_dir() + "haarcascade_eye.xml")
    side = face.shape[0]
    hits = cascade.detectMultiScale(gray[: side * 6 // 10], 1.05, 3, minSize=(side // 9, side // 9))
    centres = sorted((x + w / 2, y + h / 2) for x, y, w, h in hits)
    left = [c for c in centres if c[0] < side / 2]
    right = [c for c in centres if c[0] >= side / 2]
    if not left or not right:
        return None
    return [left[-1], right[0]]


def test_alignment_puts_the_eyes_at_the_canonical_positions(
    frames: list[np.ndarray], detections: list[list[Face]]
) -> None:
    size = 128
    errors: list[float] = []
    for rgb, faces in zip(frames, detections, strict=True):
        if not faces:
            continue
        aligned, matrix = align(rgb, faces[0], size)
        assert aligned.shape == (size, size, 3) and matrix.shape == (2, 3)
        eyes = _cascade_eyes(aligned)
        if eyes is not None:
            errors.extend(
                math.dist(p, (cx * size, cy * size)) for p, (cx, cy) in zip(eyes, CANONICAL_EYES, strict=True)
            )
    # An independent look at the aligned faces finds eyes in most of them, within a few pixels
    # (eye distance is 41 pixels at this size).
    assert len(errors) >= 0.5 * 2 * len(frames)
    assert float(np.median(errors)) < 0.05 * size


def test_tracking_covers_every_frame_and_moves_smoothly(frames: list[np.ndarray]) -> None:
    tracked = track_faces(frames[:20])
    assert all(face is not None for face in tracked)
    centres = np.array([np.mean(f.eyes, axis=0) for f in tracked if f is not None])
    assert float(np.abs(np.diff(centres, axis=0)).max()) < 12  # no jumps to another "face"


def test_align_then_paste_back_leaves_the_frame_nearly_unchanged(
    frames: list[np.ndarray], detections: list[list[Face]]
) -> None:
    rgb, face = next((f, d[0]) for f, d in zip(frames, detections, strict=True) if d)
    aligned, matrix = align(rgb, face, 160)
    back = paste_back(rgb, aligned, matrix, None)
    diff = np.abs(back.astype(int) - rgb.astype(int))
    x, y, w, h = face.box
    assert float(diff[y : y + h, x : x + w].mean()) < 2.0
    assert float(diff.mean()) < 1.0
    # Pixels outside the pasted square are untouched.
    corners = (
        np.array([[0, 0, 1], [160, 0, 1], [0, 160, 1], [160, 160, 1]], float)
        @ cv2.invertAffineTransform(matrix).T
    )
    x1 = int(np.ceil(corners[:, 0].max())) + 1
    assert not diff[:, x1:].any()


def test_paste_back_blends_through_the_mask(frames: list[np.ndarray], detections: list[list[Face]]) -> None:
    rgb, face = next((f, d[0]) for f, d in zip(frames, detections, strict=True) if d)
    _, matrix = align(rgb, face, 64)
    black = np.zeros((64, 64, 3), np.uint8)
    half = np.full((64, 64), 0.5, np.float32)
    out = paste_back(rgb, black, matrix, half)
    cx, cy = (int(v) for v in np.mean(face.eyes, axis=0))
    assert out[cy, cx].astype(int).tolist() == pytest.approx((rgb[cy, cx] * 0.5).tolist(), abs=1.5)
    assert np.array_equal(out[:5, :5], rgb[:5, :5])


def test_eyes_fall_back_to_the_box_when_hidden() -> None:
    from skimage import data

    portrait = np.asarray(data.astronaut()).copy()
    faces = detect_faces(portrait)
    assert faces and faces[0].eye_source == "detected"
    (lx, ly), (rx, ry) = faces[0].eyes
    # Eyes blurred away (as by motion or a privacy filter): the face is still found and the eyes
    # are placed by the box geometry, close to where they really are.
    band = portrait.copy()
    for x, y in ((lx, ly), (rx, ry)):
        x0, y0 = int(x) - 10, int(y) - 8
        band[y0 : y0 + 16, x0 : x0 + 20] = cv2.GaussianBlur(band[y0 : y0 + 16, x0 : x0 + 20], (0, 0), 15)
    hidden = detect_faces(band)
    assert hidden, "the face cascade should still find the face"
    face = hidden[0]
    assert face.eye_source == "box"
    eye_distance = math.dist((lx, ly), (rx, ry))
    assert math.dist(face.eyes[0], (lx, ly)) < 0.25 * eye_distance
    assert math.dist(face.eyes[1], (rx, ry)) < 0.25 * eye_distance
