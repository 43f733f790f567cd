"""The face channel: version 3 fingerprints carry faces, and a swapped face is found at its instant."""

from __future__ import annotations

from pathlib import Path

import pytest

from frames.samples import sample_clip
from provenance import fingerprint as fp
from provenance.core.config import DecodeLimits
from provenance.faces import FaceCollector, Faces
from provenance.verify.faces import compare_faces
from tests.provenance.media_fixtures import transcode

LIMITS = DecodeLimits()
CARPHONE = sample_clip("carphone_pristine.mp4")


@pytest.fixture(scope="module")
def original() -> fp.Fingerprint:
    return fp.compute_fingerprint(CARPHONE, limits=LIMITS, version=3)


def _query_faces(path: Path) -> tuple[fp.Fingerprint, Faces]:
    collector = FaceCollector(fps=2.0)
    query = fp.compute_fingerprint(path, limits=LIMITS, version=1, faces=collector)
    return query, collector.faces()


def _events(original: fp.Fingerprint, path: Path) -> list[object]:
    """Face events of a copy whose frames keep the original's times (no alignment needed)."""
    query, faces = _query_faces(path)
    channel = original.face_channel()
    assert channel is not None
    times = [f.t for f in query.frames]
    return list(compare_faces(faces, channel, times, times, 0.5))


def test_version_3_round_trips_and_agrees(original: fp.Fingerprint) -> None:
    decoded = fp.Fingerprint.decode(original.encode())
    channel = decoded.face_channel()
    assert decoded.version == 3 and channel is not None
    assert len(channel.faces) >= len(channel.instants) // 2  # a talking head: a face most of the time
    assert any(f.identity is not None for f in channel.faces)
    assert fp.agreement(original, decoded) is None


def test_altered_face_block_disagrees(original: fp.Fingerprint) -> None:
    channel = original.face_channel()
    assert channel is not None
    face = channel.faces[0]
    moved = type(face)(
        face.t, face.track, (face.box[0] + 0.2, *face.box[1:]), face.identity, face.mouth, face.eyes
    )
    forged = Faces(channel.model, channel.instants, (moved, *channel.faces[1:]))
    tampered = fp.Fingerprint(
        version=3,
        kind=original.kind,
        width=original.width,
        height=original.height,
        duration=original.duration,
        sample_fps=original.sample_fps,
        frames=original.frames,
        embeddings=original.embeddings,
        faces=forged.encode(),
        audio=original.audio,
    )
    assert tampered.digest() != original.digest()
    assert "box differs" in (fp.agreement(tampered, original) or "")


def test_benign_copies_have_no_face_events(original: fp.Fingerprint, tmp_path: Path) -> None:
    for name, kwargs in (("half", {"scale": 0.5}), ("graded", {"crf": 30})):
        copy = transcode(CARPHONE, tmp_path / f"{name}.mp4", **kwargs)
        assert _events(original, copy) == [], name


def test_other_face_pasted_is_a_face_swap(original: fp.Fingerprint, tmp_path: Path) -> None:
    from generator.classic_swaps import poisson_swap
    from generator.footage import still

    fake = tmp_path / "swap.mp4"
    poisson_swap(CARPHONE, still("astronaut"), fake, start=1.0, end=3.0)
    events = _events(original, fake)
    assert events, "the swap went unseen"
    assert all(e.kind == "face_swap" for e in events)  # type: ignore[attr-defined]
    start, end = events[0].query_range  # type: ignore[attr-defined]
    assert 0.5 <= start <= 1.5 and 2.5 <= end <= 3.6, (start, end)
