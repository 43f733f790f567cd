"""Classic tampers of a source video, each with its ground truth in seconds (and regions) of the output.

The edits themselves are written once, on arrays (`paste`, `blend`, `inpaint`, `recolour`,
`texture_patch`): the file-level tampers here apply them to a decoded clip, and the detector's
in-memory training and evaluation segments (`detector.data`) apply the same functions to the
frames it samples. `generator.attacks` is the catalogue of what can be made, by name.

Every file-level function writes a new H.264 video with PyAV (see `generator.variants`) and returns
`TamperTruth`: the output seconds that were altered and, for spatial edits, the altered box as
normalised ``[x, y, w, h]`` of the output frame. The evaluation flow scores the verifier's
`tampered_ranges` and regions against these. A removal leaves nothing to point at but the cut, so
its range is the zero-length ``(cut, cut)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from generator.variants import Clip, read_clip, write_clip

Box = tuple[float, float, float, float]
PatchKind = Literal["texture", "solid", "frame"]


@dataclass(frozen=True)
class TamperTruth:
    """Altered output seconds ``(start, end)`` and altered regions (normalised ``[x, y, w, h]``).

    `measures` carries what a generator measured of its own fake (e.g. how close a face swap's
    PDQ hashes stayed to the original's), for the evaluation to report beside detection.
    """

    ranges: list[tuple[float, float]]
    regions: list[list[float]] = field(default_factory=list)
    kind: str = ""
    measures: dict[str, float] = field(default_factory=dict)


class NotApplicable(Exception):
    """This fake cannot be made of this original (e.g. a face swap of a clip without a face).

    The evaluation records the message as the reason it skipped the attack.
    """


def _check_box(box: Box) -> None:
    x, y, w, h = box
    if not (min(x, y) >= 0 and w > 0 and h > 0 and x + w <= 1 and y + h <= 1):
        raise ValueError(f"box must be normalised [x, y, w, h] inside the frame, not {box}")


def _pixel_box(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    x0, y0 = round(box[0] * width), round(box[1] * height)
    x1, y1 = round((box[0] + box[2]) * width), round((box[1] + box[3]) * height)
    return x0, y0, max(x0 + 1, x1), max(y0 + 1, y1)


def texture_patch(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A blotchy, saturated texture: unlike natural footage in shape, contrast and colour."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, size=(max(2, height // 12), max(2, width // 12), 3), dtype=np.uint8)
    patch = cv2.resize(cells, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(patch)


PixelBox = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels


def blend(frame: np.ndarray, content: np.ndarray, mask: np.ndarray) -> npt.NDArray[np.uint8]:
    """`content` over `frame` through a float mask (H, W, 0..1): a feathered edit."""
    alpha = mask[:, :, None]
    blended: npt.NDArray[np.uint8] = (
        alpha * content.astype(np.float32) + (1 - alpha) * frame.astype(np.float32)
    ).astype(np.uint8)
    return blended


def paste(frame: np.ndarray, box: PixelBox, patch: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """A copy of `frame` with `patch` (box-sized RGB) over `box`; through `mask` when given.

    A texture, a solid colour, a foreign object or a region of the same picture (copy-move) are
    all this edit with another patch.
    """
    x0, y0, x1, y1 = box
    out = frame.copy()
    out[y0:y1, x0:x1] = patch
    return out if mask is None else blend(frame, out, mask)


def inpaint(
    frame: np.ndarray, hole: np.ndarray, radius: int, box: PixelBox | None = None, margin: int = 8
) -> np.ndarray:
    """`frame` with `hole` (uint8, 255 where erased) filled from its surroundings (OpenCV's Telea).

    Inpainting only looks a few pixels around the hole: with the hole's `box`, only the box and
    `margin` pixels around it are worked on (much faster on a large frame).
    """
    if box is None:
        return np.asarray(cv2.inpaint(frame, hole, radius, cv2.INPAINT_TELEA))
    height, width = frame.shape[:2]
    x0, y0, x1, y1 = box
    ra, rb = max(0, y0 - margin), min(height, y1 + margin)
    ca, cb = max(0, x0 - margin), min(width, x1 + margin)
    out = frame.copy()
    out[ra:rb, ca:cb] = cv2.inpaint(
        np.ascontiguousarray(frame[ra:rb, ca:cb]), hole[ra:rb, ca:cb], radius, cv2.INPAINT_TELEA
    )
    return out


def recolour(
    frame: np.ndarray,
    hue_shift: float,
    saturation: float,
    value: float = 1.0,
    *,
    min_saturation: float = 0.0,
    saturation_lift: float = 0.0,
) -> np.ndarray:
    """The whole frame with its hue turned by `hue_shift` (OpenCV's 0..179 hue) and its saturation
    scaled (after raising it to `min_saturation`, then adding `saturation_lift`), value by `value`.
    """
    hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[:, :, 0] = (hsv[:, :, 0] + hue_shift) % 180
    hsv[:, :, 1] = np.clip(np.maximum(hsv[:, :, 1], min_saturation) * saturation + saturation_lift, 0, 255)
    if value != 1.0:
        hsv[:, :, 2] = np.clip(hsv[:, :, 2] * value, 0, 255)
    return np.asarray(cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB))


def _frame_range(clip: Clip, start: float, duration: float) -> range:
    """Indexes of the frames shown in [start, start + duration)."""
    if start < 0 or duration <= 0:
        raise ValueError(f"need start >= 0 and duration > 0, not {start}, {duration}")
    first = next((i for i, t in enumerate(clip.times) if t >= start - 1e-6), len(clip.times))
    last = next((i for i, t in enumerate(clip.times) if t >= start + duration - 1e-6), len(clip.times))
    if first >= last:
        raise ValueError(f"no frames in [{start}, {start + duration}) of a {clip.duration:.2f} s clip")
    return range(first, last)


def _span(indexes: range, fps: float) -> tuple[float, float]:
    """Output seconds covered by frames `indexes` of a constant-rate output."""
    return indexes.start / fps, indexes.stop / fps


def paste_region(
    src: Path,
    dst: Path,
    start: float = 3.0,
    duration: float = 2.0,
    box: Box = (0.3, 0.3, 0.3, 0.35),
    *,
    patch: PatchKind = "texture",
    seed: int = 0,
) -> TamperTruth:
    """Paste a patch over `box` for `duration` seconds from `start`.

    `patch`: a random texture, a solid colour, or ("frame") the same box from a frame a few
    seconds away in the same clip, the copy-move edit that hides or duplicates an object.
    """

    def patched(clip: Clip, i: int, pixels: PixelBox) -> np.ndarray:
        x0, y0, x1, y1 = pixels
        if patch == "frame":
            shift = max(1, round(float(clip.fps) * (duration + 1.0)))
            content = clip.frames[(i + shift) % len(clip.frames)][y0:y1, x0:x1]
        elif patch == "texture":
            content = texture_patch(x1 - x0, y1 - y0, seed)
        else:
            content = np.full((y1 - y0, x1 - x0, 3), (200, 40, 160), np.uint8)
        return paste(clip.frames[i], pixels, content)

    region, span = _edit_box(src, dst, start, duration, box, patched)
    return TamperTruth(ranges=[span], regions=[region], kind=f"paste {patch}")


def _edit_box(
    src: Path,
    dst: Path,
    start: float,
    duration: float,
    box: Box,
    edit: Callable[[Clip, int, PixelBox], np.ndarray],
) -> tuple[list[float], tuple[float, float]]:
    """Edit the `box` pixels of every frame in [start, start + duration); (region, span).

    `edit(clip, i, pixels)` returns frame i edited; only its `box` pixels are kept.
    """
    _check_box(box)
    clip = read_clip(src)
    width, height = clip.size
    pixels = x0, y0, x1, y1 = _pixel_box(box, width, height)
    indexes = _frame_range(clip, start, duration)
    frames = list(clip.frames)
    for i in indexes:
        frames[i] = paste(frames[i], pixels, edit(clip, i, pixels)[y0:y1, x0:x1])
    write_clip(dst, frames, clip.fps)
    region = [x0 / width, y0 / height, (x1 - x0) / width, (y1 - y0) / height]
    return region, _span(indexes, float(clip.fps))


def inpaint_region(
    src: Path,
    dst: Path,
    start: float = 3.0,
    duration: float = 2.0,
    box: Box = (0.3, 0.3, 0.3, 0.35),
    *,
    radius: int = 5,
) -> TamperTruth:
    """Erase what is inside `box` by inpainting it from its surroundings (object removal).

    OpenCV's Telea inpainting fills the box from the pixels around it, frame by frame: the edit
    that makes a person or a sign disappear without a visible patch.
    """

    def erase(clip: Clip, i: int, pixels: PixelBox) -> np.ndarray:
        frame = clip.frames[i]
        x0, y0, x1, y1 = pixels
        hole = np.zeros(frame.shape[:2], np.uint8)
        hole[y0:y1, x0:x1] = 255
        return inpaint(frame, hole, radius, pixels, margin=2 * radius)

    region, span = _edit_box(src, dst, start, duration, box, erase)
    return TamperTruth(ranges=[span], regions=[region], kind="inpaint")


def recolour_region(
    src: Path,
    dst: Path,
    start: float = 3.0,
    duration: float = 2.0,
    box: Box = (0.3, 0.3, 0.3, 0.35),
    *,
    hue_shift: int = 60,
    saturation: float = 1.6,
) -> TamperTruth:
    """Change the colour of what is inside `box` (a red car made blue): hue turned, saturation raised.

    Unlike the benign `variants.colour`, which grades the whole frame, this changes one object, so
    brightness and structure stay and only the colour says something else.
    """

    def turn(clip: Clip, i: int, pixels: PixelBox) -> np.ndarray:
        return recolour(clip.frames[i], hue_shift, saturation, min_saturation=60)

    region, span = _edit_box(src, dst, start, duration, box, turn)
    return TamperTruth(ranges=[span], regions=[region], kind="recolour")


def _other_frames(other: Path, count: int, fps: float, width: int, height: int) -> list[np.ndarray]:
    """`count` frames of `other` from its start, re-timed to `fps` and resized to fill the frame."""
    clip = read_clip(other, until=count / fps + 1.0, size=(width, height))
    return [clip.frames[clip.index_at(k / fps)] for k in range(count)]


def replace_range(
    src: Path, other: Path, dst: Path, start: float = 3.0, duration: float = 2.0
) -> TamperTruth:
    """Replace `duration` seconds from `start` with the beginning of another clip (a splice)."""
    clip = read_clip(src)
    width, height = clip.size
    indexes = _frame_range(clip, start, duration)
    fps = float(clip.fps)
    frames = list(clip.frames)
    frames[indexes.start : indexes.stop] = _other_frames(other, len(indexes), fps, width, height)
    write_clip(dst, frames, clip.fps)
    return TamperTruth(ranges=[_span(indexes, fps)], kind="replace")


def remove_range(src: Path, dst: Path, start: float = 4.0, duration: float = 2.0) -> TamperTruth:
    """Cut `duration` seconds out from `start`; the truth is the cut point in the output."""
    clip = read_clip(src)
    indexes = _frame_range(clip, start, duration)
    frames = clip.frames[: indexes.start] + clip.frames[indexes.stop :]
    if not frames:
        raise ValueError("removing the whole clip leaves nothing to write")
    write_clip(dst, frames, clip.fps)
    cut = indexes.start / float(clip.fps)
    return TamperTruth(ranges=[(cut, cut)], kind="remove")


def insert_frames(src: Path, other: Path, dst: Path, at: float = 4.0, duration: float = 2.0) -> TamperTruth:
    """Insert `duration` seconds of another clip at `at` seconds, pushing the rest later."""
    if duration <= 0:
        raise ValueError(f"duration must be positive, not {duration}")
    clip = read_clip(src)
    width, height = clip.size
    fps = float(clip.fps)
    cut = next((i for i, t in enumerate(clip.times) if t >= at - 1e-6), len(clip.times))
    count = max(1, round(duration * fps))
    inserted = _other_frames(other, count, fps, width, height)
    write_clip(dst, clip.frames[:cut] + inserted + clip.frames[cut:], clip.fps)
    return TamperTruth(ranges=[(cut / fps, (cut + count) / fps)], kind="insert")


def paste_region_image(
    src: Path, dst: Path, box: Box = (0.3, 0.3, 0.3, 0.3), *, quality: int = 92, seed: int = 0
) -> TamperTruth:
    """Paste a texture over `box` of a photo and save it as JPEG."""
    _check_box(box)
    bgr = cv2.imread(str(src), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read the image {src}")
    height, width = bgr.shape[:2]
    x0, y0, x1, y1 = _pixel_box(box, width, height)
    bgr[y0:y1, x0:x1] = texture_patch(x1 - x0, y1 - y0, seed)[:, :, ::-1]
    if not cv2.imwrite(str(dst), bgr, [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise ValueError(f"cannot write {dst}")
    region = [x0 / width, y0 / height, (x1 - x0) / width, (y1 - y0) / height]
    return TamperTruth(ranges=[(0.0, 0.0)], regions=[region], kind="paste image")
