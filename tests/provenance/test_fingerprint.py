"""Fingerprint version 1 on real clips: robustness, localisation, encoding and agreement.

Version 2 (v1 plus segment embeddings) is tested in `test_fingerprint_v2`."""

from __future__ import annotations

import dataclasses
import hashlib
import random
import struct
from pathlib import Path

import numpy as np
import pytest

from frames.descriptor import GRID_BYTES, grid_distances, pdq_distance
from frames.samples import sample_clip
from provenance.core.config import DecodeLimits
from provenance.core.errors import DomainError
from provenance.fingerprint import VERSION_1, Fingerprint, FrameHash, agreement, compute_fingerprint
from provenance.media import sample_frames
from tests.provenance.media_fixtures import (
    astronaut,
    encode_frames,
    paste_quarter,
    transcode,
)

LIMITS = DecodeLimits()
PDQ_MATCH = 31
CLIP_SECONDS = 2.5  # edited copies keep the first seconds of bikes: 10 sampled frames


def fingerprint(path: Path) -> Fingerprint:
    return compute_fingerprint(path, limits=LIMITS, sample_fps=4.0, version=VERSION_1)


def by_time(fp: Fingerprint) -> dict[int, FrameHash]:
    return {round(f.t * 1000): f for f in fp.frames}


def paired(a: Fingerprint, b: Fingerprint) -> list[tuple[FrameHash, FrameHash]]:
    """Frames of `a` and `b` sampled at the same millisecond (all of the shorter one)."""
    frames_b = by_time(b)
    pairs = [(f, frames_b[ms]) for ms, f in by_time(a).items() if ms in frames_b]
    assert len(pairs) == min(len(a.frames), len(b.frames))
    return pairs


@pytest.fixture(scope="module")
def bikes() -> Fingerprint:
    return fingerprint(sample_clip("bikes.mp4"))


@pytest.fixture(scope="module")
def bikes_low(tmp_path_factory: pytest.TempPathFactory) -> Fingerprint:
    """bikes at half size and 100 kbit/s."""
    dst = tmp_path_factory.mktemp("fp") / "low.mp4"
    return fingerprint(transcode(sample_clip("bikes.mp4"), dst, scale=0.5, bit_rate=100_000))


@pytest.fixture(scope="module")
def bikes_again() -> Fingerprint:
    """bikes fingerprinted a second time, as the server does after the device."""
    return fingerprint(sample_clip("bikes.mp4"))


@pytest.fixture(scope="module")
def others() -> list[Fingerprint]:
    return [fingerprint(sample_clip("carphone_pristine.mp4")), fingerprint(sample_clip("bigbuckbunny.mp4"))]


def test_fingerprint_describes_the_clip(bikes: Fingerprint) -> None:
    assert (bikes.version, bikes.kind, bikes.width, bikes.height) == (VERSION_1, "video", 640, 272)
    assert (bikes.duration, bikes.sample_fps, len(bikes.frames)) == (10.0, 4.0, 40)
    assert all(len(f.pdq) == 32 and len(f.grid) == GRID_BYTES for f in bikes.frames)
    assert all(f.quality >= 50 for f in bikes.frames)


def test_low_bitrate_half_size_copy_matches_frame_by_frame(
    bikes: Fingerprint, bikes_low: Fingerprint
) -> None:
    assert (bikes_low.width, bikes_low.height) == (320, 136)
    distances = [pdq_distance(a.pdq, b.pdq) for a, b in paired(bikes, bikes_low)]
    assert len(distances) == 40 and max(distances) <= PDQ_MATCH


def test_other_clips_do_not_match(bikes_low: Fingerprint, others: list[Fingerprint]) -> None:
    distances = [
        pdq_distance(a.pdq, b.pdq) for other in others for a in bikes_low.frames for b in other.frames
    ]
    assert min(distances) > PDQ_MATCH


def test_letterboxed_copy_matches(bikes: Fingerprint, tmp_path: Path) -> None:
    boxed = transcode(
        sample_clip("bikes.mp4"), tmp_path / "boxed.mp4", pad=(0, 44), max_seconds=CLIP_SECONDS
    )  # 640x272 inside 640x360
    fp = fingerprint(boxed)
    assert (fp.width, fp.height) == (640, 360)
    distances = [pdq_distance(a.pdq, b.pdq) for a, b in paired(fp, bikes)]
    assert len(distances) == 10 and max(distances) <= PDQ_MATCH


def test_pillarboxed_copy_matches(bikes: Fingerprint, tmp_path: Path) -> None:
    boxed = transcode(
        sample_clip("bikes.mp4"), tmp_path / "pillar.mp4", scale=0.5, pad=(40, 0), max_seconds=CLIP_SECONDS
    )
    distances = [pdq_distance(a.pdq, b.pdq) for a, b in paired(fingerprint(boxed), bikes)]
    assert max(distances) <= PDQ_MATCH


def test_grid_localises_a_pasted_quarter(bikes: Fingerprint, tmp_path: Path) -> None:
    patch = next(sample_frames(sample_clip("carphone_pristine.mp4"), fps=1.0, limits=LIMITS)).rgb
    edited = transcode(
        sample_clip("bikes.mp4"),
        tmp_path / "pasted.mp4",
        paste=paste_quarter(patch),
        max_seconds=CLIP_SECONDS,
    )
    quarter = np.zeros((8, 8), bool)
    quarter[:4, :4] = True
    for a, b in paired(fingerprint(edited), bikes):
        cells = grid_distances(a.grid, b.grid)
        inside, outside = cells[quarter], cells[~quarter]
        assert inside.mean() > 4 * outside.mean()
        assert np.median(inside) > outside.max()
        # Of the 16 most changed cells, nearly all are in the pasted quarter.
        top16 = np.argsort(cells, axis=None)[-16:]
        assert quarter.ravel()[top16].sum() >= 13


def test_grid_stays_small_after_reencoding(bikes: Fingerprint, bikes_low: Fingerprint) -> None:
    cells = np.stack([grid_distances(a.grid, b.grid) for a, b in paired(bikes, bikes_low)])
    assert cells.shape == (40, 8, 8)
    assert cells.max() < 16 and cells.mean() < 6


def test_grid_distance_of_other_content_is_large(bikes: Fingerprint, others: list[Fingerprint]) -> None:
    cells = grid_distances(bikes.frames[0].grid, others[1].frames[0].grid)
    assert cells.mean() > 30


def test_photos_are_one_frame(tmp_path: Path) -> None:
    png = fingerprint(astronaut(tmp_path / "a.png"))
    jpg = fingerprint(astronaut(tmp_path / "a.jpg"))
    for fp in (png, jpg):
        assert (fp.kind, fp.width, fp.height, fp.duration, len(fp.frames)) == ("image", 512, 512, 0.0, 1)
        assert fp.frames[0].t == 0.0
    assert pdq_distance(png.frames[0].pdq, jpg.frames[0].pdq) <= 8
    assert png.digest() != jpg.digest()


def test_odd_sized_and_tiny_frames(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    clip = encode_frames(
        tmp_path / "odd.mkv", [rng.integers(0, 255, (37, 51, 3), np.uint8) for _ in range(3)], codec="ffv1"
    )
    fp = fingerprint(clip)
    assert (fp.width, fp.height, len(fp.frames)) == (51, 37, 1)
    tiny = encode_frames(tmp_path / "tiny.mkv", [np.full((2, 2, 3), 128, np.uint8)], codec="ffv1")
    assert len(fingerprint(tiny).frames) == 1


# --- encoding ------------------------------------------------------------------------------------


def test_round_trip_and_stable_digest(bikes: Fingerprint, bikes_again: Fingerprint) -> None:
    data = bikes.encode()
    assert data[:4] == b"PVFP" and data[4] == 1
    assert Fingerprint.decode(data) == bikes
    assert Fingerprint.decode(data).encode() == data
    assert bikes.digest() == hashlib.sha256(data).hexdigest()
    assert bikes_again.digest() == bikes.digest()


def _malformed(data: bytes) -> None:
    with pytest.raises(DomainError) as caught:
        Fingerprint.decode(data)
    assert (caught.value.code, caught.value.status) == ("fingerprint_malformed", 422)


def test_decode_rejects_malformed_input(bikes: Fingerprint) -> None:
    data = bikes.encode()
    header = 4 + 1 + 1 + 4 * 3 + 8 + 4 + 2
    record = 4 + 32 + 1 + GRID_BYTES
    _malformed(b"")
    _malformed(b"PVFP")
    _malformed(b"XVFP" + data[4:])  # wrong magic
    _malformed(data[:4] + b"\x03" + data[5:])  # unknown version
    _malformed(data[:4] + b"\x02" + data[5:])  # version 2 without its embedding block
    _malformed(data[:5] + b"\x07" + data[6:])  # unknown kind
    _malformed(data[:-1])  # truncated record
    _malformed(data + b"\x00")  # trailing byte
    _malformed(data[:header])  # no frames
    _malformed(data[: header - 2] + b"\x04\x04" + data[header:])  # not the version 1 grid
    sample_fps_at = 4 + 1 + 1 + 12
    _malformed(data[:sample_fps_at] + struct.pack("<d", float("nan")) + data[sample_fps_at + 8 :])
    quality_at = header + 4 + 32
    _malformed(data[:quality_at] + b"\x65" + data[quality_at + 1 :])  # quality 101
    second_t = header + record
    _malformed(data[:second_t] + data[header : header + 4] + data[second_t + 4 :])  # time not increasing
    _malformed(data.decode("latin-1").encode("utf-8"))


def test_decode_fuzz_raises_only_fingerprint_malformed(bikes: Fingerprint) -> None:
    short = dataclasses.replace(bikes, frames=bikes.frames[:3])
    data = short.encode()
    rng = random.Random(7)
    for _ in range(300):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        if rng.random() < 0.3:
            mutated = mutated[: rng.randrange(len(mutated))]
        try:
            decoded = Fingerprint.decode(bytes(mutated))
        except DomainError as exc:
            assert exc.code == "fingerprint_malformed"
        else:
            assert decoded.encode() == bytes(mutated)
    for size in (0, 1, 30, 31, 32, 200, 5000):
        try:
            Fingerprint.decode(b"PVFP\x01" + rng.randbytes(size))
        except DomainError as exc:
            assert exc.code == "fingerprint_malformed"


# --- agreement -----------------------------------------------------------------------------------


def test_agreement_of_the_same_bytes(bikes: Fingerprint, bikes_again: Fingerprint) -> None:
    assert agreement(bikes, bikes_again) is None


def test_agreement_refuses_other_media(
    bikes: Fingerprint, bikes_low: Fingerprint, others: list[Fingerprint]
) -> None:
    assert agreement(bikes, others[0]) is not None
    reason = agreement(dataclasses.replace(bikes_low, width=640, height=272), bikes)
    assert reason is not None and "frame" in reason
    dropped = dataclasses.replace(bikes, frames=bikes.frames[:-1])
    assert agreement(dropped, bikes) == "39 frames claimed, 40 computed"
    shifted = dataclasses.replace(
        bikes, frames=(dataclasses.replace(bikes.frames[0], t=0.002), *bikes.frames[1:])
    )
    assert "timestamp" in (agreement(shifted, bikes) or "")
    flipped = bytes([bikes.frames[3].pdq[0] ^ 0xFF, bikes.frames[3].pdq[1] ^ 0xFF]) + bikes.frames[3].pdq[2:]
    tampered = dataclasses.replace(
        bikes,
        frames=(*bikes.frames[:3], dataclasses.replace(bikes.frames[3], pdq=flipped), *bikes.frames[4:]),
    )
    assert agreement(tampered, bikes) == "frame 3 at 0.760 s: PDQ distance 16 over 10"
