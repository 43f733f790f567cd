"""The one attack catalogue: names unique, each file-level tamper tied to its in-memory kind,
and what it makes carries the truth of its kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from frames.samples import sample_clip
from generator import attacks, tampers, variants
from generator.variants import read_clip, write_clip


def test_names_are_unique_and_segments_are_known_kinds() -> None:
    names = [a.name for a in attacks.ATTACKS]
    assert len(set(names)) == len(names)
    assert {a.segment for a in attacks.ATTACKS if a.segment} <= set(attacks.SEGMENT_TAMPERS)
    assert all(a.kind == "tamper" for a in attacks.ATTACKS if a.segment)
    assert [a.name for a in attacks.pick(["crop", "inpaint"])] == ["crop", "inpaint"]
    with pytest.raises(KeyError, match="no attack called shear"):
        attacks.pick(["crop", "shear"])


def test_each_attack_writes_a_clip_with_the_truth_of_its_kind(tmp_path: Path) -> None:
    clip = read_clip(sample_clip("carphone_pristine.mp4"))
    src, other = tmp_path / "src.mp4", tmp_path / "other.mp4"
    write_clip(src, clip.frames[:40], clip.fps)
    write_clip(other, clip.frames[::-1][:40], clip.fps)
    at = attacks.Where(clip=40 / float(clip.fps), start=0.4, duration=0.4, box=(0.1, 0.1, 0.3, 0.3))
    for attack in attacks.ATTACKS:
        out = tmp_path / f"{attack.name}.mp4"
        truth = attack.make(src, other, out, at)
        assert out.is_file(), attack.name
        expected = tampers.TamperTruth if attack.kind == "tamper" else variants.VariantTruth
        assert isinstance(truth, expected), attack.name
        if isinstance(truth, tampers.TamperTruth):
            assert truth.ranges and truth.ranges[0][0] == pytest.approx(0.4, abs=0.05), attack.name
