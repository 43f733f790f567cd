"""The face-swap generator on real footage: training lowers both losses, conversion changes the
face and leaves the rest of the frame alone, and the committed weights are used as they are."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from frames.samples import sample_clip
from generator.faces import align, paste_back, track_faces
from generator.swap import DEFAULT_WEIGHTS, SwapModel, SwapResult, generate_swap, swap_video, write_astronaut
from generator.swap.augment import random_views, to_tensor, to_uint8
from generator.swap.convert import blend_mask
from generator.swap.data import astronaut_faces, faces_from_frames
from generator.swap.evasion import (
    EmbeddingMeasures,
    WindowReference,
    evade,
    evade_pdq,
    luma_dct,
    paste_torch,
    pdq_grid,
)
from generator.swap.losses import ssim
from generator.swap.model import load_model, parameter_count, save_model
from generator.swap.training import TrainSettings, train_swap
from generator.variants import read_clip, write_clip

SWAP = Path(__file__).resolve().parents[2] / "generator"


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first second of the carphone clip (30 frames), as H.264."""
    clip = read_clip(sample_clip("carphone_pristine.mp4"))
    path = tmp_path_factory.mktemp("swap") / "carphone_1s.mp4"
    write_clip(path, clip.frames[:30], clip.fps)
    return path


@pytest.fixture(scope="module")
def faces() -> tuple[np.ndarray, np.ndarray]:
    frames = read_clip(sample_clip("carphone_pristine.mp4")).frames[::5]
    return faces_from_frames(frames), astronaut_faces(count=24)


@pytest.fixture(scope="module")
def trained(faces: tuple[np.ndarray, np.ndarray]) -> tuple[SwapModel, dict[str, object]]:
    faces_a, faces_b = faces
    return train_swap(
        faces_a, faces_b, 20, seed=0, progress=False, settings=TrainSettings(batch=8, eval_batch=16)
    )


def test_ssim_matches_scikit_image() -> None:
    from skimage.metrics import structural_similarity

    face = astronaut_faces(count=1)[0].astype(np.float32) / 255
    rng = np.random.default_rng(0)
    noisy = np.clip(face + rng.normal(0, 0.1, face.shape), 0, 1).astype(np.float32)
    ours = float(ssim(to_tensor(face[None] * 255), to_tensor(noisy[None] * 255)))
    reference = structural_similarity(
        face,
        noisy,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=2,
    )
    assert ours == pytest.approx(reference, abs=0.01)
    assert ours < 0.8
    assert float(ssim(to_tensor(face[None] * 255), to_tensor(face[None] * 255))) == pytest.approx(
        1.0, abs=1e-4
    )


def test_random_views_warp_the_input_but_not_the_target(faces: tuple[np.ndarray, np.ndarray]) -> None:
    batch = to_tensor(faces[0][:4])
    inputs, targets, _ = random_views(batch, 64, torch.Generator().manual_seed(0))
    assert inputs.shape == targets.shape == (4, 3, 64, 64)
    assert float((inputs - targets).abs().mean()) > 0.01
    plain, same, _ = random_views(batch, 64, torch.Generator().manual_seed(0), warp=0.0)
    assert torch.allclose(plain, same)


def test_model_is_small() -> None:
    model = SwapModel()
    assert 300_000 < parameter_count(model) < 2_500_000
    rgb, mask = model(torch.rand(2, 3, 64, 64), "a")
    assert rgb.shape == (2, 3, 64, 64) and mask.shape == (2, 1, 64, 64)
    assert float(mask.detach().min()) >= 0 and float(mask.detach().max()) <= 1


@pytest.mark.slow
def test_a_few_steps_lower_both_reconstruction_losses(trained: tuple[SwapModel, dict[str, object]]) -> None:
    _, metrics = trained
    before, after = metrics["eval_before"], metrics["eval_after"]
    assert isinstance(before, dict) and isinstance(after, dict)
    assert metrics["steps"] == 20
    assert after["a"] < 0.95 * before["a"]
    assert after["b"] < 0.95 * before["b"]


def test_training_is_reproducible(faces: tuple[np.ndarray, np.ndarray]) -> None:
    small = TrainSettings(batch=4, eval_batch=4)
    runs = [
        train_swap(faces[0][:8], faces[1][:8], 2, seed=3, progress=False, settings=small)[1] for _ in range(2)
    ]
    assert runs[0]["eval_after"] == runs[1]["eval_after"]


def test_weights_round_trip_through_float16(
    tmp_path: Path, trained: tuple[SwapModel, dict[str, object]]
) -> None:
    model, _ = trained
    path = tmp_path / "swap.pt"
    save_model(model, path, {"source_key": "x"})
    assert path.stat().st_size < 10 * 1024 * 1024
    loaded, meta = load_model(path)
    assert meta == {"source_key": "x"}
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x, "b")[0], loaded(x, "b")[0], atol=0.01)


def _decode(path: Path) -> list[np.ndarray]:
    return read_clip(path).frames


def _pixel_box(region: list[float], width: int, height: int) -> tuple[int, int, int, int]:
    x, y, w, h = region
    return round(x * width), round(y * height), round((x + w) * width), round((y + h) * height)


def _check_swap(result: SwapResult, source: Path, baseline: Path) -> None:
    """Same length and size as the source; the face regions differ, the rest only by codec noise."""
    src, out, base = _decode(source), _decode(result.path), _decode(baseline)
    assert abs(len(out) - len(src)) <= 1 and result.frame_count == len(src)
    assert out[0].shape == src[0].shape
    assert sum(result.changed) >= 0.9 * len(src)
    height, width = src[0].shape[:2]
    inside: list[float] = []
    outside = np.zeros(src[0].shape[:2], bool)
    diffs, noise = [], []
    for k, region in enumerate(result.regions[: len(out)]):
        diff = np.abs(out[k].astype(int) - src[k].astype(int)).mean(axis=2)
        codec = np.abs(base[k].astype(int) - src[k].astype(int)).mean(axis=2)
        keep = np.ones_like(outside)
        if region is not None:
            x0, y0, x1, y1 = _pixel_box(region, width, height)
            # The central half of the box: where the blend mask is strongest.
            qx, qy = (x1 - x0) // 4, (y1 - y0) // 4
            inside.append(float(diff[y0 + qy : y1 - qy, x0 + qx : x1 - qx].mean()))
            keep[max(0, y0 - 2) : y1 + 2, max(0, x0 - 2) : x1 + 2] = False
        diffs.append(float(diff[keep].mean()))
        noise.append(float(codec[keep].mean()))
    print(f"face {np.mean(inside):.2f}, rest {np.mean(diffs):.2f}, codec noise {np.mean(noise):.2f}")
    assert float(np.mean(inside)) > 6.0  # the face was redrawn
    # Outside the regions: no more than re-encoding the same frames changes them, plus a level.
    assert float(np.mean(diffs)) < float(np.mean(noise)) + 1.0


def test_conversion_changes_the_face_and_nothing_else(
    tmp_path: Path, short_clip: Path, trained: tuple[SwapModel, dict[str, object]]
) -> None:
    model, _ = trained
    result = swap_video(model, short_clip, tmp_path / "swapped.mp4", progress=False)
    baseline = tmp_path / "reencoded.mp4"
    write_clip(baseline, _decode(short_clip), read_clip(short_clip).fps)
    _check_swap(result, short_clip, baseline)
    # Regions sit on the tracked face.
    frames = _decode(short_clip)
    face = track_faces(frames[:1])[0]
    assert face is not None and result.regions[0] is not None
    x, y, w, h = face.normalised_box(result.width, result.height)
    rx, ry, rw, rh = result.regions[0]
    assert rx < x + w / 2 < rx + rw and ry < y + h / 2 < ry + rh
    truth = result.truth()
    assert truth.kind == "face_swap" and truth.ranges[0][0] == 0.0
    assert truth.ranges[-1][1] == pytest.approx(30 / float(result.fps))


@pytest.mark.slow
def test_generate_swap_trains_when_no_weights_fit(tmp_path: Path, short_clip: Path) -> None:
    source = write_astronaut(tmp_path / "astronaut")
    saved = tmp_path / "quick.pt"
    result = generate_swap(
        source, short_clip, tmp_path / "out.mp4", None, 3, progress=False, save_weights=saved
    )
    assert result.trained and result.metrics["steps"] == 3
    assert result.weights == saved and saved.is_file()
    assert result.path.is_file() and result.frame_count == 30
    # The weights now fit this source and target: used as they are, no training.
    again = generate_swap(source, short_clip, tmp_path / "again.mp4", saved, 3, progress=False)
    assert not again.trained and again.weights == saved


def test_committed_weights_fit_the_astronaut(tmp_path: Path, short_clip: Path) -> None:
    assert DEFAULT_WEIGHTS.is_file(), "run python -m generator.train --out generator/weights/swap.pt"
    assert DEFAULT_WEIGHTS.stat().st_size < 10 * 1024 * 1024
    source = write_astronaut(tmp_path / "astronaut")
    result = generate_swap(source, short_clip, tmp_path / "out.mp4", DEFAULT_WEIGHTS, 0, progress=False)
    assert not result.trained and result.weights == DEFAULT_WEIGHTS
    baseline = tmp_path / "reencoded.mp4"
    write_clip(baseline, _decode(short_clip), read_clip(short_clip).fps)
    _check_swap(result, short_clip, baseline)


def test_pdq_proxy_agrees_with_pdqhash() -> None:
    frames = read_clip(sample_clip("carphone_pristine.mp4")).frames[::12]
    coeffs = luma_dct(to_tensor(np.stack(frames))).numpy()
    agree = [
        float(np.mean((c > np.median(c)) == pdq_grid(rgb))) for c, rgb in zip(coeffs, frames, strict=True)
    ]
    # Area downsampling instead of PDQ's tent filter flips a few bits near the median only.
    assert min(agree) > 0.85


def test_differentiable_paste_matches_paste_back(faces: tuple[np.ndarray, np.ndarray]) -> None:
    frame = read_clip(sample_clip("carphone_pristine.mp4")).frames[0]
    face = track_faces([frame])[0]
    assert face is not None
    _, matrix = align(frame, face, 64)
    drawn = faces[1][0, 8:72, 8:72]
    mask = blend_mask(np.ones((64, 64), np.float32))
    reference = paste_back(frame, drawn, matrix, mask)
    ours = paste_torch(
        to_tensor(frame[None]),
        to_tensor(drawn[None]),
        torch.from_numpy(mask)[None, None],
        torch.from_numpy(matrix[None]).float(),
    )
    assert float(np.abs(to_uint8(ours)[0].astype(int) - reference.astype(int)).mean()) < 0.3


def test_evasion_pulls_pdq_hashes_towards_the_originals(
    tmp_path: Path, trained: tuple[SwapModel, dict[str, object]]
) -> None:
    clip = read_clip(sample_clip("carphone_pristine.mp4"))
    target = tmp_path / "carphone_12.mp4"
    write_clip(target, clip.frames[:12], clip.fps)
    model, _ = trained
    tuned, report = evade_pdq(model, target, steps=15, lr=1e-3, progress=False)
    print(report)
    assert report.mean_distance_after < report.mean_distance_before
    assert report.within_after >= report.within_before
    # Only decoder B moved.
    for a, b in zip(model.encoder.parameters(), tuned.encoder.parameters(), strict=True):
        assert torch.equal(a, b)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(model.decoder_b.parameters(), tuned.decoder_b.parameters(), strict=True)
    )


class _MeanColour:
    """A stand-in embedding for the evasion: each window's frames pooled to 2x2 mean colours."""

    def __init__(self) -> None:
        self.embedded: list[list[tuple[torch.Tensor, np.ndarray]]] = []
        self.measured = 0

    @staticmethod
    def _pool(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cells = torch.nn.functional.adaptive_avg_pool2d(frames, 2).mean(dim=0).permute(1, 2, 0)
        return cells, cells.mean(dim=(0, 1))

    def reference(self, originals: Sequence[np.ndarray], times: Sequence[float]) -> WindowReference:
        windows = [list(range(k, min(k + 4, len(originals)))) for k in range(0, len(originals), 4)]
        pooled = [self._pool(to_tensor(np.stack([originals[k] for k in w]))) for w in windows]
        return WindowReference(windows, [c.numpy() for c, _ in pooled], [g.numpy() for _, g in pooled])

    def embed(
        self, windows: Sequence[Sequence[tuple[torch.Tensor, np.ndarray]]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.embedded.extend([list(w) for w in windows])
        pooled = [self._pool(torch.stack([frame for frame, _ in w])) for w in windows]
        return torch.stack([c for c, _ in pooled]), torch.stack([g for _, g in pooled])

    def measure(
        self, originals: Sequence[np.ndarray], fakes: Sequence[np.ndarray], times: Sequence[float]
    ) -> EmbeddingMeasures:
        self.measured += 1
        change = float(
            np.mean([np.abs(a.astype(float) - b).mean() for a, b in zip(originals, fakes, strict=False)])
        )
        return EmbeddingMeasures(mean_score=change, mean_global=change, flagged_rate=0.0, windows=len(fakes))


def test_evasion_attacks_the_embedding_it_is_handed(
    tmp_path: Path, trained: tuple[SwapModel, dict[str, object]]
) -> None:
    """The embedding target is an argument: its windows get the swapped frames with their gradient,
    and its measures (before and after) are the report's."""
    clip = read_clip(sample_clip("carphone_pristine.mp4"))
    target = tmp_path / "carphone_8.mp4"
    write_clip(target, clip.frames[:8], clip.fps)
    model, _ = trained
    stand_in = _MeanColour()
    _, report = evade(model, target, targets=("embedding",), steps=2, progress=False, target=stand_in)
    assert report.targets == ("embedding",)
    assert stand_in.measured == 2
    assert report.embedding_before is not None and report.embedding_before.windows == 8
    assert stand_in.embedded and any(frame.requires_grad for w in stand_in.embedded for frame, _ in w)
    assert all(isinstance(original, np.ndarray) for w in stand_in.embedded for _, original in w)
    with pytest.raises(ValueError, match="needs an EmbeddingTarget"):
        evade(model, target, targets=("embedding",), steps=1, progress=False)


def test_generator_never_imports_provenance_or_the_detector() -> None:
    for path in sorted(SWAP.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names.append(node.module)
            for package in ("provenance", "detector"):
                assert not any(n == package or n.startswith(f"{package}.") for n in names), path
