"""Bounded decoding of untrusted media with PyAV, and sampling of frames at a fixed rate.

Every upload is hostile until decoded: each bound in `DecodeLimits` is checked as early as
possible (file size before opening, stream count and frame size from the stream header before
any frame is decoded, duration from the header and again while decoding, wall time between
packets), and every failure surfaces as a `MediaError` with a stable `media_*` code rather
than a raw PyAV/OS exception, a hang or a 500.

Decoding is cheap and converting to RGB is not, so frames are decoded in full (threaded) but
only the sampled ones are converted, already downscaled by libswscale when `max_side` is set.

Error codes (all `MediaError`, status 422, except `media_too_large`, status 413):

- `media_unreadable`: the file cannot be opened or is not a regular file.
- `media_empty`: zero bytes.
- `media_too_large`: larger than `max_upload_bytes`.
- `media_undecodable`: no recognisable container, or a packet the decoder rejects.
- `media_no_video`: no video stream (audio-only, or only cover art).
- `media_unsupported_codec`: a video stream this build has no decoder for.
- `media_too_many_streams`: more streams than `max_streams`.
- `media_frame_too_large`: width*height over `max_pixels` (header, or a later frame).
- `media_too_long`: duration over `max_duration_s` (header, or timestamps while decoding).
- `media_decode_timeout`: decoding took longer than `max_decode_seconds`.
- `media_truncated`: the container lists more packets than the file holds.
- `media_no_frames`: a video stream without a single decodable frame.
- `media_unsupported_format`: not one of the allowed containers (see `containers.sniff`).
- `media_too_many_frames`: more frames than `max_frames` (an animation: `max_animation_frames`),
  or an MP4 sample table declaring more than `max_track_samples`.

The sound track (the first audio stream) is checked from its header on every open, and decoded in
the same pass as the picture when an `AudioCollector` is given (fingerprint version 3 and the
verifier's audio channel), resampled to 8 kHz mono as it goes:

- `audio_too_many_channels`: more channels than `max_audio_channels` (header, or a decoded frame).
- `audio_bad_sample_rate`: a sample rate outside `min_audio_rate`..`max_audio_rate`.
- `audio_too_long`: a sound track over `max_duration_s` (header, or samples while decoding).
- `audio_undecodable`: no decoder for the sound, or a packet the decoder rejects.
"""

from __future__ import annotations

import io
import itertools
import math
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import av
import av.error
import numpy as np
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream

from provenance import containers
from provenance.containers import Container
from provenance.core.config import DecodeLimits
from provenance.core.errors import MediaError, MediaTooLarge

if TYPE_CHECKING:
    from provenance.audio import AudioCollector

MediaKind = Literal["video", "image"]

# Above any real frame rate: sampling this fast takes every frame.
MAX_SAMPLE_FPS = 1000.0

# Demuxers that hold one still picture: image2 (by file name) and the content-probed *_pipe ones.
_IMAGE_FORMAT_SUFFIX = "_pipe"
_IMAGE_FORMATS = frozenset({"image2", "webp"})
# Tolerance when comparing a frame time with a sampling target (float rounding of k/fps).
_T_EPS = 1e-6
# The timestamp a frame without any pts gets is its index over this rate when the stream has none.
_FALLBACK_RATE = 25.0
# Enough of the file to find a PNG IHDR or a JPEG SOF after large EXIF/ICC segments.
_SNIFF_BYTES = 256 * 1024
# Not a protocol: every nested open (a playlist entry, a reference) fails the whitelist.
_NO_PROTOCOL = "none"
_AV_ERRORS = (av.error.FFmpegError, OSError, ValueError, RuntimeError, MemoryError, EOFError, TypeError)


@dataclass(frozen=True)
class MediaInfo:
    """What the header (and the first frame, for rotation) says about a media file.

    `width`/`height` are the display size: sample aspect ratio and rotation applied.
    `rotation` is the counter-clockwise angle (0, 90, 180 or 270) applied to decoded frames to
    show them upright, from the display matrix. `duration` is 0 for images and for streams whose
    container declares none; `fps` is the average frame rate (0 for images).
    """

    kind: MediaKind
    width: int
    height: int
    duration: float
    fps: float
    rotation: int
    codec: str


@dataclass(frozen=True)
class SampledFrame:
    """One sampled frame: `t` seconds from the stream start, `rgb` HxWx3 uint8, upright."""

    t: float
    rgb: np.ndarray


def probe(path: Path, limits: DecodeLimits) -> MediaInfo:
    """Check every header bound and describe the media; decodes one frame to learn its rotation."""
    with open_media(path, limits) as media:
        return media.info


def sample_frames(
    path: Path,
    *,
    fps: float,
    limits: DecodeLimits,
    max_side: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> Iterator[SampledFrame]:
    """Yield the first frame at or after each time k/fps (k = 0, 1, ...), as upright RGB.

    See `MediaReader.sample`. Bad arguments raise `ValueError` at once; bad media raises
    `MediaError` while iterating.
    """
    _check_sampling(fps, max_side)

    def frames() -> Iterator[SampledFrame]:
        with open_media(path, limits) as media:
            yield from media.sample(fps=fps, max_side=max_side, progress=progress)

    return frames()


@contextmanager
def open_media(
    path: Path, limits: DecodeLimits, audio: AudioCollector | None = None
) -> Iterator[MediaReader]:
    """Open `path` once for both `info` and sampling; closes the file and container on exit.

    Every header bound is checked and the first frame decoded (for its rotation) before the
    reader is handed out, so a `MediaError` here means nothing was sampled. With `audio`, the
    sound track is decoded into it while the frames are (complete once `sample` has finished).
    """
    try:
        size = path.stat().st_size
        is_file = path.is_file()
    except OSError as exc:
        raise MediaError("media_unreadable", f"cannot read the file: {exc.strerror}") from None
    if not is_file:
        raise MediaError("media_unreadable", "not a regular file")
    if size == 0:
        raise MediaError("media_empty", "the file is empty")
    if size > limits.max_upload_bytes:
        raise MediaTooLarge(
            "media_too_large", f"the file has {size} bytes, over the limit of {limits.max_upload_bytes}"
        )
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise MediaError("media_unreadable", f"cannot read the file: {exc.strerror}") from None
    with fh:
        try:
            head = fh.read(_SNIFF_BYTES)
            fh.seek(0)
            container = containers.sniff(head)
            source = _bounded_source(fh, size, container, limits)
        except OSError as exc:
            raise MediaError("media_unreadable", f"cannot read the file: {exc.strerror}") from None
        reader = MediaReader(source, head, limits, container, audio)
        try:
            reader._start()
            yield reader
        finally:
            reader.close()


def _bounded_source(fh: BinaryIO, size: int, container: Container, limits: DecodeLimits) -> BinaryIO:
    """Check the header bounds FFmpeg would allocate for, and hand it a file it cannot inflate."""
    if container is containers.MP4:
        containers.check_mp4_tables(fh, size, limits.max_track_samples)
    elif container is containers.GIF:
        frames = containers.gif_frame_count(fh, limits.max_animation_frames)
        if frames > limits.max_animation_frames:
            raise MediaError(
                "media_too_many_frames",
                f"the animation has more than {limits.max_animation_frames} frames",
            )
    elif container is containers.PNG:
        stripped = containers.png_without_inflating_chunks(fh.read())
        fh.seek(0)
        if stripped is not None:
            return io.BytesIO(stripped)
    return fh


def _check_sampling(fps: float, max_side: int | None) -> None:
    if not (math.isfinite(fps) and 0 < fps <= MAX_SAMPLE_FPS):
        raise ValueError(f"fps must be in (0, {MAX_SAMPLE_FPS:g}], not {fps!r}")
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be at least 1, not {max_side!r}")


def _is_image_format(format_name: str) -> bool:
    return format_name in _IMAGE_FORMATS or format_name.endswith(_IMAGE_FORMAT_SUFFIX)


class MediaReader:
    """An opened container whose header passed every bound, with its chosen video stream.

    Made by `open_media`; `info` describes the media and `sample` (once) yields its frames.
    """

    info: MediaInfo

    def __init__(
        self,
        fh: BinaryIO,
        head: bytes,
        limits: DecodeLimits,
        container: Container,
        audio: AudioCollector | None = None,
    ) -> None:
        self.limits = limits
        self.audio = audio
        self.audio_stream: AudioStream | None = None
        self._resampler: AudioResampler | None = None
        self.video_start = 0.0
        self.head = head
        self.source = container
        self.deadline = time.monotonic() + limits.max_decode_seconds
        self.container: InputContainer | None = None
        self._reformatter = VideoReformatter()
        # A file object and a named demuxer: FFmpeg neither probes nor reads a path, so no
        # playlist, concat list, SDP or image2 pattern can make it open URLs, sockets or other
        # files; the whitelists refuse any nested open all the same. `max_pixels` stops the
        # header probe from allocating a frame-size bomb; the size is then read from the header.
        try:
            self.container = av.open(
                fh,
                mode="r",
                format=container.demuxer,
                options={
                    "max_pixels": str(limits.max_pixels),
                    "format_whitelist": container.demuxer,
                    "protocol_whitelist": _NO_PROTOCOL,
                    "enable_drefs": "0",
                },
                timeout=(limits.max_decode_seconds, limits.max_decode_seconds),
            )
        except av.error.ExitError:
            raise MediaError("media_decode_timeout", "opening the media took too long") from None
        except _AV_ERRORS:
            raise MediaError("media_undecodable", "not a media file this service can decode") from None
        try:
            self.stream = self._check_header(self.container)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.container is not None:
            with suppress(*_AV_ERRORS):
                self.container.close()
            self.container = None

    def _check_header(self, container: InputContainer) -> VideoStream:
        limits = self.limits
        streams = container.streams
        if len(streams) > limits.max_streams:
            raise MediaError(
                "media_too_many_streams",
                f"the file has {len(streams)} streams, over the limit of {limits.max_streams}",
            )
        videos = [
            s
            for s in streams.video
            if not (s.disposition & av.stream.Disposition.attached_pic)  # cover art is not video
        ]
        if not videos:
            raise MediaError("media_no_video", "the file has no video stream")
        stream = videos[0]
        if stream.codec_context is None:
            raise MediaError("media_unsupported_codec", "no decoder for this video codec")
        self.codec = stream.codec_context.name
        self.format_name = container.format.name
        self.kind: MediaKind = "image" if _is_image_format(self.format_name) else "video"
        width, height = stream.codec_context.width, stream.codec_context.height
        if width <= 0 or height <= 0:
            # The probe did not learn the size (e.g. it refused to decode a frame over
            # max_pixels): read it from the picture's own header.
            size = _image_header_size(self.head) if self.kind == "image" else None
            if size is None:
                raise MediaError("media_undecodable", "the video stream declares no frame size")
            width, height = size
        self._check_pixels(width, height)
        self.coded_size = (width, height)
        self.header_duration = self._declared_duration(container, stream)
        if self.header_duration is not None and self.header_duration > limits.max_duration_s:
            raise MediaError(
                "media_too_long",
                f"the media lasts {self.header_duration:.1f} s,"
                f" over the limit of {limits.max_duration_s:g} s",
            )
        rate = stream.average_rate or stream.guessed_rate
        self.fps = 0.0 if self.kind == "image" or not rate else float(rate)
        self.declared_packets = stream.frames if self.source is containers.MP4 else 0
        sound = self._check_audio_header(container)
        if self.audio is not None and sound is not None:
            self._open_audio(sound)
        kept = {stream.index} if self.audio_stream is None else {stream.index, self.audio_stream.index}
        for other in streams:
            if other.index not in kept:
                other.discard = av.stream.Discard.all
        stream.thread_type = "AUTO"
        stream.codec_context.options = {"max_pixels": str(limits.max_pixels)}
        return stream

    def _check_audio_header(self, container: InputContainer) -> AudioStream | None:
        """The first audio stream, once its declared channels, rate and length are within bounds."""
        sounds = list(container.streams.audio)
        if not sounds:
            return None
        sound = sounds[0]
        context = sound.codec_context
        if context is not None:
            self._check_audio_format(context.channels or 0, context.sample_rate or 0)
        if sound.duration is not None and sound.time_base is not None and sound.duration > 0:
            seconds = float(sound.duration * sound.time_base)
            if seconds > self.limits.max_duration_s:
                raise MediaError(
                    "audio_too_long",
                    f"the sound track lasts {seconds:.1f} s,"
                    f" over the limit of {self.limits.max_duration_s:g} s",
                )
        return sound

    def _check_audio_format(self, channels: int, rate: int) -> None:
        limits = self.limits
        if channels > limits.max_audio_channels:
            raise MediaError(
                "audio_too_many_channels",
                f"the sound track has {channels} channels, over the limit of {limits.max_audio_channels}",
            )
        if rate and not limits.min_audio_rate <= rate <= limits.max_audio_rate:
            raise MediaError(
                "audio_bad_sample_rate",
                f"the sound track's sample rate of {rate} Hz is outside"
                f" {limits.min_audio_rate}..{limits.max_audio_rate} Hz",
            )

    def _open_audio(self, sound: AudioStream) -> None:
        """Decode `sound` beside the video into the collector, resampled to its rate, mono."""
        from provenance.audio import RATE

        assert self.audio is not None
        if sound.codec_context is None:
            raise MediaError("audio_undecodable", "no decoder for this sound track")
        self.audio_stream = sound
        self.audio.present = True
        self.audio.source_rate = sound.codec_context.sample_rate or 0
        self.audio.source_channels = sound.codec_context.channels or 0
        self._resampler = AudioResampler(format="flt", layout="mono", rate=RATE)

    def _audio_packet(self, packet: av.Packet[Any] | None) -> None:
        """Decode one audio packet (None: flush) into the collector, within the bounds."""
        from provenance.audio import RATE

        sound, resampler, collector = self.audio_stream, self._resampler, self.audio
        assert sound is not None and resampler is not None and collector is not None
        limit = self.limits.max_duration_s
        try:
            frames = sound.decode(packet)
            outputs: list[tuple[float | None, av.AudioFrame]] = []
            for frame in frames:
                self._check_audio_format(frame.layout.nb_channels, frame.sample_rate)
                t = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else None
                outputs.extend((t, out) for out in resampler.resample(frame))
            if packet is None:
                outputs.extend((None, out) for out in resampler.resample(None))
            for t, out in outputs:
                collector.add(t, np.asarray(out.to_ndarray()[0], dtype=np.float32))
        except MediaError:
            raise
        except av.error.ExitError:
            raise MediaError("media_decode_timeout", "reading the media took too long") from None
        except _AV_ERRORS:
            raise MediaError("audio_undecodable", "the sound track could not be decoded") from None
        if collector.samples > (limit + 1.0) * RATE:
            raise MediaError("audio_too_long", f"the sound track runs past the limit of {limit:g} s")

    def _check_pixels(self, width: int, height: int) -> None:
        if width * height > self.limits.max_pixels:
            raise MediaError(
                "media_frame_too_large",
                f"frames of {width}x{height} exceed the limit of {self.limits.max_pixels} pixels",
            )

    @staticmethod
    def _declared_duration(container: InputContainer, stream: VideoStream) -> float | None:
        if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
            return float(stream.duration * stream.time_base)
        if container.duration is not None and container.duration > 0:
            return container.duration / av.time_base
        return None

    def _start(self) -> None:
        """Decode the first frame: the rotation lives in its side data, not in the header."""
        self._frames = self._timed_frames()
        first = next(self._frames, None)
        if first is None:
            raise MediaError("media_no_frames", "the video stream has no decodable frame")
        self._first: tuple[float, VideoFrame] | None = first
        rotation = _rotation(first[1])
        width, height = self._display_size()
        if rotation in (90, 270):
            width, height = height, width
        is_image = self.kind == "image"
        self.info = MediaInfo(
            kind=self.kind,
            width=width,
            height=height,
            duration=0.0 if is_image else (self.header_duration or 0.0),
            fps=self.fps,
            rotation=rotation,
            codec=self.codec,
        )

    def sample(
        self,
        *,
        fps: float,
        max_side: int | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> Iterator[SampledFrame]:
        """Yield the first frame at or after each time k/fps (k = 0, 1, ...), as upright RGB.

        A frame that covers several targets (a variable-frame-rate gap) is yielded once, with
        its own timestamp. Images yield one frame at t=0. With `max_side`, libswscale scales the
        display-size frame so that its longer side is at most `max_side` (never upscales).
        `progress` gets the fraction of the declared duration sampled so far, and 1.0 at the end.
        Only RGB-converts the sampled frames; the others are decoded and dropped.
        """
        _check_sampling(fps, max_side)
        if self._first is None:
            raise RuntimeError("a MediaReader samples its frames once")
        frames = itertools.chain([self._first], self._frames)
        self._first = None
        duration = self.header_duration or 0.0
        next_k = 0
        last_t = -math.inf
        for t, frame in frames:
            if t + _T_EPS < next_k / fps or t <= last_t:
                continue
            yield SampledFrame(t=t, rgb=self._to_rgb(frame, max_side))
            last_t = t
            # Skip every target this frame already covered.
            next_k = math.floor(t * fps + _T_EPS) + 1
            if progress is not None and duration > 0:
                progress(min(1.0, t / duration))
        if last_t == -math.inf:
            raise MediaError("media_no_frames", "no frame at or after the start of the stream")
        if progress is not None:
            progress(1.0)

    def _display_size(self) -> tuple[int, int]:
        """Coded size with the sample aspect ratio applied (anamorphic video is shown wider)."""
        width, height = self.coded_size
        sar = self.stream.sample_aspect_ratio
        if sar is not None and sar > 0 and sar != 1:
            width = max(1, round(width * sar))
        return width, height

    def _timed_frames(self) -> Iterator[tuple[float, VideoFrame]]:
        """Every decoded frame with its time from the stream start, checking bounds as it goes."""
        assert self.container is not None
        stream = self.stream
        limits = self.limits
        if self.kind == "image":
            for frame in self._decoded():
                yield 0.0, frame
                return
            return
        time_base = stream.time_base or Fraction(1, 90000)
        start = stream.start_time
        if start is not None:
            self.video_start = float(start * time_base)
        step = 1.0 / (self.fps or _FALLBACK_RATE)
        last_t: float | None = None
        for frame in self._decoded():
            if frame.pts is not None:
                if start is None:
                    start = frame.pts
                    self.video_start = float(start * time_base)
                t = float((frame.pts - start) * time_base)
            else:
                t = 0.0 if last_t is None else last_t + step
            last_t = t
            if t > limits.max_duration_s:
                raise MediaError(
                    "media_too_long", f"frames run past the limit of {limits.max_duration_s:g} s"
                )
            yield t, frame

    def _decoded(self) -> Iterator[VideoFrame]:
        """Demux and decode the video stream, with the wall-time bound checked between packets."""
        assert self.container is not None
        stream = self.stream
        sound = self.audio_stream
        packets = decoded = 0
        try:
            for packet in self.container.demux(*([stream] if sound is None else [stream, sound])):
                if time.monotonic() > self.deadline:
                    raise MediaError(
                        "media_decode_timeout",
                        f"decoding took longer than {self.limits.max_decode_seconds:g} s",
                    )
                if sound is not None and packet.stream.index == sound.index:
                    if packet.size:
                        self._audio_packet(packet)
                    continue
                if packet.size:
                    packets += 1
                for frame in stream.decode(packet):
                    self._check_pixels(frame.width, frame.height)
                    decoded += 1
                    if decoded > self.limits.max_frames:
                        raise MediaError(
                            "media_too_many_frames",
                            f"the video has more than {self.limits.max_frames} frames",
                        )
                    yield frame
        except av.error.ExitError:
            raise MediaError("media_decode_timeout", "reading the media took too long") from None
        except MediaError:
            raise
        except _AV_ERRORS:
            # The decoder refuses frames over `max_pixels` itself (before allocating them); its
            # context then holds the size the stream switched to, which names the real reason.
            with suppress(*_AV_ERRORS):
                context = stream.codec_context
                self._check_pixels(context.width or 0, context.height or 0)
            raise MediaError("media_undecodable", "the video stream could not be decoded") from None
        if self.declared_packets and packets < self.declared_packets:
            raise MediaError(
                "media_truncated",
                f"the file holds {packets} of the {self.declared_packets} frames its header lists",
            )
        if sound is not None and self.audio is not None:
            self._audio_packet(None)
            self.audio.video_start = self.video_start

    def _to_rgb(self, frame: VideoFrame, max_side: int | None) -> np.ndarray:
        """Convert one frame to upright RGB at display size, downscaled by swscale if asked."""
        coded_w, coded_h = frame.width, frame.height
        width, height = coded_w, coded_h
        sar = self.stream.sample_aspect_ratio
        if sar is not None and sar > 0 and sar != 1:
            width = max(1, round(width * sar))
        if max_side is not None and max(width, height) > max_side:
            scale = max_side / max(width, height)
            width, height = max(1, round(width * scale)), max(1, round(height * scale))
        kwargs: dict[str, Any] = {"format": "rgb24", "threads": 1}
        if (width, height) != (coded_w, coded_h):
            kwargs.update(width=width, height=height, interpolation="AREA")
        try:
            # One reformatter for the whole stream keeps libswscale's scaling graph between
            # frames; one thread leaves the cores to the frame-threaded decoder.
            rgb = np.asarray(self._reformatter.reformat(frame, **kwargs).to_ndarray(), dtype=np.uint8)
        except _AV_ERRORS:
            raise MediaError("media_undecodable", "a frame could not be converted") from None
        k = (_rotation(frame) // 90) % 4
        if k:
            rgb = np.ascontiguousarray(np.rot90(rgb, k))
        return rgb


def _rotation(frame: VideoFrame) -> int:
    """Counter-clockwise display rotation of a frame, snapped to a multiple of 90 degrees."""
    try:
        degrees = frame.rotation
    except _AV_ERRORS:
        return 0
    return (round(degrees / 90) * 90) % 360


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (SOF0..SOF15 without DHT=C4, JPG=C8, DAC=CC).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _image_header_size(data: bytes) -> tuple[int, int] | None:
    """Width and height declared by a PNG IHDR or a JPEG SOF segment, or None."""
    if data.startswith(_PNG_SIGNATURE) and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 4 <= len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            (length,) = struct.unpack(">H", data[i + 2 : i + 4])
            if marker in _JPEG_SOF and i + 9 <= len(data):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return width, height
            if marker == 0xDA:  # start of scan before any frame header
                return None
            i += 2 + length
    return None
