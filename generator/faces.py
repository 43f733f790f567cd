"""Face detection, eye-based alignment and pasting back, with OpenCV's Haar cascades only.

The face-swap generator works on aligned 64×64 faces: a similarity transform puts the two eyes at
fixed positions (`CANONICAL_EYES`), so the autoencoder sees faces in one pose and scale, and the
inverse of the same transform pastes the converted face back into the frame. Haar cascades ship
with opencv-python-headless 4.x, so this needs no downloaded model. They only find upright frontal
faces, so a frame is also searched rotated by a few angles (heads tilt while talking), and when
the eye cascade finds no plausible pair, the eyes are placed where they sit in an average Haar
face box. `track_faces` adds what a video needs: one face per frame, gaps bridged, jitter smoothed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Literal

import cv2
import numpy as np
from tqdm import tqdm

Point = tuple[float, float]
EyeSource = Literal["detected", "one", "box"]

# Eye centres in an aligned face, as fractions of its side: eye distance 0.32, so the crop runs
# from the forehead (about one eye distance above the eyes) to the chin (about 1.75 below).
CANONICAL_EYES: tuple[Point, Point] = ((0.34, 0.40), (0.66, 0.40))
# Where the eyes sit in a Haar frontal-face box, as fractions of its side (measured on the
# carphone clip and the astronaut portrait where the eye cascade found both eyes).
BOX_EYES: tuple[Point, Point] = ((0.315, 0.385), (0.685, 0.385))
# Five-point landmarks relative to the eyes, in eye distances along (eye line, its normal):
# nose tip, left and right mouth corners (proportions of the usual 5-point face template).
_LANDMARKS_FROM_EYES = np.array([[0.0, 0.57], [-0.415, 1.16], [0.415, 1.16]])
# Detection runs on a copy whose shorter side is this long: big enough for 60-pixel faces in
# 144-line video to reach the cascade's sweet spot, small enough to keep 720p fast.
_DETECT_SIDE = 288
_EYE_CROP = 160
_ANGLES = (0.0, -15.0, 15.0, -30.0, 30.0)


@dataclass(frozen=True)
class Face:
    """One detected face in image pixels.

    `box` is the axis-aligned (x, y, w, h) around the (possibly rotated) detection; `eyes` are the
    centres of the image-left and image-right eye; `landmarks` is a 5×2 estimate (left eye, right
    eye, nose tip, mouth left, mouth right) derived from the eyes; `eye_source` says whether the
    eyes were found by the cascade or placed from the box geometry.
    """

    box: tuple[int, int, int, int]
    eyes: tuple[Point, Point]
    landmarks: np.ndarray
    eye_source: EyeSource
    angle: float = 0.0

    def normalised_box(self, width: int, height: int) -> list[float]:
        """`box` as a normalised [x, y, w, h] clipped to the frame."""
        x, y, w, h = self.box
        x0, y0 = max(0.0, x / width), max(0.0, y / height)
        x1, y1 = min(1.0, (x + w) / width), min(1.0, (y + h) / height)
        return [x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0)]


def landmarks_from_eyes(left: Point, right: Point) -> np.ndarray:
    """Estimated 5-point landmarks from the two eye centres (the only points Haar cascades give)."""
    a, b = np.asarray(left, dtype=np.float64), np.asarray(right, dtype=np.float64)
    along = b - a
    normal = np.array([-along[1], along[0]])  # the eye line turned 90°: points down the face
    centre = (a + b) / 2
    rest = centre + _LANDMARKS_FROM_EYES[:, :1] * along + _LANDMARKS_FROM_EYES[:, 1:] * normal
    return np.vstack([a, b, rest])


def haarcascade_dir() -> str:
    """Where opencv-python-headless 4.x keeps its Haar cascades (`cv2.data` has no type stubs)."""
    return str(cv2.data.haarcascades)  # type: ignore[attr-defined]


@cache
def _cascade(name: str) -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(haarcascade_dir() + name)
    if cascade.empty():
        raise RuntimeError(f"OpenCV has no Haar cascade {name}: opencv-python-headless 4.x ships them")
    return cascade


def _gray(rgb: np.ndarray) -> np.ndarray:
    if rgb.ndim == 2:
        return rgb.astype(np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2GRAY)


def _pick_eyes(eyes: np.ndarray, side: float) -> tuple[list[Point], EyeSource]:
    """The most plausible eye pair among cascade hits in an upright face crop of width `side`."""
    centres = [(x + w / 2, y + h / 2) for x, y, w, h in eyes]
    expected = [(ex * side, ey * side) for ex, ey in BOX_EYES]
    best: tuple[float, list[Point]] | None = None
    for i, a in enumerate(centres):
        for b in centres[i + 1 :]:
            left, right = (a, b) if a[0] < b[0] else (b, a)
            dx, dy = right[0] - left[0], right[1] - left[1]
            if not (0.22 * side <= dx <= 0.6 * side and abs(dy) <= 0.35 * dx):
                continue
            if left[0] > 0.5 * side or right[0] < 0.5 * side:
                continue
            cost = math.dist(left, expected[0]) + math.dist(right, expected[1])
            if best is None or cost < best[0]:
                best = (cost, [left, right])
    if best is not None:
        return best[1], "detected"
    # One eye: mirror it about the box's vertical centre line (Haar boxes are centred on faces).
    near = [c for c in centres if 0.15 * side < c[1] < 0.55 * side and abs(c[0] - side / 2) > 0.1 * side]
    if near:
        c = min(near, key=lambda p: min(math.dist(p, expected[0]), math.dist(p, expected[1])))
        other = (side - c[0], c[1])
        return sorted([c, other]), "one"
    return expected, "box"


def _find_eyes(gray: np.ndarray, centre: Point, side: float, angle: float) -> tuple[list[Point], EyeSource]:
    """Eye centres (image pixels) of the face box `side` wide at `centre`, rotated by `angle`.

    The face is resampled upright at a fixed size first: the eye cascade's 20-pixel window
    misses eyes in small faces and is slow on large ones.
    """
    scale = _EYE_CROP / side
    rot = cv2.getRotationMatrix2D(centre, angle, scale)
    rot[:, 2] += np.array([_EYE_CROP / 2, _EYE_CROP / 2]) - np.asarray(centre)
    upper = int(_EYE_CROP * 0.62)
    crop = cv2.warpAffine(
        gray, rot, (_EYE_CROP, upper), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    crop = cv2.equalizeHist(crop)
    hits = _cascade("haarcascade_eye.xml").detectMultiScale(
        crop, scaleFactor=1.05, minNeighbors=3, minSize=(_EYE_CROP // 9, _EYE_CROP // 9)
    )
    points, source = _pick_eyes(np.asarray(hits).reshape(-1, 4), float(_EYE_CROP))
    back = cv2.invertAffineTransform(rot)
    mapped = [back @ np.array([px, py, 1.0]) for px, py in points]
    left, right = sorted((float(p[0]), float(p[1])) for p in mapped)
    return [left, right], source


def _boxes_at(gray: np.ndarray, angle: float, min_size: int) -> list[tuple[Point, float]]:
    """(centre, side) of faces found in `gray` rotated by `angle`, mapped back to `gray`'s pixels."""
    height, width = gray.shape
    rot = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    view = gray if angle == 0 else cv2.warpAffine(gray, rot, (width, height), borderMode=cv2.BORDER_REPLICATE)
    view = cv2.equalizeHist(view)
    found: list[tuple[Point, float]] = []
    for name in ("haarcascade_frontalface_alt2.xml", "haarcascade_frontalface_default.xml"):
        hits = _cascade(name).detectMultiScale(
            view, scaleFactor=1.1, minNeighbors=4, minSize=(min_size, min_size)
        )
        if len(hits):
            back = cv2.invertAffineTransform(rot)
            for x, y, w, h in np.asarray(hits).reshape(-1, 4):
                cx, cy = back @ np.array([x + w / 2, y + h / 2, 1.0])
                found.append(((float(cx), float(cy)), float(max(w, h))))
            break
    return found


def _suppress(found: list[tuple[Point, float]]) -> list[tuple[Point, float]]:
    """Largest first, dropping boxes whose centre lies inside an already kept one."""
    kept: list[tuple[Point, float]] = []
    for centre, side in sorted(found, key=lambda f: -f[1]):
        if all(math.dist(centre, c) > 0.5 * s for c, s in kept):
            kept.append((centre, side))
    return kept


def detect_faces(
    rgb: np.ndarray, *, min_fraction: float = 0.08, angles: Sequence[float] = _ANGLES
) -> list[Face]:
    """Faces in an RGB (or gray) image, largest first.

    `min_fraction` is the smallest face side as a fraction of the image's shorter side. The image
    is searched upright first and at the next angle only when no face with eyes was found, so
    upright faces cost one pass.
    """
    gray = _gray(rgb)
    height, width = gray.shape
    scale = min(3.0, _DETECT_SIDE / min(height, width))
    small = cv2.resize(
        gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    )
    min_size = max(24, round(min_fraction * min(small.shape)))
    fallback: list[Face] = []
    for angle in angles:
        found = _boxes_at(small, angle, min_size)
        faces = [
            _face_at(gray, (cx / scale, cy / scale), side / scale, angle)
            for (cx, cy), side in _suppress(found)
        ]
        # A face whose eyes the eye cascade confirms ends the search; boxes without eyes are
        # often mouths or shadows while the real face is tilted, so look further first.
        if any(f.eye_source == "detected" for f in faces):
            return faces
        fallback = fallback or faces
    return fallback


def _face_at(gray: np.ndarray, centre: Point, side: float, angle: float) -> Face:
    (left, right), source = _find_eyes(gray, centre, side, angle)
    half = side / 2 * (abs(math.cos(math.radians(angle))) + abs(math.sin(math.radians(angle))))
    box = (round(centre[0] - half), round(centre[1] - half), round(2 * half), round(2 * half))
    return Face(
        box=box,
        eyes=(left, right),
        landmarks=landmarks_from_eyes(left, right),
        eye_source=source,
        angle=angle,
    )


# The face oval in an aligned face, as fractions of its side: centre and semi-axes (forehead to
# chin, cheek to cheek for the eye positions above).
OVAL_CENTRE: Point = (0.5, 0.55)
OVAL_AXES: Point = (0.33, 0.42)


def face_oval(size: int = 64, margin: int = 0, blur: float = 0.0) -> np.ndarray:
    """The face oval of an aligned face (0/1, or soft edged with `blur` in pixels) as float32."""
    side = size + 2 * margin
    mask = np.zeros((side, side), np.float32)
    centre = (round(OVAL_CENTRE[0] * size + margin), round(OVAL_CENTRE[1] * size + margin))
    axes = (round(OVAL_AXES[0] * size), round(OVAL_AXES[1] * size))
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1.0, thickness=-1)
    if blur > 0:
        return np.asarray(cv2.GaussianBlur(mask, (0, 0), blur), dtype=np.float32)
    return mask


def alignment_matrix(face: Face, size: int = 64, margin: int = 0) -> np.ndarray:
    """The 2×3 similarity transform taking image pixels to the aligned face's pixels.

    The eyes land on `CANONICAL_EYES` of a `size` square; `margin` pixels of context are added on
    every side (training crops random views out of them).
    """
    src = np.asarray(face.eyes, dtype=np.float64)
    dst = np.asarray(CANONICAL_EYES, dtype=np.float64) * size + margin
    s_vec, d_vec = src[1] - src[0], dst[1] - dst[0]
    # Complex-number form of a similarity: d = z * s + t, with z = |d|/|s| * e^{i(θd-θs)}.
    z = complex(*d_vec) / complex(*s_vec) if np.any(s_vec) else complex(1.0, 0.0)
    a, b = z.real, z.imag
    lin = np.array([[a, -b], [b, a]])
    t = dst[0] - lin @ src[0]
    return np.hstack([lin, t[:, None]])


def align(rgb: np.ndarray, face: Face, size: int = 64, *, margin: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The face warped upright with its eyes at the canonical positions, and the matrix used."""
    matrix = alignment_matrix(face, size, margin)
    side = size + 2 * margin
    source = rgb
    zoom = math.hypot(matrix[0, 0], matrix[1, 0])
    # Shrinking by more than 2× with bilinear sampling aliases; halve the image first.
    while zoom < 0.5 and min(source.shape[:2]) > 2 * side:
        source = cv2.pyrDown(source)
        matrix = matrix @ np.array([[2.0, 0, 0.5], [0, 2.0, 0.5], [0, 0, 1]])
        zoom *= 2
    aligned = cv2.warpAffine(
        source, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return aligned, alignment_matrix(face, size, margin)


def paste_back(
    rgb: np.ndarray, face_rgb: np.ndarray, matrix: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """`rgb` with `face_rgb` (aligned by `matrix`) warped back in, blended by `mask` (0..1, aligned).

    Only the box the aligned square covers is resampled, so pasting into a large frame is cheap.
    """
    height, width = rgb.shape[:2]
    side_h, side_w = face_rgb.shape[:2]
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0, 1], [side_w, 0, 1], [0, side_h, 1], [side_w, side_h, 1]], dtype=np.float64)
    mapped = corners @ inverse.T
    x0, y0 = np.floor(mapped.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(mapped.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    out = rgb.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    shifted = inverse.copy()
    shifted[:, 2] -= (x0, y0)
    roi = (x1 - x0, y1 - y0)
    face = cv2.warpAffine(face_rgb, shifted, roi, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha_src = np.ones((side_h, side_w), np.float32) if mask is None else mask.astype(np.float32)
    alpha = cv2.warpAffine(alpha_src, shifted, roi, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha = np.clip(alpha, 0.0, 1.0)[..., None]
    patch = out[y0:y1, x0:x1].astype(np.float32)
    blended = patch * (1 - alpha) + face.astype(np.float32) * alpha
    out[y0:y1, x0:x1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out


def _pick(faces: list[Face], previous: Face | None) -> Face | None:
    """The face that continues the track: nearest the previous one, else the largest."""
    if not faces:
        return None
    if previous is None:
        return faces[0]
    px, py, pw, ph = previous.box
    return min(
        faces,
        key=lambda f: math.dist(
            (f.box[0] + f.box[2] / 2, f.box[1] + f.box[3] / 2), (px + pw / 2, py + ph / 2)
        ),
    )


def _with_eyes(face: Face, left: np.ndarray, right: np.ndarray, box: np.ndarray) -> Face:
    lp, rp = (float(left[0]), float(left[1])), (float(right[0]), float(right[1]))
    x, y, w, h = (round(float(v)) for v in box)
    return replace(face, eyes=(lp, rp), landmarks=landmarks_from_eyes(lp, rp), box=(x, y, w, h))


def track_faces(
    frames: Sequence[np.ndarray], *, max_gap: int = 6, smooth: int = 5, progress: bool = False
) -> list[Face | None]:
    """One face per frame of a video: detected, with gaps of up to `max_gap` frames bridged by the
    nearest detection, and eyes and box smoothed over `smooth` frames so the pasted face does not
    jitter. Frames farther than `max_gap` from any detection get None.
    """
    raw: list[Face | None] = []
    previous: Face | None = None
    for rgb in tqdm(frames, desc="finding faces", unit="frame", disable=not progress):
        # Heads keep their tilt from one frame to the next: try the last angle first.
        angles = (
            _ANGLES if previous is None else (previous.angle, *(a for a in _ANGLES if a != previous.angle))
        )
        face = _pick(detect_faces(rgb, angles=angles), previous)
        raw.append(face)
        previous = face or previous
    detected = [(i, f) for i, f in enumerate(raw) if f is not None]
    if not detected:
        return [None] * len(frames)
    # Smooth over detected frames: cascade eyes and boxes jump by pixels from frame to frame.
    positions = np.array([i for i, _ in detected])
    eyes = np.array([[*f.eyes[0], *f.eyes[1]] for _, f in detected], dtype=np.float64)
    boxes = np.array([f.box for _, f in detected], dtype=np.float64)
    weights = np.array([1.0 if f.eye_source == "detected" else 0.3 for _, f in detected])
    half = smooth // 2
    tracked: list[Face | None] = [None] * len(frames)
    for k, (i, face) in enumerate(detected):
        near = np.flatnonzero(np.abs(positions - i) <= half)
        w = weights[near] * (1.0 + (near == k))
        e = (eyes[near] * w[:, None]).sum(axis=0) / w.sum()
        b = (boxes[near] * w[:, None]).sum(axis=0) / w.sum()
        tracked[i] = _with_eyes(face, e[:2], e[2:], b)
    for i in range(len(frames)):
        if tracked[i] is None:
            j = int(positions[np.argmin(np.abs(positions - i))])
            if abs(j - i) <= max_gap:
                tracked[i] = tracked[j]
    return tracked
