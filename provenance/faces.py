"""The face channel of a fingerprint: who is in the picture, and what their mouth and eyes do.

A frame-wide comparison cannot see an identity change that covers a few of its cells, and a face
swap is the deepfake people mean. So at every hashed instant the fingerprint also records each
face: its box, dlib's 128-d identity embedding (a metric-learned ResNet: the same person in a
re-encoded copy sits at 0.2-0.3, another person at 0.6 and more) and descriptors of the mouth and
eye regions of the aligned face, so that a changed expression or mouth shows as well as a changed
person. Faces are linked into tracks by position and identity. The instants that were looked at
are recorded too, so that "no face here" is a fact a verifier can rely on.

Models: dlib's HOG detector, 5-point predictor and ResNet recogniser, from files checked against
their SHA-256 (`frames.faces`, shared with the generator).

Block layout (little-endian), carried inside a version 3 fingerprint after the embedding block:
magic ``b"PVFC"``, layout (u8), model version (16 hex characters), instants (u32)
and faces (u32); then one u32 millisecond time per instant; then per face: time (u32 ms), track
(u16), flags (u8: 1 = has identity), box x, y, w, h (u16 each, fractions of the frame times
65535), identity (128 x int8, value x 512; zeros when absent), mouth (32 x int8) and eyes
(32 x int8) thumbnails, zero-mean over max(std, 4) x 32.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from frames.faces import FaceModels, face_models
from provenance.core.errors import DomainError

MAGIC = b"PVFC"
LAYOUT = 1
IDENTITY_DIM = 128
MOUTH_SHAPE = (4, 8)  # rows, cols of the mouth thumbnail
EYES_SHAPE = (2, 16)
DESCRIPTOR = MOUTH_SHAPE[0] * MOUTH_SHAPE[1]
_ID_SCALE = 512.0
_THUMB_SCALE = 32.0
_THUMB_STD_FLOOR = 4.0
# Detection runs on a copy whose shorter side is this long (up or down): HOG finds faces of about
# 80 pixels and more, so faces of a quarter of the frame height are found in any resolution.
DETECT_SIDE = 320
# ... unless that makes the longer side exceed this (wide frames cost in proportion to their area).
DETECT_LONG_SIDE = 640
# The aligned face chip the descriptors are read from (dlib's template: eyes at about 0.35 of the
# height, mouth at about 0.8).
CHIP = 64
_CHIP_PADDING = 0.25
# Mouth and eye regions in the aligned chip, as fractions (top, bottom, left, right).
_MOUTH_BOX = (0.66, 0.94, 0.26, 0.74)
_EYES_BOX = (0.28, 0.48, 0.12, 0.88)
# Linking into tracks: a face continues the track whose last box centre is within this many box
# widths and whose identity is within `_TRACK_IDENTITY`.
_TRACK_MOVE = 1.0
_TRACK_IDENTITY = 0.6

IDENTITY_INTERVAL = 1.0
_HEADER = struct.Struct("<4sB16sII")
_FACE = struct.Struct(f"<IHB4H{IDENTITY_DIM}s{DESCRIPTOR}s{DESCRIPTOR}s")
_HAS_IDENTITY = 1


class FaceBlockMalformed(DomainError):
    status = 422

    def __init__(self, detail: str) -> None:
        super().__init__("fingerprint_malformed", f"face block: {detail}")


@dataclass(frozen=True)
class Face:
    """One face at one instant; `box` is normalised (x, y, w, h) of the whole frame."""

    t: float
    track: int
    box: tuple[float, float, float, float]
    # None at most instants: the ResNet costs ~0.1 s a face, so identity is taken about once a
    # second per face (`IDENTITY_INTERVAL`), the cheap mouth and eye descriptors at every instant.
    identity: np.ndarray | None
    mouth: np.ndarray
    eyes: np.ndarray


@dataclass(frozen=True)
class Faces:
    """The face channel of a clip: the instants looked at, and the faces found at them."""

    model: str
    instants: tuple[float, ...]
    faces: tuple[Face, ...]

    def at(self, t: float, tolerance: float) -> list[Face]:
        return [f for f in self.faces if abs(f.t - t) <= tolerance]

    def nearest_instants(self, t: float, count: int = 2) -> list[float]:
        """The `count` instants looked at closest to `t`."""
        return sorted(self.instants, key=lambda s: abs(s - t))[:count]

    def encode(self) -> bytes:
        parts = [_HEADER.pack(MAGIC, LAYOUT, self.model.encode("ascii"), len(self.instants), len(self.faces))]
        parts.append(struct.pack(f"<{len(self.instants)}I", *(round(t * 1000) for t in self.instants)))
        for face in self.faces:
            box = [min(65535, max(0, round(v * 65535))) for v in face.box]
            parts.append(
                _FACE.pack(
                    round(face.t * 1000),
                    face.track,
                    _HAS_IDENTITY if face.identity is not None else 0,
                    *box,
                    _quantise(face.identity if face.identity is not None else _NO_IDENTITY, _ID_SCALE),
                    _quantise(face.mouth, 1.0),
                    _quantise(face.eyes, 1.0),
                )
            )
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> Faces:
        if len(data) < _HEADER.size:
            raise FaceBlockMalformed("too short")
        magic, layout, model, instants, count = _HEADER.unpack_from(data)
        if magic != MAGIC or layout != LAYOUT:
            raise FaceBlockMalformed("unknown magic or layout")
        start = _HEADER.size
        end = start + 4 * instants
        if len(data) != end + count * _FACE.size:
            raise FaceBlockMalformed(f"length does not match {instants} instants and {count} faces")
        times = tuple(ms / 1000 for ms in struct.unpack_from(f"<{instants}I", data, start))
        faces = []
        for t_ms, track, flags, x, y, w, h, identity, mouth, eyes in _FACE.iter_unpack(data[end:]):
            faces.append(
                Face(
                    t=t_ms / 1000,
                    track=track,
                    box=(x / 65535, y / 65535, w / 65535, h / 65535),
                    identity=_dequantise(identity, _ID_SCALE) if flags & _HAS_IDENTITY else None,
                    mouth=_dequantise(mouth, 1.0),
                    eyes=_dequantise(eyes, 1.0),
                )
            )
        return cls(model=model.decode("ascii", "replace"), instants=times, faces=tuple(faces))


_NO_IDENTITY = np.zeros(IDENTITY_DIM, np.float32)


def _quantise(values: np.ndarray, scale: float) -> bytes:
    levels: npt.NDArray[np.float32] = np.rint(np.asarray(values, np.float32) * scale)
    return np.clip(levels, -127, 127).astype(np.int8).tobytes()


def _dequantise(data: bytes, scale: float) -> np.ndarray:
    return np.frombuffer(data, dtype=np.int8).astype(np.float32) / scale


def describe(models: FaceModels, t: float, rgb: np.ndarray, identity: bool = True) -> list[Face]:
    """Every frontal face in an upright RGB frame, with track 0 (tracks are linked later);
    with `identity`, each face's identity embedding too."""
    height, width = rgb.shape[:2]
    scale = min(DETECT_SIDE / min(height, width), DETECT_LONG_SIDE / max(height, width))
    small = cv2.resize(
        rgb,
        (max(1, round(width * scale)), max(1, round(height * scale))),
        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
    )
    # Landmarks and descriptors from the larger of the two pictures: the frame when it was
    # scaled down for detection, the scaled-up copy when the frame is small.
    source, factor = (np.ascontiguousarray(rgb), 1 / scale) if scale < 1 else (small, 1.0)
    source_h, source_w = source.shape[:2]
    found = []
    for box in models.detector(small, 0):
        rect = models.rectangle(
            box.left() * factor, box.top() * factor, box.right() * factor, box.bottom() * factor
        )
        x0, y0 = max(0, rect.left()), max(0, rect.top())
        x1, y1 = min(source_w, rect.right()), min(source_h, rect.bottom())
        if x1 <= x0 or y1 <= y0:
            continue
        shape = models.shape(source, rect)
        embedding = models.embedding(source, shape).astype(np.float32) if identity else None
        chip = np.asarray(models.dlib.get_face_chip(source, shape, size=CHIP, padding=_CHIP_PADDING))
        found.append(
            Face(
                t=round(t, 3),
                track=0,
                box=(x0 / source_w, y0 / source_h, (x1 - x0) / source_w, (y1 - y0) / source_h),
                identity=embedding,
                mouth=_thumb(chip, _MOUTH_BOX, MOUTH_SHAPE),
                eyes=_thumb(chip, _EYES_BOX, EYES_SHAPE),
            )
        )
    return found


def _thumb(
    chip: np.ndarray, region: tuple[float, float, float, float], shape: tuple[int, int]
) -> npt.NDArray[np.float32]:
    """A zero-mean, contrast-normalised grey thumbnail of a region of the aligned chip."""
    top, bottom, left, right = (round(v * CHIP) for v in region)
    grey = cv2.cvtColor(chip[top:bottom, left:right], cv2.COLOR_RGB2GRAY).astype(np.float32)
    small = cv2.resize(grey, (shape[1], shape[0]), interpolation=cv2.INTER_AREA).ravel()
    normalised: npt.NDArray[np.float32] = (
        (small - small.mean()) / max(float(small.std()), _THUMB_STD_FLOOR) * _THUMB_SCALE
    )
    return np.clip(normalised, -127, 127).astype(np.float32)


def link_tracks(faces: Sequence[Face]) -> tuple[Face, ...]:
    """Number faces by track: a face continues the nearest recent track of the same identity."""
    tracks: list[Face] = []  # the last face of each track, by track number
    linked = []
    for t in sorted({f.t for f in faces}):
        taken: set[int] = set()
        for face in sorted((f for f in faces if f.t == t), key=lambda f: -f.box[2] * f.box[3]):
            best, best_cost = None, float("inf")
            for number, last in enumerate(tracks):
                if number in taken:
                    continue
                move = _centre_distance(face.box, last.box) / max(last.box[2], 1e-6)
                same = (
                    identity_distance(face.identity, last.identity)
                    if face.identity is not None and last.identity is not None
                    else 0.0
                )
                if move <= _TRACK_MOVE and same <= _TRACK_IDENTITY and move + same < best_cost:
                    best, best_cost = number, move + same
            number = len(tracks) if best is None else best
            linked_face = Face(face.t, number, face.box, face.identity, face.mouth, face.eyes)
            if best is None:
                tracks.append(linked_face)
            else:
                # The track remembers its last known identity for the next comparison.
                identity = face.identity if face.identity is not None else tracks[number].identity
                tracks[number] = Face(face.t, number, face.box, identity, face.mouth, face.eyes)
            taken.add(number)
            linked.append(linked_face)
    return tuple(linked)


def _centre_distance(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    return float(np.hypot(a[0] + a[2] / 2 - b[0] - b[2] / 2, a[1] + a[3] / 2 - b[1] - b[3] / 2))


def identity_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of two identity embeddings: dlib calls 0.6 the same-person boundary."""
    return float(np.linalg.norm(a - b))


def thumb_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two normalised thumbnails (0: the same pattern; ~40: unrelated)."""
    return float(np.abs(a - b).mean())


class FaceCollector:
    """Describes the faces of frames as a fingerprint samples them, then links them into tracks.

    Identity is taken at the first instant, then whenever `IDENTITY_INTERVAL` has passed since it
    was last taken, and whenever the number of faces changes (someone new may have appeared).
    """

    def __init__(self, models: FaceModels | None = None, fps: float | None = None) -> None:
        self.models = models or face_models()
        # Looks at every frame it is given, or at the first at or after each k / fps.
        self.fps = fps
        self.instants: list[float] = []
        self.found: list[Face] = []
        self._identity_at = -float("inf")
        self._count = -1
        self._next_k = 0

    def add(self, t: float, rgb: np.ndarray) -> None:
        if self.fps is not None:
            if t + 1e-6 < self._next_k / self.fps:
                return
            self._next_k = int(t * self.fps + 1e-6) + 1
        self.instants.append(round(t, 3))
        due = t - self._identity_at >= IDENTITY_INTERVAL - 1e-3
        faces = describe(self.models, t, rgb, identity=due)
        if not due and len(faces) != self._count and faces:
            faces = describe(self.models, t, rgb, identity=True)
            due = True
        if due and faces:
            self._identity_at = t
        self._count = len(faces)
        self.found.extend(faces)

    def faces(self) -> Faces:
        return Faces(self.models.version, tuple(self.instants), link_tracks(self.found))
