"""The audio channel of a fingerprint: its block, its bits on real speech, and its place in version 3."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from frames.samples import sample_clip
from generator import speech
from provenance import fingerprint as fp
from provenance.audio import AudioCollector, AudioTrack, bit_error_rate, silent_track
from provenance.core.config import DecodeLimits
from provenance.core.errors import DomainError

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")

CARPHONE = sample_clip("carphone_pristine.mp4")
LIMITS = DecodeLimits()


@pytest.fixture(scope="module")
def voices() -> tuple[speech.SpeechTrack, speech.SpeechTrack]:
    texts = speech.TEXTS["validation"]
    return (
        speech.speech_track(texts, "en-us+m3", 4.0, seed=7),
        speech.speech_track(texts[::-1], "en+f3", 4.0, seed=8),
    )


def _sound(path: Path) -> AudioTrack:
    collector = AudioCollector()
    fp.compute_fingerprint(path, limits=LIMITS, version=1, audio=collector)
    return collector.track()


def test_the_block_round_trips_and_refuses_damage() -> None:
    track = AudioTrack(
        True, 48000, 2, -0.021, np.arange(5, dtype=np.uint32) * 977, np.array([0, 10, 200, 255, 3], np.uint8)
    )
    again = AudioTrack.decode(track.encode())
    assert (again.present, again.source_rate, again.source_channels, again.start) == (True, 48000, 2, -0.021)
    assert np.array_equal(again.bits, track.bits) and np.array_equal(again.levels, track.levels)
    assert AudioTrack.decode(silent_track().encode()).present is False
    for damaged in (track.encode()[:-1], b"PVAX" + track.encode()[4:], b""):
        with pytest.raises(DomainError) as refused:
            AudioTrack.decode(damaged)
        assert refused.value.code == "fingerprint_malformed"


def test_reencodes_keep_the_bits_and_another_voice_does_not(
    voices: tuple[speech.SpeechTrack, speech.SpeechTrack], tmp_path: Path
) -> None:
    """Same sound through AAC and through telephone-band μ-law: few bits move; other speech: many."""
    track, other = voices
    original = _sound(speech.mux(CARPHONE, tmp_path / "o.mp4", track.samples, codec="aac", bitrate=128_000))
    assert original.present and original.frames > 100
    copies = {
        "aac.mp4": speech.mux(CARPHONE, tmp_path / "aac.mp4", track.samples, codec="aac", bitrate=64_000),
        "tel.mov": speech.mux(
            CARPHONE,
            tmp_path / "tel.mov",
            speech.telephone_band(track.samples, track.rate),
            codec="mulaw",
            out_rate=8000,
        ),
    }
    for name, path in copies.items():
        copy = _sound(path)
        best = min(_ber(original, copy, shift) for shift in range(-4, 5))
        assert best < 0.2, (name, best)
    stranger = _sound(speech.mux(CARPHONE, tmp_path / "x.mp4", other.samples, codec="aac", bitrate=64_000))
    assert min(_ber(original, stranger, shift) for shift in range(-4, 5)) > 0.35


def _ber(a: AudioTrack, b: AudioTrack, shift: int) -> float:
    """Bit error rate over the frames both find loud, b moved by `shift` frames."""
    n = min(a.frames, b.frames) - abs(shift)
    x = slice(max(0, -shift), max(0, -shift) + n)
    y = slice(max(0, shift), max(0, shift) + n)
    loud = a.loud()[x] & b.loud()[y]
    return bit_error_rate(a.bits[x][loud], b.bits[y][loud])


def test_version_3_carries_the_sound_under_its_digest(
    voices: tuple[speech.SpeechTrack, speech.SpeechTrack], tmp_path: Path
) -> None:
    clip = speech.mux(CARPHONE, tmp_path / "talk.mp4", voices[0].samples, codec="aac", bitrate=96_000)
    original = fp.compute_fingerprint(clip, limits=LIMITS, version=3)
    audio = original.audio_channel()
    assert audio is not None and audio.present and audio.source_rate == speech.RATE
    decoded = fp.Fingerprint.decode(original.encode())
    assert decoded.audio == original.audio and fp.agreement(original, decoded) is None
    other = _sound(speech.mux(CARPHONE, tmp_path / "other.mp4", voices[1].samples, codec="aac"))
    forged = replace(original, audio=other.encode())
    assert forged.digest() != original.digest()
    assert "audio bits differ" in (fp.agreement(forged, original) or "")
    # A damaged audio block is refused where it is read.
    data = bytearray(original.encode())
    data[-10] ^= 0xFF
    with pytest.raises(DomainError) as refused:
        fp.Fingerprint.decode(bytes(data))
    assert refused.value.code == "fingerprint_malformed"
    # Without sound, version 3 records that there is none.
    silent = fp.compute_fingerprint(CARPHONE, limits=LIMITS, version=3).audio_channel()
    assert silent is not None and not silent.present and silent.frames == 0
