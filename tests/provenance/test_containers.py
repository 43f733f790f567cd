"""The container is chosen from the bytes, among an allow-list, and header bombs are bounded first."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest

from frames.samples import sample_clip
from provenance import containers
from provenance.api.limits import json_depth
from provenance.core.errors import MediaError
from tests.provenance.hostile_media import gif_many_frames, mp4_sample_table_bomb, png_with_inflating_chunk
from tests.provenance.media_fixtures import encode_frames


def test_real_files_are_recognised(tmp_path: Path) -> None:
    frames = [np.zeros((48, 64, 3), np.uint8)] * 3
    assert containers.sniff(sample_clip("bikes.mp4").read_bytes()[:64]) is containers.MP4
    mkv = encode_frames(tmp_path / "a.mkv", frames, container_format="matroska")
    assert containers.sniff(mkv.read_bytes()[:64]) is containers.MATROSKA
    ts = encode_frames(tmp_path / "a.ts", frames, container_format="mpegts")
    assert containers.sniff(ts.read_bytes()[:1024]) is containers.MPEGTS


@pytest.mark.parametrize(
    "head", [b"#EXTM3U\n#EXT-X-VERSION:3\n", b"v=0\no=- 0 0 IN IP4 0.0.0.0\n", b"ffconcat version 1.0\n", b""]
)
def test_playlists_descriptions_and_text_are_refused(head: bytes) -> None:
    with pytest.raises(MediaError) as refused:
        containers.sniff(head)
    assert (refused.value.code, refused.value.status) == ("media_unsupported_format", 415)
    assert containers.suffix_for(head) == ".bin"


def test_mp4_sample_count_over_the_bound_is_refused(tmp_path: Path) -> None:
    bomb = mp4_sample_table_bomb(tmp_path / "bomb.mp4", samples=300_000)
    with bomb.open("rb") as fh, pytest.raises(MediaError) as refused:
        containers.check_mp4_tables(fh, bomb.stat().st_size, max_samples=250_000)
    assert refused.value.code == "media_too_many_frames"
    with sample_clip("bikes.mp4").open("rb") as fh:
        containers.check_mp4_tables(fh, sample_clip("bikes.mp4").stat().st_size, max_samples=250_000)


def test_mp4_table_longer_than_its_box_is_refused(tmp_path: Path) -> None:
    clip = encode_frames(tmp_path / "two.mp4", [np.zeros((48, 64, 3), np.uint8)] * 2)
    data = bytearray(clip.read_bytes())
    at = data.find(b"stco")
    data[at + 8 : at + 12] = struct.pack(">I", 5000)  # entry_count of a table holding one entry
    with pytest.raises(MediaError) as refused:
        containers.check_mp4_tables(io.BytesIO(bytes(data)), len(data), max_samples=250_000)
    assert refused.value.code == "media_truncated"


def test_gif_frames_are_counted_without_decoding(tmp_path: Path) -> None:
    gif = gif_many_frames(tmp_path / "a.gif", frames=50)
    with gif.open("rb") as fh:
        assert containers.gif_frame_count(fh, limit=1000) == 50
        assert containers.gif_frame_count(fh, limit=10) == 11  # stops one past the limit


def test_png_loses_only_the_inflating_chunks(tmp_path: Path) -> None:
    data = png_with_inflating_chunk(tmp_path / "a.png", b"zTXt", inflated_mb=1).read_bytes()
    stripped = containers.png_without_inflating_chunks(data)
    assert stripped is not None and b"zTXt" not in stripped
    assert b"IDAT" in stripped and b"IHDR" in stripped and len(stripped) < len(data)
    assert containers.png_without_inflating_chunks(stripped) is None


def test_json_depth_skips_strings() -> None:
    assert json_depth(b'{"a": [1, {"b": "[[[[{{{{"}]}') == 3
    assert json_depth(b'"\\"[[["') == 0
    assert json_depth(b"[" * 500 + b"]" * 500) == 500
