"""Speech footage made offline, and the edits people make to a sound track.

Real speech comes from Debian's `espeak-ng` (a formant synthesiser with many voices): sentences of
a fixed list, spoken by a named voice with pauses between them, fill a sound track of a given
length (`speech_track`). `mux` puts a track beside the picture of a real video (its video packets
copied, or re-encoded) and encodes the sound for real with PyAV: AAC, Opus, MP3 or G.711 μ-law,
at any rate, mono or stereo. The edits work on the samples and say, in seconds, what they did:
a stretch replaced by another voice, a stretch muted, the whole track dubbed, the track shifted
against the picture. Voices and sentences have a fixed split (`VOICES`, `TEXTS`): `validation`
for choosing thresholds, `heldout` for reporting, never both.

Like the rest of the generator this never imports `provenance`.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np
import numpy.typing as npt

Split = Literal["validation", "heldout"]
AudioCodec = Literal["aac", "opus", "mp3", "mulaw"]

# espeak-ng voice names (language + variant), each used in one split only.
VOICES: dict[Split, tuple[str, ...]] = {
    "validation": ("en-us+m3", "en+f3", "en-gb-scotland+m1", "en-029+f2", "en-us+m5"),
    "heldout": ("en-gb-x-rp+m7", "en-us+f4", "en+klatt2", "en-us-nyc+m2", "en-gb-x-gbclan+f1"),
}
TEXTS: dict[Split, tuple[str, ...]] = {
    "validation": (
        "The committee will meet again on Thursday to discuss the budget for next year.",
        "Reporters gathered outside the courthouse as the verdict was read aloud.",
        "Heavy rain is expected across the northern region later this evening.",
        "The minister said the new bridge would open before the end of the summer.",
        "Thousands of people lined the streets to watch the parade go by.",
        "Officials confirmed that the airport will reopen tomorrow morning.",
    ),
    "heldout": (
        "She told the council that the water supply was safe to drink again.",
        "Engineers are still inspecting the damage caused by the landslide.",
        "The company announced record profits despite the difficult market.",
        "Police asked drivers to avoid the motorway until the crash is cleared.",
        "The festival drew more visitors this year than ever before.",
        "Scientists say the comet will be visible to the naked eye next week.",
    ),
}
RATE = 22050  # espeak-ng's output rate
_CODECS: dict[AudioCodec, str] = {"aac": "aac", "opus": "libopus", "mp3": "libmp3lame", "mulaw": "pcm_mulaw"}


class SpeechUnavailable(RuntimeError):
    """espeak-ng is not installed (Debian package `espeak-ng`; `make setup` installs it)."""


@dataclass(frozen=True)
class SpeechTrack:
    """A mono sound track at `rate`: float samples in [-1, 1], and where each sentence is spoken."""

    samples: npt.NDArray[np.float32]
    rate: int
    voice: str
    spans: tuple[tuple[float, float], ...]

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate

    def at(self, t: float) -> int:
        return round(t * self.rate)


@dataclass(frozen=True)
class AudioEdit:
    """What an edit did: its kind and the seconds of the clip whose sound it changed (empty for
    benign ones): an edited stretch where both sides are silent changed nothing a listener hears.

    `offset` is how far the sound was moved against the picture (positive: later).
    """

    kind: str
    ranges: tuple[tuple[float, float], ...] = ()
    offset: float = 0.0


def speak(text: str, voice: str, speed: int = 160, pitch: int = 50) -> npt.NDArray[np.float32]:
    """`text` spoken by espeak-ng's `voice` (words a minute, pitch 0-99), mono at `RATE`."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise SpeechUnavailable("espeak-ng is not installed (apt-get install espeak-ng)")
    done = subprocess.run(
        [binary, "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
        capture_output=True,
        check=True,
        timeout=60,
    )
    with av.open(io.BytesIO(done.stdout), mode="r", format="wav") as container:
        stream = container.streams.audio[0]
        chunks = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
        rate = stream.rate
    samples = np.concatenate(chunks).astype(np.float32) / 32768.0
    if rate != RATE:
        raise RuntimeError(f"espeak-ng spoke at {rate} Hz, not {RATE}")
    return samples


def speech_track(
    texts: Sequence[str], voice: str, seconds: float, *, seed: int = 0, speed: int = 160, pitch: int = 50
) -> SpeechTrack:
    """Sentences of `texts` (in turn, from a seeded start) by `voice`, with pauses, filling `seconds`."""
    rng = np.random.default_rng(seed)
    total = round(seconds * RATE)
    samples = np.zeros(total, np.float32)
    spans = []
    at = int(rng.uniform(0.15, 0.4) * RATE)
    first = int(rng.integers(len(texts)))
    k = 0
    while at < total - RATE // 4:
        spoken = speak(texts[(first + k) % len(texts)], voice, speed, pitch)
        k += 1
        end = min(total, at + len(spoken))
        samples[at:end] = spoken[: end - at]
        spans.append((at / RATE, end / RATE))
        at = end + int(rng.uniform(0.25, 0.6) * RATE)
    return SpeechTrack(samples, RATE, voice, tuple(spans))


def _fade(samples: npt.NDArray[np.float32], at: int, rate: int) -> None:
    """Soften a splice at `at` over 5 ms so it clicks no more than a real edit would."""
    width = max(1, rate // 200)
    lo, hi = max(0, at - width), min(len(samples), at + width)
    samples[lo:hi] *= np.abs(np.linspace(-1, 1, hi - lo, dtype=np.float32))


def replace_range(
    track: SpeechTrack, other: SpeechTrack, start: float, duration: float
) -> tuple[SpeechTrack, AudioEdit]:
    """`duration` seconds from `start` replaced by the same seconds of `other` (another voice or text)."""
    a, b = track.at(start), track.at(start + duration)
    samples = track.samples.copy()
    samples[a:b] = other.samples[a:b] if len(other.samples) >= b else np.resize(other.samples, b - a)
    _fade(samples, a, track.rate)
    _fade(samples, b, track.rate)
    changed = _within((start, start + duration), (*track.spans, *other.spans))
    return replace(track, samples=samples), AudioEdit("audio_replaced", changed)


def mute(track: SpeechTrack, start: float, duration: float) -> tuple[SpeechTrack, AudioEdit]:
    samples = track.samples.copy()
    samples[track.at(start) : track.at(start + duration)] = 0.0
    return replace(track, samples=samples), AudioEdit(
        "audio_removed", _within((start, start + duration), track.spans)
    )


def dub(track: SpeechTrack, other: SpeechTrack) -> tuple[SpeechTrack, AudioEdit]:
    """The whole track replaced by `other` (cut or padded to the same length)."""
    samples = np.zeros_like(track.samples)
    n = min(len(samples), len(other.samples))
    samples[:n] = other.samples[:n]
    return replace(track, samples=samples, voice=other.voice), AudioEdit(
        "audio_replaced", ((0.0, track.duration),)
    )


def shift(track: SpeechTrack, seconds: float) -> tuple[SpeechTrack, AudioEdit]:
    """The sound moved `seconds` later against the picture (earlier when negative), same length."""
    n = track.at(abs(seconds))
    samples = np.zeros_like(track.samples)
    if seconds >= 0:
        samples[n:] = track.samples[: len(samples) - n]
    else:
        samples[: len(samples) - n] = track.samples[n:]
    return replace(track, samples=samples), AudioEdit("audio_offset", offset=seconds)


def _within(
    edit: tuple[float, float], spans: Sequence[tuple[float, float]]
) -> tuple[tuple[float, float], ...]:
    """The parts of `edit` that some sentence span covers, merged."""
    parts = sorted((max(edit[0], a), min(edit[1], b)) for a, b in spans if b > edit[0] and a < edit[1])
    merged: list[tuple[float, float]] = []
    for a, b in parts:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return tuple(merged)


def telephone_band(samples: npt.NDArray[np.float32], rate: int) -> npt.NDArray[np.float32]:
    """Only 300-3400 Hz kept (what a telephone line carries), by zeroing the rest of the spectrum."""
    spectrum = np.fft.rfft(samples)
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    return np.fft.irfft(spectrum, n=len(samples)).astype(np.float32)


def mux(
    video: Path,
    dst: Path,
    samples: npt.NDArray[np.float32] | None,
    rate: int = RATE,
    *,
    codec: AudioCodec = "aac",
    bitrate: int | None = 96_000,
    out_rate: int | None = None,
    channels: int = 1,
    video_crf: int | None = None,
) -> Path:
    """Write `dst` (MP4, or QuickTime for μ-law): the picture of `video` and `samples` as its sound.

    The video packets are copied as they are unless `video_crf` asks for an H.264 re-encode; the
    sound is encoded with `codec` at `bitrate`, resampled to `out_rate` (default: `rate`, 48 kHz
    for Opus), in `channels` (1 or 2). `samples` None writes no sound track at all.
    """
    layout = "stereo" if channels == 2 else "mono"
    with (
        av.open(str(video)) as source,
        av.open(str(dst), "w", format="mov" if codec == "mulaw" else "mp4") as out,
    ):
        picture = source.streams.video[0]
        if video_crf is None:
            target = out.add_stream_from_template(picture)
        else:
            target = out.add_stream("libx264", rate=picture.average_rate or Fraction(25))
            target.width, target.height = picture.codec_context.width, picture.codec_context.height
            target.pix_fmt = "yuv420p"
            target.options = {"preset": "ultrafast", "crf": str(video_crf)}
        sound: av.audio.stream.AudioStream | None = None
        if samples is not None:
            encode_rate = out_rate or (48_000 if codec == "opus" else rate)
            added = out.add_stream(_CODECS[codec], rate=encode_rate)
            assert isinstance(added, av.audio.stream.AudioStream)
            sound = added
            sound.layout = layout
            if bitrate is not None and codec != "mulaw":
                sound.bit_rate = bitrate
        if video_crf is None:
            for packet in source.demux(picture):
                if packet.dts is None:
                    continue
                packet.stream = target
                out.mux(packet)
        else:
            for k, frame in enumerate(source.decode(picture)):
                converted = frame.reformat(format="yuv420p")
                converted.pts = k
                converted.time_base = Fraction(1) / (picture.average_rate or Fraction(25))
                out.mux(target.encode(converted))
            out.mux(target.encode(None))
        if sound is not None and samples is not None:
            _encode_sound(out, sound, samples, rate, layout)
    return dst


def _encode_sound(
    out: av.container.OutputContainer,
    sound: av.audio.stream.AudioStream,
    samples: npt.NDArray[np.float32],
    rate: int,
    layout: str,
) -> None:
    formats = sound.codec_context.codec.audio_formats
    resampler = av.AudioResampler(
        format=formats[0].name if formats else "s16", layout=layout, rate=sound.rate
    )
    block = 4096
    clipped = np.clip(samples, -1.0, 1.0).astype(np.float32)
    for first in range(0, len(clipped), block):
        frame = av.AudioFrame.from_ndarray(clipped[None, first : first + block], format="flt", layout="mono")
        frame.sample_rate = rate
        for converted in resampler.resample(frame):
            for packet in sound.encode(converted):
                out.mux(packet)
    for converted in resampler.resample(None):
        for packet in sound.encode(converted):
            out.mux(packet)
    for packet in sound.encode(None):
        out.mux(packet)
