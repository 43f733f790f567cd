"""The network's shapes, masking, the storage of its embeddings, and the shipped weights' records."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from detector.comparer import assign_windows, decode_segments, encode_segments, group_windows
from detector.inputs import prepare
from detector.model import (
    CELL_DIM,
    EMBEDDING_BYTES,
    GLOBAL_DIM,
    GRID,
    WEIGHTS_DIR,
    WEIGHTS_FILE,
    SegmentEmbedding,
    TripletNet,
    dequantise,
    inference_encoder,
    load_weights,
    quantise,
)
from frames.bars import content_box


def _random_embedding(seed: int, start: float = 0.0) -> SegmentEmbedding:
    rng = np.random.default_rng(seed)
    glob = rng.normal(size=GLOBAL_DIM).astype(np.float32)
    cells = rng.normal(size=(GRID, GRID, CELL_DIM)).astype(np.float32)
    return SegmentEmbedding(
        start=start,
        end=start + 1.0,
        frames=4,
        global_vec=glob / np.linalg.norm(glob),
        cells=cells / np.linalg.norm(cells, axis=-1, keepdims=True),
    )


def test_quantise_round_trip_is_close_and_small() -> None:
    embedding = _random_embedding(0)
    data = quantise(embedding)
    assert len(data) == EMBEDDING_BYTES == 544
    back = dequantise(data, 2.0, 3.0, 4)
    # The global vector at 8 bits moves by under 1%; a 16-component cell at 4 bits by ~8%.
    assert np.linalg.norm(back.global_vec - embedding.global_vec) < 0.01
    cell_error = np.linalg.norm(back.cells - embedding.cells, axis=-1)
    assert cell_error.mean() < 0.1 and cell_error.max() < 0.2
    # What the comparer thresholds (a few tenths) is built from distances: they move by a few hundredths.
    other = _random_embedding(1).cells
    exact = np.linalg.norm(other - embedding.cells, axis=-1)
    stored = np.linalg.norm(other - back.cells, axis=-1)
    assert np.abs(stored - exact).mean() < 0.03
    assert np.allclose(np.linalg.norm(back.cells, axis=-1), 1.0, atol=1e-5)
    assert (back.start, back.end, back.frames) == (2.0, 3.0, 4)


def test_dequantise_rejects_wrong_length() -> None:
    with pytest.raises(ValueError):
        dequantise(b"\0" * (EMBEDDING_BYTES - 1))


def test_segment_block_round_trip() -> None:
    segments = [_random_embedding(k, start=k * 1.0) for k in range(3)]
    block = encode_segments(segments, "0123456789abcdef")
    assert len(block) == 31 + 3 * (9 + EMBEDDING_BYTES)
    version, back = decode_segments(block)
    assert version == "0123456789abcdef"
    assert [(s.start, s.end, s.frames) for s in back] == [(k * 1.0, k + 1.0, 4) for k in range(3)]
    with pytest.raises(ValueError):
        decode_segments(block[:-1])


def test_a_layout_1_block_still_parses() -> None:
    """Registrations stored before 4-bit cells (8 components at 8 bits) keep their fingerprint valid."""
    rng = np.random.default_rng(3)
    old = rng.integers(-127, 128, size=(2, EMBEDDING_BYTES), dtype=np.int8)
    block = encode_segments([_random_embedding(k, start=k * 1.0) for k in range(2)], "0123456789abcdef")
    header = bytearray(block[:31])
    assert header[4] == 2
    header[4] = 1
    records = b"".join(block[31 + k * (9 + EMBEDDING_BYTES) :][:9] + old[k].tobytes() for k in range(2))
    version, back = decode_segments(bytes(header) + records)
    assert version == "0123456789abcdef" and [s.start for s in back] == [0.0, 1.0]
    assert back[0].cells.shape == (GRID, GRID, 8)
    expected = old[0, GLOBAL_DIM:].astype(np.float32).reshape(GRID, GRID, 8)
    assert np.allclose(back[0].cells, expected / np.linalg.norm(expected, axis=-1, keepdims=True), atol=1e-6)
    header[4] = 3
    with pytest.raises(ValueError, match="layout"):
        decode_segments(bytes(header) + records)


def test_padding_frames_do_not_change_the_embedding() -> None:
    """Masked (padded) frames must not leak into a segment's embedding."""
    torch.manual_seed(0)
    net = TripletNet().eval()
    frames = torch.rand(1, 4, 3, 64, 64)
    short = torch.tensor([[True, True, False, False]])
    noise = frames.clone()
    noise[:, 2:] = torch.rand(1, 2, 3, 64, 64)
    with torch.no_grad():
        cells_a, glob_a = net(frames, short)
        cells_b, glob_b = net(noise, short)
        cells_c, glob_c = net(frames[:, :2], torch.ones(1, 2, dtype=torch.bool))
    assert cells_a.shape == (1, GRID, GRID, CELL_DIM) and glob_a.shape == (1, GLOBAL_DIM)
    assert torch.allclose(cells_a, cells_b, atol=1e-5) and torch.allclose(glob_a, glob_b, atol=1e-5)
    assert torch.allclose(cells_a, cells_c, atol=1e-5) and torch.allclose(glob_a, glob_c, atol=1e-5)
    assert torch.allclose(cells_a.norm(dim=-1), torch.ones(1, GRID, GRID), atol=1e-4)


def test_letterbox_is_stripped_before_the_network() -> None:
    rng = np.random.default_rng(1)
    picture = rng.integers(60, 200, size=(90, 160, 3), dtype=np.uint8)
    boxed = np.zeros((130, 160, 3), dtype=np.uint8)
    boxed[20:110] = picture
    assert content_box(boxed) == (20, 110, 0, 160)
    assert np.array_equal(prepare(boxed), prepare(picture))


def test_windows_and_assignment() -> None:
    frames = [(k / 4, np.zeros((8, 8, 3), np.uint8)) for k in range(10)]
    windows = group_windows(frames)
    assert [len(w) for w in windows] == [4, 4, 2]
    segments = [_random_embedding(k, start=float(k)) for k in range(3)]
    # A clip sampled 0.1 s later than the original: each frame stays with its nearest sample's window.
    buckets = assign_windows([0.1 + k / 4 for k in range(12)], segments)
    assert buckets == {0: [0, 1, 2, 3], 1: [4, 5, 6, 7], 2: [8, 9, 10, 11]}
    # Within half a step past the last window still belongs to it; further out, to none.
    assert assign_windows([2.9, 3.2], segments) == {2: [0]}


def test_shipped_weights_load_with_their_recorded_metrics() -> None:
    """The weights file is the one metrics.json and evaluation.json describe, and it beats the baseline."""
    model = load_weights(WEIGHTS_FILE)
    metrics = json.loads((WEIGHTS_DIR / "metrics.json").read_text())
    evaluation = json.loads((WEIGHTS_DIR / "evaluation.json").read_text())
    assert metrics["model_version"] == evaluation["model_version"] == model.version
    assert metrics["weights_bytes"] == WEIGHTS_FILE.stat().st_size < 1024 * 1024
    assert metrics["parameters"] == sum(p.numel() for p in model.net.parameters())
    assert model.calibration == pytest.approx(metrics["calibration"])
    assert metrics["total_seconds"] < 30 * 60
    learned, base = evaluation["segments"]["learned"], evaluation["segments"]["baseline"]
    assert learned["auc"] > base["auc"] and learned["tpr_at_1pct_fpr"] > base["tpr_at_1pct_fpr"]


def test_the_inference_encoder_folds_batch_norm_and_computes_the_same() -> None:
    net = TripletNet()
    for module in net.encoder.modules():  # statistics as after training, not the initial ones
        if isinstance(module, torch.nn.BatchNorm2d):
            assert module.running_mean is not None and module.running_var is not None
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    net.eval()
    fused = inference_encoder(net.encoder)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.encoder.modules())  # left as it was
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(net.encoder(x), fused(x), strict=True):
            assert torch.allclose(a, b, atol=1e-4)
