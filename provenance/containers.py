"""What a media file's bytes say before any decoder sees them.

FFmpeg left to probe a file picks among hundreds of demuxers, some of which fetch URLs (HLS,
DASH), open other local files (concat, playlists), bind sockets (SDP/RTP) or render text as
video (tty). So the container is chosen here, from magic bytes, among an allow-list, and handed
to FFmpeg by name; anything else is refused. The same pass bounds what FFmpeg would allocate
from a header before decoding a single frame: MP4 sample tables, PNG ancillary chunks that
inflate (iCCP, zTXt, iTXt) and the frame count of animations.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import BinaryIO

from provenance.core.errors import MediaError


@dataclass(frozen=True)
class Container:
    """An allowed container: the FFmpeg demuxer that opens it and the suffix the server stores it under."""

    demuxer: str
    suffix: str
    still: bool = False


MP4 = Container("mov", ".mp4")
MATROSKA = Container("matroska", ".mkv")
AVI = Container("avi", ".avi")
MPEGTS = Container("mpegts", ".ts")
MPEGPS = Container("mpeg", ".mpg")
FLV = Container("flv", ".flv")
OGG = Container("ogg", ".ogv")
IVF = Container("ivf", ".ivf")
Y4M = Container("yuv4mpegpipe", ".y4m")
H264 = Container("h264", ".h264")
GIF = Container("gif", ".gif")
PNG = Container("png_pipe", ".png", still=True)
JPEG = Container("jpeg_pipe", ".jpg", still=True)
WEBP = Container("webp_pipe", ".webp", still=True)
BMP = Container("bmp_pipe", ".bmp", still=True)
TIFF = Container("tiff_pipe", ".tif", still=True)

_MP4_FIRST_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")
_TS_PACKET = 188
# PNG chunks FFmpeg inflates into memory without a bound, and that a picture does not need.
_PNG_INFLATED = frozenset({b"iCCP", b"zTXt", b"iTXt", b"tEXt", b"eXIf"})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def sniff(head: bytes) -> Container:
    """The allowed container whose magic `head` starts with; `media_unsupported_format` otherwise."""
    if len(head) >= 8 and head[4:8] in _MP4_FIRST_BOXES:
        return MP4
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return MATROSKA
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return AVI
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return WEBP
    if head.startswith(_PNG_SIGNATURE):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if head.startswith(b"BM") and len(head) >= 26:
        return BMP
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return TIFF
    if head.startswith(b"YUV4MPEG2 "):
        return Y4M
    if head.startswith(b"DKIF"):
        return IVF
    if head.startswith(b"FLV\x01"):
        return FLV
    if head.startswith(b"OggS"):
        return OGG
    if head.startswith(b"\x00\x00\x01\xba"):
        return MPEGPS
    if len(head) > 2 * _TS_PACKET and all(head[i] == 0x47 for i in range(0, 3 * _TS_PACKET, _TS_PACKET)):
        return MPEGTS
    if _is_annexb_h264(head):
        return H264
    raise MediaError(
        "media_unsupported_format",
        "not a media container this service accepts (MP4/MOV, Matroska/WebM, AVI, MPEG-TS/PS, FLV,"
        " Ogg, IVF, Y4M, H.264, GIF, PNG, JPEG, WebP, BMP, TIFF)",
        status=415,
    )


def suffix_for(head: bytes) -> str:
    """The suffix to store a file under: its container's, `.bin` when none is allowed (the
    decoder then refuses it, after the checks that come first, such as its size)."""
    try:
        return sniff(head).suffix
    except MediaError:
        return ".bin"


def _is_annexb_h264(head: bytes) -> bool:
    """A raw H.264 stream starts with a start code and a parameter set or access unit delimiter."""
    for code in (b"\x00\x00\x00\x01", b"\x00\x00\x01"):
        if head.startswith(code) and len(head) > len(code):
            nal = head[len(code)]
            return nal & 0x80 == 0 and nal & 0x1F in (7, 9)
    return False


def check_mp4_tables(fh: BinaryIO, size: int, max_samples: int) -> None:
    """Refuse MP4 sample tables that lie about their size or declare more samples than `max_samples`.

    FFmpeg's mov demuxer sizes its per-sample index from these counts while reading the header,
    so a few kilobytes declaring 80 million samples cost gigabytes before a frame is decoded.
    """
    _walk_boxes(fh, 0, size, max_samples, depth=0)
    fh.seek(0)


# Boxes whose children hold the sample tables (trak/mdia/minf/stbl), and fragments (moof/traf).
_CONTAINER_BOXES = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof", b"traf", b"edts"})
# Sample tables: (header bytes before the entries, bytes per entry); counts are checked against the box.
_TABLES = {b"stts": 8, b"ctts": 8, b"stsc": 12, b"stco": 4, b"co64": 8, b"stss": 4, b"stps": 4}


def _walk_boxes(fh: BinaryIO, start: int, end: int, max_samples: int, depth: int) -> None:
    if depth > 8:
        raise MediaError("media_undecodable", "the MP4 boxes nest too deeply")
    at = start
    while at + 8 <= end:
        fh.seek(at)
        header = fh.read(16)
        if len(header) < 8:
            return
        box_size, kind = struct.unpack(">I4s", header[:8])
        body = at + 8
        if box_size == 1:
            if len(header) < 16:
                raise MediaError("media_truncated", "an MP4 box header is cut short")
            (box_size,) = struct.unpack(">Q", header[8:16])
            body = at + 16
        elif box_size == 0:
            box_size = end - at
        box_end = at + box_size
        if box_size < body - at or box_end > end:
            # mdat may run past the end of a cut file; FFmpeg reports that itself.
            if kind == b"mdat":
                return
            raise MediaError("media_truncated", f"the MP4 box {kind!r} runs past its parent")
        if kind in _CONTAINER_BOXES:
            _walk_boxes(fh, body, box_end, max_samples, depth + 1)
        elif kind in _TABLES or kind in (b"stsz", b"stz2", b"trun"):
            fh.seek(body)
            _check_table(kind, fh.read(min(box_end - body, 20)), box_end - body, max_samples)
        at = box_end


def _check_table(kind: bytes, head: bytes, payload: int, max_samples: int) -> None:
    if len(head) < 8:
        raise MediaError("media_truncated", f"the MP4 table {kind.decode('latin-1')} is cut short")
    name = kind.decode("latin-1")
    if kind == b"stsz":
        if len(head) < 12:
            raise MediaError("media_truncated", "the MP4 table stsz is cut short")
        sample_size, count = struct.unpack(">II", head[4:12])
        entries, entry_bytes, header_bytes = (0 if sample_size else count), 4.0, 12
    elif kind == b"stz2":
        if len(head) < 12:
            raise MediaError("media_truncated", "the MP4 table stz2 is cut short")
        field_bits = head[7]
        (count,) = struct.unpack(">I", head[8:12])
        entries, entry_bytes, header_bytes = count, max(field_bits, 4) / 8.0, 12
    elif kind == b"trun":
        flags = int.from_bytes(head[1:4], "big")
        (count,) = struct.unpack(">I", head[4:8])
        per_sample = sum(4 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
        entries, entry_bytes, header_bytes = count, float(per_sample), 8
    else:
        (count,) = struct.unpack(">I", head[4:8])
        entries, entry_bytes, header_bytes = count, float(_TABLES[kind]), 8
    if entries * entry_bytes > payload - header_bytes:
        raise MediaError(
            "media_truncated", f"the MP4 table {name} lists {entries} entries its box cannot hold"
        )
    if count > max_samples:
        raise MediaError(
            "media_too_many_frames",
            f"the MP4 table {name} declares {count} samples, over the limit of {max_samples}",
        )


def png_without_inflating_chunks(data: bytes) -> bytes | None:
    """The PNG with its compressed text and ICC chunks removed, or None when it has none.

    FFmpeg's PNG decoder inflates iCCP and zTXt into memory with no bound: a 1 MB file can
    inflate to a gigabyte. The picture never needs them.
    """
    if not data.startswith(_PNG_SIGNATURE):
        return None
    out = io.BytesIO()
    out.write(_PNG_SIGNATURE)
    at, dropped = len(_PNG_SIGNATURE), False
    while at + 12 <= len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        end = at + 12 + length
        if end > len(data):
            break
        if kind in _PNG_INFLATED:
            dropped = True
        else:
            out.write(data[at:end])
        at = end
        if kind == b"IEND":
            break
    return out.getvalue() if dropped else None


def gif_frame_count(fh: BinaryIO, limit: int) -> int:
    """Image descriptors in a GIF, counted from its block structure without decoding, up to `limit` + 1."""
    fh.seek(0)
    header = fh.read(13)
    if len(header) < 13:
        raise MediaError("media_truncated", "the GIF header is cut short")
    flags = header[10]
    if flags & 0x80:
        fh.seek(3 * (2 << (flags & 7)), io.SEEK_CUR)
    frames = 0
    try:
        while frames <= limit:
            introducer = fh.read(1)
            if not introducer or introducer == b"\x3b":
                break
            if introducer == b"\x21":
                fh.read(1)
                _skip_sub_blocks(fh)
            elif introducer == b"\x2c":
                descriptor = fh.read(9)
                if len(descriptor) < 9:
                    break
                if descriptor[8] & 0x80:
                    fh.seek(3 * (2 << (descriptor[8] & 7)), io.SEEK_CUR)
                fh.read(1)  # LZW minimum code size
                _skip_sub_blocks(fh)
                frames += 1
            else:
                break
    finally:
        fh.seek(0)
    return frames


def _skip_sub_blocks(fh: BinaryIO) -> None:
    while True:
        size = fh.read(1)
        if not size or size == b"\x00":
            return
        fh.seek(size[0], io.SEEK_CUR)
