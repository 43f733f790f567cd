"""The learned comparer as the generator's evasion target, and its measures of fakes.

The generator's evasion (`generator.swap.evasion.evade`) attacks whatever embedding it is handed
as an `EmbeddingTarget`; it never imports the detector. `ComparerTarget` is the shipped
comparer as one: registration stores, per window of 4 frames sampled at 4 fps, a global and
8x8 cell embeddings, and the verifier flags a window whose largest distance exceeds a calibrated
threshold. The comparer's input preparation (bars cut, INTER_AREA to 64x64) is linear once the
bars are fixed, so it is replayed exactly in torch (`prepare_torch`) and the evasion's loss
reaches the frozen network through it. `measure` scores a fake with the real comparer, window by
window, against the original's stored windows (what the evaluation reports as `embedding_*`).

The detector may import `generator`; the generator never imports the detector.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from detector.comparer import FRAMES_PER_SEGMENT, SAMPLE_FPS, TripletComparer
from detector.model import WEIGHTS_FILE, SegmentEmbedding, load_weights
from frames.bars import content_box
from generator.campaign import file_version
from generator.swap.evasion import EmbeddingMeasures, WindowReference

_comparers: dict[tuple[str, int, int], TripletComparer] = {}


def sample_indices(times: Sequence[float], fps: float = SAMPLE_FPS) -> list[int]:
    """Indexes of the frames fingerprinting samples: the first at or after each k/fps.

    The same rule as `provenance.fingerprint` (which the detector may not import), so the
    windows the evasion aims at are the ones registration stores.
    """
    picks: list[int] = []
    next_k = 0
    for i, t in enumerate(times):
        if t + 1e-6 < next_k / fps:
            continue
        next_k = math.floor(t * fps + 1e-6) + 1
        picks.append(i)
    return picks


def sample_windows(times: Sequence[float]) -> list[list[int]]:
    """The sampled frames' indexes grouped into the windows registration embeds."""
    picks = sample_indices(times)
    return [picks[i : i + FRAMES_PER_SEGMENT] for i in range(0, len(picks), FRAMES_PER_SEGMENT)]


def _area_matrix(n: int, side: int) -> Tensor:
    """(side, n): cv2's INTER_AREA along one axis as a matrix (it is linear and separable)."""
    eye = np.eye(n, dtype=np.float32)
    return torch.from_numpy(cv2.resize(eye, (n, side), interpolation=cv2.INTER_AREA))


def prepare_torch(frame: Tensor, box: tuple[int, int, int, int], side: int) -> Tensor:
    """Differentiable `detector.inputs.prepare` of one (3, H, W) frame in 0..1 with its bars at `box`.

    The bars are found on the original (the swap draws inside the picture), so only the linear
    crop and area resize remain; they match cv2's to within its uint8 rounding.
    """
    top, bottom, left, right = box
    crop = frame[:, top:bottom, left:right]
    return _area_matrix(bottom - top, side) @ crop @ _area_matrix(right - left, side).T


def original_windows(
    comparer: TripletComparer, originals: Sequence[np.ndarray], times: Sequence[float]
) -> list[SegmentEmbedding]:
    """What registration stores for these frames: embeddings of 4 fps windows of 4 frames."""
    picks = sample_indices(times)
    return comparer.embed_video_frames([(times[i], originals[i]) for i in picks])


def embedding_measures(
    comparer: TripletComparer,
    originals: Sequence[np.ndarray],
    fakes: Sequence[np.ndarray],
    times: Sequence[float],
    stored: list[SegmentEmbedding] | None = None,
) -> EmbeddingMeasures:
    """Each window of `fakes` (same timing as `originals`) scored against the original's window."""
    stored = stored if stored is not None else original_windows(comparer, originals, times)
    scores, globs = [], []
    for group, window in zip(sample_windows(times), stored, strict=True):
        score, _, glob_d = comparer.score([fakes[i] for i in group], window)
        scores.append(score)
        globs.append(glob_d)
    s = np.asarray(scores)
    return EmbeddingMeasures(
        mean_score=round(float(s.mean()), 4),
        mean_global=round(float(np.mean(globs)), 4),
        flagged_rate=round(float(np.mean(s > comparer.threshold)), 4),
        windows=len(scores),
    )


class ComparerTarget:
    """A `TripletComparer` as the evasion's `EmbeddingTarget` (its network frozen)."""

    def __init__(self, comparer: TripletComparer) -> None:
        self.comparer = comparer
        for p in comparer.net.parameters():
            p.requires_grad_(False)

    def reference(self, originals: Sequence[np.ndarray], times: Sequence[float]) -> WindowReference:
        stored = original_windows(self.comparer, originals, times)
        return WindowReference(
            windows=sample_windows(times),
            cells=[s.cells for s in stored],
            global_vecs=[s.global_vec for s in stored],
        )

    def embed(self, windows: Sequence[Sequence[tuple[Tensor, np.ndarray]]]) -> tuple[Tensor, Tensor]:
        """The network on windows of swapped frames, short windows padded and masked out."""
        side = self.comparer.net.config.side
        batch = []
        for window in windows:
            seq = [prepare_torch(frame, content_box(original), side) for frame, original in window]
            seq += [seq[-1]] * (FRAMES_PER_SEGMENT - len(seq))  # padding, masked out below
            batch.append(torch.stack(seq))
        valid = torch.tensor(
            [[j < len(window) for j in range(FRAMES_PER_SEGMENT)] for window in windows], dtype=torch.bool
        )
        cells, glob = self.comparer.net(torch.stack(batch), valid)
        return cells, glob

    def measure(
        self, originals: Sequence[np.ndarray], fakes: Sequence[np.ndarray], times: Sequence[float]
    ) -> EmbeddingMeasures:
        return embedding_measures(self.comparer, originals, fakes, times)


def learned_comparer(weights: Path = WEIGHTS_FILE) -> TripletComparer | None:
    """The comparer of `weights`, loaded once per weights version; None when there are none."""
    if not weights.is_file():
        return None
    key = file_version(weights)
    if key not in _comparers:
        _comparers[key] = TripletComparer(load_weights(weights))
    return _comparers[key]


def shipped_target(weights: Path = WEIGHTS_FILE) -> ComparerTarget | None:
    """The shipped comparer as the evasion's target; None without weights (the evasion then aims
    at PDQ only and nothing learned is measured)."""
    comparer = learned_comparer(weights)
    return ComparerTarget(comparer) if comparer is not None else None
