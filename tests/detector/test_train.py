"""A few training steps on tiny data lower the triplet loss; the data feeding them is labelled right."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from detector import data, swaps, train
from detector.model import TripletNet
from generator.swap import SwapModel, save_model


def test_a_few_steps_lower_the_loss() -> None:
    train.set_seeds(0)
    footage: list[data.Footage] = [data.SyntheticFootage(s, duration=3.0) for s in (0, 1, 2)]
    sampler = data.TripletSampler(footage, seed=0)
    triplets = [t for _ in range(4) for t in sampler.sample_group(2)]
    batch = train.make_batch(triplets)
    net = TripletNet()
    optimiser = torch.optim.AdamW(net.parameters(), lr=3e-3)
    with torch.no_grad():
        before = float(train.triplet_loss(net, batch)[0])
    for _ in range(20):
        loss, _ = train.triplet_loss(net, batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        after = float(train.triplet_loss(net, batch)[0])
    assert after < 0.8 * before, (before, after)


def test_a_shared_anchor_is_embedded_once_with_the_same_loss() -> None:
    footage: list[data.Footage] = [data.SyntheticFootage(s, duration=3.0) for s in (3, 4)]
    sampler = data.TripletSampler(footage, seed=1)
    triplets = [t for _ in range(2) for t in sampler.sample_group(3)]
    shared = train.make_batch(triplets)
    assert shared.anchor.shape[0] == 2 and shared.anchor_index.tolist() == [0, 0, 0, 1, 1, 1]
    copied = train.make_batch([replace(t, anchor=t.anchor.copy()) for t in triplets])
    assert copied.anchor.shape[0] == 6
    net = TripletNet().eval()  # batch norm in eval mode: the two batches must give one loss
    with torch.no_grad():
        assert float(train.triplet_loss(net, shared)[0]) == pytest.approx(
            float(train.triplet_loss(net, copied)[0]), rel=1e-5
        )


def test_sampler_labels_cells_of_spatial_tampers() -> None:
    footage: list[data.Footage] = [
        data.SyntheticFootage(5, duration=3.0),
        data.SyntheticFootage(6, duration=3.0),
    ]
    sampler = data.TripletSampler(footage, seed=3)
    sampler.weights = {"paste": 1.0}
    triplet = sampler.sample()
    assert triplet.anchor.shape == (4, 64, 64, 3)
    assert 1 <= len(triplet.positive) <= 4 and 1 <= len(triplet.negative) <= 4
    assert triplet.cells.shape == (8, 8)
    assert 0 < (triplet.cells >= data.TAMPERED_SHARE).sum() < 64


def test_extra_triplets_hook() -> None:
    """Externally made fakes (face swaps) go through the same benign chains and labels."""
    footage: list[data.Footage] = [
        data.SyntheticFootage(7, duration=3.0),
        data.SyntheticFootage(8, duration=3.0),
    ]
    sampler = data.TripletSampler(footage, seed=4)
    original = [footage[0].frame(t) for t in data.anchor_times(0.0)]
    fake, truth = [], []
    for rgb in original:
        edited = rgb.copy()
        edited[20:60, 30:90] = 255 - edited[20:60, 30:90]
        mask = rgb[:, :, 0] * 0.0
        mask[20:60, 30:90] = 1.0
        fake.append(edited)
        truth.append(mask)
    sampler.add_extra([data.ExtraTriplet(original, fake, truth)])
    sampler.weights = {"extra": 1.0}
    triplet = sampler.sample()
    assert triplet.kind == "extra"
    assert (triplet.cells >= data.TAMPERED_SHARE).any()


def test_positive_chains_include_strong_single_components() -> None:
    """Some positives are one strong benign change (colour, crop ...), as copies made by one tool are."""
    rng = np.random.default_rng(0)
    labels = [data.sample_positive_chain(rng).label() for _ in range(400)]
    # One component, with or without the light JPEG every copy may get.
    single = [x for x in labels if "+" not in x.replace("+jpeg", "")]
    assert 0.25 < len(single) / len(labels) < 0.7
    colour = [data.sample_positive_chain(rng) for _ in range(400)]
    assert any(c.gamma != 1 and c.saturation != 1 and c.contrast != 1 and not any(c.crop) for c in colour)


def test_face_swap_triplets_label_the_swapped_cells(tmp_path: Path) -> None:
    """Swapped segments (any swap model: here an untrained one) become triplets labelled at the face."""
    torch.manual_seed(0)
    weights = tmp_path / "swap.pt"
    save_model(SwapModel(), weights, {})
    video = data.load_video(swaps.EVAL_VIDEO)
    frames, times = video.frames[:12], video.times[:12]
    swapped = swaps.render_swap("carphone swap", "carphone", frames, times, "b", weights)
    assert swapped.changed_share() > 0.5
    assert 0.01 < float(np.mean([m.mean() for m in swapped.masks])) < 0.5
    sampler = data.TripletSampler([data.SyntheticFootage(9, duration=3.0), video], seed=5)
    sampler.add_extra(source=swaps.SwapSource([swapped]))
    sampler.weights = {"extra": 1.0}
    triplet = sampler.sample()
    assert triplet.kind == "extra" and triplet.source == "carphone"
    tampered = triplet.cells >= data.TAMPERED_SHARE
    assert 0 < tampered.sum() < 48
    batch = train.make_batch([triplet, *sampler.sample_group(1)])
    loss, stats = train.triplet_loss(TripletNet(), batch)
    assert torch.isfinite(loss) and stats["kinds"][0] == "extra"
