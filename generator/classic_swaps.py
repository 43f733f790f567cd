"""Face swaps made without the autoencoder: the classic methods a forger uses with no training.

The evaluation must not only catch our own generator's fakes, so these swap another identity's
face (one photo) into every frame of a target video by three methods (`classic_swap(method, ...)`):

- `triangle`: a landmark mesh (dlib's 5 points plus a face-frame oval and outer ring, see
  `generator.landmarks`) triangulated with `cv2.Subdiv2D`; each source triangle is warped onto
  its target triangle and the result is Poisson-blended (`cv2.seamlessClone`, NORMAL_CLONE)
  through a face-shaped mask;
- `poisson`: the source face aligned by a similarity fitted to the eyes and nose, colours
  moved to the target's (Reinhard, Lab), then Poisson-blended (NORMAL_CLONE or MIXED_CLONE);
- `feather`: the same alignment and colour transfer, pasted with a feathered alpha oval
  (the cheapest swap; leaves seams a Poisson blend hides).

Every method keeps the target's frame count, size and frame rate and returns the same
`SwapResult` as the autoencoder's `swap_video` (changed frames, altered box per frame, tracked
face box per frame, normalised [x, y, w, h]; `.truth()` gives the `TamperTruth`).
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from generator.landmarks import Landmarks, largest, similarity, track
from generator.swap.convert import SwapResult, reinhard_transfer
from generator.swap.data import read_image
from generator.tampers import NotApplicable
from generator.variants import DEFAULT_CRF, VideoWriter, read_clip

Method = Literal["triangle", "poisson", "feather"]
CloneMode = Literal["normal", "mixed"]
SwapFrame = Callable[[np.ndarray, Landmarks, np.ndarray, Landmarks], tuple[np.ndarray, np.ndarray]]
METHODS: tuple[Method, ...] = ("triangle", "poisson", "feather")

# Scale of the face oval (see `Landmarks.oval`) cloned into the target: brows to chin, cheek to cheek.
_MASK_SCALE = 0.95
# Pixels kept clear at the frame's edge: seamlessClone needs its region inside the frame.
_EDGE = 3


def source_face(source: np.ndarray | Path) -> tuple[np.ndarray, Landmarks]:
    """The face photo (RGB) and its dlib face; NotApplicable when dlib finds none."""
    rgb = read_image(source) if isinstance(source, Path) else np.asarray(source)
    if rgb.ndim == 2:
        rgb = cv2.cvtColor(rgb, cv2.COLOR_GRAY2RGB)
    rgb = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    face = largest(rgb)
    if face is None:
        raise NotApplicable("dlib finds no face in the source image")
    return rgb, face


def face_mask(face: Landmarks, width: int, height: int, scale: float = _MASK_SCALE) -> np.ndarray:
    """The target's face oval as a uint8 0/255 mask, kept `_EDGE` pixels off the frame's edge."""
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.round(face.oval(scale)).astype(np.int32)], 255)
    mask[:_EDGE], mask[-_EDGE:], mask[:, :_EDGE], mask[:, -_EDGE:] = 0, 0, 0, 0
    return mask


def _clone(src: np.ndarray, dst: np.ndarray, mask: np.ndarray, flag: int) -> np.ndarray:
    """seamlessClone of `src` into `dst` in place (same pixel grid: the centre keeps it aligned)."""
    x, y, w, h = cv2.boundingRect(mask)
    if w < 4 or h < 4:
        return dst.copy()
    # OpenCV puts the mask's bounding box at centre - size // 2: this centre leaves it in place.
    centre = (x + w // 2, y + h // 2)
    return cv2.seamlessClone(src, dst, mask, centre, flag)


def triangles(points: np.ndarray) -> np.ndarray:
    """Delaunay triangles (T×3 vertex indices) of `points` via cv2.Subdiv2D."""
    pts = np.asarray(points, np.float64)
    lo = pts.min(axis=0) - 2
    shifted = pts - lo
    w, h = (shifted.max(axis=0) + 3).astype(int)
    subdiv = cv2.Subdiv2D((0, 0, int(w), int(h)))
    for x, y in shifted:
        subdiv.insert((float(x), float(y)))
    out: list[tuple[int, int, int]] = []
    for tri in np.asarray(subdiv.getTriangleList()).reshape(-1, 3, 2):
        if np.any(tri < 0) or np.any(tri[:, 0] > w) or np.any(tri[:, 1] > h):
            continue  # a triangle touching Subdiv2D's outer virtual vertices
        idx = [int(np.argmin(np.hypot(*(shifted - v).T))) for v in tri]
        if len(set(idx)) == 3:
            out.append((idx[0], idx[1], idx[2]))
    return np.array(out, dtype=np.int64).reshape(-1, 3)


def warp_mesh(
    src: np.ndarray, src_points: np.ndarray, dst_points: np.ndarray, tris: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """`src` warped triangle by triangle so each `src_points` triangle lands on its `dst_points` one."""
    width, height = size
    out = np.zeros((height, width, 3), np.float32)
    weight = np.zeros((height, width, 1), np.float32)
    for tri in tris:
        s = src_points[tri].astype(np.float32)
        d = dst_points[tri].astype(np.float32)
        x0, y0 = np.floor(d.min(axis=0)).astype(int)
        x1, y1 = np.ceil(d.max(axis=0)).astype(int) + 1
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
        if x1 <= x0 or y1 <= y0:
            continue
        matrix = cv2.getAffineTransform(s, d - np.array([x0, y0], np.float32))
        patch = cv2.warpAffine(
            src, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        alpha = np.zeros((y1 - y0, x1 - x0), np.float32)
        poly = np.round((d - np.array([x0, y0])) * 16).astype(np.int32)
        cv2.fillConvexPoly(alpha, poly, 1.0, lineType=cv2.LINE_AA, shift=4)
        # Anti-aliased edges are shared by two triangles: average them by weight.
        out[y0:y1, x0:x1] += patch.astype(np.float32) * alpha[..., None]
        weight[y0:y1, x0:x1] += alpha[..., None]
    return np.clip(np.rint(out / np.maximum(weight, 1e-6)), 0, 255).astype(np.uint8)


def triangle_frame(
    frame: np.ndarray, face: Landmarks, src: np.ndarray, src_face: Landmarks
) -> tuple[np.ndarray, np.ndarray]:
    """One frame of the `triangle` swap: the swapped frame and the mask (0/255) it cloned through."""
    height, width = frame.shape[:2]
    src_pts, dst_pts = src_face.mesh_points(), face.mesh_points()
    warped = warp_mesh(src, src_pts, dst_pts, triangles(src_pts), (width, height))
    mask = face_mask(face, width, height)
    return _clone(warped, frame, mask, cv2.NORMAL_CLONE), mask


def _aligned(frame: np.ndarray, face: Landmarks, src: np.ndarray, src_face: Landmarks) -> np.ndarray:
    """The source photo moved by the eyes-and-nose similarity onto the target face, its face
    recoloured to the target face's Lab statistics."""
    height, width = frame.shape[:2]
    matrix = similarity(src_face.anchors(), face.anchors())
    moved = cv2.warpAffine(
        src, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    region = face_mask(face, width, height, 0.8) > 0
    return reinhard_transfer(moved, frame, region)


def poisson_frame(
    frame: np.ndarray, face: Landmarks, src: np.ndarray, src_face: Landmarks, mode: CloneMode = "normal"
) -> tuple[np.ndarray, np.ndarray]:
    """One frame of the `poisson` swap: the swapped frame and its mask (0/255)."""
    height, width = frame.shape[:2]
    moved = _aligned(frame, face, src, src_face)
    mask = face_mask(face, width, height)
    flag = cv2.MIXED_CLONE if mode == "mixed" else cv2.NORMAL_CLONE
    return _clone(moved, frame, mask, flag), mask


def feather_frame(
    frame: np.ndarray, face: Landmarks, src: np.ndarray, src_face: Landmarks
) -> tuple[np.ndarray, np.ndarray]:
    """One frame of the `feather` swap: the swapped frame and its alpha (0..255)."""
    height, width = frame.shape[:2]
    moved = _aligned(frame, face, src, src_face)
    hard = face_mask(face, width, height, _MASK_SCALE * 0.92).astype(np.float32) / 255
    alpha = cv2.GaussianBlur(hard, (0, 0), max(1.0, 0.1 * face.eye_distance))[..., None]
    out = frame.astype(np.float32) * (1 - alpha) + moved.astype(np.float32) * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), np.rint(alpha[..., 0] * 255).astype(np.uint8)


def _region(mask: np.ndarray) -> list[float] | None:
    """Normalised [x, y, w, h] of the pixels the mask touched."""
    x, y, w, h = cv2.boundingRect((mask > 0).astype(np.uint8))
    if w == 0 or h == 0:
        return None
    height, width = mask.shape
    return [x / width, y / height, w / width, h / height]


def _swap_video(
    fn: SwapFrame,
    method: str,
    target: Path,
    source: np.ndarray | Path,
    dst: Path,
    start: float,
    end: float | None,
    crf: int,
) -> SwapResult:
    src, src_face = source_face(source)
    clip = read_clip(target)
    faces = track(clip.frames)
    if not any(faces):
        raise NotApplicable(f"dlib finds no face in {target}")
    width, height = clip.size
    fps = Fraction(clip.fps)
    changed: list[bool] = []
    regions: list[list[float] | None] = []
    boxes: list[list[float] | None] = []
    stop = clip.duration if end is None else end
    with VideoWriter(dst, width, height, fps, crf=crf) as writer:
        for k, (frame, face) in enumerate(zip(clip.frames, faces, strict=True)):
            t = k / float(fps)
            boxes.append(face.normalised_box(width, height) if face else None)
            if face is None or not start - 1e-6 <= t < stop - 1e-6:
                writer.write(frame)
                changed.append(False)
                regions.append(None)
                continue
            out, mask = fn(frame, face, src, src_face)
            writer.write(out)
            changed.append(True)
            regions.append(_region(mask))
    return SwapResult(
        path=dst,
        fps=fps,
        width=writer.width,
        height=writer.height,
        changed=changed,
        regions=regions,
        face_boxes=boxes,
        metrics={"method": method},
    )


def classic_swap(
    method: Method,
    target: Path,
    source: np.ndarray | Path,
    dst: Path,
    *,
    mode: CloneMode = "normal",
    start: float = 0.0,
    end: float | None = None,
    crf: int = DEFAULT_CRF,
) -> SwapResult:
    """Swap `source`'s face into the frames of `target` shown in [start, end) by one of `METHODS`
    (the evaluation loops over them); other frames are copied.

    `triangle`: the landmark mesh warp and a NORMAL_CLONE Poisson blend. `poisson`: similarity
    alignment, Reinhard colour transfer and a Poisson blend (`mode`: NORMAL_CLONE keeps the source's
    texture; MIXED_CLONE keeps the stronger gradient of the two). `feather`: similarity alignment,
    colour transfer and a feathered alpha paste. `mode` matters to `poisson` only.
    """
    fn: SwapFrame
    if method == "triangle":
        fn, name = triangle_frame, "triangle"
    elif method == "poisson":
        fn, name = partial(poisson_frame, mode=mode), f"poisson_{mode}"
    elif method == "feather":
        fn, name = feather_frame, "feather"
    else:
        raise ValueError(f"unknown classic swap {method!r}; one of {METHODS}")
    return _swap_video(fn, name, target, source, dst, start, end, crf)
