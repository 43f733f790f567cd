"""FrameIndex: retrieval of the right original from real fingerprints, and exactness of the radius search."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from frames.samples import sample_clip
from generator import reposts, variants
from harness.synthetic import flip_bits, synthetic_fingerprint
from provenance.core.config import DecodeLimits
from provenance.fingerprint import Fingerprint, compute_fingerprint
from provenance.verify import thumbs
from provenance.verify.index import MIN_QUALITY, FrameIndex

LIMITS = DecodeLimits()
CLIPS = {"bikes": "bikes.mp4", "carphone": "carphone_pristine.mp4", "bunny": "bigbuckbunny.mp4"}


@pytest.fixture(scope="module")
def originals() -> dict[str, Fingerprint]:
    return {name: compute_fingerprint(sample_clip(clip), limits=LIMITS) for name, clip in CLIPS.items()}


@pytest.fixture(scope="module")
def index(originals: dict[str, Fingerprint]) -> FrameIndex:
    return FrameIndex.of(originals)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("index")


def test_counts_registrations_and_frames(index: FrameIndex, originals: dict[str, Fingerprint]) -> None:
    assert len(index) == 3
    assert "bikes" in index and "nobody" not in index
    assert index.frame_count == sum(len(f.frames) for f in originals.values())
    assert index.index_type == "flat"


def test_a_reencoded_downscaled_clip_finds_its_original_first(index: FrameIndex, workdir: Path) -> None:
    variants.downscale(sample_clip("bikes.mp4"), workdir / "half.mp4", 0.5)
    query = compute_fingerprint(workdir / "half.mp4", limits=LIMITS)
    candidates = index.search(query)
    assert candidates[0].registration_id == "bikes"
    assert candidates[0].matched_query_frames >= 0.9 * len(query.frames)
    assert all(c.registration_id != "bikes" for c in candidates[1:])
    # Each matched query frame points at the original frame of the same moment (first pick or near).
    near = [any(abs(q - o) <= 1 for o in originals) for q, originals in candidates[0].matches.items()]
    assert sum(near) >= 0.9 * len(near)
    assert candidates[0].mean_distance < 16


def test_a_cropped_clip_is_found_through_the_centre_hashes(
    index: FrameIndex, originals: dict[str, Fingerprint], workdir: Path
) -> None:
    variants.crop(sample_clip("bikes.mp4"), workdir / "crop.mp4", 0.10)
    query = compute_fingerprint(workdir / "crop.mp4", limits=LIMITS)
    pdq_only = FrameIndex(crop_tolerant=False)
    for name, fingerprint in originals.items():
        pdq_only.add(name, fingerprint)
    # PDQ does not survive a 10% crop...
    assert sum(c.matched_query_frames for c in pdq_only.search(query)) < 0.2 * len(query.frames)
    # ... the centre hashes do, at the right scale.
    best = index.search(query)[0]
    assert best.registration_id == "bikes"
    assert best.matched_query_frames >= 0.7 * len(query.frames)
    assert best.scale == pytest.approx(0.9, abs=0.051)


def test_a_vertical_crop_is_found_through_the_strips_and_placed(
    index: FrameIndex, originals: dict[str, Fingerprint], workdir: Path
) -> None:
    """A 9:16-style crop (45% of the width, off-centre) matches no frame or centre hash, but whole
    strips of the original: the strip search names the original and where the crop lies."""
    bunny = sample_clip("bigbuckbunny.mp4")
    cropped = workdir / "vertical.mp4"
    reposts.repost(bunny, cropped, reposts.Reframe(window=(0.08, 0.0, 0.45, 1.0)))
    query = compute_fingerprint(cropped, limits=LIMITS)
    assert not index.search(query) or index.search(query)[0].matched_query_frames < 0.3 * len(query.frames)
    best = index.search_crops(query.frames)[0]
    assert best.registration_id == "bunny" and best.crop is not None
    assert best.matched_query_frames >= 5
    offset, width = best.crop
    assert offset == pytest.approx(0.08, abs=0.02) and width == pytest.approx(0.45, abs=0.03)
    assert not index.search_crops(query.frames, mirrored=True) or (
        index.search_crops(query.frames, mirrored=True)[0].registration_id != "bunny"
    )
    assert index.strip_count == thumbs.STRIP_COUNT * index.frame_count
    assert FrameIndex(reframe_tolerant=False).search_crops(query.frames) == []


def test_flat_frames_are_neither_indexed_nor_searched() -> None:
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 256, size=(8, 32), dtype=np.uint8)
    index = FrameIndex(crop_tolerant=False)
    index.add("dark", synthetic_fingerprint(codes, quality=MIN_QUALITY - 1))
    assert index.frame_count == 0
    assert index.search(synthetic_fingerprint(codes)) == []
    index.add("lit", synthetic_fingerprint(codes))
    assert index.search(synthetic_fingerprint(codes, quality=10)) == []
    assert index.search(synthetic_fingerprint(codes))[0].registration_id == "lit"


def test_duplicate_ids_are_refused(index: FrameIndex, originals: dict[str, Fingerprint]) -> None:
    with pytest.raises(ValueError, match="already indexed"):
        index.add("bikes", originals["bikes"])


def test_radius_search_is_exact_once_hashed_and_while_growing() -> None:
    """Against brute force, with the multi-index hashing tables, their flat tail and rebuilds."""
    rng = np.random.default_rng(7)
    frames, originals = 20, 1_500
    codes = rng.integers(0, 256, size=(originals * frames, 32), dtype=np.uint8)
    index = FrameIndex(crop_tolerant=False, flat_limit=5_000)
    for first in range(0, originals, 100):  # incremental, crossing several rebuilds
        ids = [f"r{k}" for k in range(first, first + 100)]
        index.add_batch(ids, codes[first * frames : (first + 100) * frames], [frames] * 100)
    assert index.index_type.startswith("multi-index hashing")
    tail = rng.integers(0, 256, size=(frames, 32), dtype=np.uint8)
    index.add_codes("tail", tail)  # stays in the flat part until the next rebuild
    everything = np.concatenate([codes, tail])
    owners = [f"r{k}" for k in range(originals) for _ in range(frames)] + ["tail"] * frames
    sources = [*rng.integers(0, originals * frames, size=150), *(originals * frames + np.arange(5))]
    queries = flip_bits(everything[sources], rng, 34)  # some beyond the radius on purpose
    words = everything.view(np.uint64)
    for query in queries:
        distances = np.bitwise_count(words ^ query.view(np.uint64)).sum(axis=1)
        expected: dict[str, int] = {}
        for i in np.flatnonzero(distances <= 31):
            expected[owners[i]] = min(expected.get(owners[i], 256), int(distances[i]))
        found = index.search(synthetic_fingerprint(query[None, :]), limit=1000)
        assert {c.registration_id: round(c.mean_distance) for c in found} == expected


def test_concurrent_adds_and_searches() -> None:
    rng = np.random.default_rng(11)
    index = FrameIndex(crop_tolerant=False, flat_limit=2_000)
    batches = [rng.integers(0, 256, size=(300, 32), dtype=np.uint8) for _ in range(40)]
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            for k in range(offset, len(batches), 2):
                index.add_batch([f"b{k}-{j}" for j in range(10)], batches[k], [30] * 10)
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    def reader() -> None:
        try:
            for k in range(200):
                index.search(synthetic_fingerprint(batches[k % len(batches)][:30]))
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(0,)), threading.Thread(target=writer, args=(1,))]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(index) == 400 and index.frame_count == 12_000
    for k in (0, 17, 39):
        best = index.search(synthetic_fingerprint(batches[k][30:60]))[0]
        assert (best.registration_id, best.matched_query_frames) == (f"b{k}-1", 30)
