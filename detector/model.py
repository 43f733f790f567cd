"""The triplet network: a small CNN per frame and a temporal aggregator per ~1 s segment.

A segment's embedding has two parts, both L2-normalised so distances are bounded (0..2):

- `cells`: one `CELL_DIM` vector per cell of a `GRID` x `GRID` grid over the letterbox-stripped
  picture, so the comparer can say *where* a segment differs;
- `global_vec`: one `GLOBAL_DIM` vector for the whole picture over the segment.

Per frame, `FrameEncoder` turns the 64x64 RGB square (`detector.inputs.prepare`) into an 8x8
feature map (cell features) and a pooled vector (global features). `TemporalAggregator` then
pools those over the segment's frames with masked attention (plus a masked max, so one foreign
frame among four still moves the embedding), a GRU running over the global features first.
Frames are masked rather than fixed in number because a clip's frames rarely fall on the
original's sampling instants: a query segment may hold 1..4 (or more) frames.

The split matters for cost too: frame features are computed once per sampled frame and any
window of them can be aggregated later, for ~a millisecond.

`quantise` stores a segment in `EMBEDDING_BYTES` (544): the global vector at 8 bits a component,
then the cells row-major at 4 bits (two per byte), each vector scaled so its largest component
is the top of its range (directions are all that matters: `dequantise` re-normalises). Sixteen
4-bit components per cell take the bytes eight 8-bit ones took; storing the same cells at 8 bits
(1,056 bytes) moved the held-out AUC and TPR at 1% FPR by under 0.001.
"""

from __future__ import annotations

import copy
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

from detector.inputs import SIDE

GRID = 8
CELL_DIM = 16
GLOBAL_DIM = 32
CELL_FEATURES = 24
GLOBAL_FEATURES = 48
# The global vector is stored at 8 bits a component, the cells at 4 (two per byte).
_GLOBAL_Q = 127
_CELL_Q = 7
EMBEDDING_BYTES = GLOBAL_DIM + GRID * GRID * CELL_DIM // 2
# Floor of the per-frame standard deviation used to normalise the input (flat frames stay finite).
_STD_FLOOR = 0.02

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
WEIGHTS_FILE = WEIGHTS_DIR / "model.pt"


@dataclass(frozen=True)
class ModelConfig:
    """Shapes a weights file was trained with; checked on load."""

    side: int = SIDE
    grid: int = GRID
    cell_dim: int = CELL_DIM
    global_dim: int = GLOBAL_DIM
    cell_features: int = CELL_FEATURES
    global_features: int = GLOBAL_FEATURES
    batch_norm: bool = True


def _conv(cin: int, cout: int, stride: int = 1, norm: bool = True) -> nn.Sequential:
    """3x3 convolution, batch norm (trains in far fewer steps), ReLU."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class FrameEncoder(nn.Module):
    """64x64 RGB → (cell features at 8x8, global features): six 3x3 convolutions, ~60k weights.

    Larger squares (`ModelConfig.side`) work too: the last map is pooled to the grid.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        bn = config.batch_norm
        self.stem = nn.Sequential(_conv(3, 16, 2, bn), _conv(16, 24, 1, bn))  # 32x32
        self.mid = nn.Sequential(_conv(24, 32, 2, bn), _conv(32, 32, 1, bn))  # 16x16
        self.top = nn.Sequential(_conv(32, 48, 2, bn), _conv(48, 48, 1, bn))  # 8x8
        # Cells see the 8x8 map plus the 16x16 and 32x32 ones pooled: finer detail, and texture
        # statistics, so an inpainted (smoothed) patch moves its cell.
        self.cell_head = nn.Conv2d(48 + 32 + 24, config.cell_features, kernel_size=1)
        self.global_head = nn.Linear(2 * 48, config.global_features)
        self.grid = config.grid

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, 3, S, S) floats 0..1 → cells (N, Fc, G, G), global (N, Fg)."""
        mean = x.mean(dim=(2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True).clamp_min(_STD_FLOOR)
        x = (x - mean) / std  # brightness, contrast and a global tint say nothing about tampering
        stem = self.stem(x)
        mid = self.mid(stem)
        top = self.top(mid)
        if top.shape[-1] != self.grid:
            top = F.adaptive_avg_pool2d(top, self.grid)
        fine = F.adaptive_avg_pool2d(mid, self.grid)
        finest = F.adaptive_avg_pool2d(stem, self.grid)
        cells = self.cell_head(torch.cat([top, fine, finest], dim=1))
        pooled = torch.cat([top.mean(dim=(2, 3)), top.amax(dim=(2, 3))], dim=1)
        return cells, self.global_head(pooled)


def _masked_attention(logits: torch.Tensor, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over dim 1 of `logits` where `mask`, applied to `values` (same leading dims)."""
    logits = logits.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(logits, dim=1)
    return (weights * values).sum(dim=1)


def _masked_max(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return values.masked_fill(~mask, float("-inf")).amax(dim=1)


def inference_encoder(encoder: FrameEncoder) -> FrameEncoder:
    """A copy of an encoder in eval mode with each batch norm folded into its convolution.

    The same function with one operation fewer per layer: a tenth of the encoder's time on the
    CPU. The original stays as it is (it may be trained or saved on).
    """
    fused = copy.deepcopy(encoder).eval()
    for block in fused.modules():
        if isinstance(block, nn.Sequential) and len(block) == 3 and isinstance(block[1], nn.BatchNorm2d):
            conv, norm = block[0], block[1]
            assert isinstance(conv, nn.Conv2d)
            block[0] = fuse_conv_bn_eval(conv, norm)
            block[1] = nn.Identity()
    return fused


class TemporalAggregator(nn.Module):
    """Frame features of a segment (masked) → unit cell embeddings and a unit global embedding."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        fc, fg = config.cell_features, config.global_features
        self.cell_attention = nn.Conv2d(fc, 1, kernel_size=1)
        self.cell_out = nn.Sequential(
            nn.Conv2d(2 * fc, 2 * fc, kernel_size=1), nn.ReLU(), nn.Conv2d(2 * fc, config.cell_dim, 1)
        )
        self.gru = nn.GRU(fg, fg, batch_first=True)
        self.global_attention = nn.Linear(fg, 1)
        self.global_out = nn.Sequential(
            nn.Linear(2 * fg, 2 * fg), nn.ReLU(), nn.Linear(2 * fg, config.global_dim)
        )

    def forward(
        self, cells: torch.Tensor, glob: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """cells (B, T, Fc, G, G), glob (B, T, Fg), mask (B, T) bool with valid frames first.

        Returns cell embeddings (B, G, G, D) and global embeddings (B, Dg), unit length.
        """
        b, t, fc, g, _ = cells.shape
        logits = self.cell_attention(cells.reshape(b * t, fc, g, g)).reshape(b, t, 1, g, g)
        cmask = mask.view(b, t, 1, 1, 1)
        pooled = torch.cat(
            [_masked_attention(logits, cells, cmask), _masked_max(cells, cmask.expand_as(cells))], dim=1
        )
        cell_emb = F.normalize(self.cell_out(pooled), dim=1).permute(0, 2, 3, 1)
        # Valid frames come first, so the (causal) GRU's outputs at valid steps ignore the padding.
        hidden, _ = self.gru(glob)
        gmask = mask.view(b, t, 1)
        gpooled = torch.cat(
            [
                _masked_attention(self.global_attention(hidden), hidden, gmask),
                _masked_max(hidden, gmask.expand_as(hidden)),
            ],
            dim=1,
        )
        return cell_emb, F.normalize(self.global_out(gpooled), dim=1)


class TripletNet(nn.Module):
    """Frame encoder plus temporal aggregator: frames of segments → segment embeddings."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        self.encoder = FrameEncoder(self.config)
        self.aggregator = TemporalAggregator(self.config)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames (B, T, 3, S, S) floats 0..1, mask (B, T) → (cells (B, G, G, D), global (B, Dg))."""
        b, t = frames.shape[:2]
        flat = mask.reshape(b * t)
        # Only valid frames go through the CNN (padding is a fifth of a training batch).
        valid_cells, valid_glob = self.encoder(frames.reshape(b * t, *frames.shape[2:])[flat])
        cells = valid_cells.new_zeros((b * t, *valid_cells.shape[1:]))
        glob = valid_glob.new_zeros((b * t, valid_glob.shape[-1]))
        cells[flat] = valid_cells
        glob[flat] = valid_glob
        embedded: tuple[torch.Tensor, torch.Tensor] = self.aggregator(
            cells.reshape(b, t, *cells.shape[1:]), glob.reshape(b, t, glob.shape[-1]), mask
        )
        return embedded


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(..., S, S, 3) uint8 prepared frames → (..., 3, S, S) float32 in 0..1."""
    x = torch.from_numpy(np.ascontiguousarray(frames))
    return x.movedim(-1, -3).float().div_(255.0)


@dataclass(frozen=True)
class SegmentEmbedding:
    """What registration stores per segment of the original: times (s) and the two embeddings."""

    start: float
    end: float
    frames: int
    global_vec: np.ndarray  # (GLOBAL_DIM,) float32, unit length
    cells: np.ndarray  # (GRID, GRID, CELL_DIM) float32, each unit length


def _unit(v: np.ndarray) -> npt.NDArray[np.float32]:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    unit: npt.NDArray[np.float32] = (v / np.maximum(norm, 1e-8)).astype(np.float32)
    return unit


def _scaled(vectors: np.ndarray, peak_value: int) -> npt.NDArray[np.int8]:
    """Each vector (last axis) scaled so its largest component is +-`peak_value`, rounded (int8).

    Only directions matter (`dequantise` re-normalises), so no scale needs storing and every
    vector uses the whole range.
    """
    peak = np.abs(vectors).max(axis=-1, keepdims=True)
    scaled = np.rint(vectors / np.maximum(peak, 1e-8) * peak_value)
    levels: npt.NDArray[np.int8] = np.clip(scaled, -peak_value, peak_value).astype(np.int8)
    return levels


def quantise(embedding: SegmentEmbedding) -> bytes:
    """`EMBEDDING_BYTES`: the global vector in int8, then the cells row-major in int4 (see `_scaled`).

    Two 4-bit values per byte, the first in the low nibble: a cell's 16 components at 4 bits
    take the 8 bytes its 8 components at 8 bits took, and separate subtle edits better.
    """
    glob = np.asarray(embedding.global_vec, dtype=np.float32).reshape(GLOBAL_DIM)
    cells = np.asarray(embedding.cells, dtype=np.float32).reshape(GRID * GRID, CELL_DIM)
    nibbles = (_scaled(cells, _CELL_Q).reshape(-1, 2).astype(np.uint8)) & 0x0F
    packed = nibbles[:, 0] | (nibbles[:, 1] << 4)
    return _scaled(glob, _GLOBAL_Q).tobytes() + packed.tobytes()


def dequantise(data: bytes, start: float = 0.0, end: float = 0.0, frames: int = 0) -> SegmentEmbedding:
    """Inverse of `quantise` (vectors re-normalised); times come from the caller's record."""
    if len(data) != EMBEDDING_BYTES:
        raise ValueError(f"a quantised embedding has {EMBEDDING_BYTES} bytes, not {len(data)}")
    raw = np.frombuffer(data, dtype=np.uint8)
    glob = _unit(raw[:GLOBAL_DIM].view(np.int8).astype(np.float32))
    packed = raw[GLOBAL_DIM:]
    nibbles = np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(-1).astype(np.int16)
    values = np.where(nibbles >= 8, nibbles - 16, nibbles).astype(np.float32)
    cells = _unit(values.reshape(GRID, GRID, CELL_DIM))
    return SegmentEmbedding(start=start, end=end, frames=frames, global_vec=glob, cells=cells)


def dequantise_layout_1(
    data: bytes, start: float = 0.0, end: float = 0.0, frames: int = 0
) -> SegmentEmbedding:
    """Embeddings stored before cells had 16 components (8 at 8 bits): read so that registrations
    made then still parse; their model version never matches the loaded weights, so they are
    never compared (the verifier falls back to the baseline)."""
    if len(data) != EMBEDDING_BYTES:
        raise ValueError(f"a quantised embedding has {EMBEDDING_BYTES} bytes, not {len(data)}")
    values = np.frombuffer(data, dtype=np.int8).astype(np.float32)
    glob, cells = _unit(values[:GLOBAL_DIM]), _unit(values[GLOBAL_DIM:].reshape(GRID, GRID, -1))
    return SegmentEmbedding(start=start, end=end, frames=frames, global_vec=glob, cells=cells)


def save_weights(model: TripletNet, path: Path, calibration: dict[str, float], extra: dict[str, Any]) -> str:
    """Write weights (float16, a few hundred kB), config and calibration; returns the SHA-256 prefix."""
    state = {k: v.detach().to(torch.float16) for k, v in model.state_dict().items()}
    payload = {
        "config": dict(model.config.__dict__),
        "state": state,
        "calibration": dict(calibration),
        "extra": dict(extra),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()[:16]


@dataclass(frozen=True)
class LoadedModel:
    """A model in eval mode with its calibration and an id of the weights it came from."""

    net: TripletNet
    calibration: dict[str, float]
    version: str
    extra: dict[str, Any]


def load_weights(path: Path = WEIGHTS_FILE) -> LoadedModel:
    """Load `save_weights` output (weights_only: a weights file never runs code)."""
    data = path.read_bytes()
    payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    config = ModelConfig(**payload["config"])
    if (config.grid, config.cell_dim, config.global_dim) != (GRID, CELL_DIM, GLOBAL_DIM):
        raise ValueError(
            f"weights for a {config.grid}x{config.grid}x{config.cell_dim} grid are not this code's"
        )
    net = TripletNet(config)
    net.load_state_dict({k: v.float() for k, v in payload["state"].items()})
    net.eval()
    return LoadedModel(
        net=net,
        calibration={k: float(v) for k, v in payload["calibration"].items()},
        version=hashlib.sha256(data).hexdigest()[:16],
        extra=dict(payload.get("extra", {})),
    )
