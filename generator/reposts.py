"""Reposts of a source video: the forms in which phones and platforms pass an authentic clip on.

Every repost is one `Reframe` applied to each frame, in this order: mirror, rotate (about the
centre, zoomed so the corners stay inside the picture or not), crop a window of the result, and
place that picture on a canvas (alone, inside a blurred copy of itself, a solid colour, another
video, or a video player's window with its moving controls: a screen recording). The output is
H.264 like every variant (`generator.variants`); `repost` returns the `VariantTruth` and
`Reframe.box` maps a box of the source onto the output, so a tamper made before the repost keeps
its truth (`reposted_tamper`).

`FORMS` names the forms the evaluation draws, each from a seeded generator so that a form's
parameters (crop width and offset, scale, angle, colours) vary from one source to the next but
are the same on every run. This module never imports `provenance`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from generator import tampers
from generator.variants import VariantTruth, VideoWriter, iter_frames, read_clip, stream_fps

Fill = Literal["none", "blurred", "solid", "video", "player"]
Box = tuple[float, float, float, float]
# The longest side of a made canvas: enough detail for a 32x32 thumbnail of a picture at half scale.
CANVAS_SIDE = 720


@dataclass(frozen=True)
class Reframe:
    """What a repost does to each frame (see the module docstring); boxes are normalised [x, y, w, h].

    `window` is the part of the (mirrored, rotated) source kept; `canvas` the output aspect
    (width / height, None: the window's own); `picture` where the window goes on the canvas;
    `fill` what is around it (`colour` for a solid fill, `other` for a video behind it).
    """

    mirror: bool = False
    degrees: float = 0.0
    zoom: bool = True  # rotation zoomed so no corner shows (else the whole picture, corners black)
    window: Box = (0.0, 0.0, 1.0, 1.0)
    canvas: float | None = None
    picture: Box = (0.0, 0.0, 1.0, 1.0)
    fill: Fill = "none"
    colour: tuple[int, int, int] = (235, 235, 235)
    seed: int = 0

    def describe(self) -> str:
        parts = []
        if self.mirror:
            parts.append("mirror")
        if self.degrees:
            parts.append(f"rotate {self.degrees:+.1f} deg{'' if self.zoom else ' framed'}")
        if self.window != (0.0, 0.0, 1.0, 1.0):
            parts.append("crop [" + ", ".join(f"{v:.2f}" for v in self.window) + "]")
        if self.fill != "none":
            parts.append(f"{self.fill} fill, picture [" + ", ".join(f"{v:.2f}" for v in self.picture) + "]")
        return "; ".join(parts) or "unchanged"

    def rotation_scale(self, aspect: float) -> float:
        """Zoom of the rotation: >= 1 so no corner shows, or <= 1 so the whole picture does."""
        a = math.radians(abs(self.degrees))
        cos, sin = math.cos(a), math.sin(a)
        if self.zoom:
            # The rotated, zoomed picture must cover the frame: its inscribed rectangle grows by this.
            return max(cos + sin / aspect, cos + sin * aspect)
        return 1.0 / max(cos + sin * aspect, cos + sin / aspect)

    def box(self, box: Box, aspect: float) -> list[float]:
        """A source box (normalised) as seen on the output: its bounding box, clipped to the picture."""
        x, y, w, h = box
        corners = np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h]], dtype=np.float64)
        if self.mirror:
            corners[:, 0] = 1 - corners[:, 0]
        if self.degrees:
            scale = self.rotation_scale(aspect)
            a = math.radians(self.degrees)
            ux = (corners[:, 0] - 0.5) * aspect
            uy = corners[:, 1] - 0.5
            # cv2.getRotationMatrix2D turns anticlockwise on screen for positive angles.
            rx = (math.cos(a) * ux + math.sin(a) * uy) * scale
            ry = (-math.sin(a) * ux + math.cos(a) * uy) * scale
            corners = np.stack([rx / aspect + 0.5, ry + 0.5], axis=1)
        wx, wy, ww, wh = self.window
        corners = (corners - [wx, wy]) / [ww, wh]
        corners = np.clip(corners, 0, 1)
        px, py, pw, ph = self.picture
        corners = corners * [pw, ph] + [px, py]
        x0, y0 = corners.min(axis=0)
        x1, y1 = corners.max(axis=0)
        return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def _rotate(rgb: np.ndarray, degrees: float, scale: float) -> np.ndarray:
    height, width = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, scale)
    return np.asarray(
        cv2.warpAffine(rgb, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    )


def _window(rgb: np.ndarray, window: Box) -> np.ndarray:
    height, width = rgb.shape[:2]
    x, y, w, h = window
    x0, y0 = round(x * width), round(y * height)
    x1, y1 = max(x0 + 2, round((x + w) * width)), max(y0 + 2, round((y + h) * height))
    return rgb[y0:y1, x0:x1]


class _Player:
    """A video player's window drawn around the picture: bars, text, a progress bar that advances,
    a clock, a moving cursor and a side column of comments that scrolls (the moving UI)."""

    def __init__(self, width: int, height: int, picture: tuple[int, int, int, int], seed: int) -> None:
        self.width, self.height = width, height
        self.picture = picture
        rng = np.random.default_rng(seed)
        self.dark = bool(rng.integers(2))
        self.accent = tuple(int(c) for c in rng.integers(60, 230, size=3))
        self.cards = [tuple(int(c) for c in rng.integers(30, 220, size=3)) for _ in range(8)]
        self.path = rng.uniform(0, 2 * math.pi, size=4)
        self.words = ["news", "clip", "live", "replay", "watch", "share", "today", "breaking", "update"]

    def draw(self, picture: np.ndarray, k: int, t: float, duration: float) -> np.ndarray:
        back = (18, 18, 20) if self.dark else (244, 244, 246)
        ink = (230, 230, 230) if self.dark else (30, 30, 30)
        canvas = np.full((self.height, self.width, 3), back, np.uint8)
        x0, y0, x1, y1 = self.picture
        canvas[y0:y1, x0:x1] = cv2.resize(picture, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
        font = cv2.FONT_HERSHEY_SIMPLEX
        small = max(0.3, self.height / 1400)
        # Top bar: a logo, a search box.
        bar = max(12, y0 // 2)
        cv2.rectangle(canvas, (8, 4), (8 + 3 * bar, bar), self.accent, -1)
        cv2.rectangle(canvas, (self.width // 3, 4), (2 * self.width // 3, bar), (90, 90, 90), 1)
        cv2.putText(canvas, "Search", (self.width // 3 + 6, bar - 4), font, small, (120, 120, 120), 1)
        # Controls under the picture: progress (advancing), play button, clock.
        # Drawn under the picture, never over it: controls laid over the picture are an overlay,
        # another repost form (the overlay findings), not this one.
        line = y1 + 8
        if line + 6 < self.height:
            done = x0 + round((x1 - x0) * min(1.0, t / max(duration, 1e-6)))
            cv2.line(canvas, (x0, line), (x1, line), (110, 110, 110), 3)
            cv2.line(canvas, (x0, line), (done, line), self.accent, 3)
            cv2.circle(canvas, (done, line), 5, self.accent, -1)
        clock = f"{int(t) // 60}:{int(t) % 60:02d} / {int(duration) // 60}:{int(duration) % 60:02d}"
        if line + 18 < self.height:
            cv2.putText(canvas, clock, (x0 + 28, line + 16), font, small, ink, 1)
            play = np.array([[x0 + 6, line + 6], [x0 + 6, line + 18], [x0 + 18, line + 12]], np.int32)
            cv2.fillPoly(canvas, [play], ink)
        # The side column: cards and comments scrolling up a line a second.
        room = max(self.width - x1, x0)
        if room > 60:
            left = x1 + 12 if self.width - x1 >= x0 else 8
            step = max(18, (self.height - y0) // 8)
            shift = int((t * step) % step)
            for row in range(-1, 9):
                top = y0 + row * step - shift
                if top < y0 or top + step - 4 > self.height:
                    continue
                colour = self.cards[(row + int(t)) % len(self.cards)]
                cv2.rectangle(canvas, (left, top), (left + step, top + step - 6), colour, -1)
                word = self.words[(row + int(t)) % len(self.words)]
                text = (left + step + 6, top + step // 2)
                cv2.putText(canvas, f"{word} {row + int(t)}", text, font, small, ink, 1)
        # The cursor wanders over the window's chrome (over the picture it would be an overlay).
        a, b, c, d = self.path
        cx = int(self.width * (0.5 + 0.4 * math.sin(0.7 * t + a) * math.cos(0.3 * t + b)))
        cy = int(self.height * (0.5 + 0.4 * math.sin(0.5 * t + c + d)))
        if x0 - 14 <= cx <= x1 + 2 and y0 - 21 <= cy <= y1 + 2:
            gaps = {
                "left": x0 - 16,
                "right": self.width - x1 - 16,
                "top": y0 - 22,
                "bottom": self.height - y1 - 22,
            }
            side = max(gaps, key=lambda k: gaps[k])
            if side == "left":
                cx = max(0, x0 - 16)
            elif side == "right":
                cx = min(self.width - 12, x1 + 4)
            elif side == "top":
                cy = max(0, y0 - 22)
            else:
                cy = min(self.height - 20, y1 + 4)
        arrow = np.array(
            [
                [cx, cy],
                [cx, cy + 16],
                [cx + 4, cy + 12],
                [cx + 8, cy + 19],
                [cx + 10, cy + 18],
                [cx + 7, cy + 11],
                [cx + 12, cy + 11],
            ],
            np.int32,
        )
        cv2.fillPoly(canvas, [arrow], (255, 255, 255))
        cv2.polylines(canvas, [arrow], True, (0, 0, 0), 1)
        return canvas


def repost(src: Path, dst: Path, reframe: Reframe, other: Path | None = None) -> VariantTruth:
    """Write `src` reposted as `reframe` says (a video behind it needs `other`)."""
    fps = stream_fps(src)
    frames = list(iter_frames(src))
    if not frames:
        raise ValueError(f"{src} has no video frames")
    height, width = frames[0][1].shape[:2]
    aspect = width / height
    duration = len(frames) / float(fps)
    window_aspect = aspect * reframe.window[2] / reframe.window[3]
    canvas_aspect = reframe.canvas or window_aspect
    side = min(CANVAS_SIDE, max(width, height))
    if canvas_aspect >= 1:
        out_w, out_h = _even(side), _even(side / canvas_aspect)
    else:
        out_w, out_h = _even(side * canvas_aspect), _even(side)
    px, py, pw, ph = reframe.picture
    rect = (round(px * out_w), round(py * out_h), round((px + pw) * out_w), round((py + ph) * out_h))
    behind: list[np.ndarray] = []
    if reframe.fill == "video":
        if other is None:
            raise ValueError("a picture over another video needs `other`")
        clip = read_clip(other, until=duration + 1.0, size=(out_w, out_h))
        behind = [clip.frames[clip.index_at(k / float(fps))] for k in range(len(frames))]
    player = _Player(out_w, out_h, rect, reframe.seed) if reframe.fill == "player" else None
    scale = reframe.rotation_scale(aspect) if reframe.degrees else 1.0
    with VideoWriter(dst, out_w, out_h, fps) as writer:
        for k, (t, rgb) in enumerate(frames):
            if reframe.mirror:
                rgb = np.ascontiguousarray(rgb[:, ::-1])
            if reframe.degrees:
                rgb = _rotate(rgb, reframe.degrees, scale)
            picture = _window(rgb, reframe.window)
            if player is not None:
                writer.write(player.draw(picture, k, t, duration))
                continue
            x0, y0, x1, y1 = rect
            inner = cv2.resize(picture, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
            if reframe.fill == "none":
                writer.write(inner)
                continue
            if reframe.fill == "blurred":
                # The picture itself, zoomed to cover the canvas, blurred (at an eighth of the size,
                # for speed) and dimmed.
                small = cv2.resize(picture, (max(2, picture.shape[1] // 8), max(2, picture.shape[0] // 8)))
                small = cv2.GaussianBlur(small, (0, 0), max(1.0, small.shape[1] / 30))
                cover = max(out_w / picture.shape[1], out_h / picture.shape[0])
                size = (math.ceil(picture.shape[1] * cover), math.ceil(picture.shape[0] * cover))
                big = cv2.resize(small, size, interpolation=cv2.INTER_LINEAR)
                oy, ox = (big.shape[0] - out_h) // 2, (big.shape[1] - out_w) // 2
                canvas = big[oy : oy + out_h, ox : ox + out_w]
                canvas = (canvas.astype(np.float32) * 0.7).astype(np.uint8)
            elif reframe.fill == "solid":
                canvas = np.full((out_h, out_w, 3), reframe.colour, np.uint8)
            else:
                canvas = behind[k].copy()
                cv2.rectangle(canvas, (x0 - 2, y0 - 2), (x1 + 1, y1 + 1), (250, 250, 250), 2)
            canvas[y0:y1, x0:x1] = inner
            writer.write(canvas)
    return VariantTruth(original_range=(0.0, len(frames) / float(fps)), transform=reframe.describe())


def reposted_tamper(
    edit: Callable[[Path], tampers.TamperTruth],
    src: Path,
    dst: Path,
    reframe: Reframe,
    other: Path | None = None,
) -> tampers.TamperTruth:
    """A tamper (`edit` writes it to the path it is given) reposted as `reframe`: regions follow it."""
    edited = dst.with_name(f"{dst.stem}-edited{dst.suffix}")
    try:
        truth = edit(edited)
        width, height = read_clip(edited, until=0.05).size
        repost(edited, dst, reframe, other)
    finally:
        edited.unlink(missing_ok=True)
    regions = [reframe.box((r[0], r[1], r[2], r[3]), width / height) for r in truth.regions]
    return replace(truth, regions=regions, kind=f"{truth.kind}, then {reframe.describe()}")


def _rng(seed: int, form: str) -> np.random.Generator:
    return np.random.default_rng([seed, *form.encode()])


def _crop(rng: np.random.Generator, centred: bool, narrowest: float = 0.4) -> Box:
    """A vertical-video crop: full height, `narrowest`..0.6 of the width, centred or off to one side."""
    width = float(rng.uniform(narrowest, 0.6))
    if centred:
        x = (1 - width) / 2
    else:
        side = float(rng.uniform(0.0, 0.35 * (1 - width)))
        x = side if rng.integers(2) else 1 - width - side
    return (x, 0.0, width, 1.0)


def _inside(rng: np.random.Generator, scale_range: tuple[float, float], aspect: float) -> Box:
    """A picture of width scale_range (fraction of the canvas) somewhere on a 16:9 canvas."""
    scale = float(rng.uniform(*scale_range))
    height = min(1.0, scale * (16 / 9) / aspect)
    x = float(rng.uniform(0.02, max(0.02, 1 - scale - 0.02)))
    y = float(rng.uniform(0.08, max(0.08, 1 - height - 0.1)))
    return (min(x, 1 - scale), min(y, 1 - height), scale, height)


def form(name: str, seed: int, aspect: float) -> Reframe:
    """The `Reframe` of form `name` for a source of `aspect` (width / height), drawn from `seed`."""
    rng = _rng(seed, name)
    vertical = 9 / 16
    if name == "crop_centre":
        return Reframe(window=_crop(rng, centred=True), seed=seed)
    if name == "crop_offcentre":
        return Reframe(window=_crop(rng, centred=False), seed=seed)
    if name in ("fill_blurred", "fill_solid"):
        # The whole picture across a vertical canvas (or a little inside it), the rest filled.
        scale = float(rng.uniform(0.85, 1.0))
        height = min(1.0, scale * vertical / aspect)
        picture = ((1 - scale) / 2, (1 - height) / 2, scale, height)
        r, g, b = (int(c) for c in rng.integers(150, 256, size=3))
        fill: Fill = "blurred" if name == "fill_blurred" else "solid"
        return Reframe(canvas=vertical, picture=picture, fill=fill, colour=(r, g, b), seed=seed)
    if name == "screen_recording":
        return Reframe(canvas=16 / 9, picture=_inside(rng, (0.5, 0.9), aspect), fill="player", seed=seed)
    if name == "picture_in_picture":
        return Reframe(canvas=16 / 9, picture=_inside(rng, (0.5, 0.9), aspect), fill="video", seed=seed)
    if name in ("rotate", "rotate_framed"):
        degrees = float(rng.uniform(2.0, 5.0)) * (1 if rng.integers(2) else -1)
        return Reframe(degrees=degrees, zoom=name == "rotate", seed=seed)
    if name == "mirror":
        return Reframe(mirror=True, seed=seed)
    if name == "mirror_crop":
        return Reframe(mirror=True, window=_crop(rng, centred=False, narrowest=0.5), seed=seed)
    if name == "mirror_fill_blurred":
        return replace(form("fill_blurred", seed, aspect), mirror=True)
    raise KeyError(f"no repost form called {name}")


FORMS = (
    "crop_centre",
    "crop_offcentre",
    "fill_blurred",
    "fill_solid",
    "screen_recording",
    "picture_in_picture",
    "rotate",
    "rotate_framed",
    "mirror",
    "mirror_crop",
    "mirror_fill_blurred",
)


def aspect_of(src: Path) -> float:
    """Width / height of a video's first frame."""
    _, rgb = next(iter_frames(src))
    return float(rgb.shape[1] / rgb.shape[0])


def make(name: str, src: Path, other: Path, dst: Path, seed: int) -> VariantTruth:
    """Repost `src` as form `name` (drawn from `seed`) into `dst`."""
    return repost(src, dst, form(name, seed, aspect_of(src)), other)
