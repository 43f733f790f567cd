"""Benign variants of a source video: what a newsroom's copy of an authentic clip may look like.

Every function decodes `src` with PyAV, transforms the frames with numpy/OpenCV and writes `dst`
as H.264 (libx264, yuv420p, even dimensions, a fast preset), and returns `VariantTruth`: which
seconds of the source the output shows. The verifier must call all of these `authentic`.

Also the shared reading/writing helpers `tampers` builds on. This package never imports
`provenance`: the generator stays an independent adversary of the verifier.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np

DEFAULT_PRESET = "ultrafast"
DEFAULT_CRF = 20
# Used when a stream declares no frame rate.
_FALLBACK_FPS = Fraction(25)

FrameFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class VariantTruth:
    """Ground truth of a benign variant: the source seconds [start, end) the output shows."""

    original_range: tuple[float, float]
    transform: str


@dataclass(frozen=True)
class Clip:
    """A decoded clip held in memory: upright RGB frames with their times in seconds."""

    frames: list[np.ndarray]
    times: list[float]
    fps: Fraction

    @property
    def duration(self) -> float:
        return len(self.frames) / float(self.fps)

    @property
    def size(self) -> tuple[int, int]:
        height, width = self.frames[0].shape[:2]
        return width, height

    def index_at(self, t: float) -> int:
        """Index of the frame shown at time `t` (the last one starting at or before it)."""
        i = int(np.searchsorted(np.asarray(self.times), t + 1e-6, side="right")) - 1
        return min(max(i, 0), len(self.frames) - 1)


def iter_frames(src: Path) -> Iterator[tuple[float, np.ndarray]]:
    """Every frame of the first video stream as (seconds from the stream start, RGB)."""
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start: int | None = None
        time_base = stream.time_base or Fraction(1, 90000)
        step = 1 / float(stream.average_rate or _FALLBACK_FPS)
        last = -step
        for frame in container.decode(stream):
            if frame.pts is None:
                t = last + step
            else:
                start = frame.pts if start is None else start
                t = float((frame.pts - start) * time_base)
            last = t
            yield t, frame.to_ndarray(format="rgb24")


def stream_fps(src: Path) -> Fraction:
    with av.open(str(src)) as container:
        rate = container.streams.video[0].average_rate
    return Fraction(rate) if rate else _FALLBACK_FPS


def read_clip(src: Path, until: float | None = None, size: tuple[int, int] | None = None) -> Clip:
    """Decode `src` (up to `until` seconds), resized to `size` if given; clips here are seconds long."""
    times: list[float] = []
    frames: list[np.ndarray] = []
    for t, rgb in iter_frames(src):
        if until is not None and t >= until:
            break
        times.append(t)
        if size is not None and (rgb.shape[1], rgb.shape[0]) != size:
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        frames.append(rgb)
    if not frames:
        raise ValueError(f"{src} has no video frames")
    return Clip(frames=frames, times=times, fps=stream_fps(src))


def even_size(width: int, height: int) -> tuple[int, int]:
    """yuv420p needs even dimensions: round down, never below 2."""
    return max(2, width - width % 2), max(2, height - height % 2)


class VideoWriter:
    """H.264 writer at a constant frame rate; frame k is shown at k / fps."""

    def __init__(
        self,
        dst: Path,
        width: int,
        height: int,
        fps: Fraction,
        *,
        crf: int | None = DEFAULT_CRF,
        bitrate: int | None = None,
        preset: str = DEFAULT_PRESET,
    ) -> None:
        self.width, self.height = even_size(width, height)
        self.container = av.open(str(dst), mode="w")
        self.stream = self.container.add_stream("libx264", rate=fps)
        self.stream.width = self.width
        self.stream.height = self.height
        self.stream.pix_fmt = "yuv420p"
        options: dict[str, object] = {"preset": preset}
        if bitrate is not None:
            self.stream.bit_rate = bitrate
        elif crf is not None:
            options["crf"] = str(crf)
        self.stream.options = options
        self.count = 0

    def write(self, rgb: np.ndarray) -> None:
        height, width = rgb.shape[:2]
        if (width, height) != (self.width, self.height):
            rgb = cv2.resize(rgb, (self.width, self.height), interpolation=cv2.INTER_AREA)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb, dtype=np.uint8), format="rgb24")
        frame.pts = self.count
        self.count += 1
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        self.container.mux(self.stream.encode(None))
        self.container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.container.close()


def write_clip(
    dst: Path,
    frames: list[np.ndarray],
    fps: Fraction,
    *,
    crf: int | None = DEFAULT_CRF,
    bitrate: int | None = None,
) -> None:
    height, width = frames[0].shape[:2]
    with VideoWriter(dst, width, height, fps, crf=crf, bitrate=bitrate) as writer:
        for rgb in frames:
            writer.write(rgb)


def _map_frames(
    src: Path,
    dst: Path,
    fn: FrameFn,
    transform: str,
    *,
    crf: int | None = DEFAULT_CRF,
    bitrate: int | None = None,
    preset: str = DEFAULT_PRESET,
) -> VariantTruth:
    """Stream `src` through a per-frame function into `dst` at the source frame rate."""
    fps = stream_fps(src)
    writer: VideoWriter | None = None
    try:
        for _, rgb in iter_frames(src):
            out = fn(rgb)
            if writer is None:
                writer = VideoWriter(
                    dst, out.shape[1], out.shape[0], fps, crf=crf, bitrate=bitrate, preset=preset
                )
            writer.write(out)
    except BaseException:
        if writer is not None:
            writer.container.close()
        raise
    if writer is None:
        raise ValueError(f"{src} has no video frames")
    writer.close()
    return VariantTruth(original_range=(0.0, writer.count / float(fps)), transform=transform)


def reencode(
    src: Path,
    dst: Path,
    *,
    crf: int | None = None,
    bitrate: int | None = None,
    preset: str = DEFAULT_PRESET,
) -> VariantTruth:
    """Re-encode unchanged, at a constant quality (`crf`) or a target `bitrate` in bits/s."""
    if crf is None and bitrate is None:
        crf = 32
    return _map_frames(src, dst, lambda rgb: rgb, "reencode", crf=crf, bitrate=bitrate, preset=preset)


def downscale(src: Path, dst: Path, factor: float = 0.5) -> VariantTruth:
    if not 0 < factor <= 1:
        raise ValueError(f"factor is in (0, 1], not {factor}")

    def fn(rgb: np.ndarray) -> np.ndarray:
        height, width = rgb.shape[:2]
        size = even_size(round(width * factor), round(height * factor))
        return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)

    return _map_frames(src, dst, fn, f"downscale {factor:g}")


def _pad(rgb: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    return cv2.copyMakeBorder(rgb, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(0, 0, 0))


def letterbox(src: Path, dst: Path, aspect: float = 4 / 3) -> VariantTruth:
    """Black bars above and below, so the picture fills a taller `aspect` (width/height) frame."""

    def fn(rgb: np.ndarray) -> np.ndarray:
        height, width = rgb.shape[:2]
        target = max(height + 2, round(width / aspect))
        bar = (target - height) // 2
        return _pad(rgb, bar, target - height - bar, 0, 0)

    return _map_frames(src, dst, fn, "letterbox")


def pillarbox(src: Path, dst: Path, bar_fraction: float = 1 / 6) -> VariantTruth:
    """Black bars left and right, each `bar_fraction` of the source width."""

    def fn(rgb: np.ndarray) -> np.ndarray:
        bar = max(2, round(rgb.shape[1] * bar_fraction))
        return _pad(rgb, 0, 0, bar, bar)

    return _map_frames(src, dst, fn, "pillarbox")


def crop(src: Path, dst: Path, fraction: float = 0.10) -> VariantTruth:
    """Centre crop that removes `fraction` of the width and of the height (half on each side)."""
    if not 0 <= fraction < 0.5:
        raise ValueError(f"fraction is in [0, 0.5), not {fraction}")

    def fn(rgb: np.ndarray) -> np.ndarray:
        height, width = rgb.shape[:2]
        dx, dy = round(width * fraction / 2), round(height * fraction / 2)
        return rgb[dy : height - dy, dx : width - dx]

    return _map_frames(src, dst, fn, f"crop {fraction:g}")


def adjust_colour(rgb: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    """Brightness adds `brightness`*255, contrast scales about mid-grey, saturation about grey."""
    grey = cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    saturated = cv2.addWeighted(rgb, 1 + saturation, grey, -saturation, 0)
    levels = (np.arange(256, dtype=np.float32) - 128) * (1 + contrast) + 128 + brightness * 255
    lut = np.clip(np.rint(levels), 0, 255).astype(np.uint8)
    return cv2.LUT(saturated, lut)


def colour(
    src: Path, dst: Path, brightness: float = 0.1, contrast: float = 0.1, saturation: float = 0.1
) -> VariantTruth:
    """A colour grade: each argument is a signed fraction (0.1 = +10%)."""
    return _map_frames(
        src,
        dst,
        lambda rgb: adjust_colour(rgb, brightness, contrast, saturation),
        f"colour b{brightness:+g} c{contrast:+g} s{saturation:+g}",
    )


def subclip(src: Path, dst: Path, start: float, end: float) -> VariantTruth:
    """The source seconds [start, end), re-timed to start at 0."""
    if not 0 <= start < end:
        raise ValueError(f"need 0 <= start < end, not {start}, {end}")
    fps = stream_fps(src)
    frames = [rgb for t, rgb in iter_frames(src) if start - 1e-6 <= t < end - 1e-6]
    if not frames:
        raise ValueError(f"{src} has no frames in [{start}, {end})")
    write_clip(dst, frames, fps)
    return VariantTruth(original_range=(start, start + len(frames) / float(fps)), transform="subclip")


def change_fps(src: Path, dst: Path, fps: float) -> VariantTruth:
    """Resample to a new constant rate, showing at each output time the source frame of that time."""
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be positive, not {fps}")
    clip = read_clip(src)
    rate = Fraction(fps).limit_denominator(1001)
    count = max(1, math.floor(clip.duration * float(rate) + 1e-6))
    frames = [clip.frames[clip.index_at(k / float(rate))] for k in range(count)]
    write_clip(dst, frames, rate)
    return VariantTruth(original_range=(0.0, count / float(rate)), transform=f"fps {fps:g}")


def reencode_image(src: Path, dst: Path, *, quality: int = 60, scale: float = 1.0) -> VariantTruth:
    """A photo re-saved as JPEG at a lower `quality`, optionally resized by `scale`."""
    bgr = cv2.imread(str(src), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read the image {src}")
    if scale != 1.0:
        height, width = bgr.shape[:2]
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    if not cv2.imwrite(str(dst), bgr, [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise ValueError(f"cannot write {dst}")
    return VariantTruth(original_range=(0.0, 0.0), transform=f"jpeg q{quality} x{scale:g}")
