"""A few training steps on tiny data lower the triplet loss."""

from __future__ import annotations

import torch

from detector import data, train
from detector.model import TripletNet


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
    """Externally made fakes (face swaps, later) go through the same benign chains and labels."""
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
