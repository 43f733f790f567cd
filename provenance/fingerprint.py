"""Fingerprints: per-frame PDQ hashes and grid descriptors (v1), plus learned segment embeddings (v2).

The same code runs on client and server.

A camera computes the fingerprint on the device and signs it; the server recomputes it from the
uploaded bytes and accepts the registration only when the two agree (`agreement`). A verifier
compares a clip's fingerprint with registered ones: PDQ says *which* frames match, the grid says
*where* inside a frame the content changed.

Per sampled frame (frames sampled at `sample_fps` by `provenance.media`, scaled by libswscale so
the longer side is at most `ANALYSIS_MAX_SIDE` = 512) the record holds the v1 descriptor of
`frames.descriptor`: PDQ and the 8x8 grid of the bar-stripped frame (layout there). Frames are
analysed at 512 px because at 256 px the blurred edge of a letterbox bar alone moved PDQ by up
to 40 bits on bikes.mp4; at 512, by ~12.

Binary encoding (`Fingerprint.encode`, little-endian): magic ``b"PVFP"``, version (u8), kind
(u8: 0 video, 1 image), width, height (u32, display size), duration (u32 ms), sample_fps (f64),
frame count (u32), grid rows and cols (u8 each); then one fixed-size record per frame:
timestamp (u32 ms), PDQ (32 bytes, the standard PDQ hex order), quality (u8), grid (1280 bytes).

Version 2 is version 1 (header with version 2, the same frame records) followed by the
embedding block of the triplet-network comparer: its length (u32), the block as
`detector.comparer.encode_segments` writes it (``b"PVSE"``, model version, one 553-byte record
per ~1 s window of four sampled frames) and its CRC-32 (u32). The embeddings sit *inside* the
versioned binary, so the digest the device signs, the transparency log and the chain anchor
cover them: a verifier trusts stored embeddings exactly as much as the frame hashes, and a
registration stays one blob (no schema change). The CRC catches a damaged block with a clear
error before anything reads it. The windows must start at frames 0, 4, 8, ... of the record
list with those frames' times: embeddings and hashes describe the same samples. v2 needs 4 fps
sampling (what the network was trained on); `compute_fingerprint` falls back to v1 otherwise.
Verifiers compare with the learned comparer only when the block's model version is the loaded
weights' (`provenance.verify.learned`); v1 fingerprints still parse, register and verify.

Version 3 is version 2 followed by two more blocks, each framed like the embedding block (length,
block, CRC-32): the face block (`provenance.faces.Faces.encode`) and the audio block
(`provenance.audio.AudioTrack.encode`: 32 bits and a level per 25 ms of the sound track, or a
record that the media has none). Both sit inside the digest, the signature and the anchor.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from frames.descriptor import (
    GRID_BYTES,
    GRID_COLS,
    GRID_ROWS,
    PDQ_BYTES,
    describe,
    grid_distances,
    pdq_distance,
)
from provenance.audio import AudioCollector, AudioTrack, bit_error_rate
from provenance.core.config import DecodeLimits
from provenance.core.errors import DomainError
from provenance.faces import FaceCollector, Faces, identity_distance, thumb_distance
from provenance.media import _T_EPS as T_EPS
from provenance.media import MAX_SAMPLE_FPS, open_media

if TYPE_CHECKING:
    from detector.model import SegmentEmbedding

# The version `compute_fingerprint` makes by default; version 1 (frame hashes only) still parses
# and verifies. Version 3 (plus the face block) is made on request until the face channel meets
# its cost target.
FINGERPRINT_VERSION = 2
VERSION_1 = 1
VERSIONS = (1, 2, 3)
MAGIC = b"PVFP"
# Frames are analysed at most this large: PDQ and the grid both average the picture down to
# 64x64 and 32x32 anyway, and swscale's downscale is far cheaper than hashing a 720p frame.
ANALYSIS_MAX_SIDE = 512
# Agreement between a claimed fingerprint and the one the server recomputes from the same bytes.
AGREE_PDQ = 10
AGREE_T_MS = 1
AGREE_GRID_CELL = 12.0
# Largest distance (unit vectors, 0..2) between a claimed and a recomputed segment embedding: a
# tenth of what the comparer's calibrated thresholds (~0.4) call a change.
AGREE_EMBEDDING = 0.05
# Face channel agreement: box edges (fractions of the frame), identity (a tenth of what separates
# people) and mouth/eye thumbnails (a quarter of what an open mouth changes).
AGREE_FACE_BOX = 0.02
AGREE_FACE_IDENTITY = 0.06
AGREE_FACE_THUMB = 4.0
# Audio channel agreement: the share of differing bits (re-encodes differ by 6-15%, other sound by
# 35-50%) and levels in dB; where the track starts, to a millisecond like frame times.
AGREE_AUDIO_BITS = 0.02
AGREE_AUDIO_LEVEL_DB = 3.0

_KINDS = ("video", "image")
_HEADER = struct.Struct("<4sBBIIIdIBB")
_RECORD = struct.Struct(f"<I{PDQ_BYTES}sB{GRID_BYTES}s")
_U32_FIELD = struct.Struct("<I")
_U32 = 2**32


class FingerprintMalformed(DomainError):
    """Fingerprint bytes that are not a well-formed fingerprint of a known version."""

    status = 422

    def __init__(self, detail: str) -> None:
        super().__init__("fingerprint_malformed", detail)


@dataclass(frozen=True)
class FrameHash:
    """The hashes of one sampled frame; `t` in seconds (encoded as whole milliseconds)."""

    t: float
    pdq: bytes
    quality: int
    grid: bytes

    def __post_init__(self) -> None:
        if not (math.isfinite(self.t) and 0 <= round(self.t * 1000) < _U32):
            raise ValueError(f"timestamp out of range: {self.t!r}")
        if len(self.pdq) != PDQ_BYTES:
            raise ValueError(f"a PDQ hash has {PDQ_BYTES} bytes, not {len(self.pdq)}")
        if not 0 <= self.quality <= 100:
            raise ValueError(f"PDQ quality is 0..100, not {self.quality}")
        if len(self.grid) != GRID_BYTES:
            raise ValueError(f"a grid has {GRID_BYTES} bytes, not {len(self.grid)}")


@dataclass(frozen=True)
class Fingerprint:
    """A media file's fingerprint: what it is (kind, display size, duration) and its frame hashes."""

    version: int
    kind: str
    width: int
    height: int
    duration: float
    sample_fps: float
    frames: tuple[FrameHash, ...]
    # Version 2 and 3: the encoded embedding block (`detector.comparer.encode_segments`).
    embeddings: bytes | None = None
    # Version 3 only: the encoded face block (`provenance.faces.Faces.encode`).
    faces: bytes | None = None
    # Version 3 only: the encoded audio block (`provenance.audio.AudioTrack.encode`).
    audio: bytes | None = None
    _decoded: list[tuple[str, list[SegmentEmbedding]]] = field(
        default_factory=list, init=False, repr=False, compare=False
    )
    _faces: list[Faces] = field(default_factory=list, init=False, repr=False, compare=False)
    _audio: list[AudioTrack] = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.version not in VERSIONS:
            raise ValueError(f"unknown fingerprint version {self.version!r}")
        if (self.version >= 2) != (self.embeddings is not None):
            raise ValueError("version 2 and 3 fingerprints, and only they, carry an embedding block")
        if (self.version >= 3) != (self.faces is not None):
            raise ValueError("a version 3 fingerprint, and only it, carries a face block")
        if (self.version >= 3) != (self.audio is not None):
            raise ValueError("a version 3 fingerprint, and only it, carries an audio block")
        if self.kind not in _KINDS:
            raise ValueError(f"kind is one of {_KINDS}, not {self.kind!r}")
        for name, value in (("version", self.version), ("width", self.width), ("height", self.height)):
            if not 0 < value < (256 if name == "version" else _U32):
                raise ValueError(f"{name} out of range: {value!r}")
        if not (math.isfinite(self.duration) and 0 <= round(self.duration * 1000) < _U32):
            raise ValueError(f"duration out of range: {self.duration!r}")
        if not (math.isfinite(self.sample_fps) and 0 < self.sample_fps <= MAX_SAMPLE_FPS):
            raise ValueError(f"sample_fps must be in (0, {MAX_SAMPLE_FPS:g}]: {self.sample_fps!r}")
        if not self.frames:
            raise ValueError("a fingerprint has at least one frame")
        if self.kind == "image" and len(self.frames) != 1:
            raise ValueError("an image fingerprint has exactly one frame")
        times = [round(f.t * 1000) for f in self.frames]
        if any(b <= a for a, b in itertools.pairwise(times)):
            raise ValueError("frame timestamps must increase")
        if self.embeddings is not None:
            self._check_segments(times)
        if self.faces is not None:
            self._check_faces(times)
        if self.audio is not None:
            try:
                self._audio.append(AudioTrack.decode(self.audio))
            except DomainError as exc:
                raise ValueError(exc.detail) from None

    def audio_channel(self) -> AudioTrack | None:
        """The sound of a version 3 fingerprint, parsed once (None before version 3)."""
        return self._audio[0] if self._audio else None

    def _check_faces(self, times: Sequence[int]) -> None:
        """The face block parses, and looked at hashed frames only (raises ValueError)."""
        try:
            faces = Faces.decode(self.faces or b"")
        except DomainError as exc:
            raise ValueError(exc.detail) from None
        hashed = set(times)
        if any(round(t * 1000) not in hashed for t in faces.instants):
            raise ValueError("the face block looked at an instant that is not a hashed frame")
        looked = {round(t * 1000) for t in faces.instants}
        if any(round(f.t * 1000) not in looked for f in faces.faces):
            raise ValueError("the face block holds a face at an instant it did not look at")
        self._faces.append(faces)

    def face_channel(self) -> Faces | None:
        """The faces of a version 3 fingerprint, parsed once (None before version 3)."""
        return self._faces[0] if self._faces else None

    def _check_segments(self, times: Sequence[int]) -> None:
        """The block parses and its windows are the frames' groups of four (raises ValueError)."""
        from detector.comparer import FRAMES_PER_SEGMENT, SAMPLE_FPS, decode_segments

        if not math.isclose(self.sample_fps, SAMPLE_FPS):
            raise ValueError(f"embeddings need {SAMPLE_FPS:g} fps sampling, not {self.sample_fps:g}")
        assert self.embeddings is not None
        try:
            model_version, segments = decode_segments(self.embeddings)
        except ValueError as exc:
            raise ValueError(f"embedding block malformed: {exc}") from None
        starts = times[::FRAMES_PER_SEGMENT]
        if len(segments) != len(starts):
            raise ValueError(f"{len(segments)} embedded segments for {len(times)} frames, not {len(starts)}")
        for k, (segment, start_ms) in enumerate(zip(segments, starts, strict=True)):
            expected = min(FRAMES_PER_SEGMENT, len(times) - k * FRAMES_PER_SEGMENT)
            if abs(round(segment.start * 1000) - start_ms) > AGREE_T_MS or segment.frames != expected:
                raise ValueError(f"embedded segment {k} does not cover frames {k * FRAMES_PER_SEGMENT}..")
            if segment.end <= segment.start:
                raise ValueError(f"embedded segment {k} ends before it starts")
        self._decoded.append((model_version, segments))

    def segments(self) -> tuple[str, list[SegmentEmbedding]]:
        """(model version, segment embeddings) of a version 2 fingerprint, parsed once."""
        if not self._decoded:
            raise ValueError(f"a version {self.version} fingerprint has no embeddings")
        return self._decoded[0]

    def encode(self) -> bytes:
        """Compact versioned binary form; what the device signs and the digest covers."""
        parts = [
            _HEADER.pack(
                MAGIC,
                self.version,
                _KINDS.index(self.kind),
                self.width,
                self.height,
                round(self.duration * 1000),
                self.sample_fps,
                len(self.frames),
                GRID_ROWS,
                GRID_COLS,
            )
        ]
        parts.extend(_RECORD.pack(round(f.t * 1000), f.pdq, f.quality, f.grid) for f in self.frames)
        for block in (self.embeddings, self.faces, self.audio):
            if block is not None:
                parts.append(_U32_FIELD.pack(len(block)))
                parts.append(block)
                parts.append(_U32_FIELD.pack(zlib.crc32(block)))
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> Fingerprint:
        """Parse `encode()` output; anything else raises `fingerprint_malformed` (422)."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise FingerprintMalformed("a fingerprint is bytes")
        data = bytes(data)
        if len(data) < _HEADER.size:
            raise FingerprintMalformed("too short for a fingerprint header")
        magic, version, kind, width, height, duration_ms, sample_fps, count, rows, cols = _HEADER.unpack_from(
            data
        )
        if magic != MAGIC:
            raise FingerprintMalformed("not a fingerprint (wrong magic)")
        if version not in VERSIONS:
            raise FingerprintMalformed(f"unknown fingerprint version {version}")
        if kind >= len(_KINDS):
            raise FingerprintMalformed(f"unknown media kind {kind}")
        if (rows, cols) != (GRID_ROWS, GRID_COLS):
            raise FingerprintMalformed(f"grid of {rows}x{cols} is not the version 1 grid")
        frames_end = _HEADER.size + count * _RECORD.size
        embeddings = faces = audio = None
        end = frames_end
        if version >= 2:
            embeddings, end = _block(data, end, "embedding")
        if version >= 3:
            faces, end = _block(data, end, "face")
            audio, end = _block(data, end, "audio")
        if len(data) != end:
            raise FingerprintMalformed(f"length {len(data)} does not match {count} frame records and blocks")
        try:
            frames = tuple(
                FrameHash(t=t_ms / 1000, pdq=pdq, quality=quality, grid=grid)
                for t_ms, pdq, quality, grid in _RECORD.iter_unpack(data[_HEADER.size : frames_end])
            )
            return cls(
                version=version,
                kind=_KINDS[kind],
                width=width,
                height=height,
                duration=duration_ms / 1000,
                sample_fps=sample_fps,
                frames=frames,
                embeddings=embeddings,
                faces=faces,
                audio=audio,
            )
        except (ValueError, struct.error) as exc:
            raise FingerprintMalformed(str(exc)) from None

    def digest(self) -> str:
        """Lowercase hex SHA-256 of `encode()`: the content hash a manifest refers to."""
        return hashlib.sha256(self.encode()).hexdigest()


def _block(data: bytes, offset: int, name: str) -> tuple[bytes, int]:
    """The length-prefixed, CRC-checked block at `offset`, and the offset after it."""
    if len(data) < offset + 2 * _U32_FIELD.size:
        raise FingerprintMalformed(f"fingerprint without its {name} block")
    (length,) = _U32_FIELD.unpack_from(data, offset)
    start = offset + _U32_FIELD.size
    end = start + length + _U32_FIELD.size
    if len(data) < end:
        raise FingerprintMalformed(
            f"{name} block of {length} bytes does not fit the {len(data) - start - _U32_FIELD.size} left"
        )
    block = data[start : start + length]
    (crc,) = _U32_FIELD.unpack_from(data, start + length)
    if zlib.crc32(block) != crc:
        raise FingerprintMalformed(f"{name} block corrupted: its CRC-32 does not match")
    return block, end


def version_for(sample_fps: float) -> int:
    """The newest version a sampling rate allows: embeddings (and so faces) need 4 fps samples."""
    from detector.comparer import SAMPLE_FPS

    return FINGERPRINT_VERSION if math.isclose(sample_fps, SAMPLE_FPS) else VERSION_1


class FrameSink(Protocol):
    """Something else made of the hashed frames in the same decode (a report's stills, faces)."""

    def add(self, t: float, rgb: np.ndarray) -> None: ...


def compute_fingerprint(
    path: Path,
    *,
    limits: DecodeLimits,
    sample_fps: float = 4.0,
    progress: Callable[[float], None] | None = None,
    version: int | None = None,
    keep: Callable[[float, np.ndarray], None] | None = None,
    keep_fps: float | None = None,
    faces: FaceCollector | None = None,
    sinks: Sequence[FrameSink] = (),
    audio: AudioCollector | None = None,
) -> Fingerprint:
    """Decode `path` within `limits` and fingerprint it (raises `MediaError` on bad media).

    `version` defaults to the newest the sampling allows (`version_for`); 2 adds the segment
    embeddings (a forward pass of the triplet network per sampled frame). `keep`, when given,
    sees every sampled frame (time, RGB at analysis size) as it goes: a verifier keeps what its
    comparer needs from the same decode. With `keep_fps` (a multiple of `sample_fps`) the decode
    samples that densely for `keep`, and only the frames the `sample_fps` rule picks are hashed:
    the fingerprint is the same as without. `faces`, when given, describes the faces of the
    hashed frames at its own rate (a verifier's query); version 3 collects them at every hashed
    frame into its face block. `sinks` see every hashed frame (time, RGB at analysis size).
    Version 3 also decodes the sound track in the same pass into its audio block; `audio`, when
    given, collects the sound the same way for a caller (a verifier's query).
    """
    version = version_for(sample_fps) if version is None else version
    if version not in VERSIONS:
        raise ValueError(f"unknown fingerprint version {version}")
    if version >= 2 and version_for(sample_fps) < 2:
        raise ValueError(f"a version {version} fingerprint samples at 4 fps, not {sample_fps:g}")
    dense = keep_fps if keep is not None and keep_fps is not None else sample_fps
    if dense < sample_fps or not math.isclose(dense / sample_fps, round(dense / sample_fps)):
        raise ValueError(f"keep_fps {dense:g} is not a multiple of sample_fps {sample_fps:g}")
    embedder = _Embedder() if version >= 2 else None
    collector = FaceCollector() if version >= 3 else faces
    sound = AudioCollector() if version >= 3 and audio is None else audio
    hashes = []
    next_k = 0  # the `sample_fps` targets, picked out of the denser sampling as media.sample does
    with open_media(path, limits, audio=sound) as media:
        info = media.info
        for frame in media.sample(fps=dense, max_side=ANALYSIS_MAX_SIDE, progress=progress):
            if keep is not None:
                keep(frame.t, frame.rgb)
            if frame.t + T_EPS < next_k / sample_fps:
                continue
            next_k = math.floor(frame.t * sample_fps + T_EPS) + 1
            hashes.append(hash_frame(frame.t, frame.rgb))
            if embedder is not None:
                embedder.add(hashes[-1].t, frame.rgb)
            if collector is not None:
                collector.add(hashes[-1].t, frame.rgb)
            for sink in sinks:
                sink.add(hashes[-1].t, frame.rgb)
    return Fingerprint(
        version=version,
        kind=info.kind,
        width=info.width,
        height=info.height,
        duration=round(info.duration, 3),
        sample_fps=sample_fps,
        frames=tuple(hashes),
        embeddings=embedder.block() if embedder is not None else None,
        faces=collector.faces().encode() if version >= 3 and collector is not None else None,
        audio=sound.track().encode() if version >= 3 and sound is not None else None,
    )


class _Embedder:
    """Collects the original's sampled frames as the network sees them, then embeds them per window.

    Frames are kept prepared (64x64, bars stripped), not at analysis size: a long original would
    otherwise hold hundreds of megabytes until the end.
    """

    def __init__(self) -> None:
        from detector.inputs import prepare_frame

        self._prepare = prepare_frame
        self.frames: list[tuple[float, np.ndarray]] = []

    def add(self, t: float, rgb: np.ndarray) -> None:
        self.frames.append((t, self._prepare(rgb)))

    def block(self) -> bytes:
        from detector.comparer import default_comparer, encode_segments

        comparer = default_comparer()
        return encode_segments(comparer.embed_video_frames(self.frames), comparer.version)


def hash_frame(t: float, rgb: np.ndarray) -> FrameHash:
    """The fingerprint record of one upright RGB frame at `t` s: its v1 descriptor."""
    described = describe(rgb)
    return FrameHash(t=round(t, 3), pdq=described.pdq, quality=described.quality, grid=described.grid)


def agreement(expected: Fingerprint, recomputed: Fingerprint) -> str | None:
    """None when the server's recomputation agrees with the claimed fingerprint, else why not.

    Both sides run this code on the same bytes, so the tolerances only absorb small numeric
    differences between builds of FFmpeg/libswscale, not different content.
    """
    if expected.version != recomputed.version:
        return f"fingerprint version {expected.version} claimed, {recomputed.version} computed"
    if expected.kind != recomputed.kind:
        return f"media kind {expected.kind} claimed, {recomputed.kind} computed"
    if (expected.width, expected.height) != (recomputed.width, recomputed.height):
        return (
            f"size {expected.width}x{expected.height} claimed, "
            f"{recomputed.width}x{recomputed.height} computed"
        )
    if not math.isclose(expected.sample_fps, recomputed.sample_fps, rel_tol=1e-9):
        return f"sampled at {expected.sample_fps:g} fps claimed, {recomputed.sample_fps:g} computed"
    if len(expected.frames) != len(recomputed.frames):
        return f"{len(expected.frames)} frames claimed, {len(recomputed.frames)} computed"
    for i, (a, b) in enumerate(zip(expected.frames, recomputed.frames, strict=True)):
        if abs(round(a.t * 1000) - round(b.t * 1000)) > AGREE_T_MS:
            return f"frame {i}: timestamp {a.t:.3f} s claimed, {b.t:.3f} s computed"
        distance = pdq_distance(a.pdq, b.pdq)
        if distance > AGREE_PDQ:
            return f"frame {i} at {a.t:.3f} s: PDQ distance {distance} over {AGREE_PDQ}"
        cell = float(grid_distances(a.grid, b.grid).max())
        if cell > AGREE_GRID_CELL:
            return f"frame {i} at {a.t:.3f} s: grid cell distance {cell:.1f} over {AGREE_GRID_CELL:g}"
    if expected.embeddings is not None and recomputed.embeddings is not None:
        disagreement = _embeddings_agree(expected, recomputed)
        if disagreement is not None:
            return disagreement
    claimed_faces, our_faces = expected.face_channel(), recomputed.face_channel()
    if claimed_faces is not None and our_faces is not None:
        disagreement = _faces_agree(claimed_faces, our_faces)
        if disagreement is not None:
            return disagreement
    claimed_audio, our_audio = expected.audio_channel(), recomputed.audio_channel()
    if claimed_audio is not None and our_audio is not None:
        return _audio_agree(claimed_audio, our_audio)
    return None


def _audio_agree(claimed: AudioTrack, ours: AudioTrack) -> str | None:
    """None when two audio blocks describe the same sound within the `AGREE_AUDIO_*` tolerances."""
    if claimed.present != ours.present:
        return "a sound track claimed" if claimed.present else "no sound track claimed, the media has one"
    if claimed.frames != ours.frames:
        return f"{claimed.frames} audio frames claimed, {ours.frames} computed"
    if abs(claimed.start - ours.start) > AGREE_T_MS / 1000:
        return f"sound starting at {claimed.start:.3f} s claimed, {ours.start:.3f} s computed"
    if claimed.frames:
        differing = bit_error_rate(claimed.bits, ours.bits)
        if differing > AGREE_AUDIO_BITS:
            return f"audio bits differ by {differing:.1%}, over {AGREE_AUDIO_BITS:.0%}"
        level = float(np.abs(claimed.level_db() - ours.level_db()).max())
        if level > AGREE_AUDIO_LEVEL_DB:
            return f"audio levels differ by {level:.1f} dB, over {AGREE_AUDIO_LEVEL_DB:g} dB"
    return None


def _faces_agree(claimed: Faces, ours: Faces) -> str | None:
    """None when two face blocks describe the same faces within the `AGREE_FACE_*` tolerances."""
    if claimed.model != ours.model:
        return f"faces of model {claimed.model} claimed, this server has model {ours.model}"
    if len(claimed.instants) != len(ours.instants) or len(claimed.faces) != len(ours.faces):
        return f"{len(claimed.faces)} faces claimed, {len(ours.faces)} computed"
    for a, b in zip(claimed.faces, ours.faces, strict=True):
        where = f"face at {a.t:.3f} s"
        if abs(a.t - b.t) > AGREE_T_MS / 1000 or a.track != b.track:
            return f"{where}: time or track differs"
        if max(abs(x - y) for x, y in zip(a.box, b.box, strict=True)) > AGREE_FACE_BOX:
            return f"{where}: box differs"
        if (a.identity is None) != (b.identity is None):
            return f"{where}: identity present on one side only"
        if a.identity is not None and b.identity is not None:
            distance = identity_distance(a.identity, b.identity)
            if distance > AGREE_FACE_IDENTITY:
                return f"{where}: identity distance {distance:.3f} over {AGREE_FACE_IDENTITY:g}"
        worst = max(thumb_distance(a.mouth, b.mouth), thumb_distance(a.eyes, b.eyes))
        if worst > AGREE_FACE_THUMB:
            return f"{where}: mouth or eyes differ by {worst:.1f} over {AGREE_FACE_THUMB:g}"
    return None


def _embeddings_agree(expected: Fingerprint, recomputed: Fingerprint) -> str | None:
    """None when two version 2 fingerprints' embeddings are the same within `AGREE_EMBEDDING`."""
    claimed_model, claimed = expected.segments()
    model, ours = recomputed.segments()
    if claimed_model != model:
        return f"embeddings of model {claimed_model} claimed, this server has model {model}"
    if len(claimed) != len(ours):
        return f"{len(claimed)} embedded segments claimed, {len(ours)} computed"
    for k, (a, b) in enumerate(zip(claimed, ours, strict=True)):
        worst = max(
            float(np.linalg.norm(a.global_vec - b.global_vec)),
            float(np.linalg.norm(a.cells - b.cells, axis=-1).max()),
        )
        if worst > AGREE_EMBEDDING:
            return f"segment {k} at {a.start:.3f} s: embedding distance {worst:.3f} over {AGREE_EMBEDDING:g}"
    return None
