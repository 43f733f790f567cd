"""Face-swapped segments from `generator.swap` as negatives (training) and as an attack (evaluation).

The shipped swap model (`generator/weights/swap.pt`, trained by `python -m generator.train`)
knows two identities: A, the carphone talking head, and B, the astronaut. The two uses are kept
apart so the evaluation measures swaps the comparer never trained on:

- training: the astronaut's training takes (`data.train_footage`) with the face redrawn as A;
- evaluation: the carphone clip with its face redrawn as B, the generator's own evaluation fake.

Each swapped footage is rendered once at `RENDER_FPS` (face tracking needs consecutive frames);
its truth is the pixels the swap changed visibly, not the face box, so cell labels say which
cells a swap altered. The detector may import `generator` (never `provenance`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detector import data, evalset

# The 4 fps instants segments are sampled at (track_faces on the rendered takes is the slow part).
RENDER_FPS = 4.0
# An 8-bit change above this (any channel) counts as altered; closing fills the face's flat parts.
_ALTERED_LEVEL = 6
TRAIN_PICTURE = "astronaut"
EVAL_VIDEO = "carphone_pristine.mp4"


def weights_file() -> Path:
    from generator.swap import DEFAULT_WEIGHTS

    return Path(DEFAULT_WEIGHTS)


def available(path: Path | None = None) -> bool:
    """Whether swap weights exist (the detector trains without swaps until they do)."""
    return (path or weights_file()).is_file()


@dataclass
class SwappedFootage:
    """A footage and its face-swapped rendering at the same instants, with altered-pixel masks."""

    name: str
    picture: str
    times: np.ndarray
    original: list[np.ndarray]
    fake: list[np.ndarray]
    masks: list[np.ndarray]  # float (H, W) 0..1 per frame

    @property
    def duration(self) -> float:
        return float(self.times[-1] + (self.times[1] - self.times[0] if len(self.times) > 1 else 0.125))

    def index(self, t: float) -> int:
        i = int(np.searchsorted(self.times, t + 1e-6, side="right")) - 1
        return min(max(i, 0), len(self.times) - 1)

    def changed_share(self) -> float:
        return float(np.mean([m.max() > 0 for m in self.masks]))


def altered_mask(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Where a swap visibly changed the frame: thresholded difference, closed and slightly dilated."""
    diff = np.abs(before.astype(np.int16) - after.astype(np.int16)).max(axis=2)
    hard = (diff > _ALTERED_LEVEL).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    hard = cv2.morphologyEx(hard, cv2.MORPH_CLOSE, kernel)
    return hard.astype(np.float32)


def render_swap(
    name: str,
    picture: str,
    frames: Sequence[np.ndarray],
    times: Sequence[float] | np.ndarray,
    identity: str,
    weights: Path | None = None,
) -> SwappedFootage:
    """Track the face through `frames` and redraw it as `identity` ("a" or "b") with the shipped model."""
    import torch

    from generator.faces import track_faces
    from generator.swap import load_model, swap_frames

    model, _ = load_model(weights or weights_file())
    model.eval()
    faces = track_faces(list(frames))
    with torch.no_grad():
        fake, _ = swap_frames(model, list(frames), faces, identity="a" if identity == "a" else "b")
    masks = [altered_mask(a, b) for a, b in zip(frames, fake, strict=True)]
    return SwappedFootage(name, picture, np.asarray(times, dtype=np.float64), list(frames), list(fake), masks)


def render_footage(
    footage: data.Footage, identity: str, fps: float = RENDER_FPS, weights: Path | None = None
) -> SwappedFootage:
    times = np.arange(0.0, footage.duration - 1e-6, 1.0 / fps)
    frames = [footage.frame(float(t)) for t in times]
    return render_swap(f"{footage.name} swap->{identity}", footage.picture, frames, times, identity, weights)


def training_swaps(footage: Sequence[data.Footage], weights: Path | None = None) -> list[SwappedFootage]:
    """The astronaut's training takes, face redrawn as the carphone identity (A)."""
    chosen = [f for f in footage if f.picture == TRAIN_PICTURE]
    rendered = [render_footage(f, "a", weights=weights) for f in chosen]
    return [r for r in rendered if r.changed_share() > 0.3]


def evaluation_swap(weights: Path | None = None) -> tuple[data.VideoFootage, SwappedFootage]:
    """The carphone clip at its own frame rate and its face redrawn as the astronaut (B)."""
    video = data.load_video(EVAL_VIDEO)
    swapped = render_swap(f"{video.name} swap->b", video.picture, video.frames, video.times, "b", weights)
    return video, swapped


class SwapSource:
    """A source of `data.ExtraTriplet`s for `TripletSampler.add_extra`: a swapped ~1 s segment."""

    def __init__(self, swapped: Sequence[SwappedFootage]) -> None:
        if not swapped:
            raise ValueError("no swapped footage")
        self.swapped = list(swapped)

    def __call__(self, rng: np.random.Generator) -> data.ExtraTriplet:
        for _ in range(8):  # a segment where some frame shows the swapped face
            item = self.swapped[int(rng.integers(0, len(self.swapped)))]
            t0 = float(rng.uniform(0, max(item.duration - data.SEGMENT_SECONDS, 0)))
            picks = [item.index(t) for t in data.anchor_times(t0)]
            truth = [item.masks[i] for i in picks]
            if any(m.max() > 0 for m in truth):
                break
        return data.ExtraTriplet(
            [item.original[i] for i in picks],
            [item.fake[i] for i in picks],
            truth,
            kind="face_swap",
            source=item.picture,
        )


def evaluation_windows(
    video: data.VideoFootage, swapped: SwappedFootage, seed: int, swaps_per_window: int = 10
) -> Iterator[evalset.Window]:
    """Windows of the carphone clip: every benign kind, and face-swapped copies (held-out attack).

    Built like `evalset.make_windows`: the copy sampled at 8 fps on its own clock, mapped with
    the aligner's error, and passed through a random benign chain (fakes get re-encoded too).
    """
    rng = np.random.default_rng(seed)
    fake = data.VideoFootage(swapped.name, swapped.fake, swapped.times.tolist())
    starts = np.arange(0.0, video.duration - data.SEGMENT_SECONDS + 1e-6, data.SEGMENT_SECONDS)
    for t0 in (float(t) for t in starts):
        times = data.anchor_times(t0)
        original = [(t, video.frame(t)) for t in times]
        around = [t0 - 1 / data.SAMPLE_FPS, *times, t0 + data.SEGMENT_SECONDS]
        context = [(t, video.frame(t)) for t in around if 0 <= t < video.duration]
        queries: list[evalset.Query] = []
        for kind in data.BENIGN_KINDS:
            shown, mapped = data.dense_query(video, t0, rng)
            out, _ = data.sample_benign(rng, kind).apply_segment([video.frame(t) for t in shown])
            queries.append(evalset.Query(out, mapped, False, kind))
        for _ in range(swaps_per_window):
            shown, mapped = data.dense_query(video, t0, rng)
            frames = [fake.frame(t) for t in shown]
            masks = [swapped.masks[swapped.index(t)] for t in shown]
            if not any(m.max() > 0 for m in masks):
                continue
            out, moved = data.sample_benign(rng).apply_segment(frames, list(masks))
            _, prepared = data.prepared_segment(out, moved)
            assert prepared is not None
            change = float(
                np.mean(
                    [
                        np.abs(a.astype(np.float32) - b.astype(np.float32))[m > 0.5].mean()
                        for a, b, m in zip([video.frame(t) for t in shown], frames, masks, strict=True)
                        if (m > 0.5).any()
                    ]
                )
            )
            queries.append(
                evalset.Query(out, mapped, True, "face_swap", evalset.truth_box(prepared), {"change": change})
            )
        yield evalset.Window(video.name, t0, original, context, queries)
