"""Bounded decoding and sampling on real clips, and every rejection with its code."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from frames.samples import sample_clip
from provenance.core.config import DecodeLimits
from provenance.core.errors import MediaError, MediaTooLarge
from provenance.media import open_media, probe, sample_frames
from tests.provenance.media_fixtures import (
    astronaut,
    audio_only,
    encode_frames,
    jpeg_with_orientation,
    png_declaring,
    remux_faststart,
)

LIMITS = DecodeLimits()


def reject(path: Path, limits: DecodeLimits = LIMITS) -> MediaError:
    """The MediaError that decoding `path` ends with; fails the test if it decodes."""
    with pytest.raises(MediaError) as caught:
        list(sample_frames(path, fps=4.0, limits=limits))
    with pytest.raises(MediaError) as caught_probe:
        probe(path, limits)
    assert caught_probe.value.code == caught.value.code
    return caught.value


def test_probe_describes_a_real_clip() -> None:
    info = probe(sample_clip("bikes.mp4"), LIMITS)
    assert (info.kind, info.width, info.height, info.codec, info.rotation) == ("video", 640, 272, "h264", 0)
    assert info.duration == pytest.approx(10.0)
    assert info.fps == pytest.approx(25.0)


def test_anamorphic_clip_reports_its_display_size() -> None:
    # carphone is coded 176x144 with a 128:117 sample aspect ratio.
    info = probe(sample_clip("carphone_pristine.mp4"), LIMITS)
    assert (info.width, info.height) == (193, 144)
    frame = next(sample_frames(sample_clip("carphone_pristine.mp4"), fps=1.0, limits=LIMITS))
    assert frame.rgb.shape == (144, 193, 3)


def test_samples_at_the_requested_rate_with_swscale_downscale() -> None:
    frames = list(sample_frames(sample_clip("bikes.mp4"), fps=4.0, limits=LIMITS, max_side=256))
    # 25 fps: the first frame at or after k/4 s is at 0, 0.28, 0.52, 0.76, 1.0, ...
    assert [round(f.t, 2) for f in frames[:5]] == [0.0, 0.28, 0.52, 0.76, 1.0]
    assert len(frames) == 40
    assert all(f.rgb.shape == (109, 256, 3) and f.rgb.dtype == np.uint8 for f in frames)
    # Real content, not a blank conversion.
    assert all(f.rgb.std() > 10 for f in frames)


def test_variable_frame_rate_takes_first_frame_at_or_after_each_target(tmp_path: Path) -> None:
    times = [0.0, 0.12, 0.88, 1.0, 1.6, 1.72]  # multiples of the 1/25 s encoder time base
    frames = [np.full((48, 64, 3), 40 * i, np.uint8) for i in range(len(times))]
    clip = encode_frames(tmp_path / "vfr.mp4", frames, times=times)
    sampled = [round(f.t, 3) for f in sample_frames(clip, fps=4.0, limits=LIMITS)]
    # Targets 0.25, 0.5 and 0.75 all fall on the frame at 0.88, taken once; 1.25 and 1.5 on 1.6.
    assert sampled == [0.0, 0.88, 1.0, 1.6]


def test_progress_reaches_one(tmp_path: Path) -> None:
    seen: list[float] = []
    list(sample_frames(sample_clip("carphone_pristine.mp4"), fps=2.0, limits=LIMITS, progress=seen.append))
    assert seen[-1] == 1.0
    assert seen == sorted(seen) and 0.4 < seen[len(seen) // 2] < 0.7


def test_open_media_reads_once_for_info_and_frames() -> None:
    with open_media(sample_clip("carphone_pristine.mp4"), LIMITS) as media:
        assert media.info.kind == "video"
        frames = list(media.sample(fps=1.0))
        with pytest.raises(RuntimeError):
            list(media.sample(fps=1.0))
    assert [round(f.t, 3) for f in frames] == [0.0, 1.001, 2.002, 3.003]


def test_rotation_metadata_makes_frames_upright(tmp_path: Path) -> None:
    coded = np.full((48, 64, 3), 30, np.uint8)
    coded[:16, :16] = 250  # a bright marker in the coded top-left corner
    clip = encode_frames(tmp_path / "rot.mp4", [coded] * 5, rotation=90)
    info = probe(clip, LIMITS)
    assert (info.rotation, info.width, info.height) == (90, 48, 64)
    frame = next(sample_frames(clip, fps=4.0, limits=LIMITS))
    assert frame.rgb.shape == (64, 48, 3)
    # Rotated 90 degrees counter-clockwise, the top-left corner ends bottom-left.
    assert frame.rgb[-8:, :8].mean() > 200
    assert frame.rgb[:8, :8].mean() < 80
    small = next(sample_frames(clip, fps=4.0, limits=LIMITS, max_side=32))
    assert small.rgb.shape == (32, 24, 3)


def test_exif_orientation_makes_a_photo_upright(tmp_path: Path) -> None:
    stored = np.full((48, 64, 3), 30, np.uint8)
    stored[:16, :16] = 250
    photo = jpeg_with_orientation(tmp_path / "o6.jpg", stored, 6)
    info = probe(photo, LIMITS)
    assert (info.kind, info.rotation, info.width, info.height) == ("image", 270, 48, 64)
    rgb = next(sample_frames(photo, fps=1.0, limits=LIMITS)).rgb
    assert rgb.shape == (64, 48, 3)
    # Shown 90 degrees clockwise, the stored top-left corner ends top-right.
    assert rgb[:8, -8:].mean() > 200 and rgb[:8, :8].mean() < 80


def test_images_are_one_frame_media(tmp_path: Path) -> None:
    for name in ("astronaut.png", "astronaut.jpg"):
        path = astronaut(tmp_path / name)
        info = probe(path, LIMITS)
        assert (info.kind, info.width, info.height, info.duration) == ("image", 512, 512, 0.0)
        frames = list(sample_frames(path, fps=4.0, limits=LIMITS))
        assert len(frames) == 1 and frames[0].t == 0.0 and frames[0].rgb.shape == (512, 512, 3)


@pytest.mark.parametrize(
    ("suffix", "codec", "pix_fmt"), [(".mp4", "libx264", "yuv444p"), (".mkv", "ffv1", "yuv420p")]
)
def test_odd_sizes_decode(tmp_path: Path, suffix: str, codec: str, pix_fmt: str) -> None:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (49, 65, 3), dtype=np.uint8) for _ in range(5)]
    clip = encode_frames(tmp_path / f"odd{suffix}", frames, codec=codec, pix_fmt=pix_fmt)
    assert (probe(clip, LIMITS).width, probe(clip, LIMITS).height) == (65, 49)
    assert next(sample_frames(clip, fps=4.0, limits=LIMITS, max_side=33)).rgb.shape == (25, 33, 3)


# --- rejections ---------------------------------------------------------------------------------


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert reject(tmp_path / "empty.mp4").code == "media_empty"


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert reject(tmp_path / "missing.mp4").code == "media_unreadable"
    assert reject(tmp_path).code == "media_unreadable"


def test_random_bytes_named_mp4(tmp_path: Path) -> None:
    path = tmp_path / "random.mp4"
    path.write_bytes(os.urandom(64 * 1024))
    error = reject(path)
    assert (error.code, error.status) == ("media_unsupported_format", 415)


def test_truncated_mp4_with_index_at_the_end(tmp_path: Path) -> None:
    data = sample_clip("bikes.mp4").read_bytes()
    path = tmp_path / "half.mp4"
    path.write_bytes(data[: len(data) // 2])
    assert reject(path).code == "media_undecodable"


def test_truncated_mp4_with_index_at_the_start(tmp_path: Path) -> None:
    fast = remux_faststart(sample_clip("bikes.mp4"), tmp_path / "fast.mp4")
    assert len(list(sample_frames(fast, fps=4.0, limits=LIMITS))) == 40
    data = fast.read_bytes()
    path = tmp_path / "half.mp4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError) as caught:
        list(sample_frames(path, fps=4.0, limits=LIMITS))
    assert caught.value.code == "media_truncated"


def test_audio_only_file(tmp_path: Path) -> None:
    assert reject(audio_only(tmp_path / "tone.mp4")).code == "media_no_video"


def test_header_frame_size_over_the_limit(tmp_path: Path) -> None:
    small = DecodeLimits(max_pixels=100_000)
    assert reject(astronaut(tmp_path / "a.png"), small).code == "media_frame_too_large"
    assert reject(astronaut(tmp_path / "a.jpg"), small).code == "media_frame_too_large"
    clip = encode_frames(tmp_path / "c.mp4", [np.zeros((400, 400, 3), np.uint8)] * 3)
    assert reject(clip, small).code == "media_frame_too_large"


def test_png_bomb_declaring_30000_squared(tmp_path: Path) -> None:
    bomb = png_declaring(tmp_path / "bomb.png", 30000, 30000)
    assert bomb.stat().st_size < 2000
    error = reject(bomb)
    assert error.code == "media_frame_too_large" and "30000x30000" in error.detail


def test_duration_over_the_limit_from_the_header() -> None:
    error = reject(sample_clip("bikes.mp4"), DecodeLimits(max_duration_s=2.0))
    assert error.code == "media_too_long"


def test_duration_over_the_limit_while_decoding(tmp_path: Path) -> None:
    # A raw H.264 stream declares no duration; the timestamps give it away while decoding.
    frames = [np.full((48, 64, 3), i * 4, np.uint8) for i in range(60)]
    raw = encode_frames(tmp_path / "raw.h264", frames, container_format="h264")
    assert probe(raw, LIMITS).duration == 0.0
    with pytest.raises(MediaError) as caught:
        list(sample_frames(raw, fps=4.0, limits=DecodeLimits(max_duration_s=1.0)))
    assert caught.value.code == "media_too_long"


def test_too_many_streams() -> None:
    # bigbuckbunny has a video and an audio stream.
    assert (
        reject(sample_clip("bigbuckbunny.mp4"), DecodeLimits(max_streams=1)).code == "media_too_many_streams"
    )


def test_decode_timeout() -> None:
    error = reject(sample_clip("bigbuckbunny.mp4"), DecodeLimits(max_decode_seconds=0.0))
    assert error.code == "media_decode_timeout"


def test_file_over_the_upload_limit_is_413() -> None:
    with pytest.raises(MediaTooLarge) as caught:
        probe(sample_clip("bikes.mp4"), DecodeLimits(max_upload_bytes=100_000))
    assert (caught.value.code, caught.value.status) == ("media_too_large", 413)


def test_bad_sampling_arguments_fail_at_once() -> None:
    with pytest.raises(ValueError):
        sample_frames(sample_clip("bikes.mp4"), fps=0.0, limits=LIMITS)
    with pytest.raises(ValueError):
        sample_frames(sample_clip("bikes.mp4"), fps=4.0, limits=LIMITS, max_side=0)
