"""The generator's variants and tampers: real decoding of what they write, checked against their truth."""

from __future__ import annotations

import ast
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from frames.samples import sample_clip
from generator import tampers, variants

GENERATOR = Path(variants.__file__).parent


@pytest.fixture(scope="module")
def carphone() -> Path:
    return sample_clip("carphone_pristine.mp4")


def _info(path: Path) -> tuple[int, int, int, float, str, str]:
    """(width, height, frames decoded, rate, codec, pixel format) of a written video."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        return (
            stream.width,
            stream.height,
            count,
            float(stream.average_rate or 0),
            stream.codec_context.name,
            stream.codec_context.pix_fmt or "",
        )


def _frames(path: Path) -> list[np.ndarray]:
    return [rgb for _, rgb in variants.iter_frames(path)]


def test_generator_never_imports_provenance() -> None:
    for source in GENERATOR.glob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(n.split(".")[0] == "provenance" for n in names), f"{source.name} imports {names}"
    # And importing it pulls nothing of provenance in, transitively.
    code = (
        "import sys, generator.tampers, generator.variants; "
        "print(any(m.startswith('provenance') for m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_reencode_keeps_size_and_frames_and_writes_h264(carphone: Path, tmp_path: Path) -> None:
    source = _info(carphone)
    truth = variants.reencode(carphone, tmp_path / "low.mp4", bitrate=60_000)
    width, height, count, rate, codec, pix_fmt = _info(tmp_path / "low.mp4")
    assert (codec, pix_fmt) == ("h264", "yuv420p")
    assert (width, height) == (source[0], source[1])
    assert count == source[2]
    assert truth.original_range == pytest.approx((0.0, count / rate), abs=1e-6)
    assert (tmp_path / "low.mp4").stat().st_size < carphone.stat().st_size


def test_downscale_letterbox_pillarbox_crop_sizes(carphone: Path, tmp_path: Path) -> None:
    variants.downscale(carphone, tmp_path / "half.mp4", 0.5)
    assert _info(tmp_path / "half.mp4")[:2] == (88, 72)
    variants.letterbox(carphone, tmp_path / "letter.mp4", aspect=1.0)
    letter = _frames(tmp_path / "letter.mp4")[50]
    assert letter.shape[:2] == (176, 176)
    bar = (176 - 144) // 2
    assert letter[: bar - 3].max() < 30 and letter[-(bar - 3) :].max() < 30  # black bars
    assert letter[bar + 4 : -bar - 4].mean() > 40  # the picture between them
    variants.pillarbox(carphone, tmp_path / "pillar.mp4")
    pillar = _frames(tmp_path / "pillar.mp4")[50]
    side = round(176 / 6)
    assert pillar.shape[:2] == (144, 176 + 2 * side)
    assert pillar[:, : side - 3].max() < 30 and pillar[:, -(side - 3) :].max() < 30
    assert pillar[:, side + 4 : -side - 4].mean() > 40
    variants.crop(carphone, tmp_path / "crop.mp4", 0.10)
    assert _info(tmp_path / "crop.mp4")[:2] == (158, 130)


def test_colour_shifts_brightness_and_contrast(carphone: Path, tmp_path: Path) -> None:
    variants.colour(carphone, tmp_path / "bright.mp4", brightness=0.1, contrast=0.1, saturation=0.1)
    variants.colour(carphone, tmp_path / "dark.mp4", brightness=-0.1, contrast=-0.1, saturation=-0.1)
    source = _frames(carphone)[30].astype(float)
    bright = _frames(tmp_path / "bright.mp4")[30].astype(float)
    dark = _frames(tmp_path / "dark.mp4")[30].astype(float)
    assert bright.mean() > source.mean() + 15 > dark.mean() + 30
    assert bright.std() > source.std() > dark.std()


def test_subclip_and_fps_change_keep_the_timeline(carphone: Path, tmp_path: Path) -> None:
    truth = variants.subclip(carphone, tmp_path / "sub.mp4", 1.0, 3.0)
    assert truth.original_range == pytest.approx((1.0, 3.0), abs=0.05)
    assert _info(tmp_path / "sub.mp4")[2] == 60  # 2 s at 29.97 fps
    source = _frames(carphone)
    first = _frames(tmp_path / "sub.mp4")[0].astype(float)
    errors = [np.abs(first - f.astype(float)).mean() for f in source[25:36]]
    assert int(np.argmin(errors)) == 5  # frame 30, the first at or after 1.0 s
    truth = variants.change_fps(carphone, tmp_path / "fps.mp4", 15)
    _, _, count, rate, _, _ = _info(tmp_path / "fps.mp4")
    assert rate == pytest.approx(15) and count == 60
    assert truth.original_range == pytest.approx((0.0, 4.0))


def test_paste_region_changes_only_the_box_for_the_stated_seconds(carphone: Path, tmp_path: Path) -> None:
    box = (0.3, 0.3, 0.3, 0.35)
    truth = tampers.paste_region(carphone, tmp_path / "paste.mp4", 1.0, 2.0, box)
    assert truth.ranges == [pytest.approx((1.001, 3.003), abs=0.002)]
    (region,) = truth.regions
    assert region == pytest.approx(list(box), abs=0.01)
    source, edited = _frames(carphone), _frames(tmp_path / "paste.mp4")
    assert len(source) == len(edited)
    x0, y0 = round(region[0] * 176), round(region[1] * 144)
    x1, y1 = x0 + round(region[2] * 176), y0 + round(region[3] * 144)

    def diff(k: int, inside: bool) -> float:
        d = np.abs(source[k].astype(float) - edited[k].astype(float)).mean(axis=2)
        mask = np.zeros(d.shape, dtype=bool)
        mask[y0:y1, x0:x1] = True
        return float(d[mask if inside else ~mask].mean())

    for k in (30, 60, 89):  # 1.0, 2.0, 2.97 s: pasted
        assert diff(k, inside=True) > 30 > 6 > diff(k, inside=False)
    for k in (20, 29, 90, 110):  # before and after: only re-encoding noise
        assert diff(k, inside=True) < 6


def test_replace_remove_insert_truth_matches_the_frames(carphone: Path, tmp_path: Path) -> None:
    other_path = tmp_path / "other.mp4"
    ramp = np.linspace(0, 255, 64, dtype=np.uint8)
    pattern = np.stack([*np.meshgrid(ramp, ramp[::-1]), np.full((64, 64), 90, np.uint8)], axis=-1)
    variants.write_clip(other_path, [np.roll(pattern, k, axis=1) for k in range(90)], Fraction(30))
    source = _frames(carphone)
    other = _frames(other_path)
    fps = 30000 / 1001

    def close(a: np.ndarray, b: np.ndarray) -> bool:
        if a.shape != b.shape:
            b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
        return float(np.abs(a.astype(float) - b.astype(float)).mean()) < 8

    replaced = tampers.replace_range(carphone, other_path, tmp_path / "replace.mp4", 1.0, 1.0)
    assert replaced.ranges == [pytest.approx((30 / fps, 60 / fps))]
    out = _frames(tmp_path / "replace.mp4")
    assert len(out) == len(source)
    assert close(out[29], source[29]) and close(out[60], source[60])
    assert close(out[30], other[0]) and not close(out[30], source[30])

    removed = tampers.remove_range(carphone, tmp_path / "remove.mp4", 1.0, 1.0)
    assert removed.ranges == [pytest.approx((30 / fps, 30 / fps))]
    out = _frames(tmp_path / "remove.mp4")
    assert len(out) == len(source) - 30
    assert close(out[29], source[29]) and close(out[30], source[60])

    inserted = tampers.insert_frames(carphone, other_path, tmp_path / "insert.mp4", 1.0, 1.0)
    assert inserted.ranges == [pytest.approx((30 / fps, 60 / fps))]
    out = _frames(tmp_path / "insert.mp4")
    assert len(out) == len(source) + 30
    assert close(out[29], source[29]) and close(out[30], other[0]) and close(out[60], source[30])


def test_bad_arguments_are_refused(carphone: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        tampers.paste_region(carphone, tmp_path / "x.mp4", 1.0, 2.0, (0.8, 0.8, 0.5, 0.5))
    with pytest.raises(ValueError):
        tampers.remove_range(carphone, tmp_path / "x.mp4", 20.0, 2.0)
    with pytest.raises(ValueError):
        variants.crop(carphone, tmp_path / "x.mp4", 0.6)
    with pytest.raises(ValueError):
        variants.subclip(carphone, tmp_path / "x.mp4", 5.0, 4.0)


def test_writer_makes_even_dimensions(tmp_path: Path) -> None:
    frames = [np.full((51, 77, 3), k * 10, dtype=np.uint8) for k in range(10)]
    variants.write_clip(tmp_path / "odd.mp4", frames, Fraction(10))
    width, height, count, rate, _, pix_fmt = _info(tmp_path / "odd.mp4")
    assert (width, height, count, pix_fmt) == (76, 50, 10, "yuv420p")
    assert rate == pytest.approx(10)


def _box_diffs(
    source: list[np.ndarray], edited: list[np.ndarray], region: list[float], k: int
) -> tuple[float, float]:
    """Mean absolute difference of frame k inside and outside the normalised `region`."""
    height, width = source[k].shape[:2]
    x0, y0 = round(region[0] * width), round(region[1] * height)
    x1, y1 = x0 + round(region[2] * width), y0 + round(region[3] * height)
    d = np.abs(source[k].astype(float) - edited[k].astype(float)).mean(axis=2)
    mask = np.zeros(d.shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return float(d[mask].mean()), float(d[~mask].mean())


@pytest.mark.parametrize("kind", ["inpaint", "recolour"])
def test_inpaint_and_recolour_change_only_the_box_for_the_stated_seconds(
    carphone: Path, tmp_path: Path, kind: str
) -> None:
    box = (0.3, 0.25, 0.35, 0.4)  # the talking head's face
    out = tmp_path / f"{kind}.mp4"
    edit = tampers.inpaint_region if kind == "inpaint" else tampers.recolour_region
    truth = edit(carphone, out, 1.0, 1.0, box)
    assert truth.kind == kind
    assert truth.ranges == [pytest.approx((30 * 1001 / 30000, 60 * 1001 / 30000), abs=1e-6)]
    (region,) = truth.regions
    assert region == pytest.approx(list(box), abs=0.01)
    source, edited = _frames(carphone), _frames(out)
    assert len(source) == len(edited)
    for k in (30, 45, 59):  # inside the stated seconds: the box changed, the rest did not
        inside, outside = _box_diffs(source, edited, region, k)
        assert inside > 12 > 6 > outside, (k, inside, outside)
    for k in (10, 29, 60, 100):  # outside them: only re-encoding noise anywhere
        inside, outside = _box_diffs(source, edited, region, k)
        assert inside < 6 and outside < 6, (k, inside, outside)
    if kind == "recolour":
        # A colour change: the hue moved, the brightness mostly stayed.
        x0, y0 = round(region[0] * 176), round(region[1] * 144)
        x1, y1 = x0 + round(region[2] * 176), y0 + round(region[3] * 144)
        before = cv2.cvtColor(source[45][y0:y1, x0:x1], cv2.COLOR_RGB2HSV).astype(float)
        after = cv2.cvtColor(edited[45][y0:y1, x0:x1], cv2.COLOR_RGB2HSV).astype(float)
        hue_turn = np.abs((after[..., 0] - before[..., 0] + 90) % 180 - 90)
        assert float(np.median(hue_turn)) > 30
        assert abs(float(after[..., 2].mean() - before[..., 2].mean())) < 25
