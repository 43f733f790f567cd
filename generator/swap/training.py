"""Training of the face-swap autoencoder on aligned faces of identities A and B, on CPU.

Each step draws a batch of each identity, makes random views (warped input, unwarped target),
and trains the shared encoder with both decoders: SSIM + MSE on the drawn face, extra MSE inside
the face oval (the face matters more than the background the crop also shows; faceswap's
"penalized mask loss"), and MSE of the learned mask against the face oval moved like the face,
plus a little total variation so the mask stays smooth. (A mask learnt only through a composite
over the input collapses to zero: the warped input is already close to the target.) An optional
PatchGAN critic per identity adds an adversarial loss that sharpens the faces given time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from generator.faces import face_oval
from generator.swap.augment import random_views, to_tensor
from generator.swap.losses import reconstruction_loss, total_variation
from generator.swap.model import Critic, Identity, SwapModel, parameter_count


@dataclass(frozen=True)
class TrainSettings:
    """Knobs of `train_swap` beyond steps and seed; the defaults suit a 15-minute CPU run."""

    batch: int = 16
    lr: float = 5e-4
    face_weight: float = 2.0
    mask_weight: float = 1.0
    mask_tv: float = 0.01
    gan: bool = False
    gan_weight: float = 0.1
    eval_batch: int = 32


def _losses(
    model: SwapModel,
    inputs: Tensor,
    targets: Tensor,
    ovals: Tensor,
    identity: Identity,
    settings: TrainSettings,
) -> tuple[Tensor, Tensor, Tensor]:
    """(training loss, reconstruction loss, drawn faces) of one identity's batch."""
    rgb, mask = model(inputs, identity)
    recon = reconstruction_loss(rgb, targets)
    face = F.mse_loss(rgb * ovals, targets * ovals)
    loss = recon + settings.face_weight * face
    loss = loss + settings.mask_weight * F.mse_loss(mask, ovals) + settings.mask_tv * total_variation(mask)
    return loss, recon, rgb


@torch.no_grad()
def evaluate(
    model: SwapModel, views: dict[Identity, tuple[Tensor, Tensor, Tensor | None]]
) -> dict[Identity, float]:
    """Reconstruction loss (MSE + SSIM dissimilarity) of each identity on fixed views."""
    was_training = model.training
    model.eval()
    out: dict[Identity, float] = {}
    for identity, (inputs, targets, _) in views.items():
        rgb, _ = model(inputs, identity)
        out[identity] = float(reconstruction_loss(rgb, targets))
    model.train(was_training)
    return out


def oval_tensor(size: int, side: int) -> Tensor:
    """The soft face oval of a `size` face on a `side` canvas, as (1, 1, side, side)."""
    oval = face_oval(size, (side - size) // 2, blur=size / 32)
    return torch.from_numpy(oval)[None, None]


def _batch(faces: Tensor, count: int, generator: torch.Generator) -> Tensor:
    return faces[torch.randint(0, faces.shape[0], (count,), generator=generator)]


def train_swap(
    faces_a: np.ndarray,
    faces_b: np.ndarray,
    steps: int,
    seed: int = 0,
    progress: bool = True,
    *,
    model: SwapModel | None = None,
    settings: TrainSettings | None = None,
    minutes: float | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[SwapModel, dict[str, Any]]:
    """Train (or keep training `model`) on aligned faces (N, S, S, 3) uint8 of A and B, S ≥ 64.

    Stops after `steps` steps or `minutes` minutes, whichever comes first. Returns the model (in
    eval mode) and metrics: steps, seconds, final per-identity losses (mean of the last steps),
    and the reconstruction losses on a fixed set of views before and after training.
    """
    settings = settings or TrainSettings()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = model or SwapModel()
    size = model.config.size
    data: dict[Identity, Tensor] = {"a": to_tensor(faces_a), "b": to_tensor(faces_b)}
    for identity, faces in data.items():
        if faces.shape[0] == 0 or faces.shape[-1] < size:
            raise ValueError(f"identity {identity} needs aligned faces of at least {size}×{size}")
    ovals = {k: oval_tensor(size, v.shape[-1]) for k, v in data.items()}
    eval_gen = torch.Generator().manual_seed(seed + 1)
    views = {
        k: random_views(_batch(v, settings.eval_batch, eval_gen), size, eval_gen, masks=ovals[k])
        for k, v in data.items()
    }
    before = evaluate(model, views)
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.lr, betas=(0.5, 0.999))
    critics: dict[Identity, Critic] = {}
    critic_opt: torch.optim.Optimizer | None = None
    if settings.gan:
        critics = {"a": Critic(), "b": Critic()}
        critic_opt = torch.optim.Adam(
            [p for c in critics.values() for p in c.parameters()], lr=settings.lr, betas=(0.5, 0.999)
        )
    history: list[dict[str, float]] = []
    recent: dict[str, list[float]] = {"a": [], "b": []}
    started = time.monotonic()
    deadline = started + minutes * 60 if minutes is not None else math.inf
    done = 0
    bar = tqdm(total=steps, desc="face-swap training", unit="step", disable=not progress)
    try:
        for step in range(steps):
            if time.monotonic() >= deadline:
                break
            total = torch.zeros(())
            fakes: dict[Identity, tuple[Tensor, Tensor]] = {}
            row: dict[str, float] = {"step": float(step)}
            for identity, faces in data.items():
                batch = _batch(faces, settings.batch, generator)
                inputs, targets, moved = random_views(batch, size, generator, masks=ovals[identity])
                assert moved is not None
                loss, recon, rgb = _losses(model, inputs, targets, moved, identity, settings)
                if settings.gan:
                    logits = critics[identity](rgb)
                    loss = loss + settings.gan_weight * F.mse_loss(logits, torch.ones_like(logits))
                    fakes[identity] = (rgb.detach(), targets)
                total = total + loss
                value = float(recon.detach())
                row[f"loss_{identity}"] = value
                recent[identity] = [*recent[identity][-19:], value]
            optimiser.zero_grad(set_to_none=True)
            total.backward()
            optimiser.step()
            if critic_opt is not None:
                critic_loss = torch.zeros(())
                for identity, (fake, real) in fakes.items():
                    real_logits, fake_logits = critics[identity](real), critics[identity](fake)
                    critic_loss = critic_loss + F.mse_loss(real_logits, torch.ones_like(real_logits))
                    critic_loss = critic_loss + F.mse_loss(fake_logits, torch.zeros_like(fake_logits))
                critic_opt.zero_grad(set_to_none=True)
                critic_loss.backward()
                critic_opt.step()
                row["critic"] = float(critic_loss)
            done = step + 1
            if step % 50 == 0 or done == steps:
                history.append(row)
            if on_step is not None:
                on_step(step, row)
            bar.update(1)
            bar.set_postfix(a=f"{row['loss_a']:.4f}", b=f"{row['loss_b']:.4f}")
    finally:
        bar.close()
    model.eval()
    after = evaluate(model, views)
    metrics: dict[str, Any] = {
        "steps": done,
        "seconds": round(time.monotonic() - started, 2),
        "seed": seed,
        "batch": settings.batch,
        "gan": settings.gan,
        "parameters": parameter_count(model),
        "faces_a": int(faces_a.shape[0]),
        "faces_b": int(faces_b.shape[0]),
        "loss_a": float(np.mean(recent["a"])) if recent["a"] else before["a"],
        "loss_b": float(np.mean(recent["b"])) if recent["b"] else before["b"],
        "eval_before": dict(before),
        "eval_after": dict(after),
        "history": history,
    }
    return model, metrics
