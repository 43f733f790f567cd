"""The verification core on real clips: benign variants are authentic, tampers are found and located.

bikes.mp4 (10 s) is the registered original under test; carphone, bigbuckbunny and a photo of the
astronaut are registered beside it, so retrieval has to pick the right one. Every clip is
written by `generator`, decoded and fingerprinted for real.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from frames.samples import sample_clip
from generator import tampers, variants
from provenance.core.config import DecodeLimits
from provenance.fingerprint import Fingerprint, FrameHash, compute_fingerprint, hash_frame
from provenance.verify import thumbs
from provenance.verify.align import align
from provenance.verify.compare import (
    CELL_THRESHOLD,
    Comparer,
    PdqGridComparer,
    SegmentComparison,
    calibrate_threshold,
)
from provenance.verify.index import FrameIndex
from provenance.verify.verdict import Outcome, verify_fingerprint

LIMITS = DecodeLimits()
Truth = variants.VariantTruth | tampers.TamperTruth
BIKES = sample_clip("bikes.mp4")
CARPHONE = sample_clip("carphone_pristine.mp4")
TOLERANCE_S = 0.5


@dataclass
class World:
    index: FrameIndex
    prints: dict[str, Fingerprint]
    workdir: Path
    comparer: PdqGridComparer
    made: dict[str, tuple[Path, Truth]] = field(default_factory=dict)

    def fingerprint(self, path: Path) -> Fingerprint:
        return compute_fingerprint(path, limits=LIMITS)

    def make(self, name: str, write: Callable[[Path], Truth]) -> tuple[Path, Truth]:
        """Write a variant once per module; tests that need the same clip share it."""
        if name not in self.made:
            path = self.workdir / f"{name}.mp4"
            self.made[name] = (path, write(path))
        return self.made[name]

    def verify(self, path: Path, comparer: Comparer | None = None) -> Outcome:
        return verify_fingerprint(
            self.fingerprint(path), self.index, self.prints.__getitem__, comparer or self.comparer
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    workdir = tmp_path_factory.mktemp("verify")
    photo = workdir / "astronaut.jpg"
    cv2.imwrite(str(photo), skimage.data.astronaut()[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    sources = {
        "bikes": BIKES,
        "carphone": CARPHONE,
        "bunny": sample_clip("bigbuckbunny.mp4"),
        "astronaut": photo,
    }
    prints = {name: compute_fingerprint(path, limits=LIMITS) for name, path in sources.items()}
    return World(index=FrameIndex.of(prints), prints=prints, workdir=workdir, comparer=PdqGridComparer())


def _iou(a: Sequence[tuple[float, float]], b: Sequence[tuple[float, float]]) -> float:
    """Intersection over union of two unions of disjoint intervals."""

    def measure(ranges: Sequence[tuple[float, float]]) -> float:
        return sum(end - start for start, end in ranges)

    inter = sum(max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in a for s2, e2 in b)
    union = measure(a) + measure(b) - inter
    return inter / union if union > 0 else 0.0


def _outside(flagged: Sequence[tuple[float, float]], truth: tuple[float, float]) -> float:
    """Seconds flagged outside the truth."""
    return sum((end - start) - max(0.0, min(end, truth[1]) - max(start, truth[0])) for start, end in flagged)


def _box_overlap(a: Sequence[float], b: Sequence[float]) -> float:
    """Area of the intersection of two [x, y, w, h] boxes, over the smaller box."""
    w = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return w * h / min(a[2] * a[3], b[2] * b[3])


BENIGN: dict[str, Callable[[Path], variants.VariantTruth]] = {
    "low-bitrate": lambda dst: variants.reencode(BIKES, dst, bitrate=150_000),
    "downscale-50%": lambda dst: variants.downscale(BIKES, dst, 0.5),
    "letterbox": lambda dst: variants.letterbox(BIKES, dst),
    "pillarbox": lambda dst: variants.pillarbox(BIKES, dst),
    "crop-10%": lambda dst: variants.crop(BIKES, dst, 0.10),
    "brighter": lambda dst: variants.colour(BIKES, dst, brightness=0.1, contrast=0.1, saturation=0.1),
    "duller": lambda dst: variants.colour(BIKES, dst, brightness=-0.1, contrast=-0.1, saturation=-0.1),
    "subclip-3-7": lambda dst: variants.subclip(BIKES, dst, 3.0, 7.0),
    "fps-25-to-15": lambda dst: variants.change_fps(BIKES, dst, 15),
}


def REMOVE(dst: Path) -> Truth:
    return tampers.remove_range(BIKES, dst, start=4.0, duration=2.0)


@pytest.mark.parametrize("name", list(BENIGN))
def test_benign_variants_are_authentic_with_the_right_ranges(world: World, name: str) -> None:
    path, truth = world.make(name, BENIGN[name])
    assert isinstance(truth, variants.VariantTruth)
    outcome = world.verify(path)
    assert outcome.verdict == "authentic", outcome.to_json()
    assert outcome.match is not None
    assert outcome.match.registration_id == "bikes"
    assert outcome.match.tampered_ranges == []
    duration = truth.original_range[1] - truth.original_range[0]
    assert outcome.match.original_range == pytest.approx(truth.original_range, abs=TOLERANCE_S)
    assert outcome.match.query_range == pytest.approx((0.0, duration), abs=TOLERANCE_S)
    # Every segment maps onto the same moment of the original (speed 1, offset of the subclip).
    offset = truth.original_range[0]
    for segment in outcome.match.segments:
        assert segment.original_start == pytest.approx(segment.query_start + offset, abs=TOLERANCE_S)
        assert segment.distance < 0.5 and not segment.regions
    assert 0.5 < outcome.confidence <= 1.0
    assert outcome.match.similarity > 0.6


def test_a_pasted_region_is_found_in_time_and_space(world: World) -> None:
    path = world.workdir / "paste.mp4"
    truth = tampers.paste_region(BIKES, path, start=3.0, duration=2.0, box=(0.3, 0.3, 0.3, 0.35))
    outcome = world.verify(path)
    assert outcome.verdict == "tampered"
    assert outcome.match is not None and outcome.match.registration_id == "bikes"
    flagged = outcome.match.tampered_ranges
    assert _iou(flagged, truth.ranges) >= 0.5
    assert _outside(flagged, truth.ranges[0]) <= TOLERANCE_S
    regions = [box for s in outcome.match.segments if s.tampered for box in s.regions]
    assert regions and all(_box_overlap(box, truth.regions[0]) > 0.3 for box in regions)
    # The pasted seconds still sit at their own place in the original.
    for segment in outcome.match.segments:
        assert segment.original_start == pytest.approx(segment.query_start, abs=TOLERANCE_S)


def test_a_copy_move_from_elsewhere_in_the_clip_is_found(world: World) -> None:
    path = world.workdir / "copy-move.mp4"
    truth = tampers.paste_region(
        BIKES, path, start=6.0, duration=2.0, box=(0.1, 0.2, 0.3, 0.4), patch="frame"
    )
    outcome = world.verify(path)
    assert outcome.verdict == "tampered" and outcome.match is not None
    assert _iou(outcome.match.tampered_ranges, truth.ranges) >= 0.5
    assert _outside(outcome.match.tampered_ranges, truth.ranges[0]) <= TOLERANCE_S


def test_a_recoloured_region_is_found_but_a_global_colour_change_is_not(world: World) -> None:
    """Only the colour of one object changes (structure and brightness stay): the chroma says so.

    A grade of the whole frame moves every cell's colour alike and stays authentic.
    """
    path = world.workdir / "recolour.mp4"
    truth = tampers.recolour_region(BIKES, path, start=3.0, duration=2.0, box=(0.55, 0.2, 0.3, 0.45))
    outcome = world.verify(path)
    assert outcome.verdict == "tampered", outcome.to_json()
    assert outcome.match is not None and outcome.match.registration_id == "bikes"
    assert _iou(outcome.match.tampered_ranges, truth.ranges) >= 0.5
    regions = [box for s in outcome.match.segments if s.tampered for box in s.regions]
    assert regions and all(_box_overlap(box, truth.regions[0]) > 0.3 for box in regions)

    graded, _ = world.make("brighter", BENIGN["brighter"])
    outcome = world.verify(graded)
    assert outcome.verdict == "authentic", outcome.to_json()
    assert outcome.match is not None
    assert all(s.distance < 0.5 and not s.regions for s in outcome.match.segments)


def test_two_seconds_from_another_registered_clip_are_named(world: World) -> None:
    path = world.workdir / "replace.mp4"
    truth = tampers.replace_range(BIKES, CARPHONE, path, start=3.0, duration=2.0)
    outcome = world.verify(path)
    assert outcome.verdict == "tampered" and outcome.match is not None
    assert outcome.match.registration_id == "bikes"
    assert _iou(outcome.match.tampered_ranges, truth.ranges) >= 0.5
    assert _outside(outcome.match.tampered_ranges, truth.ranges[0]) <= TOLERANCE_S
    foreign = [s for s in outcome.match.segments if s.tampered]
    assert foreign and all(s.other_registration_id == "carphone" for s in foreign)
    assert all(s.original_start is None and s.original_end is None for s in foreign)
    assert outcome.match.query_range == pytest.approx((0.0, 10.0), abs=TOLERANCE_S)


def test_a_removed_segment_is_flagged_at_the_cut(world: World) -> None:
    path, truth = world.make("remove", REMOVE)
    assert isinstance(truth, tampers.TamperTruth)
    cut = truth.ranges[0][0]
    outcome = world.verify(path)
    assert outcome.verdict == "tampered" and outcome.match is not None
    flagged = outcome.match.tampered_ranges
    assert len(flagged) == 1
    start, end = flagged[0]
    assert start - 0.01 <= cut <= end + 0.01 and end - start <= 1.5
    # Either side of the cut follows the original: before at offset 0, after at offset +2 s.
    placed = [s for s in outcome.match.segments if s.original_start is not None]
    for segment in placed:
        assert segment.original_start is not None
        expected = segment.query_start + (2.0 if segment.query_start >= cut else 0.0)
        assert segment.original_start == pytest.approx(expected, abs=TOLERANCE_S)
    assert outcome.match.original_range == pytest.approx((0.0, 10.0), abs=TOLERANCE_S)


def test_inserted_frames_of_an_unregistered_clip_are_flagged(world: World) -> None:
    stranger = world.workdir / "stranger.mp4"
    _astronaut_pan(stranger)
    path = world.workdir / "insert.mp4"
    truth = tampers.insert_frames(BIKES, stranger, path, at=5.0, duration=2.0)
    outcome = world.verify(path)
    assert outcome.verdict == "tampered" and outcome.match is not None
    assert _iou(outcome.match.tampered_ranges, truth.ranges) >= 0.5
    assert _outside(outcome.match.tampered_ranges, truth.ranges[0]) <= TOLERANCE_S
    inserted = [s for s in outcome.match.segments if s.tampered]
    assert all(s.original_start is None and s.other_registration_id is None for s in inserted)
    after = [s for s in outcome.match.segments if s.query_start >= 7.0]
    assert after and all(
        s.original_start == pytest.approx(s.query_start - 2.0, abs=TOLERANCE_S) for s in after
    )


def _astronaut_pan(path: Path) -> None:
    """An unregistered clip: a slow pan across the astronaut photo, 4 s at 25 fps."""
    image = skimage.data.astronaut()
    frames = [np.ascontiguousarray(image[60 : 60 + 288, 2 * k : 2 * k + 352]) for k in range(100)]
    variants.write_clip(path, frames, Fraction(25))


def test_an_unregistered_clip_is_unknown(world: World) -> None:
    path = world.workdir / "stranger-alone.mp4"
    _astronaut_pan(path)
    outcome = world.verify(path)
    assert outcome.verdict == "unknown"
    assert outcome.match is None
    assert outcome.confidence > 0.9
    assert outcome.to_json() == {
        "verdict": "unknown",
        "confidence": pytest.approx(outcome.confidence, abs=1e-3),
        "match": None,
        "findings": [],
        "nearest": {
            "matched_frames": outcome.nearest["matched_frames"] if outcome.nearest else 0,
            "usable_frames": 16,  # 4 s sampled at 4 fps
        },
    }


def test_a_photo_survives_recompression_and_resizing_but_not_a_paste(world: World) -> None:
    original = world.workdir / "astronaut.jpg"
    variants.reencode_image(original, world.workdir / "astronaut-small.jpg", quality=40, scale=0.6)
    outcome = world.verify(world.workdir / "astronaut-small.jpg")
    assert outcome.verdict == "authentic" and outcome.match is not None
    assert outcome.match.registration_id == "astronaut"
    assert len(outcome.match.segments) == 1 and outcome.match.segments[0].distance < 0.5

    truth = tampers.paste_region_image(
        original, world.workdir / "astronaut-pasted.jpg", box=(0.55, 0.1, 0.3, 0.3)
    )
    outcome = world.verify(world.workdir / "astronaut-pasted.jpg")
    assert outcome.verdict == "tampered" and outcome.match is not None
    assert outcome.match.registration_id == "astronaut"
    (segment,) = outcome.match.segments
    assert segment.tampered and segment.regions
    assert _box_overlap(segment.regions[0], truth.regions[0]) > 0.5


def test_outcome_json_has_exactly_the_contract_keys(world: World) -> None:
    path, _ = world.make("remove", REMOVE)
    payload = world.verify(path).to_json()
    assert set(payload) == {"verdict", "confidence", "match", "findings"}
    match = payload["match"]
    assert set(match) == {
        "registration_id",
        "query_range",
        "original_range",
        "similarity",
        "segments",
        "tampered_ranges",
    }
    segment_keys = {
        "query_start",
        "query_end",
        "original_start",
        "original_end",
        "distance",
        "tampered",
        "regions",
        "other_registration_id",
    }
    assert all(set(s) == segment_keys for s in match["segments"])
    assert all(isinstance(v, float) for v in match["query_range"] + match["original_range"])
    # Segments tile the clip in order.
    for a, b in zip(match["segments"], match["segments"][1:], strict=False):
        assert a["query_end"] == pytest.approx(b["query_start"])
    assert all(len(r) == 2 and r[0] <= r[1] for r in match["tampered_ranges"])


class _Paranoid:
    """A comparer that distrusts everything: proves the flow defers to whichever comparer it gets."""

    name = "paranoid"
    version = "0"

    def compare(
        self, query_frames: Sequence[FrameHash], original_frames: Sequence[FrameHash]
    ) -> SegmentComparison:
        # The contract: clip frames on the original's timeline, inside the original frames' span.
        assert query_frames and original_frames
        first, last = original_frames[0].t, original_frames[-1].t
        assert all(first - 1e-6 <= f.t <= last + 1e-6 for f in query_frames)
        return SegmentComparison(distance=0.9, tampered=True, regions=[[0.0, 0.0, 0.25, 0.25]])


def test_the_comparer_is_pluggable(world: World) -> None:
    assert isinstance(world.comparer, Comparer) and isinstance(_Paranoid(), Comparer)
    path, _ = world.make("subclip-3-7", BENIGN["subclip-3-7"])
    outcome = world.verify(path, comparer=_Paranoid())
    assert outcome.verdict == "tampered" and outcome.match is not None
    assert outcome.match.tampered_ranges == [pytest.approx((0.0, 4.0), abs=0.3)]
    assert outcome.match.original_range == pytest.approx((3.0, 7.0), abs=TOLERANCE_S)


def test_alignment_of_a_subclip_pairs_the_same_moments(world: World) -> None:
    path = world.workdir / "align.mp4"
    variants.subclip(BIKES, path, 2.0, 8.0)
    query = world.fingerprint(path)
    original = world.prints["bikes"]
    alignment = align(query, original)
    assert alignment is not None
    assert alignment.matched_frames >= 0.8 * len(query.frames)
    assert not alignment.breaks
    for pair in alignment.pairs:
        t_query = query.frames[pair.query_index].t
        t_original = original.frames[pair.original_index].t
        assert t_original - t_query == pytest.approx(2.0, abs=0.3)
    assert alignment.original_range == pytest.approx((2.0, 8.0), abs=TOLERANCE_S)
    # An unrelated original has no alignment at all.
    assert align(query, world.prints["carphone"]) is None


def test_a_threshold_can_be_calibrated_per_original(world: World) -> None:
    path, _ = world.make("downscale-50%", BENIGN["downscale-50%"])
    query = world.fingerprint(path)
    original = world.prints["bikes"]
    alignment = align(query, original)
    assert alignment is not None
    pairs = alignment.pairs
    segments = []
    for k in range(0, len(pairs), 4):
        chunk = pairs[k : k + 4]
        on_original = [
            replace(query.frames[p.query_index], t=original.frames[p.original_index].t) for p in chunk
        ]
        segments.append((on_original, [original.frames[p.original_index] for p in chunk]))
    threshold = calibrate_threshold(world.comparer, segments, margin=1.5, floor=0.0)
    assert 0 < threshold < CELL_THRESHOLD  # a downscale is far from the default tolerance
    assert calibrate_threshold(world.comparer, segments) == CELL_THRESHOLD  # the floor holds


def test_thumbnails_rebuilt_from_the_grid_are_the_frame_in_small() -> None:
    """The comparer sees frames only through the grid: check it shows the real picture."""
    rgb = next(rgb for t, rgb in variants.iter_frames(BIKES) if t >= 5.0)
    frame = hash_frame(5.0, rgb)
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)[:, :, 0]
    expected = cv2.resize(luma, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    rebuilt = thumbs.luma_thumbnails([frame])[0]
    assert np.abs(rebuilt - expected).mean() < 1.0
    assert np.abs(rebuilt - expected).max() < 4.0
    # And the centre hash of a 10% centre crop, hashed at scale 0.9, is close to the original's.
    height, width = rgb.shape[:2]
    cropped = rgb[round(height * 0.05) : round(height * 0.95), round(width * 0.05) : round(width * 0.95)]
    original_hash = thumbs.centre_hashes([frame])[0]
    crop_hash = thumbs.centre_hashes([hash_frame(5.0, np.ascontiguousarray(cropped))], scale=0.9)[0]
    unrelated = thumbs.centre_hashes([hash_frame(0.0, skimage.data.astronaut())])[0]
    assert thumbs.hamming_matrix(original_hash[None], crop_hash[None])[0, 0] <= 31
    assert thumbs.hamming_matrix(original_hash[None], unrelated[None])[0, 0] > 80
