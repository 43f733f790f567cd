"""Conversion: redraw the face in every frame of a video as the other identity, and paste it back.

Per frame: track and align the face, encode it, decode it with the other identity's decoder,
move the drawn face's colours to the frame's (Reinhard transfer in Lab, so the skin matches the
scene's lighting), blend through the learned mask times an ellipse with feathered edges, and
warp it back. The output keeps the source's frame rate, size and frame count; `SwapResult` says
which frames changed and where (the box of pixels the blend mask touched), for scoring the
verifier's localisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import torch

from generator.faces import Face, align, face_oval, paste_back, track_faces
from generator.swap.augment import to_tensor, to_uint8
from generator.swap.model import Identity, SwapModel
from generator.tampers import TamperTruth
from generator.variants import DEFAULT_CRF, VideoWriter, read_clip

# Pasted-mask values below this leave the frame's pixels as they were (after 8-bit rounding).
_TOUCH = 1 / 255


@dataclass(frozen=True)
class SwapResult:
    """What `swap_video` wrote and its per-frame ground truth.

    `changed[k]` says whether output frame k shows a swapped face and `regions[k]` is then the
    normalised [x, y, w, h] of the pixels it altered (None otherwise); `face_boxes[k]` is the
    tracked face's detection box, normalised the same way. `trained` and `metrics`
    tell whether `generate_swap` had to train and how that went.
    """

    path: Path
    fps: Fraction
    width: int
    height: int
    changed: list[bool]
    regions: list[list[float] | None]
    face_boxes: list[list[float] | None] = field(default_factory=list)
    trained: bool = False
    weights: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def frame_count(self) -> int:
        return len(self.changed)

    @property
    def times(self) -> list[float]:
        """Start of each output frame in seconds (the output has a constant frame rate)."""
        return [k / float(self.fps) for k in range(self.frame_count)]

    @property
    def ranges(self) -> list[tuple[float, float]]:
        """Seconds [start, end) of the output covered by swapped frames, runs merged."""
        spans: list[tuple[float, float]] = []
        step = 1 / float(self.fps)
        for k, hit in enumerate(self.changed):
            if not hit:
                continue
            if spans and abs(spans[-1][1] - k * step) < 1e-9:
                spans[-1] = (spans[-1][0], (k + 1) * step)
            else:
                spans.append((k * step, (k + 1) * step))
        return spans

    @property
    def region(self) -> list[float] | None:
        """The union of all frames' regions (normalised [x, y, w, h])."""
        boxes = [r for r in self.regions if r is not None]
        if not boxes:
            return None
        x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
        return [x0, y0, x1 - x0, y1 - y0]

    def truth(self) -> TamperTruth:
        """The same ground truth in the shape `generator.tampers` gives for classic tampers."""
        region = self.region
        return TamperTruth(ranges=self.ranges, regions=[region] if region else [], kind="face_swap")


def blend_mask(learned: np.ndarray, *, feather: float = 0.06) -> np.ndarray:
    """Learned mask × face oval, shrunk and blurred so the pasted face fades in without a seam."""
    size = learned.shape[0]
    hard = np.clip(learned, 0, 1).astype(np.float32) * face_oval(size)
    radius = max(1, round(feather * size))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    shrunk = cv2.erode(hard, kernel)
    soft = cv2.GaussianBlur(shrunk, (0, 0), sigmaX=radius / 1.5)
    return np.clip(soft, 0, 1)


def reinhard_transfer(
    source: np.ndarray, target: np.ndarray, region: np.ndarray | None = None
) -> npt.NDArray[np.uint8]:
    """`source` (RGB uint8) with the Lab means and deviations of `target` (Reinhard et al. 2001).

    Statistics are taken over `region` (boolean) of both images when given: the face, not the
    background behind it.
    """
    src = cv2.cvtColor(source.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    tgt = cv2.cvtColor(target.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    sel = region if region is not None and region.sum() >= 16 else np.ones(source.shape[:2], bool)
    s_mean, s_std = src[sel].mean(axis=0), src[sel].std(axis=0) + 1e-3
    t_mean, t_std = tgt[sel].mean(axis=0), tgt[sel].std(axis=0) + 1e-3
    moved = (src - s_mean) * (t_std / s_std) + t_mean
    moved[..., 0] = np.clip(moved[..., 0], 0, 100)
    rgb = cv2.cvtColor(moved.astype(np.float32), cv2.COLOR_LAB2RGB)
    moved_rgb: npt.NDArray[np.uint8] = np.clip(rgb * 255, 0, 255).round().astype(np.uint8)
    return moved_rgb


def _region(mask: np.ndarray, matrix: np.ndarray, width: int, height: int) -> list[float] | None:
    """Normalised box of the frame pixels the pasted mask touches."""
    ys, xs = np.nonzero(mask > _TOUCH)
    if len(xs) == 0:
        return None
    # The corners of every touched pixel.
    pts = np.stack([xs - 0.5, ys - 0.5, np.ones_like(xs, dtype=np.float64)], axis=1)
    corners = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=np.float64)
    pts = (pts[None] + corners[:, None]).reshape(-1, 3)
    mapped = pts @ cv2.invertAffineTransform(matrix).T
    x0, y0 = max(0.0, float(np.floor(mapped[:, 0].min()))), max(0.0, float(np.floor(mapped[:, 1].min())))
    x1 = min(float(width), float(np.ceil(mapped[:, 0].max())))
    y1 = min(float(height), float(np.ceil(mapped[:, 1].max())))
    if x1 <= x0 or y1 <= y0:
        return None
    return [x0 / width, y0 / height, (x1 - x0) / width, (y1 - y0) / height]


@torch.no_grad()
def draw_faces(
    model: SwapModel, aligned: list[np.ndarray], identity: Identity, batch: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """(RGB faces uint8 (N, S, S, 3), masks float (N, S, S)) of aligned faces drawn as `identity`."""
    model.eval()
    size = model.config.size
    rgbs: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    for start in range(0, len(aligned), batch):
        x = to_tensor(np.stack(aligned[start : start + batch]))
        rgb, mask = model(x, identity)
        rgbs.append(to_uint8(rgb))
        masks.append(mask[:, 0].numpy())
    if not rgbs:
        return np.zeros((0, size, size, 3), np.uint8), np.zeros((0, size, size), np.float32)
    return np.concatenate(rgbs), np.concatenate(masks)


def swap_frames(
    model: SwapModel,
    frames: list[np.ndarray],
    faces: list[Face | None],
    *,
    identity: Identity = "b",
) -> tuple[list[np.ndarray], list[list[float] | None]]:
    """Frames with the tracked face redrawn as `identity`, and each frame's altered region."""
    size = model.config.size
    slots = [(k, align(frames[k], face, size)) for k, face in enumerate(faces) if face is not None]
    drawn, learned = draw_faces(model, [a for _, (a, _) in slots], identity)
    out = list(frames)
    regions: list[list[float] | None] = [None] * len(frames)
    height, width = frames[0].shape[:2]
    for (k, (target_face, matrix)), rgb, mask in zip(slots, drawn, learned, strict=True):
        blend = blend_mask(mask)
        recoloured = reinhard_transfer(rgb, target_face, blend > 0.5)
        out[k] = paste_back(frames[k], recoloured, matrix, blend)
        regions[k] = _region(blend, matrix, width, height)
    return out, regions


def swap_video(
    model: SwapModel,
    target_video: Path,
    out_path: Path,
    *,
    identity: Identity = "b",
    crf: int | None = DEFAULT_CRF,
    progress: bool = True,
    faces: list[Face | None] | None = None,
) -> SwapResult:
    """Write `target_video` with its face redrawn by `identity`'s decoder (B: the inserted face).

    `faces` is the face track of the video's frames when the caller has it already (tracking
    costs more than the conversion itself).
    """
    clip = read_clip(target_video)
    frames = clip.frames
    if faces is None:
        faces = track_faces(frames, progress=progress)
    elif len(faces) != len(frames):
        raise ValueError(f"{len(faces)} tracked faces for {len(frames)} frames of {target_video}")
    swapped, regions = swap_frames(model, frames, faces, identity=identity)
    width, height = clip.size
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(out_path, width, height, clip.fps, crf=crf) as writer:
        for rgb in swapped:
            writer.write(rgb)
    return SwapResult(
        path=out_path,
        fps=clip.fps,
        width=writer.width,
        height=writer.height,
        changed=[r is not None for r in regions],
        regions=regions,
        face_boxes=[
            f.normalised_box(width, height) if f and r else None for f, r in zip(faces, regions, strict=True)
        ],
    )
