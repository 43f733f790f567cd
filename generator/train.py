"""Train the face-swap model: ``python -m generator.train --out generator/weights/swap.pt``.

By default identity A is the carphone talking head (the evaluation's target video) and B the
astronaut portrait (the face inserted), both shipped offline. Seeds are fixed and training runs
on the CPU until `--steps` steps or `--minutes` minutes, whichever ends first. Writes the weights
(float16) and, beside them, a metrics JSON (``swap.json`` for ``swap.pt``).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from frames.samples import sample_clip
from generator.swap.data import (
    astronaut,
    astronaut_faces,
    file_key,
    image_key,
    load_faces,
    source_key,
)
from generator.swap.model import save_model
from generator.swap.training import TrainSettings, evaluate, train_swap

__all__ = ["TrainSettings", "evaluate", "main", "metrics_path", "train_swap"]


def metrics_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m generator.train", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("generator/weights/swap.pt"))
    parser.add_argument("--minutes", type=float, default=15.0, help="wall-clock budget of the training loop")
    parser.add_argument("--steps", type=int, default=100_000, help="step budget of the training loop")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", type=Path, help="identity B: folder of face images, an image or a video")
    parser.add_argument("--target", type=Path, help="identity A: the video to swap faces in")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--gan", action="store_true", help="add the adversarial critic")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    started = time.monotonic()
    target = args.target or sample_clip("carphone_pristine.mp4")
    faces_a = load_faces(target, seed=args.seed)
    if args.source is None:
        faces_b, b_key, b_name = (
            astronaut_faces(seed=args.seed),
            image_key([astronaut()]),
            "skimage astronaut",
        )
    else:
        faces_b, b_key, b_name = (
            load_faces(args.source, seed=args.seed),
            source_key(args.source),
            str(args.source),
        )
    settings = TrainSettings(batch=args.batch, gan=args.gan)
    model, metrics = train_swap(
        faces_a, faces_b, args.steps, args.seed, True, settings=settings, minutes=args.minutes
    )
    meta = {
        "source_key": b_key,
        "source": b_name,
        "target_key": file_key(target),
        "target": target.name,
        "steps": metrics["steps"],
        "seed": args.seed,
    }
    save_model(model, args.out, meta)
    metrics["total_seconds"] = round(time.monotonic() - started, 2)
    metrics["weights_bytes"] = args.out.stat().st_size
    metrics["command"] = "python -m generator.train " + " ".join(argv if argv is not None else _argv())
    metrics.update({k: v for k, v in meta.items() if k != "steps"})
    metrics_path(args.out).write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps({k: v for k, v in metrics.items() if k != "history"}, indent=2))
    return metrics


def _argv() -> list[str]:
    import sys

    return sys.argv[1:]


if __name__ == "__main__":
    main()
