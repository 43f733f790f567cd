"""Scenes made offline from the photos that ship with scikit-image: more footage to repost.

The real clips we can ship are three (`frames.samples`); the repost evaluation needs more
sources, and sources it never tuned on. `make_scene` turns one photo into a short 16:9 H.264
clip: a slow camera (pan and zoom along a smooth random path over the photo), a gentle lighting
drift, and two objects crossing the picture (a disc and a bar in saturated colours), so the clip
moves like footage, not a slide. Everything is drawn from a seed: the same call writes the same
clip.
"""

from __future__ import annotations

import importlib.util
import math
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from generator.variants import VideoWriter

# Photos of scikit-image (public domain or its own), by scene name.
PHOTOS = {
    "coffee": "coffee.png",
    "motorcycle": "motorcycle_left.png",
    "chelsea": "chelsea.png",
    "rocket": "rocket.jpg",
    "astronaut": "astronaut.png",
    "hubble": "hubble_deep_field.jpg",
    "ihc": "ihc.png",
}


def photo(name: str) -> np.ndarray:
    """The RGB photo of scene `name` (FileNotFoundError when scikit-image is not installed)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-image is not installed: it carries the photos")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / PHOTOS[name]
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(path)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def make_scene(
    name: str,
    dst: Path,
    *,
    seconds: float = 6.0,
    fps: int = 25,
    size: tuple[int, int] = (640, 360),
    seed: int = 0,
) -> Path:
    """Write scene `name` (a photo of `PHOTOS`) as a moving 16:9 clip at `dst`; returns `dst`."""
    image = photo(name)
    rng = np.random.default_rng([seed, *name.encode()])
    width, height = size
    ih, iw = image.shape[:2]
    count = round(seconds * fps)
    # The camera: the view covers `zoom` of the largest 16:9 window of the photo, its centre drifting.
    base = min(iw / width, ih / height)
    zoom = 0.75 + 0.1 * np.sin(np.linspace(0, rng.uniform(1.0, 2.5), count) + rng.uniform(0, math.pi))
    drift = rng.uniform(-1, 1, size=(2,)) * 0.12
    phase = rng.uniform(0, 2 * math.pi, size=(2,))
    colours = [tuple(int(c) for c in rng.integers(0, 256, size=3)) for _ in range(2)]
    speeds = rng.uniform(0.6, 1.2, size=2) * (width / seconds)
    lanes = rng.uniform(0.25, 0.75, size=2) * height
    with VideoWriter(dst, width, height, Fraction(fps)) as writer:
        for k in range(count):
            u = k / max(1, count - 1)
            view_w, view_h = width * base * zoom[k], height * base * zoom[k]
            cx = iw / 2 + (iw - view_w) / 2 * (drift[0] * 4 * (u - 0.5) + 0.3 * math.sin(2 * u + phase[0]))
            cy = ih / 2 + (ih - view_h) / 2 * (drift[1] * 4 * (u - 0.5) + 0.3 * math.sin(3 * u + phase[1]))
            scale = width / view_w
            matrix = np.array(
                [[scale, 0, width / 2 - scale * cx], [0, scale, height / 2 - scale * cy]], dtype=np.float64
            )
            frame = cv2.warpAffine(
                image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
            )
            gain = 1.0 + 0.06 * math.sin(2 * math.pi * u + phase[0])
            frame = np.clip(frame.astype(np.float32) * gain, 0, 255).astype(np.uint8)
            t = k / fps
            x0 = int((speeds[0] * t) % (width + 80)) - 40
            cv2.circle(frame, (x0, int(lanes[0])), max(8, height // 14), colours[0], -1, cv2.LINE_AA)
            x1 = width - int((speeds[1] * t) % (width + 120)) + 60
            y1 = int(lanes[1])
            cv2.rectangle(frame, (x1 - 50, y1 - 10), (x1 + 50, y1 + 10), colours[1], -1, cv2.LINE_AA)
            writer.write(frame)
    return dst
