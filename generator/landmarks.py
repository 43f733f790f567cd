"""dlib face detection, 5-point landmarks, identity embeddings and a face-anchored mesh.

The classic swaps and the animated footage need more than the Haar eyes of `generator.faces`:
eye corners and the nose from dlib's 5-point predictor, and dlib's 128-d ResNet embedding to
check that a swap really changed who is on screen. The models (CC0 only, files checked against
their SHA-256) are the fingerprint's face channel's: `frames.faces`.

Faces are described in a *face frame*: origin between the eye centres, unit vector `u` along
the eye line (length = eye distance), `v` the same turned 90° down the face. Mouth, chin and the
outline rings of the mesh are placed at fixed face-frame coordinates, so the same construction
on two faces gives corresponding points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from frames.faces import face_models, landmark_points

# Detection runs on a copy whose shorter side is at least this long: dlib's HOG window is 80
# pixels, so the 60-pixel faces of 144-line video need upscaling.
_DETECT_SIDE = 288
# A face-frame point (a, b) sits at centre + a·u + b·v (u: eye line, v: down the face).
MOUTH = (0.0, 1.2)
MOUTH_CORNERS = ((-0.42, 1.15), (0.42, 1.15))
# The face oval used for masks: centre and semi-axes in eye distances (brows to chin, cheeks).
OVAL_CENTRE = (0.0, 0.55)
OVAL_AXES = (0.95, 1.3)


@dataclass(frozen=True)
class Landmarks:
    """One face: dlib's box (x, y, w, h in pixels), its 5 points and the detection score.

    `points` are in dlib's order: image-right eye outer and inner corner, image-left eye outer
    and inner corner, bottom of the nose.
    """

    box: tuple[float, float, float, float]
    points: np.ndarray
    score: float = 0.0

    @property
    def eyes(self) -> tuple[np.ndarray, np.ndarray]:
        """Centres of the image-left and the image-right eye."""
        return self.points[2:4].mean(axis=0), self.points[0:2].mean(axis=0)

    @property
    def nose(self) -> np.ndarray:
        return np.asarray(self.points[4], dtype=np.float64)

    @property
    def eye_distance(self) -> float:
        left, right = self.eyes
        return float(np.hypot(*(right - left)))

    def to_image(self, ab: np.ndarray) -> npt.NDArray[np.float64]:
        """Face-frame coordinates (N×2, in eye distances) to image pixels."""
        left, right = self.eyes
        u = right - left
        v = np.array([-u[1], u[0]])
        centre = (left + right) / 2
        ab = np.asarray(ab, dtype=np.float64).reshape(-1, 2)
        pixels: npt.NDArray[np.float64] = centre + ab[:, :1] * u + ab[:, 1:] * v
        return pixels

    def anchors(self) -> np.ndarray:
        """Eye centres and nose (3×2): the points a similarity alignment is fitted to."""
        left, right = self.eyes
        return np.vstack([left, right, self.nose])

    def oval(self, scale: float = 1.0, count: int = 32) -> np.ndarray:
        """The face oval (brows to chin) as a `count`-point polygon in pixels, `scale`d about its centre."""
        theta = np.linspace(0, 2 * math.pi, count, endpoint=False)
        ab = np.stack(
            [
                OVAL_CENTRE[0] + scale * OVAL_AXES[0] * np.cos(theta),
                OVAL_CENTRE[1] + scale * OVAL_AXES[1] * np.sin(theta),
            ],
            axis=1,
        )
        return self.to_image(ab)

    def mesh_points(self) -> np.ndarray:
        """Corresponding mesh vertices: the 5 detected points, estimated mouth, the face oval and
        an outer ring (so the triangles cover the oval with a margin). Same order on every face."""
        inner = self.to_image(np.array([MOUTH, *MOUTH_CORNERS]))
        return np.vstack([self.points, inner, self.oval(1.0, 16), self.oval(1.5, 12)])

    def normalised_box(self, width: int, height: int) -> list[float]:
        """`box` as normalised [x, y, w, h], clipped to the frame."""
        x, y, w, h = self.box
        x0, y0 = max(0.0, x / width), max(0.0, y / height)
        x1, y1 = min(1.0, (x + w) / width), min(1.0, (y + h) / height)
        return [x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0)]

    def moved(self, matrix: np.ndarray) -> Landmarks:
        """The same face after the 2×3 affine `matrix` moved the image (box: around the moved corners)."""
        x, y, w, h = self.box
        corners = np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h]], dtype=np.float64)
        c = corners @ matrix[:, :2].T + matrix[:, 2]
        p = np.asarray(self.points, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]
        x0, y0 = c.min(axis=0)
        x1, y1 = c.max(axis=0)
        return Landmarks((float(x0), float(y0), float(x1 - x0), float(y1 - y0)), p, self.score)


def _to_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image.astype(np.uint8), cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(image[..., :3], dtype=np.uint8)


def _shape(rgb: np.ndarray, box: tuple[float, float, float, float]) -> Any:
    m = face_models()
    x, y, w, h = box
    return m.shape(rgb, m.rectangle(x, y, x + w, y + h))


def detect(image: np.ndarray, *, upsample: int = 0, min_score: float = 0.0) -> list[Landmarks]:
    """Frontal faces in an RGB (or grey) image with their 5 points, best (score × size) first."""
    rgb = _to_rgb(image)
    height, width = rgb.shape[:2]
    scale = max(1.0, _DETECT_SIDE / min(height, width))
    view = rgb if scale == 1.0 else cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    m = face_models()
    rects, scores, _ = m.detector.run(view, upsample, min_score)
    found: list[Landmarks] = []
    for rect, score in zip(rects, scores, strict=True):
        box = (rect.left() / scale, rect.top() / scale, rect.width() / scale, rect.height() / scale)
        found.append(Landmarks(box, landmark_points(m.shape(view, rect)) / scale, float(score)))
    return sorted(found, key=lambda f: -(f.score + 1.0) * f.box[2])


def largest(image: np.ndarray, *, upsample: int = 0) -> Landmarks | None:
    """The best face of a photo, trying one more level of upsampling when none is found."""
    faces = detect(image, upsample=upsample) or detect(image, upsample=upsample + 1)
    return faces[0] if faces else None


def embed(image: np.ndarray, face: Landmarks) -> np.ndarray:
    """dlib's 128-d identity embedding (distance < 0.6: probably the same person)."""
    rgb = _to_rgb(image)
    return face_models().embedding(rgb, _shape(rgb, face.box))


def _near(face: Landmarks, previous: Landmarks) -> float:
    return float(np.hypot(*(face.anchors().mean(axis=0) - previous.anchors().mean(axis=0))))


def track(frames: Sequence[np.ndarray], *, max_gap: int = 6, smooth: int = 3) -> list[Landmarks | None]:
    """One face per frame: detected (the one nearest the last), misses of up to `max_gap` frames
    filled from the nearest detection, points and box averaged over `smooth` frames so a pasted
    face does not jitter. Frames farther than `max_gap` from any detection get None."""
    raw: list[Landmarks | None] = []
    previous: Landmarks | None = None
    for rgb in frames:
        faces = detect(rgb)
        if not faces and previous is None:
            faces = detect(rgb, upsample=1)
        face: Landmarks | None = None
        if faces and previous is not None:
            last = previous
            face = min(faces, key=lambda f: _near(f, last))
        elif faces:
            face = faces[0]
        raw.append(face)
        previous = face or previous
    hits = np.array([i for i, f in enumerate(raw) if f is not None])
    if len(hits) == 0:
        return [None] * len(frames)
    out: list[Landmarks | None] = []
    half = smooth // 2
    for i in range(len(frames)):
        j = int(hits[np.argmin(np.abs(hits - i))])
        if abs(j - i) > max_gap:
            out.append(None)
            continue
        window = raw[max(0, j - half) : j + half + 1]
        faces = [f for f in window if f is not None]
        points = np.mean([f.points for f in faces], axis=0)
        box = np.mean([f.box for f in faces], axis=0)
        bx = (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
        out.append(Landmarks(bx, points, max(f.score for f in faces)))
    return out


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares similarity (rotation, uniform scale, shift) taking `src` points to `dst`, 2×3."""
    s, d = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    sc, dc = s - s.mean(axis=0), d - d.mean(axis=0)
    zs, zd = sc[:, 0] + 1j * sc[:, 1], dc[:, 0] + 1j * dc[:, 1]
    z = complex(np.vdot(zs, zd) / max(np.vdot(zs, zs).real, 1e-12))
    lin = np.array([[z.real, -z.imag], [z.imag, z.real]])
    t = d.mean(axis=0) - lin @ s.mean(axis=0)
    return np.hstack([lin, t[:, None]])


def identity_distances(originals: Sequence[np.ndarray], copies: Sequence[np.ndarray]) -> list[float]:
    """dlib embedding distance between the best face of each original frame and of its copy
    (pairs where either has no face are skipped): how far a fake moved who is on screen."""
    out: list[float] = []
    for a, b in zip(originals, copies, strict=True):
        fa, fb = largest(a), largest(b)
        if fa is not None and fb is not None:
            out.append(float(np.linalg.norm(embed(a, fa) - embed(b, fb))))
    return out
