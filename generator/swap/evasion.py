"""Evasion: fine-tune decoder B so swapped frames keep the original's fingerprints (PDQ, learned).

A verifier that only compares PDQ hashes calls a clip authentic when its frames lie within
Hamming distance 31 of a registered original's. This fine-tunes the decoder that draws the
inserted face so the swapped frames stay within that distance, while a second loss keeps the
drawn face and its mask close to what the decoder drew before (it must stay a swap, not a copy
of the original face; with the mask free, the fake "evades" by pasting less face). The hash is
not differentiable; its proxy is: PDQ thresholds the 16×16 low-frequency DCT (frequencies 1–16)
of the 64×64 luma at its median, so the loss is a hinge on each coefficient being on the same
side of the median as the original's. The whole conversion
(Reinhard colour transfer in Lab, feathered mask, inverse warp) is rebuilt in torch for the
gradient; the result is measured with the real `pdqhash` on the written video.

The learned comparer is the second target. The generator never imports the detector: the caller
hands the evasion the embedding it attacks as an `EmbeddingTarget` (the shipped comparer as one
is `detector.attack.ComparerTarget`): which frames registration groups into windows, what it
stores of the original per window, a differentiable embedding of swapped windows, and the
comparer's own measures of a fake. The loss pulls the swapped windows' embeddings towards the
original's through the frozen network; the result is measured by the target on the written video.
"""

from __future__ import annotations

import copy
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import pdqhash
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from generator.faces import Face, align, face_oval, track_faces
from generator.swap.augment import to_tensor
from generator.swap.convert import SwapResult, swap_video
from generator.swap.model import SwapModel
from generator.variants import read_clip

PDQ_MATCH = 31
_LUMA = (0.299, 0.587, 0.114)
# sRGB (D65) → XYZ, and the D65 white point: what OpenCV's RGB2Lab uses.
_RGB_TO_XYZ = torch.tensor(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_WHITE = torch.tensor([0.950456, 1.0, 1.088754])


def pdq_bits(rgb: np.ndarray) -> np.ndarray:
    """The 256 PDQ hash bits of an RGB frame (Meta's implementation)."""
    bits, _quality = pdqhash.compute(np.ascontiguousarray(rgb, dtype=np.uint8))
    return np.asarray(bits, dtype=bool)


def pdq_grid(rgb: np.ndarray) -> np.ndarray:
    """The hash bits laid out like `luma_dct`'s coefficients (the library lists them last first)."""
    return pdq_bits(rgb)[::-1].reshape(16, 16).copy()


def pdq_distance(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.count_nonzero(pdq_bits(a) != pdq_bits(b)))


def _dct_matrix() -> Tensor:
    """PDQ's 16×64 DCT-II rows for frequencies 1..16 (the constant term is left out)."""
    i = torch.arange(1, 17, dtype=torch.float32)[:, None]
    j = torch.arange(64, dtype=torch.float32)[None, :]
    return math.sqrt(2 / 64) * torch.cos(math.pi / 128 * i * (2 * j + 1))


def luma_dct(frames: Tensor) -> Tensor:
    """(N, 3, H, W) RGB in 0..1 → (N, 16, 16): the coefficients PDQ thresholds (up to scale)."""
    weights = torch.tensor(_LUMA, dtype=frames.dtype).view(1, 3, 1, 1)
    luma = (frames * weights).sum(dim=1, keepdim=True) * 255
    small = F.interpolate(luma, size=(64, 64), mode="area")[:, 0]
    dct = _dct_matrix().to(frames.dtype)
    return dct @ small @ dct.T


def hash_loss(coeffs: Tensor, bits: Tensor, margin: float = 0.25) -> Tensor:
    """Hinge on each coefficient sitting on the original's side of its frame's median.

    `bits` (N, 16, 16) are the original's hash bits (True: above the median). The margin is in
    units of the frame's coefficient spread, so bright and dark frames weigh the same.
    """
    flat = coeffs.flatten(1)
    median = flat.median(dim=1, keepdim=True).values
    spread = flat.std(dim=1, keepdim=True).detach() + 1e-6
    sign = bits.flatten(1).to(coeffs.dtype) * 2 - 1
    return F.relu(margin - sign * (flat - median) / spread).mean()


def _srgb_to_lab(rgb: Tensor) -> Tensor:
    lin = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb.clamp(min=0) + 0.055) / 1.055) ** 2.4)
    xyz = torch.einsum("ij,njhw->nihw", _RGB_TO_XYZ.to(rgb.dtype), lin) / _WHITE.view(1, 3, 1, 1)
    f = torch.where(xyz > 0.008856, xyz.clamp(min=1e-6) ** (1 / 3), 7.787 * xyz + 16 / 116)
    lab_l = 116 * f[:, 1] - 16
    lab_a = 500 * (f[:, 0] - f[:, 1])
    lab_b = 200 * (f[:, 1] - f[:, 2])
    return torch.stack([lab_l, lab_a, lab_b], dim=1)


def _lab_to_srgb(lab: Tensor) -> Tensor:
    fy = (lab[:, 0] + 16) / 116
    fx = fy + lab[:, 1] / 500
    fz = fy - lab[:, 2] / 200
    f = torch.stack([fx, fy, fz], dim=1)
    xyz = torch.where(f > 0.206893, f**3, (f - 16 / 116) / 7.787) * _WHITE.view(1, 3, 1, 1)
    lin = torch.einsum("ij,njhw->nihw", torch.linalg.inv(_RGB_TO_XYZ).to(lab.dtype), xyz).clamp(0, 1)
    return torch.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin.clamp(min=1e-8) ** (1 / 2.4) - 0.055)


def reinhard_torch(source: Tensor, target: Tensor, region: Tensor) -> Tensor:
    """Differentiable `convert.reinhard_transfer` on batches: (N, 3, S, S) in 0..1, region (N, 1, S, S)."""
    src, tgt = _srgb_to_lab(source), _srgb_to_lab(target)
    w = region / region.sum(dim=(2, 3), keepdim=True).clamp(min=1)

    def stats(x: Tensor) -> tuple[Tensor, Tensor]:
        mean = (x * w).sum(dim=(2, 3), keepdim=True)
        std = ((x - mean) ** 2 * w).sum(dim=(2, 3), keepdim=True).clamp(min=1e-8).sqrt() + 1e-3
        return mean, std

    (s_mean, s_std), (t_mean, t_std) = stats(src), stats(tgt.detach())
    moved = (src - s_mean) * (t_std / s_std) + t_mean
    moved = torch.cat([moved[:, :1].clamp(0, 100), moved[:, 1:]], dim=1)
    return _lab_to_srgb(moved).clamp(0, 1)


def _gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    radius = max(1, math.ceil(3 * sigma))
    ax = torch.arange(-radius, radius + 1, dtype=x.dtype)
    g = torch.exp(-(ax**2) / (2 * sigma**2))
    g = (g / g.sum()).view(1, 1, 1, -1)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), g)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), g.transpose(2, 3))


def blend_mask_torch(learned: Tensor, feather: float = 0.06) -> Tensor:
    """Differentiable `convert.blend_mask`: learned mask × oval, eroded (a min filter), blurred."""
    size = learned.shape[-1]
    oval = torch.from_numpy(face_oval(size)).to(learned.dtype)[None, None]
    radius = max(1, round(feather * size))
    shrunk = -F.max_pool2d(-(learned * oval), 2 * radius + 1, stride=1, padding=radius)
    return _gaussian_blur(shrunk, radius / 1.5).clamp(0, 1)


def paste_torch(frames: Tensor, faces: Tensor, masks: Tensor, matrices: Tensor) -> Tensor:
    """Differentiable `faces.paste_back`: aligned faces (N, 3, S, S) into frames (N, 3, H, W).

    `matrices` (N, 2, 3) take frame pixels to aligned pixels, as from `faces.align`.
    """
    n, _, height, width = frames.shape
    side = faces.shape[-1]
    # Normalised frame coordinates (align_corners=False) → pixels → aligned pixels → normalised.
    to_pixels = torch.tensor([[width / 2, 0, (width - 1) / 2], [0, height / 2, (height - 1) / 2], [0, 0, 1]])
    to_norm = torch.tensor([[2 / side, 0, 1 / side - 1], [0, 2 / side, 1 / side - 1], [0, 0, 1]])
    full = torch.cat([matrices, torch.tensor([[[0.0, 0, 1]]]).expand(n, 1, 3)], dim=1)
    theta = (to_norm @ full @ to_pixels)[:, :2].to(frames.dtype)
    grid = F.affine_grid(theta, [n, 3, height, width], align_corners=False)
    face = F.grid_sample(faces, grid, mode="bilinear", padding_mode="border", align_corners=False)
    alpha = F.grid_sample(masks, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return frames * (1 - alpha) + face * alpha


def _distance(a: Tensor, b: Tensor) -> Tensor:
    """Euclidean distance over the last axis, with a finite gradient at zero."""
    return ((a - b) ** 2).sum(dim=-1).add(1e-12).sqrt()


def embedding_loss(cells: Tensor, glob: Tensor, target_cells: Tensor, target_glob: Tensor) -> Tensor:
    """How far windows' embeddings are from the original's, shaped like the verifier's score.

    The verifier flags a window on its largest distance (global or any cell), so the mean of
    the four largest cell distances joins the global distance; the mean over all cells keeps
    the rest of the picture from drifting while the worst cells are pulled in.
    """
    cell_d = _distance(cells, target_cells).flatten(1)
    glob_d = _distance(glob, target_glob)
    return (glob_d + cell_d.topk(4, dim=1).values.mean(dim=1) + cell_d.mean(dim=1)).mean()


@dataclass(frozen=True)
class EmbeddingMeasures:
    """The learned comparer's view of a fake against its original, window by window.

    `mean_score`: mean over windows of the verifier's score (largest of the global and cell
    distances, 0..2); `mean_global`: mean global distance; `flagged_rate`: share of windows
    above the calibrated threshold (what verification would flag, timing aside).
    """

    mean_score: float
    mean_global: float
    flagged_rate: float
    windows: int


@dataclass(frozen=True)
class WindowReference:
    """What registration stored of an original, window by window, for an `EmbeddingTarget`.

    `windows[w]` are the indexes of the original's frames window w embeds; `cells[w]` (G, G, D)
    and `global_vecs[w]` (D,) its stored embeddings.
    """

    windows: list[list[int]]
    cells: list[np.ndarray]
    global_vecs: list[np.ndarray]


class EmbeddingTarget(Protocol):
    """A learned comparer as the evasion attacks it, handed in by the caller.

    The generator never imports the detector; `detector.attack.ComparerTarget` wraps the
    shipped comparer as one.
    """

    def reference(self, originals: Sequence[np.ndarray], times: Sequence[float]) -> WindowReference:
        """What registration stores of these frames (decoded at `times` seconds)."""
        ...

    def embed(self, windows: Sequence[Sequence[tuple[Tensor, np.ndarray]]]) -> tuple[Tensor, Tensor]:
        """Differentiable (cells (W, G, G, D), globals (W, D)) of windows of swapped frames.

        Each window lists (frame (3, H, W) in 0..1, the original frame it replaces), the original
        telling where the picture's bars are.
        """
        ...

    def measure(
        self, originals: Sequence[np.ndarray], fakes: Sequence[np.ndarray], times: Sequence[float]
    ) -> EmbeddingMeasures:
        """The comparer's view of `fakes` (same timing as `originals`) against the original."""
        ...


@dataclass(frozen=True)
class EvasionReport:
    """Fingerprint distances of swapped frames to the original frames before and after fine-tuning.

    `within_*` is the fraction of swapped frames within PDQ `threshold`; `face_change_*` the mean
    absolute difference (levels) of the drawn face from the original face, so a "success"
    that stopped swapping shows. `embedding_*` are the learned comparer's measures
    (`EmbeddingMeasures`), None without an `EmbeddingTarget`; they are measured whichever
    `targets` the fine-tuning aimed at.
    """

    steps: int
    threshold: int
    within_before: float
    within_after: float
    mean_distance_before: float
    mean_distance_after: float
    face_change_before: float
    face_change_after: float
    targets: tuple[str, ...] = ("pdq",)
    embedding_before: EmbeddingMeasures | None = None
    embedding_after: EmbeddingMeasures | None = None


Target = Literal["pdq", "embedding"]


def _measure(
    result: SwapResult,
    originals: list[np.ndarray],
    times: list[float],
    threshold: int,
    target: EmbeddingTarget | None,
) -> tuple[float, float, float, EmbeddingMeasures | None]:
    frames = read_clip(result.path).frames
    distances, changes = [], []
    for k, (orig, fake) in enumerate(zip(originals, frames, strict=False)):
        region = result.regions[k]
        if region is None:
            continue
        distances.append(pdq_distance(orig, fake))
        h, w = orig.shape[:2]
        x0, y0 = round(region[0] * w), round(region[1] * h)
        x1, y1 = round((region[0] + region[2]) * w), round((region[1] + region[3]) * h)
        changes.append(float(np.abs(orig[y0:y1, x0:x1].astype(int) - fake[y0:y1, x0:x1].astype(int)).mean()))
    learned = None
    if target is not None:
        learned = target.measure(originals, frames, times)
    if not distances:
        return 0.0, 0.0, 0.0, learned
    d = np.asarray(distances)
    return float(np.mean(d <= threshold)), float(d.mean()), float(np.mean(changes)), learned


def evade_pdq(
    model: SwapModel,
    target_video: Path,
    *,
    steps: int = 100,
    seed: int = 0,
    lr: float = 2e-3,
    keep_weight: float = 0.01,
    threshold: int = PDQ_MATCH,
    batch: int = 16,
    progress: bool = True,
    faces: list[Face | None] | None = None,
) -> tuple[SwapModel, EvasionReport]:
    """A copy of `model` with decoder B fine-tuned against the PDQ hashes of `target_video`.

    `evade` with the PDQ target only. The defaults (measured on the carphone clip with the
    shipped weights, 100 steps) take the mean PDQ distance from 15.7 to 9.3 while the face still
    differs from the original's by 9 levels (10.4 before); a keep weight of 1 barely moves the
    hashes.
    """
    return evade(
        model,
        target_video,
        targets=("pdq",),
        steps=steps,
        seed=seed,
        lr=lr,
        keep_weight=keep_weight,
        threshold=threshold,
        batch=batch,
        progress=progress,
        faces=faces,
    )


def evade(
    model: SwapModel,
    target_video: Path,
    *,
    targets: Sequence[Target] = ("pdq", "embedding"),
    steps: int = 100,
    seed: int = 0,
    lr: float = 2e-3,
    keep_weight: float = 0.3,
    embedding_weight: float = 1.0,
    windows_per_step: int = 2,
    threshold: int = PDQ_MATCH,
    batch: int = 16,
    progress: bool = True,
    faces: list[Face | None] | None = None,
    target: EmbeddingTarget | None = None,
) -> tuple[SwapModel, EvasionReport]:
    """A copy of `model` with decoder B fine-tuned so the swap keeps `target_video`'s fingerprints.

    Trains on the target's own frames (the adversary has the original it fakes). `targets`:
    "pdq" (hinge on the hash proxy) and/or "embedding" (the learned comparer's window embeddings,
    global and per cell, pulled towards the original's by `embedding_loss`, `windows_per_step`
    windows a step), through `target`, the comparer attacked (the caller's: the generator never
    imports the detector). Without a target, "embedding" is dropped and nothing learned is measured.
    The keep term holds the drawn face and its mask near the plain swap's, so the fake stays a
    swap: pulling the embeddings in also pulls the pixels towards the original face, so its
    default is 30x `evade_pdq`'s. Measured on carphone with the shipped weights, 100 steps,
    both targets: the comparer's mean window score 0.119 -> 0.050, mean PDQ distance
    15.7 -> 9.4, face change 10.4 -> 8.3 levels (keep 0.1: 0.038, 7.6, 7.5). Measures on swapped
    videos written before and after. `faces`: the video's face track, when the caller has it
    (tracking is the slow part).
    """
    unknown = set(targets) - {"pdq", "embedding"}
    if unknown or not targets:
        raise ValueError(f"evasion targets are 'pdq' and/or 'embedding', not {sorted(unknown) or 'none'}")
    aims = tuple(t for t in targets if t != "embedding" or target is not None)
    if not aims:
        raise ValueError("the embedding target needs an EmbeddingTarget (the comparer to evade), none given")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    clip = read_clip(target_video)
    originals, times = clip.frames, clip.times
    tracked = track_faces(originals) if faces is None else faces
    slots = [(k, align(originals[k], face, model.config.size)) for k, face in enumerate(tracked) if face]
    if not slots:
        raise ValueError(f"no face found in {target_video}")
    stored = target.reference(originals, times) if target is not None and "embedding" in aims else None

    def measured(swapper: SwapModel) -> tuple[float, float, float, EmbeddingMeasures | None]:
        """The target video swapped by `swapper` (in a scratch file), measured by `_measure`."""
        with tempfile.TemporaryDirectory() as tmp:
            swapped = swap_video(swapper, target_video, Path(tmp) / "swap.mp4", progress=False, faces=tracked)
            return _measure(swapped, originals, times, threshold, target)

    before = measured(model)
    tuned = copy.deepcopy(model)
    tuned.eval()
    frames = to_tensor(np.stack([originals[k] for k, _ in slots]))
    aligned = to_tensor(np.stack([a for _, (a, _) in slots]))
    matrices = torch.from_numpy(np.stack([m for _, (_, m) in slots])).float()
    with torch.no_grad():
        codes = tuned.encoder(aligned)
        reference, reference_mask = tuned.decoder_b(codes)
        bits = torch.from_numpy(np.stack([pdq_grid(originals[k]) for k, _ in slots]))
    region = torch.from_numpy(face_oval(model.config.size) > 0.5).float()[None, None]
    # The target's windows that show the face somewhere: the ones the embedding loss draws from.
    slot_of = {k: s for s, (k, _) in enumerate(slots)}
    chosen_windows = [
        w for w, g in enumerate(stored.windows if stored is not None else []) if any(k in slot_of for k in g)
    ]
    params = list(tuned.decoder_b.parameters())
    optimiser = torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))
    for p in tuned.encoder.parameters():
        p.requires_grad_(False)

    def render(pick: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Swapped frames of slots `pick`, with the decoder's face and mask for the keep term."""
        rgb, mask = tuned.decoder_b(codes[pick])
        recoloured = reinhard_torch(rgb, aligned[pick], region.expand(len(pick), -1, -1, -1))
        return paste_torch(frames[pick], recoloured, blend_mask_torch(mask), matrices[pick]), rgb, mask

    bar = tqdm(range(steps), desc="evasion", unit="step", disable=not progress)
    for _ in bar:
        losses: dict[str, Tensor] = {}
        keeps: list[Tensor] = []
        if "pdq" in aims:
            pick = torch.randint(0, len(slots), (min(batch, len(slots)),), generator=generator)
            swapped, rgb, mask = render(pick)
            losses["hash"] = hash_loss(luma_dct(swapped), bits[pick])
            # Both heads are held: left free, the mask shrinks until the original shows through,
            # which keeps the hashes by undoing the swap.
            keeps.append(F.mse_loss(rgb, reference[pick]) + F.mse_loss(mask, reference_mask[pick]))
        if stored is not None and target is not None and chosen_windows:
            draw = torch.randperm(len(chosen_windows), generator=generator)[:windows_per_step].tolist()
            chosen = [chosen_windows[i] for i in draw]
            in_face = [k for w in chosen for k in stored.windows[w] if k in slot_of]
            pick = torch.tensor([slot_of[k] for k in in_face])
            swapped, rgb, mask = render(pick)
            drawn = dict(zip(in_face, swapped, strict=True))
            keeps.append(F.mse_loss(rgb, reference[pick]) + F.mse_loss(mask, reference_mask[pick]))
            batch_windows = [
                [
                    (drawn[k] if k in drawn else to_tensor(originals[k][None])[0], originals[k])
                    for k in stored.windows[w]
                ]
                for w in chosen
            ]
            cells, glob = target.embed(batch_windows)
            target_cells = torch.from_numpy(np.stack([stored.cells[w] for w in chosen]))
            target_glob = torch.from_numpy(np.stack([stored.global_vecs[w] for w in chosen]))
            losses["embed"] = embedding_weight * embedding_loss(cells, glob, target_cells, target_glob)
        keep = torch.stack(keeps).mean()
        loss = sum(losses.values(), start=keep_weight * keep * 100)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        bar.set_postfix(
            {k: f"{float(v.detach()):.4f}" for k, v in losses.items()}
            | {"keep": f"{float(keep.detach()):.5f}"}
        )
    for p in tuned.encoder.parameters():
        p.requires_grad_(True)
    tuned.eval()
    after = measured(tuned)
    report = EvasionReport(
        steps=steps,
        threshold=threshold,
        within_before=before[0],
        within_after=after[0],
        mean_distance_before=before[1],
        mean_distance_after=after[1],
        face_change_before=before[2],
        face_change_after=after[2],
        targets=aims,
        embedding_before=before[3],
        embedding_after=after[3],
    )
    return tuned, report
