"""Random views of aligned faces for training: the "random warp" that makes the autoencoder work.

Each step shows the network a face under a random similarity transform (the target) and the same
view bent by a smooth random displacement field (the input). Learning to undo the bend forces
the shared encoder to capture the face rather than copy pixels, which is what lets the other
identity's decoder redraw it. Done in torch with `grid_sample`, a whole batch at once.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def to_tensor(faces: np.ndarray) -> Tensor:
    """(N, H, W, 3) uint8 → (N, 3, H, W) float32 in 0..1."""
    return torch.from_numpy(np.ascontiguousarray(faces)).permute(0, 3, 1, 2).float().div(255)


def to_uint8(images: Tensor) -> np.ndarray:
    """(N, C, H, W) in 0..1 → (N, H, W, C) uint8."""
    arr = images.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1)
    return np.ascontiguousarray(arr.numpy())


def random_views(
    faces: Tensor,
    size: int,
    generator: torch.Generator,
    *,
    rotation: float = 10.0,
    zoom: float = 0.05,
    shift: float = 0.05,
    flip: bool = True,
    warp: float = 0.06,
    colour: float = 0.08,
    masks: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """(warped inputs, unwarped targets, target masks) from aligned faces (N, 3, S, S).

    Inputs and targets are (N, 3, size, size); `masks` (N or 1, 1, S, S), when given, are
    moved like the targets (the face oval follows the face).

    Faces larger than `size` carry context: the views are taken from their central `size` square,
    so shifts and rotations show real pixels instead of smeared borders. `warp` is the standard
    deviation of a 5×5 grid of displacements, in units of half the output side.
    """
    n = faces.shape[0]
    crop = size / faces.shape[-1]

    def uniform(low: float, high: float) -> Tensor:
        return torch.rand(n, generator=generator) * (high - low) + low

    angle = uniform(-rotation, rotation) * math.pi / 180
    scale = uniform(1 - zoom, 1 + zoom) * crop
    sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if flip else torch.ones(n)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * sign, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * sign, cos
    theta[:, :, 2] = (torch.rand(n, 2, generator=generator) * 2 - 1) * shift * 2 * crop
    grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
    # The same brightness and contrast for input and target: lighting is not what is learnt.
    gain = uniform(1 - 2 * colour, 1 + 2 * colour).view(n, 1, 1, 1)
    bias = uniform(-colour, colour).view(n, 1, 1, 1)
    lit = ((faces - 0.5) * gain + 0.5 + bias).clamp(0, 1)
    target = F.grid_sample(lit, grid, mode="bilinear", padding_mode="border", align_corners=False)
    coarse = torch.randn(n, 2, 5, 5, generator=generator) * warp * crop
    field = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    warped = F.grid_sample(lit, grid + field, mode="bilinear", padding_mode="border", align_corners=False)
    moved = None
    if masks is not None:
        moved = F.grid_sample(
            masks.expand(n, -1, -1, -1), grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
    return warped, target, moved
