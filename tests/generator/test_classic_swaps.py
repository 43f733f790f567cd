"""Classic face swaps (mesh warp, Poisson, feathered paste): the face changes, the rest does not,
and dlib's identity embedding moves away from the target's person."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dlib")
if importlib.util.find_spec("face_recognition_models") is None:
    pytest.skip("face-recognition-models (dlib's model files) is not installed", allow_module_level=True)

from generator import classic_swaps, footage, landmarks
from generator.swap.convert import SwapResult
from generator.variants import Clip, read_clip, reencode, stream_fps

SECONDS = 2.0
Swap = Callable[[Path, np.ndarray, Path], SwapResult]
SWAPS: dict[str, Swap] = {
    "triangle": lambda t, s, d: classic_swaps.classic_swap("triangle", t, s, d),
    "poisson_normal": lambda t, s, d: classic_swaps.classic_swap("poisson", t, s, d, mode="normal"),
    "poisson_mixed": lambda t, s, d: classic_swaps.classic_swap("poisson", t, s, d, mode="mixed"),
    "feather": lambda t, s, d: classic_swaps.classic_swap("feather", t, s, d),
}
SAMPLES = (5, 20, 35, 45)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Clip]:
    path = tmp_path_factory.mktemp("target") / "astronaut.mp4"
    footage.make_clip("astronaut", path, seconds=SECONDS, seed=5)
    return path, read_clip(path)


@pytest.fixture(scope="module")
def reencoded_distance(target: tuple[Path, Clip], tmp_path_factory: pytest.TempPathFactory) -> float:
    path, clip = target
    copy = tmp_path_factory.mktemp("copy") / "copy.mp4"
    reencode(path, copy, crf=32)
    copied = read_clip(copy)
    return float(
        np.median(
            landmarks.identity_distances(
                [clip.frames[k] for k in SAMPLES], [copied.frames[k] for k in SAMPLES]
            )
        )
    )


def _pixel_box(box: list[float], width: int, height: int, grow: int = 0) -> tuple[int, int, int, int]:
    x0, y0 = round(box[0] * width) - grow, round(box[1] * height) - grow
    x1, y1 = round((box[0] + box[2]) * width) + grow, round((box[1] + box[3]) * height) + grow
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


@pytest.mark.parametrize("name", list(SWAPS))
def test_swap_changes_the_face_and_its_identity_only(
    name: str, target: tuple[Path, Clip], reencoded_distance: float, tmp_path: Path
) -> None:
    path, clip = target
    result = SWAPS[name](path, footage.still("grace_hopper"), tmp_path / f"{name}.mp4")
    fake = read_clip(result.path)
    width, height = clip.size
    assert len(fake.frames) == len(clip.frames) == result.frame_count
    assert fake.size == clip.size and (result.width, result.height) == clip.size
    assert stream_fps(result.path) == stream_fps(path)
    assert sum(result.changed) >= 0.9 * len(clip.frames)
    assert result.truth().ranges and result.truth().kind == "face_swap"
    inside, outside = [], []
    for k in SAMPLES:
        face_box, region = result.face_boxes[k], result.regions[k]
        assert face_box is not None and region is not None
        diff = np.abs(fake.frames[k].astype(np.int16) - clip.frames[k].astype(np.int16)).mean(axis=2)
        x0, y0, x1, y1 = _pixel_box(face_box, width, height)
        inside.append(float(diff[y0:y1, x0:x1].mean()))
        away = np.ones_like(diff, dtype=bool)
        x0, y0, x1, y1 = _pixel_box(region, width, height, grow=6)
        away[y0:y1, x0:x1] = False
        outside.append(float(diff[away].mean()))
    # Outside the altered box only the second H.264 encode differs (the footage carries sensor
    # noise, which costs about 1.5 grey levels per encode).
    assert max(outside) < 3.0, outside
    assert min(inside) > 4 * max(outside), (inside, outside)
    swapped = landmarks.identity_distances(
        [clip.frames[k] for k in SAMPLES], [fake.frames[k] for k in SAMPLES]
    )
    assert len(swapped) >= 3
    distance = float(np.median(swapped))
    print(
        f"{name}: identity distance to the target's face {distance:.3f}"
        f" (re-encoded copy {reencoded_distance:.3f})"
    )
    assert distance > reencoded_distance + 0.2


def test_swap_keeps_frames_outside_the_range(target: tuple[Path, Clip], tmp_path: Path) -> None:
    path = target[0]
    result = classic_swaps.classic_swap(
        "poisson", path, footage.still("grace_hopper"), tmp_path / "part.mp4", start=0.4, end=1.2
    )
    assert result.ranges == [(0.4, 1.2)]
    assert not any(result.changed[:10]) and all(result.changed[10:30]) and not any(result.changed[30:])


def test_source_without_a_face_is_not_applicable(target: tuple[Path, Clip], tmp_path: Path) -> None:
    from generator.tampers import NotApplicable

    with pytest.raises(NotApplicable):
        classic_swaps.classic_swap(
            "triangle", target[0], np.full((200, 200, 3), 128, np.uint8), tmp_path / "x.mp4"
        )


def test_triangulation_covers_the_mask() -> None:
    face = footage.still_face("astronaut")
    tris = classic_swaps.triangles(face.mesh_points())
    assert len(tris) >= 30
    pts = face.mesh_points()
    area = sum(
        abs(float(np.linalg.det(np.stack([pts[b] - pts[a], pts[c] - pts[a]])))) / 2 for a, b, c in tris
    )
    x = pts[:, 0]
    assert area > 0.9 * float(np.ptp(x)) ** 2 * 0.6  # the mesh is not a sliver
