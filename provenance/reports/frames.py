"""Frames for a report: a handful decoded at chosen moments, heat maps of what changed, legends.

Everything here is bounded. The clip's stills come from the verification's own decode: a
`FrameStore` keeps at most `GRAB_MAX_FRAMES` of the fingerprinted frames, as display-size JPEGs,
so the report never decodes the upload again. Only an uploaded original is decoded (once, within
the service's `DecodeLimits`, at most `GRAB_MAX_FRAMES` frames converted). Images put into a
report are at most `DISPLAY_MAX_SIDE` pixels on their longer side.

The heat maps are the fingerprint comparer's view of one frame pair: the per-cell scores of
`PdqGridComparer` (8x8 cells over the letterbox-stripped picture, in 8-bit luma levels, tampered
above `CELL_THRESHOLD`), with the verdict's regions for the segment outlined on top. They need no
original media: the original's side comes from its registered fingerprint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from matplotlib import colormaps

from frames.bars import content_box
from provenance.core.config import DecodeLimits
from provenance.fingerprint import ANALYSIS_MAX_SIDE, Fingerprint, FrameHash
from provenance.media import SampledFrame, open_media
from provenance.verify import thumbs
from provenance.verify.compare import CELL_THRESHOLD, PdqGridComparer

# The densest sampling used to find frames at chosen moments, and the most frames converted.
GRAB_FPS = 8.0
GRAB_MAX_FRAMES = 240
DISPLAY_MAX_SIDE = 480
JPEG_QUALITY = 82
HEAT_COLORMAP = "YlOrRd"
# Cell scores are shown on a scale where the tamper threshold sits in the middle.
HEAT_FULL_SCALE = 2 * CELL_THRESHOLD

Box = tuple[int, int, int, int]  # top, bottom, left, right


@dataclass(frozen=True)
class Image:
    """An encoded image for the report, with what a reader who cannot see it needs to know."""

    name: str
    mime: str
    data: bytes
    width: int
    height: int
    alt: str


@dataclass(frozen=True)
class KeptFrame:
    """A still of the clip as its verification decoded it: display-size JPEG and content box."""

    t: float
    jpeg: bytes
    width: int
    height: int
    box: Box  # the picture inside any bars, in display pixels

    def rgb(self) -> np.ndarray:
        bgr = cv2.imdecode(np.frombuffer(self.jpeg, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:  # our own encoding: cannot happen unless memory is corrupt
            raise ValueError("a kept still does not decode")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class FrameStore:
    """The clip's stills for its report, kept during the verification's one decode (a `FrameSink`).

    Bounded whatever the clip's length: past `max_frames` every other still is dropped and the
    spacing doubles, so the stills stay spread over the whole clip.
    """

    def __init__(self, max_frames: int = GRAB_MAX_FRAMES) -> None:
        self.max_frames = max_frames
        self.frames: list[KeptFrame] = []
        self._spacing = 0.0

    def add(self, t: float, rgb: np.ndarray) -> None:
        if self.frames and t - self.frames[-1].t < self._spacing - 1e-6:
            return
        shown = fit(rgb)
        box = scaled_box(content_box(rgb), rgb, shown)
        ok, data = cv2.imencode(
            ".jpg", cv2.cvtColor(shown, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        )
        if not ok:
            return
        self.frames.append(KeptFrame(float(t), data.tobytes(), shown.shape[1], shown.shape[0], box))
        if len(self.frames) > self.max_frames:
            self.frames = self.frames[::2]
            self._spacing = max(self._spacing * 2, self.frames[1].t - self.frames[0].t)

    def nearest(self, t: float) -> KeptFrame | None:
        return min(self.frames, key=lambda f: abs(f.t - t)) if self.frames else None


def grab_frames(path: Path, times: Sequence[float], limits: DecodeLimits) -> list[SampledFrame | None]:
    """The decoded frame nearest each of `times` of an original, at analysis size.

    One bounded pass over the file: sampling at up to `GRAB_FPS` (fewer for long clips, so at
    most `GRAB_MAX_FRAMES` frames are converted), stopping once every moment is behind us.
    """
    if not times:
        return []
    best: list[SampledFrame | None] = [None] * len(times)
    with open_media(path, limits) as media:
        duration = media.info.duration
        fps = GRAB_FPS if duration <= 0 else min(GRAB_FPS, max(GRAB_MAX_FRAMES / duration, 0.01))
        stop_after = max(times) + 1.0 / fps
        for count, frame in enumerate(media.sample(fps=fps, max_side=ANALYSIS_MAX_SIDE), start=1):
            for k, t in enumerate(times):
                current = best[k]
                if current is None or abs(frame.t - t) < abs(current.t - t):
                    best[k] = frame
            if frame.t > stop_after or count >= GRAB_MAX_FRAMES:
                break
    return best


def nearest_frame(fingerprint: Fingerprint, t: float) -> FrameHash | None:
    """The fingerprint's frame closest in time to `t`."""
    if not fingerprint.frames:
        return None
    return min(fingerprint.frames, key=lambda f: abs(f.t - t))


def cell_scores(query: FrameHash, original: FrameHash) -> np.ndarray:
    """(8, 8) per-cell scores of one frame pair, in 8-bit luma levels (see `PdqGridComparer`)."""
    return np.asarray(PdqGridComparer().cell_scores([query], [original]), dtype=np.float32)


def region_scores(regions: Sequence[Sequence[float]], cells: int = 8) -> np.ndarray:
    """(cells, cells) scores drawn from the verdict's own regions: a cell a region covers (more than
    half) reads "clearly changed" (`HEAT_FULL_SCALE`), every other cell "same". The heat map of a
    comparer that gives regions but no per-cell score, so that map, outline and verdict agree."""
    scores = np.zeros((cells, cells), dtype=np.float32)
    for x, y, w, h in regions:
        for row in range(cells):
            for col in range(cells):
                across = max(0.0, min(x + w, (col + 1) / cells) - max(x, col / cells))
                down = max(0.0, min(y + h, (row + 1) / cells) - max(y, row / cells))
                if across * down * cells * cells > 0.5:
                    scores[row, col] = HEAT_FULL_SCALE
    return scores


def fit(rgb: np.ndarray, max_side: int = DISPLAY_MAX_SIDE) -> np.ndarray:
    """Downscale (never upscale) so the longer side is at most `max_side`."""
    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale >= 1.0:
        return np.ascontiguousarray(rgb)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def scaled_box(box: Box, source: np.ndarray, target: np.ndarray) -> Box:
    """`box` of `source` mapped onto `target`, a resized copy of it."""
    sy = target.shape[0] / source.shape[0]
    sx = target.shape[1] / source.shape[1]
    top, bottom, left, right = box
    return round(top * sy), round(bottom * sy), round(left * sx), round(right * sx)


def encode_jpeg(name: str, rgb: np.ndarray, alt: str) -> Image:
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise ValueError(f"cannot encode {name}")
    return Image(name, "image/jpeg", data.tobytes(), rgb.shape[1], rgb.shape[0], alt)


def encode_png(name: str, rgb: np.ndarray, alt: str) -> Image:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"cannot encode {name}")
    return Image(name, "image/png", data.tobytes(), rgb.shape[1], rgb.shape[0], alt)


def heat_colours(levels: np.ndarray) -> np.ndarray:
    """RGB float colours (0..255) of heat levels in 0..1."""
    cmap = colormaps[HEAT_COLORMAP]
    return np.asarray(cmap(np.clip(levels, 0.0, 1.0)), dtype=np.float32)[..., :3] * 255


def heat_levels(scores: np.ndarray) -> np.ndarray:
    """Scores on the heat scale: 0 same, 0.5 the tamper threshold, 1 twice it or more."""
    return np.clip(scores / HEAT_FULL_SCALE, 0.0, 1.0)


def _outline(image: np.ndarray, top: int, bottom: int, left: int, right: int) -> None:
    """A rectangle that shows on light and dark pictures alike: black, with white inside."""
    cv2.rectangle(image, (left, top), (right - 1, bottom - 1), (0, 0, 0), 4)
    cv2.rectangle(image, (left + 1, top + 1), (right - 2, bottom - 2), (255, 255, 255), 2)


def mark_regions(rgb: np.ndarray, box: Box, regions: Sequence[Sequence[float]]) -> np.ndarray:
    """A copy of a display frame with the normalised `regions` of its content `box` outlined."""
    out = np.ascontiguousarray(rgb.copy())
    top, bottom, left, right = box
    width, height = right - left, bottom - top
    for x, y, w, h in regions:
        _outline(
            out,
            top + round(y * height),
            top + max(round((y + h) * height), round(y * height) + 2),
            left + round(x * width),
            left + max(round((x + w) * width), round(x * width) + 2),
        )
    return out


def heatmap(
    rgb: np.ndarray, box: Box, scores: np.ndarray | None, regions: Sequence[Sequence[float]]
) -> np.ndarray:
    """A display frame dimmed to grey, the cell scores laid over its content box, regions outlined."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) * 0.6 + 30
    out = np.repeat(grey[..., None], 3, axis=2)
    top, bottom, left, right = box
    if scores is not None and bottom > top and right > left:
        size = (right - left, bottom - top)
        levels = heat_levels(scores)
        colours = cv2.resize(heat_colours(levels), size, interpolation=cv2.INTER_NEAREST)
        alpha = cv2.resize(0.06 + 0.74 * levels.astype(np.float32), size, interpolation=cv2.INTER_NEAREST)
        area = out[top:bottom, left:right]
        out[top:bottom, left:right] = area * (1 - alpha[..., None]) + colours * alpha[..., None]
    return mark_regions(np.clip(out, 0, 255).astype(np.uint8), box, regions)


def coarse_original(frame: FrameHash, width: int, height: int) -> np.ndarray:
    """What the registered fingerprint holds of an original frame: its 32x32 luma, blown up."""
    luma = np.clip(thumbs.luma_thumbnails([frame])[0], 0, 255).astype(np.uint8)
    big = cv2.resize(luma, (max(1, width), max(1, height)), interpolation=cv2.INTER_NEAREST)
    return np.repeat(big[..., None], 3, axis=2)


def legend_bar(width: int = 240, height: int = 14) -> npt.NDArray[np.uint8]:
    """The heat scale as an RGB strip: same (left), threshold (middle), clearly changed (right)."""
    levels = np.linspace(0.0, 1.0, width, dtype=np.float32)
    alpha = 0.06 + 0.74 * levels
    grey = 110.0  # the dimmed picture's mid-grey under the overlay
    row = grey * (1 - alpha[:, None]) + heat_colours(levels) * alpha[:, None]
    strip = np.repeat(row[None], height, axis=0)
    strip[:, width // 2 - 1 : width // 2 + 1] = 0  # the threshold
    legend: npt.NDArray[np.uint8] = np.clip(strip, 0, 255).astype(np.uint8)
    return legend


def describe_box(x: float, y: float, w: float, h: float) -> str:
    """Where a normalised box lies, in words a reader can check against the picture."""
    cx, cy = x + w / 2, y + h / 2
    vertical = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else "middle"
    horizontal = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "centre"
    place = "centre" if (vertical, horizontal) == ("middle", "centre") else f"{vertical} {horizontal}"
    across = f"x {x * 100:.0f}–{(x + w) * 100:.0f} %"
    down = f"y {y * 100:.0f}–{(y + h) * 100:.0f} %"
    return f"{place} ({across}, {down} of the picture)"
