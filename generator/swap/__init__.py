"""Face-swap fakes for the evaluation: the classic deepfake autoencoder, trained and run on CPU.

`generate_swap` is the command-line entry: it puts the face of `source` (a folder of face
images, one image, or a video) into the `target` video, with ready weights when they were
trained for that source, else after a short training run. Identity A is always the target's
person and B the inserted face. The generator never imports `provenance`.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from generator.swap.convert import SwapResult, blend_mask, reinhard_transfer, swap_frames, swap_video
from generator.swap.data import file_key, load_faces, source_key, write_astronaut
from generator.swap.evasion import EvasionReport, evade, evade_pdq
from generator.swap.model import SwapConfig, SwapModel, load_model, save_model
from generator.swap.training import TrainSettings, train_swap
from generator.weights import SWAP_WEIGHTS

__all__ = [
    "DEFAULT_WEIGHTS",
    "EvasionReport",
    "SwapConfig",
    "SwapModel",
    "SwapResult",
    "TrainSettings",
    "blend_mask",
    "evade",
    "evade_pdq",
    "generate_swap",
    "load_model",
    "reinhard_transfer",
    "save_model",
    "swap_frames",
    "swap_video",
    "train_swap",
    "write_astronaut",
]

# Trained by `python -m generator.train`: carphone (A) ← astronaut (B).
DEFAULT_WEIGHTS: Path = SWAP_WEIGHTS


def generate_swap(
    source: Path,
    target: Path,
    out: Path,
    weights: Path | None,
    steps: int,
    *,
    seed: int = 0,
    progress: bool = True,
    save_weights: Path | None = None,
    evade_steps: int = 0,
) -> SwapResult:
    """Write `out`: `target` with its face replaced by the face of `source`.

    `weights` fit when they were trained with the same source (same image pixels, or the same
    video file). Fitting weights trained on another target are fine-tuned for `steps` steps on
    this target's faces (used as they are when `steps` is 0); without fitting weights a new
    model is trained for `steps` steps on the source's faces against the target's.
    `save_weights` keeps whatever was trained. `evade_steps` > 0 then fine-tunes decoder B so
    the swapped frames keep the original frames' PDQ hashes (`evasion.evade_pdq`). The result's
    `trained`, `weights` and `metrics` say which happened.
    """
    src_key, tgt_key = source_key(source), file_key(target)
    model: SwapModel | None = None
    used: Path | None = None
    metrics: dict[str, Any] = {"steps": 0}
    trained = False
    if weights is not None and weights.is_file():
        loaded, meta = load_model(weights)
        if meta.get("source_key") == src_key:
            model, used = loaded, weights
            metrics["weights_meta"] = meta
            if meta.get("target_key") == tgt_key:
                steps = 0
    if model is None and steps <= 0:
        raise ValueError(f"no weights trained for {source}: give steps > 0 to train some")
    if steps > 0:
        faces_a = load_faces(target, seed=seed)
        faces_b = load_faces(source, seed=seed)
        model, metrics = train_swap(faces_a, faces_b, steps, seed, progress, model=model)
        trained = True
        if save_weights is not None:
            meta = {
                "source_key": src_key,
                "source": str(source),
                "target_key": tgt_key,
                "target": target.name,
            }
            save_model(model, save_weights, {**meta, "steps": metrics["steps"], "seed": seed})
            used = save_weights
    assert model is not None
    if evade_steps > 0:
        model, report = evade_pdq(model, target, steps=evade_steps, seed=seed, progress=progress)
        metrics["evasion"] = asdict(report)
    result = swap_video(model, target, out, progress=progress)
    return replace(result, trained=trained, weights=used, metrics=metrics)
