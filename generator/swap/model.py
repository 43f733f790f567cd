"""The "Original" face-swap autoencoder, shrunk for CPU: one shared encoder, one decoder per identity.

Both identities pass through the same encoder, so its code learns what faces share (pose,
expression, lighting); each decoder learns to draw one person from that code. Swapping is
encoding a face of one identity and decoding it with the other identity's decoder. Each decoder
also draws a mask (sigmoid) saying where its face should replace the frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

Identity = Literal["a", "b"]
FORMAT = "generator.swap/v1"


@dataclass(frozen=True)
class SwapConfig:
    """Sizes of the network; the defaults give about 1.3 M parameters (2.6 MB as float16)."""

    size: int = 64
    widths: tuple[int, int, int, int] = (32, 64, 128, 160)
    latent: int = 128
    base: int = 96
    decoder_widths: tuple[int, int, int] = (64, 32, 16)


def _conv(cin: int, cout: int, kernel: int = 5) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride=2, padding=kernel // 2), nn.LeakyReLU(0.1))


class _Upscale(nn.Module):
    """Double the resolution with a convolution and a pixel shuffle, as faceswap's Original does."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout * 4, 3, padding=1)
        self.act = nn.LeakyReLU(0.1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: Tensor) -> Tensor:
        upscaled: Tensor = self.shuffle(self.act(self.conv(x)))
        return upscaled


class Encoder(nn.Module):
    """64×64 RGB → a code of shape (base, 8, 8): convolutions, a dense bottleneck, one upscale."""

    def __init__(self, config: SwapConfig) -> None:
        super().__init__()
        w = config.widths
        self.convs = nn.Sequential(_conv(3, w[0]), _conv(w[0], w[1]), _conv(w[1], w[2]), _conv(w[2], w[3], 3))
        cells = config.size // 16
        self.base = config.base
        self.cells = cells
        self.dense = nn.Sequential(
            nn.Flatten(),
            nn.Linear(w[3] * cells * cells, config.latent),
            nn.Linear(config.latent, config.base * cells * cells),
        )
        self.up = _Upscale(config.base, config.base)

    def forward(self, x: Tensor) -> Tensor:
        code = self.dense(self.convs(x)).view(-1, self.base, self.cells, self.cells)
        upscaled: Tensor = self.up(code)
        return upscaled


class Decoder(nn.Module):
    """Code → (RGB in 0..1, mask in 0..1), each 64×64: three upscales, then two 5×5 heads."""

    def __init__(self, config: SwapConfig) -> None:
        super().__init__()
        d = config.decoder_widths
        self.body = nn.Sequential(_Upscale(config.base, d[0]), _Upscale(d[0], d[1]), _Upscale(d[1], d[2]))
        self.rgb = nn.Conv2d(d[2], 3, 5, padding=2)
        self.mask = nn.Conv2d(d[2], 1, 5, padding=2)

    def forward(self, code: Tensor) -> tuple[Tensor, Tensor]:
        x = self.body(code)
        return torch.sigmoid(self.rgb(x)), torch.sigmoid(self.mask(x))


class SwapModel(nn.Module):
    """Shared encoder and the decoders of identity A (the target video) and B (the inserted face)."""

    def __init__(self, config: SwapConfig | None = None) -> None:
        super().__init__()
        self.config = config or SwapConfig()
        self.encoder = Encoder(self.config)
        self.decoder_a = Decoder(self.config)
        self.decoder_b = Decoder(self.config)

    def decoder(self, identity: Identity) -> Decoder:
        return self.decoder_a if identity == "a" else self.decoder_b

    def forward(self, x: Tensor, identity: Identity) -> tuple[Tensor, Tensor]:
        """Faces (N, 3, 64, 64) in 0..1 drawn as `identity`: (rgb, mask)."""
        drawn: tuple[Tensor, Tensor] = self.decoder(identity)(self.encoder(x))
        return drawn


class Critic(nn.Module):
    """PatchGAN critic for the optional adversarial loss: one logit per 8×8 patch of a face."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            _conv(3, width, 4),
            _conv(width, width * 2, 4),
            _conv(width * 2, width * 4, 4),
            nn.Conv2d(width * 4, 1, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        scores: Tensor = self.net(x * 2 - 1)
        return scores


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def save_model(model: SwapModel, path: Path, meta: dict[str, Any]) -> None:
    """Write weights as float16 (half the size; the decoders' sigmoids hide the rounding)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16) for k, v in model.state_dict().items()}
    config = asdict(model.config)
    torch.save({"format": FORMAT, "config": config, "state": state, "meta": meta}, str(path))


def load_model(path: Path) -> tuple[SwapModel, dict[str, Any]]:
    """The model stored by `save_model` (in float32, eval mode) and its metadata."""
    blob = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} checkpoint")
    raw = dict(blob["config"])
    config = SwapConfig(
        size=int(raw["size"]),
        widths=tuple(raw["widths"]),
        latent=int(raw["latent"]),
        base=int(raw["base"]),
        decoder_widths=tuple(raw["decoder_widths"]),
    )
    model = SwapModel(config)
    model.load_state_dict({k: v.to(torch.float32) for k, v in blob["state"].items()})
    model.eval()
    return model, dict(blob.get("meta", {}))
