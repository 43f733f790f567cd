"""The audio channel of a fingerprint: what the sound track says, every 25 ms, in a form that survives codecs.

Speech is the target (a replaced voice, a dub, a muted sentence), so the sub-fingerprint is a
spectral one of the kind Haitsma and Kalker described for music, restricted to the telephone
band: the track is resampled to 8 kHz mono, cut into 256 ms Hann frames every 25 ms, and each
frame's power is summed in 33 bands spaced logarithmically from 300 to 3400 Hz. Bit m of frame n
is the sign of the change, from frame n-1 to n, of the log-energy difference between bands m and
m+1: 32 bits a frame. Level changes, equalisation, resampling, mono/stereo mixing and lossy
codecs move few bits (64 kbit/s AAC, 32 kbit/s Opus, MP3 and G.711 at 8 kHz telephone band:
6-15% of the bits of a 0.5 s window); other speech, another voice saying the same words at the
same pace, or a pitch change of a semitone, moves 35-50%. Chromaprint was measured on the same
speech first: its chroma (pitch-class) features, tuned to music, gave about 3 sub-fingerprints a
second and put different sentences only 30-40% apart, against 6-10% for re-encodes (see
docs/fingerprint.md). Each frame also records its level (dB of the band power), so that silence,
which has no stable bits, is recognised as silence.

Both sides run this code: the device and the server on the original (the block below, inside a
version 3 fingerprint), the verifier on the clip (`QueryAudio`, which keeps the 8 kHz samples so
the comparison can take the clip's frames at a quarter-hop phase that lines up with the
original's, see `provenance.verify.audio`).

Block layout (little-endian), carried inside a version 3 fingerprint after the face block: magic
``b"PVAU"``, layout (u8), flags (u8: 1 = the media has a sound track), source sample rate (u32,
Hz) and channels (u16) of that track, start (i32, microseconds: where sample 0 of the 8 kHz
track sits on the video's timeline), frame count (u32); then one u32 of bits per frame, then one
u8 level per frame (0.5 dB steps from -100 dBFS). Frame k's centre is at
``start + (k + 1) * HOP_S + FRAME_S / 2``. A file without sound has the flag clear and no frames.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

from provenance.core.errors import DomainError

MAGIC = b"PVAU"
LAYOUT = 1
RATE = 8000
FRAME = 2048
HOP = 200
FRAME_S = FRAME / RATE
HOP_S = HOP / RATE
BANDS = 33
BAND_LOW_HZ = 300.0
BAND_HIGH_HZ = 3400.0
BITS = BANDS - 1
# Levels: u8 in 0.5 dB steps from LEVEL_FLOOR_DB (0 means at or below it).
LEVEL_FLOOR_DB = -100.0
LEVEL_STEP_DB = 0.5
# A frame is loud (has speech or sound worth comparing) at most this far under the track's
# reference level (its 95th percentile), and never under the absolute floor.
LOUD_BELOW_REFERENCE_DB = 30.0
LOUD_FLOOR_DB = -65.0
_HAS_AUDIO = 1
_HEADER = struct.Struct("<4sBBIHiI")
_EPS = 1e-12


class AudioBlockMalformed(DomainError):
    status = 422

    def __init__(self, detail: str) -> None:
        super().__init__("fingerprint_malformed", f"audio block: {detail}")


@dataclass(frozen=True)
class AudioTrack:
    """The audio channel of a media file: its sub-fingerprints (32 bits and a level per 25 ms frame).

    `present` is False for media without a sound track (then there are no frames). `start` is
    where sample 0 of the 8 kHz track sits on the video's timeline, in seconds.
    """

    present: bool
    source_rate: int
    source_channels: int
    start: float
    bits: npt.NDArray[np.uint32]
    levels: npt.NDArray[np.uint8]
    _loud: list[np.ndarray] = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.bits) != len(self.levels):
            raise ValueError("one level per frame of bits")
        if not self.present and len(self.bits):
            raise ValueError("a media file without sound has no audio frames")
        if not -(2**31) <= round(self.start * 1e6) < 2**31:
            raise ValueError(f"audio start out of range: {self.start!r}")

    @property
    def frames(self) -> int:
        return len(self.bits)

    def times(self) -> npt.NDArray[np.float64]:
        """The centre of every frame on the video's timeline (seconds)."""
        return frame_times(self.start, self.frames)

    def level_db(self) -> npt.NDArray[np.float64]:
        return level_db(self.levels)

    def loud(self) -> np.ndarray:
        """Per frame: does it carry sound worth comparing (see `loud_frames`)."""
        if not self._loud:
            self._loud.append(loud_frames(self.level_db()))
        return self._loud[0]

    def heard(self) -> bool:
        """Whether any of the track is loud enough to compare: a silent track is no sound at all."""
        return bool(self.present and self.loud().any())

    def encode(self) -> bytes:
        flags = _HAS_AUDIO if self.present else 0
        header = _HEADER.pack(
            MAGIC,
            LAYOUT,
            flags,
            self.source_rate,
            self.source_channels,
            round(self.start * 1e6),
            self.frames,
        )
        return header + self.bits.astype("<u4").tobytes() + self.levels.astype(np.uint8).tobytes()

    @classmethod
    def decode(cls, data: bytes) -> AudioTrack:
        if len(data) < _HEADER.size:
            raise AudioBlockMalformed("too short")
        magic, layout, flags, rate, channels, start_us, count = _HEADER.unpack_from(data)
        if magic != MAGIC or layout != LAYOUT:
            raise AudioBlockMalformed("unknown magic or layout")
        if len(data) != _HEADER.size + 5 * count:
            raise AudioBlockMalformed(f"length does not match {count} frames")
        bits_end = _HEADER.size + 4 * count
        bits = np.frombuffer(data, dtype="<u4", count=count, offset=_HEADER.size).astype(np.uint32)
        levels = np.frombuffer(data, dtype=np.uint8, count=count, offset=bits_end).copy()
        try:
            return cls(bool(flags & _HAS_AUDIO), rate, channels, start_us / 1e6, bits, levels)
        except ValueError as exc:
            raise AudioBlockMalformed(str(exc)) from None


def silent_track() -> AudioTrack:
    """The audio channel of media without a sound track."""
    return AudioTrack(False, 0, 0, 0.0, np.zeros(0, np.uint32), np.zeros(0, np.uint8))


def frame_times(start: float, count: int, phase: float = 0.0) -> npt.NDArray[np.float64]:
    """Frame centres of a track whose sample 0 is at `start`, its frames offset by `phase` hops."""
    return np.asarray(start + (np.arange(count) + 1 + phase) * HOP_S + FRAME_S / 2, dtype=np.float64)


def level_db(levels: np.ndarray) -> npt.NDArray[np.float64]:
    """Quantised levels back in dB."""
    return np.asarray(LEVEL_FLOOR_DB + levels.astype(np.float64) * LEVEL_STEP_DB, dtype=np.float64)


def loud_level(levels_db: np.ndarray) -> float:
    """The level from which a frame of this track is loud: `LOUD_BELOW_REFERENCE_DB` under its
    95th-percentile level, and never under `LOUD_FLOOR_DB`."""
    return max(float(np.percentile(levels_db, 95)) - LOUD_BELOW_REFERENCE_DB, LOUD_FLOOR_DB)


def loud_frames(levels_db: np.ndarray) -> np.ndarray:
    """Frames at or over the track's `loud_level`."""
    if not len(levels_db):
        return np.zeros(0, dtype=bool)
    return np.asarray(levels_db >= loud_level(levels_db))


@cache
def _band_matrix() -> npt.NDArray[np.float32]:
    """(bands, FFT bins): which bins each band sums (each band gets at least its nearest bin)."""
    edges = np.geomspace(BAND_LOW_HZ, BAND_HIGH_HZ, BANDS + 1)
    freqs = np.fft.rfftfreq(FRAME, 1 / RATE)
    matrix = np.zeros((BANDS, len(freqs)), np.float32)
    for b in range(BANDS):
        inside = (freqs >= edges[b]) & (freqs < edges[b + 1])
        if not inside.any():
            inside[np.argmin(np.abs(freqs - (edges[b] + edges[b + 1]) / 2))] = True
        matrix[b, inside] = 1.0
    return matrix


@cache
def _window() -> npt.NDArray[np.float32]:
    return np.hanning(FRAME).astype(np.float32)


# Frames analysed per FFT batch: bounds the working memory of a long track to a few megabytes.
_BATCH = 512


def sub_fingerprints(
    pcm: npt.NDArray[np.float32], offset: int = 0
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint8]]:
    """(bits, levels) of 8 kHz mono samples, frames starting `offset` samples in (0 <= offset < HOP)."""
    samples = np.asarray(pcm[offset:], dtype=np.float32)
    frames = 1 + (len(samples) - FRAME) // HOP if len(samples) >= FRAME else 0
    if frames < 2:
        return np.zeros(0, np.uint32), np.zeros(0, np.uint8)
    window = _window()
    bands = _band_matrix()
    # Band power as the mean square of the band-limited signal (Parseval with the window's energy).
    scale = 2.0 / (FRAME * float(np.sum(window.astype(np.float64) ** 2)))
    energies = np.empty((frames, BANDS), np.float64)
    windows = np.lib.stride_tricks.sliding_window_view(samples, FRAME)[::HOP]
    for first in range(0, frames, _BATCH):
        chunk = windows[first : first + _BATCH] * window
        power = np.abs(np.fft.rfft(chunk, axis=1)) ** 2
        energies[first : first + len(chunk)] = (power @ bands.T) * scale
    log_energy = np.log(energies + _EPS)
    across = log_energy[:, :-1] - log_energy[:, 1:]
    bits = (across[1:] - across[:-1]) > 0
    weights = (1 << np.arange(BITS, dtype=np.uint64)).astype(np.uint64)
    packed = (bits.astype(np.uint64) @ weights).astype(np.uint32)
    level = 10 * np.log10(energies[1:].sum(axis=1) + _EPS)
    quantised = np.clip(np.rint((level - LEVEL_FLOOR_DB) / LEVEL_STEP_DB), 0, 255).astype(np.uint8)
    return packed, quantised


class AudioCollector:
    """Receives a media file's decoded sound as it is demuxed, resampled to 8 kHz mono float.

    `provenance.media` feeds it (`add`) within the decode's bounds and tells it where the video
    starts (`finish`); `track` is the original's audio channel, `query` the verifier's.
    """

    def __init__(self) -> None:
        self.chunks: list[npt.NDArray[np.float32]] = []
        self.samples = 0
        self.first_pts: float | None = None
        self.source_rate = 0
        self.source_channels = 0
        self.present = False
        self.video_start = 0.0

    def add(self, t: float | None, samples: npt.NDArray[np.float32]) -> None:
        """8 kHz mono samples whose first sits at `t` seconds of the container's clock."""
        if self.first_pts is None and t is not None:
            self.first_pts = t - self.samples / RATE
        self.chunks.append(samples)
        self.samples += len(samples)

    def pcm(self) -> npt.NDArray[np.float32]:
        if len(self.chunks) != 1:
            joined = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)
            self.chunks = [joined]
        return self.chunks[0]

    @property
    def start(self) -> float:
        """Where sample 0 sits on the video's timeline (seconds)."""
        return (self.first_pts or 0.0) - self.video_start

    def track(self) -> AudioTrack:
        """The original's audio channel (no sound track, or silence too short to frame: no frames)."""
        if not self.present:
            return silent_track()
        bits, levels = sub_fingerprints(self.pcm())
        return AudioTrack(True, self.source_rate, self.source_channels, round(self.start, 6), bits, levels)

    def query(self) -> QueryAudio:
        return QueryAudio(
            self.present, round(self.start, 6), self.pcm(), self.source_rate, self.source_channels
        )


@dataclass
class QueryAudio:
    """A clip's sound as the verifier keeps it: 8 kHz samples, framed at any quarter-hop phase."""

    present: bool
    start: float
    pcm: npt.NDArray[np.float32]
    source_rate: int = 0
    source_channels: int = 0
    _phases: dict[int, tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint8]]] = field(
        default_factory=dict, repr=False
    )

    def phase(self, offset: int) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint8]]:
        """(bits, levels) of frames starting `offset` samples later than phase 0 (cached)."""
        if offset not in self._phases:
            self._phases[offset] = sub_fingerprints(self.pcm, offset)
        return self._phases[offset]

    def track(self) -> AudioTrack:
        """Phase 0 as an `AudioTrack` (what the original's side would hold for the same sound)."""
        if not self.present:
            return silent_track()
        bits, levels = self.phase(0)
        return AudioTrack(True, self.source_rate, self.source_channels, self.start, bits, levels)

    def describe(self) -> dict[str, Any]:
        return {
            "present": self.present,
            "seconds": round(len(self.pcm) / RATE, 3),
            "source_rate": self.source_rate,
            "source_channels": self.source_channels,
        }


def bit_error_rate(a: np.ndarray, b: np.ndarray) -> float:
    """Share of differing bits between two equally long runs of sub-fingerprints."""
    if not len(a):
        return math.nan
    return float(np.bitwise_count(a ^ b).sum()) / (BITS * len(a))
