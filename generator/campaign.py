"""Face-swap fakes of evaluation originals, from shipped weights: plain and evasive.

The continuous evaluation calls these for every original. They never train the swap model (an
evaluation run must be quick and repeatable); the evasive swap only fine-tunes decoder B against
the original's PDQ hashes for a few steps, which is the attack itself, not model training. An
original they cannot fake (no face in it, no weights) raises `NotApplicable` with the reason, so
the evaluation records a skip instead of failing. Each fake's truth carries PDQ measures: how
many swapped frames stay within Hamming distance 31 of the original frame, i.e. would pass a
PDQ-only matcher as the original; and, given the learned comparer as an `EmbeddingTarget`
(the caller's: the generator never imports the detector; `detector.attack.shipped_target()`),
its measures (`embedding_*`: its window scores against the original's, and how many windows it
flags). The evasive swap aims at both fingerprints (`EVADE_TARGETS`) and also records the plain
swap's distances it started from (`*_before`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from generator.faces import Face, detect_faces, track_faces
from generator.swap import DEFAULT_WEIGHTS
from generator.swap.convert import swap_video
from generator.swap.evasion import (
    PDQ_MATCH,
    EmbeddingMeasures,
    EmbeddingTarget,
    Target,
    evade,
    pdq_bits,
)
from generator.swap.model import SwapModel, load_model
from generator.tampers import NotApplicable, TamperTruth
from generator.variants import read_clip

# vPDQ-style clip match: a clip passes as the original when this share of its frames match.
CLIP_MATCH_SHARE = 0.8
# Frames looked at before tracking a whole clip: tracking a faceless clip costs the most.
FACE_PROBES = 8
EVADE_LR = 2e-3
# What the evasive swap keeps close to the original: both fingerprints the verifier may use.
EVADE_TARGETS: tuple[Target, ...] = ("pdq", "embedding")

__all__ = [
    "NotApplicable",
    "embedding_summary",
    "face_swap",
    "face_track",
    "pdq_measures",
    "shipped_model",
    "weights_digest",
]


_models: dict[tuple[str, int, int], SwapModel] = {}
_tracks: dict[tuple[str, int, int], list[Face | None]] = {}


def file_version(path: Path) -> tuple[str, int, int]:
    """A file's version for caching what is loaded from it: resolved path, size, modification time."""
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def weights_digest(weights: Path = DEFAULT_WEIGHTS) -> str | None:
    """SHA-256 of the weights file (the generator's version beside its code), None when absent."""
    if not weights.is_file():
        return None
    return hashlib.sha256(weights.read_bytes()).hexdigest()


def shipped_model(weights: Path = DEFAULT_WEIGHTS) -> SwapModel:
    """The swap model of `weights`, loaded once per file version."""
    if not weights.is_file():
        raise NotApplicable(f"no face-swap weights at {weights}: run `make swap-weights`")
    key = file_version(weights)
    if key not in _models:
        _models[key] = load_model(weights)[0]
    return _models[key]


def embedding_summary(measures: EmbeddingMeasures | None, suffix: str = "") -> dict[str, float]:
    """`EmbeddingMeasures` as truth measures (`embedding_*` keys, which the evaluation averages)."""
    if measures is None or not measures.windows:
        return {}
    return {
        f"embedding_mean_score{suffix}": measures.mean_score,
        f"embedding_mean_global{suffix}": measures.mean_global,
        f"embedding_flagged_rate{suffix}": measures.flagged_rate,
    }


def face_track(video: Path) -> list[Face | None]:
    """The face track of a clip, computed once per file version; `NotApplicable` without a face."""
    key = file_version(video)
    if key in _tracks:
        return _tracks[key]
    frames = read_clip(video).frames
    probes = np.linspace(0, len(frames) - 1, min(FACE_PROBES, len(frames))).round().astype(int)
    found = sum(bool(detect_faces(frames[k], angles=(0.0,))) for k in probes)
    if found < len(probes) / 2:
        raise NotApplicable(f"no face in {video.name} ({found} of {len(probes)} probed frames)")
    track = track_faces(frames)
    _tracks[key] = track
    return track


def pdq_measures(original: list[np.ndarray], fake: list[np.ndarray], changed: list[bool]) -> dict[str, float]:
    """PDQ distances of the swapped frames to the same frames of the original.

    `pdq_frame_pass_rate`: share of swapped frames within `PDQ_MATCH` (what a per-frame PDQ
    matcher accepts); `pdq_clip_pass`: 1 when at least `CLIP_MATCH_SHARE` of them are.
    """
    distances = [
        int(np.count_nonzero(pdq_bits(a) != pdq_bits(b)))
        for a, b, hit in zip(original, fake, changed, strict=False)
        if hit
    ]
    if not distances:
        return {}
    d = np.asarray(distances)
    share = float(np.mean(d <= PDQ_MATCH))
    return {
        "pdq_frame_pass_rate": round(share, 4),
        "pdq_mean_distance": round(float(d.mean()), 2),
        "pdq_clip_pass": float(share >= CLIP_MATCH_SHARE),
    }


def face_swap(
    original: Path,
    out: Path,
    *,
    weights: Path = DEFAULT_WEIGHTS,
    evade_steps: int = 0,
    evade_lr: float = EVADE_LR,
    seed: int = 0,
    target: EmbeddingTarget | None = None,
) -> TamperTruth:
    """Write `original` with its face swapped by the shipped weights; the truth and fingerprint measures.

    `evade_steps` > 0 makes the evasive swap: decoder B fine-tuned so the fake keeps the
    original's fingerprints, both of `EVADE_TARGETS` (`evasion.evade`). `target`: the learned
    comparer the evasion attacks and that measures both fakes (`embedding_*`); without one the
    evasion aims at PDQ alone and only PDQ is measured.
    """
    model = shipped_model(weights)
    track = face_track(original)
    report = None
    if evade_steps > 0:
        model, report = evade(
            model,
            original,
            targets=EVADE_TARGETS,
            steps=evade_steps,
            lr=evade_lr,
            seed=seed,
            progress=False,
            faces=track,
            target=target,
        )
    result = swap_video(model, original, out, progress=False, faces=track)
    if not any(result.changed):
        raise NotApplicable(f"the swap changed no frame of {original.name}")
    truth = result.truth()
    clip = read_clip(original)
    fake = read_clip(out).frames
    measures = pdq_measures(clip.frames, fake, result.changed)
    if target is not None:
        measures |= embedding_summary(target.measure(clip.frames, fake, clip.times))
    if report is not None:
        measures["pdq_mean_distance_before"] = round(report.mean_distance_before, 2)
        measures |= embedding_summary(report.embedding_before, "_before")
    kind = "evasive_face_swap" if evade_steps > 0 else "face_swap"
    return TamperTruth(ranges=truth.ranges, regions=truth.regions, kind=kind, measures=measures)
