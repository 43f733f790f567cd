"""Reposts on real clips: a reframed or mirrored copy finds its original, is noted, and edits in it show.

The first seconds of bigbuckbunny (16:9), bikes and carphone are registered; each test writes one
repost form with `generator.reposts` (the forms the repost evaluation draws, here with fixed
parameters), decodes and fingerprints it for real, keeping the small frames the verifier keeps
(`ClipPixels`), and verifies it with `verify_fingerprint`, the core the service's `Verifier` runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from frames.inner import box_iou
from frames.samples import sample_clip
from generator import reposts, scenes, tampers, variants
from generator.reposts import Reframe
from provenance.core.config import DecodeLimits
from provenance.fingerprint import Fingerprint, compute_fingerprint
from provenance.verify.compare import PdqGridComparer
from provenance.verify.index import FrameIndex
from provenance.verify.reframe import ClipPixels
from provenance.verify.verdict import Outcome, verify_fingerprint

LIMITS = DecodeLimits()
SECONDS = 4.0


@dataclass
class World:
    index: FrameIndex
    prints: dict[str, Fingerprint]
    clips: dict[str, Path]
    workdir: Path
    made: dict[str, Path] = field(default_factory=dict)

    def repost(self, source: str, reframe: Reframe, other: str = "bikes") -> Path:
        path = self.workdir / f"{source}-{reframe.describe()}.mp4".replace(" ", "_").replace("/", "_")
        if path not in self.made.values():
            reposts.repost(self.clips[source], path, reframe, self.clips[other])
            self.made[str(path)] = path
        return path

    def verify(self, path: Path, *, reframes: bool = True) -> Outcome:
        pixels = ClipPixels()
        query = compute_fingerprint(path, limits=LIMITS, version=1, sinks=[pixels])
        return verify_fingerprint(
            query, self.index, self.prints.__getitem__, PdqGridComparer(), pixels=pixels, reframes=reframes
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    workdir = tmp_path_factory.mktemp("reframe")
    clips = {}
    for name, file in (
        ("bunny", "bigbuckbunny.mp4"),
        ("bikes", "bikes.mp4"),
        ("carphone", "carphone_pristine.mp4"),
    ):
        clips[name] = workdir / f"{name}.mp4"
        variants.subclip(sample_clip(file), clips[name], 0.0, SECONDS)
    prints = {name: compute_fingerprint(path, limits=LIMITS, version=1) for name, path in clips.items()}
    index = FrameIndex()
    for name, fingerprint in prints.items():
        index.add(name, fingerprint)
    return World(index, prints, clips, workdir)


def _found(outcome: Outcome, original: str) -> None:
    assert outcome.verdict == "authentic", outcome.to_json()
    assert outcome.match is not None and outcome.match.registration_id == original


def _kinds(outcome: Outcome) -> list[str]:
    return sorted(f.kind for f in outcome.findings)


def test_a_vertical_crop_is_found_and_says_which_part(world: World) -> None:
    outcome = world.verify(world.repost("bunny", Reframe(window=(0.17, 0.0, 0.42, 1.0))))
    _found(outcome, "bunny")
    assert _kinds(outcome) == ["reframed"]
    (note,) = outcome.findings
    start, end = (int(v) / 100 for v in re.findall(r"(\d+)%", note.detail))
    assert start == pytest.approx(0.17, abs=0.03) and end == pytest.approx(0.59, abs=0.03)


def test_a_mirrored_copy_is_authentic_with_a_mirrored_note(world: World) -> None:
    outcome = world.verify(world.repost("bikes", Reframe(mirror=True)))
    _found(outcome, "bikes")
    assert _kinds(outcome) == ["mirrored"]
    assert outcome.findings[0].query_range[1] > SECONDS - 0.5


def test_a_mirrored_vertical_crop_is_noted_both_ways(world: World) -> None:
    outcome = world.verify(world.repost("bunny", Reframe(mirror=True, window=(0.5, 0.0, 0.45, 1.0))))
    _found(outcome, "bunny")
    assert _kinds(outcome) == ["mirrored", "reframed"]


@pytest.mark.parametrize(
    "reframe",
    [
        Reframe(canvas=9 / 16, picture=(0.04, 0.36, 0.92, 0.29), fill="blurred"),
        Reframe(canvas=9 / 16, picture=(0.04, 0.36, 0.92, 0.29), fill="solid", colour=(240, 200, 60)),
        Reframe(canvas=16 / 9, picture=(0.34, 0.14, 0.6, 0.6), fill="player", seed=3),
    ],
    ids=["blurred-fill", "solid-fill", "screen-recording"],
)
def test_the_picture_inside_other_content_is_found_and_placed(world: World, reframe: Reframe) -> None:
    outcome = world.verify(world.repost("bunny", reframe))
    _found(outcome, "bunny")
    assert _kinds(outcome) == ["reframed"]
    (note,) = outcome.findings
    assert box_iou(tuple(note.regions[0]), reframe.picture) > 0.85  # type: ignore[arg-type]


def test_a_picture_in_picture_over_another_video_is_found(world: World) -> None:
    reframe = Reframe(canvas=16 / 9, picture=(0.3, 0.35, 0.6, 0.6), fill="video")
    outcome = world.verify(world.repost("carphone", reframe, other="bunny"))
    _found(outcome, "carphone")
    assert "reframed" in _kinds(outcome)


@pytest.mark.parametrize("zoom", [True, False], ids=["zoomed", "framed"])
def test_a_small_rotation_is_found(world: World, zoom: bool) -> None:
    outcome = world.verify(world.repost("bikes", Reframe(degrees=-3.6, zoom=zoom)))
    _found(outcome, "bikes")
    (note,) = outcome.findings
    assert note.kind == "reframed"
    (turn,) = (float(v) for v in re.findall(r"([-+]\d+\.\d) degrees", note.detail))
    assert turn == pytest.approx(-3.6, abs=0.5)


@pytest.mark.parametrize(
    "reframe",
    [Reframe(window=(0.25, 0.0, 0.5, 1.0)), Reframe(mirror=True)],
    ids=["vertical-crop", "mirror"],
)
def test_a_paste_inside_a_reposted_copy_is_tampered_where_it_is(world: World, reframe: Reframe) -> None:
    path = world.workdir / f"pasted-{reframe.describe()}.mp4".replace(" ", "_")
    truth = reposts.reposted_tamper(
        lambda edited: tampers.paste_region(
            world.clips["bunny"], edited, 1.0, 2.0, box=(0.35, 0.3, 0.2, 0.35)
        ),
        world.clips["bunny"],
        path,
        reframe,
    )
    outcome = world.verify(path)
    assert outcome.verdict == "tampered", outcome.to_json()
    assert outcome.match is not None and outcome.match.registration_id == "bunny"
    flagged = [r for s in outcome.match.segments if s.tampered for r in s.regions]
    # Where: every flagged cell lies on the pasted box (in the clip's frame), give or take a cell.
    x, y, w, h = truth.regions[0]
    assert flagged and all(
        x - 0.125 <= fx and fx + fw <= x + w + 0.125 and y - 0.125 <= fy and fy + fh <= y + h + 0.125
        for fx, fy, fw, fh in flagged
    ), (flagged, truth.regions)
    (start, end) = truth.ranges[0]
    assert all(a < end + 0.6 and b > start - 0.6 for a, b in outcome.match.tampered_ranges)
    assert {"reframed", "mirrored"} & set(_kinds(outcome))


def test_reposts_of_unregistered_footage_stay_unknown(world: World) -> None:
    scene = scenes.make_scene("hubble", world.workdir / "hubble.mp4", seconds=3.0)
    world.clips["hubble"] = scene
    for reframe in (Reframe(mirror=True), Reframe(window=(0.3, 0.0, 0.45, 1.0)), Reframe(degrees=3.0)):
        outcome = world.verify(world.repost("hubble", reframe))
        assert outcome.verdict == "unknown", (reframe.describe(), outcome.to_json())


def test_without_the_reframe_search_a_mirror_stays_unknown(world: World) -> None:
    outcome = world.verify(world.repost("bikes", Reframe(mirror=True)), reframes=False)
    assert outcome.verdict == "unknown"
