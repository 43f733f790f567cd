"""Losses of the face-swap autoencoder: SSIM (structure the eye sees) beside MSE, and mask priors."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _gaussian(size: int, sigma: float, channels: int, device: torch.device) -> Tensor:
    ax = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(ax**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(x: Tensor, y: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean structural similarity of two batches in 0..1 (Wang et al. 2004, Gaussian window).

    MSE alone rewards blur; SSIM compares local means, contrasts and correlations, so it keeps
    the edges of eyes and mouth that make a face recognisable.
    """
    channels = x.shape[1]
    kernel = _gaussian(window, sigma, channels, x.device)
    c1, c2 = 0.01**2, 0.03**2
    mu_x = F.conv2d(x, kernel, groups=channels)
    mu_y = F.conv2d(y, kernel, groups=channels)
    var_x = F.conv2d(x * x, kernel, groups=channels) - mu_x**2
    var_y = F.conv2d(y * y, kernel, groups=channels) - mu_y**2
    cov = F.conv2d(x * y, kernel, groups=channels) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (num / den).mean()


def reconstruction_loss(rgb: Tensor, target: Tensor) -> Tensor:
    """MSE plus the SSIM dissimilarity (1 - SSIM) / 2, both on 0..1 images."""
    return F.mse_loss(rgb, target) + (1 - ssim(rgb, target)) / 2


def total_variation(mask: Tensor) -> Tensor:
    """Mean absolute difference of neighbouring mask pixels: a smooth mask blends without seams."""
    dx = (mask[..., :, 1:] - mask[..., :, :-1]).abs().mean()
    dy = (mask[..., 1:, :] - mask[..., :-1, :]).abs().mean()
    return dx + dy
