"""Aligned faces of the two identities, from what ships offline or from what the user points at.

Identity A is the person in the target video (the carphone talking head by default); identity B
is the face to insert (the astronaut portrait by default). A single portrait is "animated" into
many training faces with random pose, scale and lighting, so decoder B sees B from more than one
view. Faces are stored with context (`MARGIN` pixels on every side of the 64×64 canonical crop)
for the random views of training.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from generator.faces import Face, align, detect_faces, landmarks_from_eyes, track_faces
from generator.variants import iter_frames

SIZE = 64
MARGIN = 8
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
# Fewer faces than this from images: animate them until there are this many.
MIN_FACES = 200


def astronaut() -> np.ndarray:
    """scikit-image's astronaut portrait (RGB, 512×512): the default identity B."""
    from skimage import data

    return np.asarray(data.astronaut())


def _digest(parts: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()


def image_key(images: Sequence[np.ndarray]) -> str:
    """Identity of a set of images by their pixels (so a lossless copy keeps its key), any order."""
    return _digest(sorted(hashlib.sha256(str(im.shape).encode() + im.tobytes()).digest() for im in images))


def file_key(path: Path) -> str:
    """Identity of a file by its bytes (SHA-256, hex)."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_image(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def source_images(source: Path) -> list[Path]:
    """Image files of a folder (sorted), or the file itself when it is an image."""
    if source.is_dir():
        return sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return [source] if source.suffix.lower() in IMAGE_SUFFIXES else []


def source_key(source: Path) -> str:
    """What a trained model's identity is tied to: the pixels of the images, or the video's bytes."""
    images = source_images(source)
    if images:
        return image_key([read_image(p) for p in images])
    if source.is_dir():
        raise ValueError(f"{source} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return file_key(source)


def _whole_image_face(rgb: np.ndarray) -> Face:
    """For a crop with no detectable face: assume the face fills it, as in the usual face crops."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    x, y = (w - side) / 2, (h - side) / 2
    left, right = (x + 0.315 * side, y + 0.385 * side), (x + 0.685 * side, y + 0.385 * side)
    box = (round(x), round(y), side, side)
    return Face(box=box, eyes=(left, right), landmarks=landmarks_from_eyes(left, right), eye_source="box")


def faces_from_frames(frames: Sequence[np.ndarray], *, size: int = SIZE, margin: int = MARGIN) -> np.ndarray:
    """Aligned faces (N, size + 2·margin, same, 3) of the tracked person in consecutive frames."""
    tracked = track_faces(frames)
    out = [
        align(rgb, face, size, margin=margin)[0] for rgb, face in zip(frames, tracked, strict=True) if face
    ]
    return np.stack(out) if out else np.zeros((0, size + 2 * margin, size + 2 * margin, 3), np.uint8)


def faces_from_video(
    path: Path, *, max_frames: int = 300, size: int = SIZE, margin: int = MARGIN
) -> np.ndarray:
    """Aligned faces from up to `max_frames` evenly spaced frames of a video."""
    frames = [rgb for _, rgb in iter_frames(path)]
    if len(frames) > max_frames:
        picks = np.linspace(0, len(frames) - 1, max_frames).round().astype(int)
        frames = [frames[i] for i in picks]
    return faces_from_frames(frames, size=size, margin=margin)


def _random_affine(rng: np.random.Generator, centre: tuple[float, float]) -> np.ndarray:
    angle = rng.uniform(-14, 14)
    scale = rng.uniform(0.88, 1.12)
    matrix = cv2.getRotationMatrix2D(centre, angle, scale)
    return matrix


def _relight(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lighting change: exposure, contrast, a colour cast, gamma, sometimes a side light or blur."""
    x = rgb.astype(np.float32) / 255
    x = (x - 0.5) * rng.uniform(0.75, 1.25) + 0.5 + rng.uniform(-0.12, 0.12)
    x = x * rng.uniform(0.9, 1.1, size=3).astype(np.float32)
    if rng.random() < 0.5:
        side = x.shape[1]
        x = x + np.linspace(-1, 1, side, dtype=np.float32)[None, :, None] * np.float32(
            rng.uniform(-0.15, 0.15)
        )
    lit: np.ndarray = np.clip(x, 0, 1) ** np.float32(rng.uniform(0.8, 1.25))
    if rng.random() < 0.3:
        lit = cv2.GaussianBlur(lit, (3, 3), rng.uniform(0.3, 1.0))
    lit = lit + rng.normal(0, 0.01, lit.shape).astype(np.float32)
    relit: npt.NDArray[np.uint8] = np.clip(lit * 255, 0, 255).round().astype(np.uint8)
    return relit


def animate(
    rgb: np.ndarray,
    face: Face,
    count: int,
    rng: np.random.Generator,
    *,
    size: int = SIZE,
    margin: int = MARGIN,
) -> list[np.ndarray]:
    """`count` aligned faces of one portrait under random head roll, scale, shift and lighting.

    The image is moved with a known affine, so the face is not detected again: its eyes are
    moved by the same affine (exact, and cheap).
    """
    out: list[np.ndarray] = []
    h, w = rgb.shape[:2]
    eye_d = float(np.hypot(*np.subtract(face.eyes[1], face.eyes[0])))
    centre = tuple(float(v) for v in np.mean(face.eyes, axis=0))
    for _ in range(count):
        matrix = _random_affine(rng, (centre[0], centre[1]))
        matrix[:, 2] += rng.uniform(-0.15, 0.15, size=2) * eye_d
        moved = cv2.warpAffine(rgb, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        eyes = [tuple(float(v) for v in matrix @ np.array([*p, 1.0])) for p in face.eyes]
        left, right = (eyes[0][0], eyes[0][1]), (eyes[1][0], eyes[1][1])
        # Small jitter of the eye estimate: detection on video is never exact either.
        left = (left[0] + rng.normal(0, 0.02 * eye_d), left[1] + rng.normal(0, 0.02 * eye_d))
        right = (right[0] + rng.normal(0, 0.02 * eye_d), right[1] + rng.normal(0, 0.02 * eye_d))
        moved_face = Face(
            box=face.box,
            eyes=(left, right),
            landmarks=landmarks_from_eyes(left, right),
            eye_source="detected",
        )
        aligned = align(moved, moved_face, size, margin=margin)[0]
        out.append(_relight(aligned, rng))
    return out


def faces_from_images(
    images: Sequence[np.ndarray],
    *,
    min_faces: int = MIN_FACES,
    seed: int = 0,
    size: int = SIZE,
    margin: int = MARGIN,
) -> np.ndarray:
    """Aligned faces of portraits (the largest face each, or the whole crop when none is found),
    animated until there are at least `min_faces`."""
    found = []
    for rgb in images:
        faces = detect_faces(rgb)
        found.append((rgb, faces[0] if faces else _whole_image_face(rgb)))
    if not found:
        raise ValueError("no images to take faces from")
    out = [align(rgb, face, size, margin=margin)[0] for rgb, face in found]
    rng = np.random.default_rng(seed)
    k = 0
    while len(out) < min_faces:
        rgb, face = found[k % len(found)]
        out.extend(animate(rgb, face, 1, rng, size=size, margin=margin))
        k += 1
    return np.stack(out)


def load_faces(source: Path, *, seed: int = 0, max_frames: int = 300) -> np.ndarray:
    """Aligned faces with context from a folder of images, one image, or a video."""
    images = source_images(source)
    if images:
        return faces_from_images([read_image(p) for p in images], seed=seed)
    if source.is_dir():
        raise ValueError(f"{source} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    faces = faces_from_video(source, max_frames=max_frames)
    if len(faces) == 0:
        raise ValueError(f"no face found in {source}")
    return faces


def astronaut_faces(*, seed: int = 0, count: int = MIN_FACES) -> np.ndarray:
    """The default identity B: the astronaut portrait animated into `count` aligned faces."""
    return faces_from_images([astronaut()], min_faces=count, seed=seed)


def write_astronaut(folder: Path) -> Path:
    """A source folder holding the astronaut portrait: the default identity B as a path.

    Its key equals the default weights' source key, so `generate_swap` uses them as they are.
    """
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "astronaut.png"), cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))
    return folder
