"""A corpus of hostile media, made on the spot (nothing binary is committed).

Each entry is small on disk but built to hurt a naive decoder: lying headers, bombs that inflate
to gigapixels, absurd durations, dozens of streams, or no video at all. `CORPUS` maps a name to a
maker and the `media_*` problem codes the service may answer with.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.stream import VideoStream

from frames.samples import sample_clip
from tests.provenance.media_fixtures import audio_only, encode_frames, png_declaring, remux_faststart


def _with_sound(dst: Path, rate: int, layout: str, seconds: float, codec: str = "pcm_s16le") -> Path:
    """The carphone clip's video packets beside `seconds` of silence in `codec` at `rate`, `layout`."""
    with av.open(str(sample_clip("carphone_pristine.mp4"))) as src, av.open(str(dst), "w") as out:
        video = out.add_stream_from_template(src.streams.video[0])
        sound = out.add_stream(codec, rate=rate)
        assert isinstance(sound, av.audio.stream.AudioStream)
        sound.layout = layout
        if codec == "aac":
            sound.bit_rate = 8000
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = video
            out.mux(packet)
        formats = sound.codec_context.codec.audio_formats or []
        resampler = av.AudioResampler(format=formats[0].name, layout=layout, rate=rate)
        block = max(1, min(rate * 10, round(rate * seconds)))
        left = round(rate * seconds)
        while left > 0:
            frame = av.AudioFrame(format="s16", layout=layout, samples=min(block, left))
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.sample_rate = rate
            left -= frame.samples
            for converted in resampler.resample(frame):
                out.mux(sound.encode(converted))
        out.mux(sound.encode(None))
    return dst


def audio_many_channels(dst: Path) -> Path:
    """A sound track declaring 64 channels (the header alone; decoding it would mix 64 planes)."""
    return _with_sound(dst, 8000, "64 channels", 0.5)


def audio_rate_1hz(dst: Path) -> Path:
    return _with_sound(dst, 1, "mono", 2.0)


def audio_rate_2mhz(dst: Path) -> Path:
    return _with_sound(dst, 2_000_000, "mono", 0.1)


def audio_hour_long(dst: Path) -> Path:
    """Four seconds of picture and an hour of (silent, 8 kbit/s) AAC sound: under a megabyte."""
    return _with_sound(dst, 8000, "mono", 3600.0, codec="aac")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def zero_bytes(dst: Path) -> Path:
    dst.write_bytes(b"")
    return dst


def random_bytes(dst: Path) -> Path:
    dst.write_bytes(os.urandom(256 * 1024))
    return dst


def truncated_mp4(dst: Path) -> Path:
    """The first third of a real clip: the index (moov) at the end is gone."""
    data = sample_clip("bikes.mp4").read_bytes()
    dst.write_bytes(data[: len(data) // 3])
    return dst


def truncated_faststart(dst: Path) -> Path:
    """A real clip cut after its index: the index lists packets the file no longer holds."""
    full = remux_faststart(sample_clip("bikes.mp4"), dst.with_name("faststart-full.mp4"))
    data = full.read_bytes()
    full.unlink()
    dst.write_bytes(data[: len(data) // 4])
    return dst


def header_30000_png(dst: Path) -> Path:
    """A PNG whose header says 30000x30000 but that holds a few rows."""
    return png_declaring(dst, 30000, 30000)


def header_30000_y4m(dst: Path) -> Path:
    """A raw-video container (YUV4MPEG2) whose header says 30000x30000, with a token of data."""
    dst.write_bytes(b"YUV4MPEG2 W30000 H30000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + b"\x80" * 4096)
    return dst


def png_bomb(dst: Path) -> Path:
    """A decompression bomb: ~40 KB of zlib that inflates to 20000x20000 grey pixels (400 MP)."""
    side = 20000
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    row = b"\x00" + b"\x00" * (side // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    dst.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )
    return dst


def resolution_bomb(dst: Path) -> Path:
    """An H.264 stream that starts at 64x48 and switches to 4096x2304 (over 8.3 MP) after a few frames.

    The header (first SPS) looks harmless; only decoding finds the giant frames, which compress
    to almost nothing because they are flat.
    """
    small = encode_frames(
        dst.with_name("small.h264"), [np.zeros((48, 64, 3), np.uint8)] * 5, container_format="h264"
    )
    big = encode_frames(
        dst.with_name("big.h264"),
        [np.zeros((2304, 4096, 3), np.uint8)] * 2,
        container_format="h264",
        options={},
    )
    dst.write_bytes(small.read_bytes() + big.read_bytes())
    small.unlink()
    big.unlink()
    return dst


def absurd_duration(dst: Path) -> Path:
    """A real MP4 whose movie and media headers claim a duration of ~49 days."""
    data = bytearray(sample_clip("bikes.mp4").read_bytes())
    for box in (b"mvhd", b"mdhd", b"tkhd"):
        start = 0
        while (at := data.find(box, start)) != -1:
            start = at + 4
            version = data[at + 4]
            if version != 0:
                continue
            # version(1) flags(3) creation(4) modification(4), then timescale(4) duration(4) for
            # mvhd/mdhd, track_id(4) reserved(4) duration(4) for tkhd.
            offset = at + 4 + 4 + 8 + (8 if box == b"tkhd" else 4)
            timescale_at = at + 4 + 4 + 8
            if box != b"tkhd":
                data[timescale_at : timescale_at + 4] = struct.pack(">I", 1)
            data[offset : offset + 4] = struct.pack(">I", 0xFFFFFF00)
    dst.write_bytes(bytes(data))
    return dst


def absurd_frame_times(dst: Path) -> Path:
    """A clip whose frames are a million seconds apart: no header duration, timestamps give it away."""
    frames = [np.full((48, 64, 3), i * 40, np.uint8) for i in range(4)]
    return encode_frames(dst, frames, times=[i * 1_000_000.0 for i in range(4)], container_format="matroska")


def many_streams(dst: Path, count: int = 40) -> Path:
    """A Matroska file with `count` tiny video streams (the bound is 16)."""
    with av.open(str(dst), "w", format="matroska") as out:
        streams: list[VideoStream] = []
        for _ in range(count):
            video = out.add_stream("mpeg4", rate=1)
            assert isinstance(video, VideoStream)
            video.width, video.height, video.pix_fmt = 16, 16, "yuv420p"
            video.time_base = Fraction(1, 1)
            streams.append(video)
        for video in streams:
            frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
            frame.pts = 0
            for packet in video.encode(frame):
                out.mux(packet)
            for packet in video.encode():
                out.mux(packet)
    return dst


def no_video(dst: Path) -> Path:
    """A valid MP4 with one AAC track and no video stream."""
    return audio_only(dst)


def hls_playlist(dst: Path, url: str = "http://127.0.0.1:9/segment.ts") -> Path:
    """An HLS playlist: a demuxer that probes it fetches `url` (SSRF), key URIs included."""
    dst.write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n"
        f'#EXT-X-KEY:METHOD=AES-128,URI="{url}.key"\n#EXTINF:10.0,\n{url}\n#EXT-X-ENDLIST\n'
    )
    return dst


def hls_local_file(dst: Path, target: Path | None = None) -> Path:
    """A playlist naming a local media file: a demuxer that follows it shows that file's frames."""
    target = target or encode_frames(
        dst.with_name("secret.ts"), [np.full((48, 64, 3), 200, np.uint8)] * 4, container_format="mpegts"
    )
    dst.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1.0,\n{target}\n#EXT-X-ENDLIST\n")
    return dst


def sdp_session(dst: Path, port: int = 45678) -> Path:
    """An SDP description: FFmpeg's sdp demuxer binds the UDP ports it names, on any address."""
    dst.write_text(
        "v=0\no=- 0 0 IN IP4 0.0.0.0\ns=x\nc=IN IP4 0.0.0.0\nt=0 0\n"
        f"m=video {port} RTP/AVP 96\na=rtpmap:96 H264/90000\n"
    )
    return dst


def text_file(dst: Path) -> Path:
    """Plain text: FFmpeg's tty demuxer would render it as a video."""
    dst.write_text("Lorem ipsum dolor sit amet.\n" * 400)
    return dst


def mp4_sample_table_bomb(dst: Path, samples: int = 80_000_000) -> Path:
    """A real two-frame MP4 whose time-to-sample table claims `samples` samples (a few kB on disk)."""
    clip = encode_frames(dst.with_name("two.mp4"), [np.zeros((48, 64, 3), np.uint8)] * 2)
    data = bytearray(clip.read_bytes())
    clip.unlink()
    at = data.find(b"stts")
    # version/flags(4) entry_count(4), then the first entry's sample_count(4).
    data[at + 12 : at + 16] = struct.pack(">I", samples)
    at = data.find(b"stsz")
    # version/flags(4) sample_size(4) sample_count(4): a constant size needs no table of sizes.
    data[at + 8 : at + 16] = struct.pack(">II", 100, samples)
    dst.write_bytes(bytes(data))
    return dst


def gif_many_frames(dst: Path, frames: int = 20_000) -> Path:
    """An animated GIF of `frames` tiny frames: each decodes fast, all of them hold a core for minutes."""
    header = b"GIF89a" + struct.pack("<HHBBB", 64, 64, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    control = b"\x21\xf9\x04\x00\x02\x00\x00\x00"  # 20 ms a frame
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, 64, 64, 0) + b"\x02\x02\x4c\x01\x00"
    dst.write_bytes(header + loop + (control + image) * frames + b"\x3b")
    return dst


def png_with_inflating_chunk(dst: Path, kind: bytes = b"iCCP", inflated_mb: int = 1024) -> Path:
    """A real small PNG carrying an iCCP (or zTXt) chunk of ~1 MB that inflates to `inflated_mb` MB."""
    side = 32
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"".join(b"\x00" + bytes(range(side)) for _ in range(side)))
    compressor = zlib.compressobj(9)
    chunk = 1024 * 1024
    block = b"\x00" * chunk
    bomb = b"".join(compressor.compress(block) for _ in range(inflated_mb)) + compressor.flush()
    payload = b"icc\x00\x00" + bomb if kind == b"iCCP" else b"Comment\x00\x00" + bomb
    dst.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(kind, payload)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )
    return dst


@dataclass(frozen=True)
class Hostile:
    maker: Callable[[Path], Path]
    suffix: str
    codes: frozenset[str]


def _h(maker: Callable[[Path], Path], suffix: str, *codes: str) -> Hostile:
    return Hostile(maker, suffix, frozenset(codes))


CORPUS: dict[str, Hostile] = {
    "zero_bytes": _h(zero_bytes, ".mp4", "media_empty"),
    "random_bytes": _h(random_bytes, ".mp4", "media_unsupported_format"),
    "truncated_moov_at_end": _h(truncated_mp4, ".mp4", "media_undecodable", "media_truncated"),
    "truncated_after_index": _h(truncated_faststart, ".mp4", "media_truncated", "media_undecodable"),
    "png_header_30000": _h(header_30000_png, ".png", "media_frame_too_large"),
    "y4m_header_30000": _h(header_30000_y4m, ".y4m", "media_frame_too_large", "media_undecodable"),
    "png_decompression_bomb": _h(png_bomb, ".png", "media_frame_too_large"),
    # The decoder itself refuses frames over max_pixels (an FFmpeg option), before allocating them.
    "h264_resolution_bomb": _h(resolution_bomb, ".h264", "media_frame_too_large"),
    "absurd_header_duration": _h(absurd_duration, ".mp4", "media_too_long"),
    "absurd_frame_times": _h(absurd_frame_times, ".mkv", "media_too_long"),
    "many_streams": _h(many_streams, ".mkv", "media_too_many_streams"),
    "no_video_stream": _h(no_video, ".mp4", "media_no_video"),
    # The red team's findings (issue 17): demuxers that reach beyond the file, and header bombs.
    "hls_playlist_ssrf": _h(hls_playlist, ".m3u8", "media_unsupported_format"),
    "hls_playlist_local_file": _h(hls_local_file, ".m3u8", "media_unsupported_format"),
    "sdp_binds_udp": _h(sdp_session, ".sdp", "media_unsupported_format"),
    "text_file": _h(text_file, ".txt", "media_unsupported_format"),
    "mp4_sample_table_bomb": _h(mp4_sample_table_bomb, ".mp4", "media_too_many_frames"),
    "gif_20000_frames": _h(gif_many_frames, ".gif", "media_too_many_frames"),
    # Sound tracks (issue 21): refused from the header on every decode, audio channel or not.
    "audio_64_channels": _h(audio_many_channels, ".mkv", "audio_too_many_channels"),
    "audio_rate_1hz": _h(audio_rate_1hz, ".mkv", "audio_bad_sample_rate"),
    "audio_rate_2mhz": _h(audio_rate_2mhz, ".mkv", "audio_bad_sample_rate"),
    "audio_hour_long": _h(audio_hour_long, ".mp4", "audio_too_long"),
}
