"""Fingerprint version 2 on real clips: v1 plus the learned segment embeddings, inside the digest."""

from __future__ import annotations

import dataclasses
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from detector.comparer import decode_segments, default_comparer, encode_segments
from frames.samples import sample_clip
from provenance.core.config import DecodeLimits
from provenance.fingerprint import (
    FINGERPRINT_VERSION,
    VERSION_1,
    Fingerprint,
    FingerprintMalformed,
    agreement,
    compute_fingerprint,
)

torch.set_num_threads(1)
LIMITS = DecodeLimits()
BIKES = sample_clip("bikes.mp4")


@pytest.fixture(scope="module")
def bikes() -> Fingerprint:
    return compute_fingerprint(BIKES, limits=LIMITS)


@pytest.fixture(scope="module")
def bikes_v1() -> Fingerprint:
    return compute_fingerprint(BIKES, limits=LIMITS, version=VERSION_1)


def _block_offset(fingerprint: Fingerprint) -> int:
    """Where the embedding block's length field starts in `encode()`."""
    assert fingerprint.embeddings is not None
    return len(fingerprint.encode()) - len(fingerprint.embeddings) - 8


def test_version_2_is_version_1_plus_a_few_hundred_bytes_per_segment(
    bikes: Fingerprint, bikes_v1: Fingerprint
) -> None:
    assert FINGERPRINT_VERSION == 2 and bikes.version == 2 and bikes_v1.version == 1
    assert bikes.frames == bikes_v1.frames
    model, segments = bikes.segments()
    assert model == default_comparer().version
    assert len(segments) == 10 and all(s.frames == 4 for s in segments)
    assert [s.start for s in segments] == [bikes.frames[4 * k].t for k in range(10)]
    v1_bytes, v2_bytes = bikes_v1.encode(), bikes.encode()
    assert v2_bytes[5:].startswith(v1_bytes[5:])  # same header after the version byte, same records
    per_segment = (len(v2_bytes) - len(v1_bytes)) / len(segments)
    assert 500 < per_segment < 600


def test_version_2_round_trips_byte_for_byte(bikes: Fingerprint) -> None:
    data = bikes.encode()
    again = Fingerprint.decode(data)
    assert again == bikes and again.encode() == data and again.digest() == bikes.digest()
    for a, b in zip(again.segments()[1], bikes.segments()[1], strict=True):
        assert (a.start, a.end, a.frames) == (b.start, b.end, b.frames)
        np.testing.assert_array_equal(a.cells, b.cells)


def test_the_digest_covers_the_embeddings(bikes: Fingerprint) -> None:
    model, segments = bikes.segments()
    with pytest.raises(ValueError, match="embedded segment 0 does not cover frames 0"):
        dataclasses.replace(bikes, embeddings=encode_segments(segments[::-1], model))
    moved = [dataclasses.replace(s, global_vec=-s.global_vec) for s in segments]
    changed = dataclasses.replace(bikes, embeddings=encode_segments(moved, model))
    assert changed.digest() != bikes.digest()


def test_a_corrupted_embedding_block_is_rejected_with_a_clear_error(bikes: Fingerprint) -> None:
    data = bytearray(bikes.encode())
    at = _block_offset(bikes) + 4 + 200  # inside the first record's embedding
    data[at] ^= 0x40
    with pytest.raises(FingerprintMalformed, match="embedding block corrupted") as info:
        Fingerprint.decode(bytes(data))
    assert info.value.status == 422 and info.value.code == "fingerprint_malformed"


def test_a_truncated_or_missing_block_is_rejected(bikes: Fingerprint, bikes_v1: Fingerprint) -> None:
    data = bikes.encode()
    with pytest.raises(FingerprintMalformed, match="embedding block"):
        Fingerprint.decode(data[:-10])
    v1_as_v2 = bytearray(bikes_v1.encode())
    v1_as_v2[4] = 2
    with pytest.raises(FingerprintMalformed, match="without its embedding block"):
        Fingerprint.decode(bytes(v1_as_v2))


def test_a_block_that_is_not_a_segment_block_is_rejected_even_with_a_good_crc(bikes: Fingerprint) -> None:
    assert bikes.embeddings is not None
    garbled = b"XXXX" + bikes.embeddings[4:]
    head = bikes.encode()[: _block_offset(bikes)]
    data = head + struct.pack("<I", len(garbled)) + garbled + struct.pack("<I", zlib.crc32(garbled))
    with pytest.raises(FingerprintMalformed, match="embedding block malformed"):
        Fingerprint.decode(data)


def test_version_1_still_parses_and_carries_no_embeddings(bikes_v1: Fingerprint) -> None:
    again = Fingerprint.decode(bikes_v1.encode())
    assert again == bikes_v1 and again.embeddings is None
    with pytest.raises(ValueError, match="no embeddings"):
        again.segments()
    with pytest.raises(ValueError, match="only they"):
        dataclasses.replace(bikes_v1, embeddings=b"PVSE")


def test_sampling_densely_for_a_verifier_keeps_the_same_fingerprint(bikes_v1: Fingerprint) -> None:
    kept: list[float] = []
    dense = compute_fingerprint(
        BIKES, limits=LIMITS, version=VERSION_1, keep=lambda t, rgb: kept.append(t), keep_fps=8.0
    )
    assert dense == bikes_v1
    assert 75 <= len(kept) <= 80
    assert {f.t for f in bikes_v1.frames} <= set(kept)


def test_the_server_recomputation_agrees_and_catches_other_embeddings(bikes: Fingerprint) -> None:
    again = compute_fingerprint(BIKES, limits=LIMITS)
    assert agreement(bikes, again) is None
    model, segments = bikes.segments()
    stale = dataclasses.replace(bikes, embeddings=encode_segments(segments, "0123456789abcdef"))
    reason = agreement(stale, again)
    assert reason is not None and "model 0123456789abcdef" in reason
    moved = list(segments)
    moved[3] = dataclasses.replace(moved[3], cells=np.roll(moved[3].cells, 1, axis=0))
    forged = dataclasses.replace(bikes, embeddings=encode_segments(moved, model))
    reason = agreement(forged, again)
    assert reason is not None and reason.startswith("segment 3") and "embedding distance" in reason


def test_the_cli_fingerprints_as_version_2(tmp_path: Path) -> None:
    from provenance.cli import app

    out = tmp_path / "bikes.pvfp"
    result = CliRunner().invoke(app, ["fingerprint", str(BIKES), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert (info["version"], info["segments"]) == (2, 10)
    assert info["embedding_model"] == default_comparer().version
    decoded = Fingerprint.decode(out.read_bytes())
    assert decoded.version == 2 and len(decoded.segments()[1]) == 10
    assert decode_segments(decoded.embeddings or b"")[0] == default_comparer().version
