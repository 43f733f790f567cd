"""The verification flow for a fingerprinted clip: candidates → alignment → segments → verdict.

`verify_fingerprint` knows nothing of databases or HTTP: it gets the index, a loader for
registered fingerprints and a comparer, and returns an `Outcome` whose `to_json()` is the core of
the `provenance.verification/v1` result (docs/verification.md); the service adds the registration's device,
capture time, signature and anchor.

Verdicts:

- `unknown`: no registered original shares enough frames with the clip.
- `authentic`: the clip lays along one original (trimmed, re-encoded, resized, cropped,
  re-timed...) and every segment compares within tolerance.
- `tampered`: it lays along an original but some segment differs: the comparer flags regions, or
  a stretch of the clip shows nothing of the original (an insert, or a part replaced by other
  footage: the segment names the registration it comes from in `other_registration_id` when
  there is one, and has no original times), or the clip jumps across a cut in the original (the
  second around the cut is flagged).

Segments are about `SEGMENT_SECONDS` long and tile the clip; the ones touching a cut are half as
long, and a flagged one is split in halves (recursively) when only one half differs, so that
`tampered_ranges` follow the edit to about a sampled frame. Regions are normalised
``[x, y, w, h]`` of the clip's picture without letterbox or pillarbox bars (the fingerprint
keeps no bar sizes). A photo is one segment from 0 to 0 s; its `tampered_ranges` is ``[[0, 0]]``
when it differs.

`confidence` is 0.5 + 0.5 x (how closely and how many frames match the original) x (how clear
the decision is: the margin of the worst segment under the threshold for `authentic`, over it
for `tampered`). For `unknown` it grows with the number of usable frames that matched nothing,
and drops when some candidate matched too little to count.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from frames.regions import merge_ranges
from provenance.audio import QueryAudio
from provenance.faces import Faces
from provenance.fingerprint import Fingerprint, FrameHash
from provenance.verify import reframe
from provenance.verify.align import Alignment, align, span_json
from provenance.verify.audio import AudioComparison, AudioEvent, compare_audio
from provenance.verify.compare import (
    Chosen,
    Comparer,
    ComparerFactory,
    PdqGridComparer,
    PlacedFrame,
    SegmentComparison,
)
from provenance.verify.faces import SWAP_IDENTITY, FaceEvent, compare_faces
from provenance.verify.index import MATCH_DISTANCE, FrameIndex, usable
from provenance.verify.reframe import ClipPixels, View

Verdict = Literal["authentic", "tampered", "unknown"]

SEGMENT_SECONDS = 1.0
# Candidates (best first) aligned in full before choosing the original.
CANDIDATES_ALIGNED = 3
# A match needs this many anchored frames (fewer if the clip has fewer usable frames).
MIN_MATCHED_FRAMES = 2
# Flagged area (share of the picture) from which a placed segment counts as foreign content.
FOREIGN_AREA = 0.5
# A cut's distance: 0.5 (the tamper threshold) plus this much per second jumped, up to 1.
CUT_DISTANCE_PER_SECOND = 0.25
# A flagged stretch is narrowed to one half only when the other half's distance is at most this.
CLEARLY_CLEAN = 0.4
# A verifier looks at the clip's faces this often (seconds); originals are looked at every frame.
QUERY_FACE_STEP = 0.5
# The distance a segment with a changed face gets: clearly over the tamper threshold of 0.5.
FACE_DISTANCE = 0.75
# The reframe search (`provenance.verify.reframe`) runs when the plain search's best alignment
# anchors fewer than this share of the clip's usable frames.
REFRAME_SEARCH_BELOW = 0.5


@dataclass(frozen=True)
class Segment:
    """A stretch of the clip and how it compares; original times are None when it has no place."""

    query_start: float
    query_end: float
    original_start: float | None
    original_end: float | None
    distance: float
    tampered: bool
    regions: list[list[float]] = field(default_factory=list)
    other_registration_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            **span_json(self),
            "regions": [[_r(v) for v in box] for box in self.regions],
            "other_registration_id": self.other_registration_id,
        }


@dataclass(frozen=True)
class Match:
    """The registered original the clip lays along, and how it differs segment by segment."""

    registration_id: str
    query_range: tuple[float, float]
    original_range: tuple[float, float]
    similarity: float
    segments: list[Segment]
    tampered_ranges: list[tuple[float, float]]
    # The sound compared with a version 3 original's (None: not compared): offset and timeline.
    audio: AudioComparison | None = None

    def to_json(self) -> dict[str, Any]:
        body = {
            "registration_id": self.registration_id,
            "query_range": [_r(v) for v in self.query_range],
            "original_range": [_r(v) for v in self.original_range],
            "similarity": _r(self.similarity),
            "segments": [s.to_json() for s in self.segments],
            "tampered_ranges": [[_r(a), _r(b)] for a, b in self.tampered_ranges],
        }
        if self.audio is not None:  # only where the sound was compared (a version 3 original)
            body["audio"] = self.audio.to_json()
        return body


# Finding kinds that are notes on an authentic clip; every other kind makes it tampered
# (docs/verification.md, Findings).
NOTE_KINDS: frozenset[str] = frozenset(
    {"exact_copy", "reframed", "mirrored", "overlay", "audio_offset", "audio_missing"}
)


@dataclass(frozen=True)
class Finding:
    """What was changed, when and where: the answer a fact-checker reads (docs/verification.md, Findings)."""

    kind: str
    track: Literal["video", "audio"]
    query_range: tuple[float, float]
    original_range: tuple[float, float] | None
    regions: list[list[float]]
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "track": self.track,
            "query_range": [_r(v) for v in self.query_range],
            "original_range": None if self.original_range is None else [_r(v) for v in self.original_range],
            "regions": [[_r(v) for v in box] for box in self.regions],
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Outcome:
    """Verdict, confidence (0..1) and the match (None when unknown)."""

    verdict: Verdict
    confidence: float
    match: Match | None = None
    # The comparer the segments went through (None when nothing was compared).
    comparer: Chosen | None = None
    findings: list[Finding] = field(default_factory=list)
    # For `unknown`: how many of the clip's usable frames the nearest candidate matched.
    nearest: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "verdict": self.verdict,
            "confidence": _r(self.confidence),
            "match": None if self.match is None else self.match.to_json(),
            "findings": [f.to_json() for f in self.findings],
        }
        if self.verdict == "unknown":
            out["nearest"] = self.nearest
        return out


def _r(value: float) -> float:
    return round(float(value), 3)


def verify_fingerprint(
    query: Fingerprint,
    index: FrameIndex,
    load: Callable[[str], Fingerprint],
    comparer: Comparer | ComparerFactory,
    query_faces: Faces | None = None,
    query_audio: QueryAudio | None = None,
    *,
    pixels: ClipPixels | None = None,
    reframes: bool = True,
    baseline: PdqGridComparer | None = None,
) -> Outcome:
    """Verify a clip's fingerprint against every registered original in `index`.

    `comparer` is one comparer for every original, or a factory that picks one for the chosen
    original (by its fingerprint version, say) and is called once, after alignment. With
    `query_faces` (the clip's face channel) and an original of version 3, every face is compared
    with the original's at the same instant too; with `query_audio` (the clip's sound, possibly
    without a track) and a version 3 original, the sound is compared where the picture aligned.

    When the plain search finds nothing strong and `reframes` is on, the reframe search
    (`provenance.verify.reframe`) looks at the clip mirrored, as a vertical crop, and, given its
    `pixels`, as a picture inside other content or turned by a few degrees. A clip found through
    such a view is compared by `baseline` (a `PdqGridComparer`) on the view's frames, its regions
    are mapped back to the clip's frame, and the view is noted in the findings (`reframed`,
    `mirrored`).
    """
    good = sum(usable(f) for f in query.frames)
    if good == 0 and not (reframes and pixels is not None):
        # Nothing but flat frames: no hash says anything, so no claim either way.
        return Outcome("unknown", 0.2)
    best: tuple[str, Fingerprint, Alignment] | None = None
    # (A frame flat as a whole may still hold a picture: a small dark one inside a dark fill.)
    for candidate in index.search(query, limit=CANDIDATES_ALIGNED) if good else ():
        original = load(candidate.registration_id)
        alignment = align(query, original, scale=candidate.scale)
        if alignment is not None and (best is None or alignment.score > best[2].score):
            best = (candidate.registration_id, original, alignment)
    view, seen = View(), query
    if reframes and (best is None or best[2].matched_frames < REFRAME_SEARCH_BELOW * good):
        found = reframe.search(query, index, load, pixels)
        if (
            found is not None
            and found.alignment.matched_frames >= min(MIN_MATCHED_FRAMES, found.alignment.usable_frames)
            and (best is None or found.alignment.score > reframe.VIEW_MARGIN * best[2].score)
        ):
            best = (found.registration_id, found.original, found.alignment)
            view, seen = found.view, found.query
    if best is None or best[2].matched_frames < min(MIN_MATCHED_FRAMES, max(good, 1)):
        if good == 0:
            return Outcome("unknown", 0.2)
        weak = best is not None
        nearest = {"matched_frames": best[2].matched_frames if best else 0, "usable_frames": good}
        return Outcome("unknown", _unknown_confidence(good, weak), nearest=nearest)
    registration_id, original, alignment = best
    if not view.plain:
        base = baseline or PdqGridComparer()
        chosen = Chosen(
            base.with_view(
                view.geometry(query.width / query.height), view.mask(pixels), resampled=bool(view.degrees)
            ),
            f"{view.name} copy: compared by the frame comparer on the view of the original it shows",
        )
    elif isinstance(comparer, Comparer):
        chosen = Chosen(comparer)
    else:
        chosen = comparer(registration_id, original, query, alignment)
    segments = _segments(seen, original, alignment, chosen.comparer, index, registration_id)
    if not view.plain:
        aspect = query.width / query.height
        segments = [
            replace(s, regions=[view.to_clip(r, aspect) for r in s.regions]) if s.regions else s
            for s in segments
        ]
    findings = _picture_findings(segments)
    findings.extend(
        Finding(kind, "video", alignment.query_range, alignment.original_range, regions, detail)
        for kind, detail, regions in view.notes()
    )
    ranges = [(s.query_start, s.query_end) for s in segments if s.tampered]
    original_faces = original.face_channel()
    if query_faces is not None and original_faces is not None and view.plain:
        events = compare_faces(
            query_faces, original_faces, [f.t for f in query.frames], alignment.mapped, QUERY_FACE_STEP
        )
        segments = [_with_faces(s, events) for s in segments]
        findings.extend(_face_finding(e) for e in events)
        ranges.extend(e.query_range for e in events)
    original_audio = original.audio_channel()
    audio = None
    if query_audio is not None and original_audio is not None:
        audio = compare_audio(
            query_audio,
            original_audio,
            [f.t for f in query.frames],
            alignment.mapped,
            alignment.run,
            1.0 / query.sample_fps,
            alignment.query_range,
        )
        findings.extend(_audio_finding(e) for e in audio.events)
        ranges.extend(audio.tampered_ranges)
    findings.sort(key=lambda f: f.query_range)
    tampered_ranges = merge_ranges(ranges)
    strength = _match_strength(alignment, alignment.usable_frames or good)
    # The sound's windows weigh in the confidence like the picture's segments.
    distances = [(s.distance, s.tampered) for s in segments]
    distances += [(w.distance, w.tampered) for w in audio.windows] if audio is not None else []
    if tampered_ranges:
        clarity = max((_tamper_clarity(d) for d, flagged in distances if flagged), default=1.0)
        verdict: Verdict = "tampered"
    else:
        clarity = min(1.0, max(0.0, (0.5 - max(d for d, _ in distances)) / 0.5))
        verdict = "authentic"
    confidence = 0.5 + 0.5 * strength * (0.5 + 0.5 * clarity)
    match = Match(
        registration_id=registration_id,
        query_range=alignment.query_range,
        original_range=alignment.original_range,
        similarity=_similarity(segments),
        segments=segments,
        tampered_ranges=tampered_ranges,
        audio=audio,
    )
    return Outcome(verdict, confidence, match, chosen, findings)


def _audio_finding(event: AudioEvent) -> Finding:
    return Finding(event.kind, "audio", event.query_range, event.original_range, [], event.detail)


def _with_faces(segment: Segment, events: Sequence[FaceEvent]) -> Segment:
    """The segment flagged, with the face boxes as regions, where a face event overlaps it."""
    touching = [
        e for e in events if e.query_range[0] < segment.query_end and e.query_range[1] > segment.query_start
    ]
    if not touching:
        return segment
    regions = [*segment.regions, *([*e.region] for e in touching)]
    return replace(segment, tampered=True, distance=max(segment.distance, FACE_DISTANCE), regions=regions)


def _face_finding(event: FaceEvent) -> Finding:
    if event.kind == "face_swap":
        detail = (
            f"another person's face (identity distance {event.identity_distance:.2f}, over {SWAP_IDENTITY:g})"
        )
    else:
        detail = (
            f"the mouth or eyes differ from the original's (descriptor distance {event.thumb_distance:.0f})"
        )
    return Finding(event.kind, "video", event.query_range, event.original_range, [[*event.region]], detail)


def _picture_findings(segments: Sequence[Segment]) -> list[Finding]:
    """The picture's changes by kind: stretches from other footage, cuts, and edited regions."""
    findings: list[Finding] = []
    for segment in segments:
        if not segment.tampered:
            continue
        original_range = (
            None
            if segment.original_start is None or segment.original_end is None
            else (segment.original_start, segment.original_end)
        )
        if original_range is None:
            kind = "splice" if segment.other_registration_id else "insert"
            detail = (
                f"shows registered original {segment.other_registration_id}"
                if segment.other_registration_id
                else "shows footage that is not in the original"
            )
        elif not segment.regions:
            kind, detail = "cut", "the clip jumps across part of the original"
        else:
            kind, detail = "region_edit", f"{len(segment.regions)} changed region(s) of the picture"
        last = findings[-1] if findings else None
        if last is not None and last.kind == kind and abs(last.query_range[1] - segment.query_start) < 1e-6:
            merged_original = (
                None
                if last.original_range is None or original_range is None
                else (last.original_range[0], original_range[1])
            )
            findings[-1] = replace(
                last,
                query_range=(last.query_range[0], segment.query_end),
                original_range=merged_original,
                regions=last.regions + [r for r in segment.regions if r not in last.regions],
            )
        else:
            findings.append(
                Finding(
                    kind,
                    "video",
                    (segment.query_start, segment.query_end),
                    original_range,
                    list(segment.regions),
                    detail,
                )
            )
    return findings


def _unknown_confidence(usable_frames: int, weak_match: bool) -> float:
    """More usable frames that match nothing make `unknown` surer; a weak partial match less so."""
    sure = 0.5 + 0.5 * (1 - math.exp(-usable_frames / 4))
    return sure * (0.7 if weak_match else 1.0)


def _match_strength(alignment: Alignment, usable_frames: int) -> float:
    """0..1: how closely and how many of the clip's frames match the original."""
    closeness = float(np.mean([1 - p.distance / (MATCH_DISTANCE + 1) for p in alignment.chain]))
    return closeness * min(1.0, alignment.matched_frames / min(4, usable_frames))


def _tamper_clarity(distance: float) -> float:
    return min(1.0, max(0.0, (distance - 0.5) / 0.5)) if distance < 1 else 1.0


def _similarity(segments: Sequence[Segment]) -> float:
    """1 - the duration-weighted mean distance of the segments (a photo's single segment counts 1)."""
    weights = [max(s.query_end - s.query_start, 0.0) for s in segments]
    if sum(weights) <= 0:
        weights = [1.0] * len(segments)
    mean = sum(w * s.distance for w, s in zip(weights, segments, strict=True)) / sum(weights)
    return max(0.0, 1.0 - mean)


def _chunks(
    first: int, stop: int, size: int, cut_before: bool, cut_after: bool
) -> list[tuple[int, int, bool]]:
    """Split frames [first, stop) into ~`size` pieces; half-size pieces next to a cut, marked True."""
    half = max(1, size // 2)
    pieces: list[tuple[int, int, bool]] = []
    head: tuple[int, int, bool] | None = None
    tail: tuple[int, int, bool] | None = None
    if cut_before and stop - first > 0:
        head = (first, min(stop, first + half), True)
        first = head[1]
    if cut_after and stop - first > 0:
        tail = (max(first, stop - half), stop, True)
        stop = tail[0]
    if stop > first:
        count = max(1, round((stop - first) / size))
        bounds = np.linspace(first, stop, count + 1).round().astype(int)
        pieces = [(int(a), int(b), False) for a, b in itertools.pairwise(bounds) if b > a]
    return [p for p in (head, *pieces, tail) if p is not None]


def _blocks(alignment: Alignment) -> list[tuple[int, int, int | None]]:
    """Maximal stretches of clip frames with the same run (None: no place in the original)."""
    blocks: list[tuple[int, int, int | None]] = []
    for i, run in enumerate(alignment.run):
        if blocks and blocks[-1][2] == run:
            blocks[-1] = (blocks[-1][0], i + 1, run)
        else:
            blocks.append((i, i + 1, run))
    return blocks


def _segments(
    query: Fingerprint,
    original: Fingerprint,
    alignment: Alignment,
    comparer: Comparer,
    index: FrameIndex,
    registration_id: str,
) -> list[Segment]:
    frames = query.frames
    times = [f.t for f in frames]
    step = 1.0 / query.sample_fps
    size = max(1, round(SEGMENT_SECONDS * query.sample_fps))
    jumps: dict[tuple[int | None, int | None], float] = {
        (b.before_run, b.after_run): b.jump for b in alignment.breaks
    }
    blocks = _blocks(alignment)

    def time_of(i: int) -> float:
        """Start of clip frame i's stretch; past the last frame, the clip's end."""
        return times[i] if i < len(frames) else _end(times[i - 1], step, query)

    def compare(a: int, b: int) -> SegmentComparison:
        o_times = [t for t in alignment.mapped[a:b] if t is not None]
        return comparer.compare(
            [_placed(frames[i], t) for i, t in zip(range(a, b), o_times, strict=True)],
            _span(original, min(o_times), max(o_times)),
        )

    def placed(piece: _Piece) -> Segment:
        assert piece.result is not None
        o_times = [t for t in alignment.mapped[piece.a : piece.b] if t is not None]
        distance, tampered = piece.result.distance, piece.result.tampered
        if piece.kind == "cut":
            distance = max(distance, min(1.0, 0.5 + CUT_DISTANCE_PER_SECOND * piece.jump))
            tampered = True
        return Segment(
            query_start=time_of(piece.a),
            query_end=time_of(piece.b),
            original_start=min(o_times),
            original_end=_end(max(o_times), step, original),
            distance=distance,
            tampered=tampered,
            regions=piece.result.regions,
        )

    def halves(piece: _Piece) -> tuple[_Piece, _Piece]:
        middle = (piece.a + piece.b) // 2
        return (
            _Piece(piece.a, middle, "compared", compare(piece.a, middle)),
            _Piece(middle, piece.b, "compared", compare(middle, piece.b)),
        )

    def refine(piece: _Piece) -> list[_Piece]:
        """Narrow a flagged stretch to the half that differs, when the other half is clearly clean."""
        if piece.b - piece.a < 2:
            return [piece]
        left, right = halves(piece)
        if left.flagged and not right.flagged and right.distance <= CLEARLY_CLEAN:
            return [*refine(left), right]
        if right.flagged and not left.flagged and left.distance <= CLEARLY_CLEAN:
            return [left, *refine(right)]
        return [piece]

    def grow(piece: _Piece, towards_end: bool) -> list[_Piece]:
        """Split off the half of a clean stretch that borders a flagged one, if that half differs."""
        if piece.b - piece.a < 2:
            return [piece]
        left, right = halves(piece)
        return [left, right] if (right if towards_end else left).flagged else [piece]

    pieces: list[_Piece] = []
    for k, (first, stop, run) in enumerate(blocks):
        # A cut: a jump between two runs with no unplaced frames between them.
        jump_before = jumps.get((blocks[k - 1][2], run)) if k > 0 and run is not None else None
        jump_after = jumps.get((run, blocks[k + 1][2])) if k + 1 < len(blocks) and run is not None else None
        for a, b, at_cut in _chunks(first, stop, size, jump_before is not None, jump_after is not None):
            if run is None:
                pieces.append(_Piece(a, b, "foreign"))
                continue
            result = compare(a, b)
            hashes_match = any(
                alignment.distances[i, j] <= MATCH_DISTANCE
                for i, j in zip(range(a, b), alignment.paired[a:b], strict=True)
                if j is not None
            )
            area = sum(w * h for _, _, w, h in result.regions)
            if result.tampered and not hashes_match and area >= FOREIGN_AREA:
                pieces.append(_Piece(a, b, "foreign"))
            elif at_cut:
                jumps_here = [
                    jump
                    for jump, touches in ((jump_before, a == first), (jump_after, b == stop))
                    if jump is not None and touches
                ]
                pieces.append(_Piece(a, b, "cut", result, max(map(abs, jumps_here), default=0.0)))
            else:
                pieces.append(_Piece(a, b, "compared", result))
    # Sharpen the edges of what the comparer flagged: ~1 s pieces are coarse in time.
    sharpened: list[_Piece] = []
    for k, piece in enumerate(pieces):
        before = pieces[k - 1] if k > 0 else None
        after = pieces[k + 1] if k + 1 < len(pieces) else None
        if piece.kind != "compared":
            sharpened.append(piece)
        elif piece.flagged:
            sharpened.extend(refine(piece))
        elif after is not None and after.kind == "compared" and after.flagged:
            sharpened.extend(grow(piece, towards_end=True))
        elif before is not None and before.kind == "compared" and before.flagged:
            sharpened.extend(grow(piece, towards_end=False))
        else:
            sharpened.append(piece)
    return [
        _foreign(frames, p.a, p.b, time_of(p.a), time_of(p.b), index, registration_id)
        if p.kind == "foreign"
        else placed(p)
        for p in sharpened
    ]


@dataclass
class _Piece:
    """A stretch [a, b) of clip frames on its way to becoming a `Segment`."""

    a: int
    b: int
    kind: Literal["foreign", "cut", "compared"]
    result: SegmentComparison | None = None
    jump: float = 0.0

    @property
    def flagged(self) -> bool:
        return self.result is not None and self.result.tampered

    @property
    def distance(self) -> float:
        return self.result.distance if self.result is not None else 1.0


def _placed(frame: FrameHash, t: float) -> PlacedFrame:
    return PlacedFrame(t=t, pdq=frame.pdq, quality=frame.quality, grid=frame.grid, clip_t=frame.t)


def _span(original: Fingerprint, first: float, last: float) -> list[FrameHash]:
    """The original's frames from `first` to `last` seconds, plus the one before and the one after."""
    times = np.array([f.t for f in original.frames])
    lo = max(0, int(np.searchsorted(times, first - 1e-3)) - 1)
    hi = min(len(times), int(np.searchsorted(times, last + 1e-3, side="right")) + 1)
    return list(original.frames[lo:hi])


def _end(last_t: float, step: float, fingerprint: Fingerprint) -> float:
    if fingerprint.kind == "image":
        return last_t
    end = last_t + step
    return min(end, fingerprint.duration) if fingerprint.duration > 0 else end


def _foreign(
    frames: Sequence[FrameHash],
    a: int,
    b: int,
    start: float,
    end: float,
    index: FrameIndex,
    registration_id: str,
) -> Segment:
    """A stretch with no counterpart in the original: say which other original it shows, if any."""
    others = index.search_frames(frames[a:b], list(range(a, b)), limit=1, exclude=[registration_id])
    return Segment(
        query_start=start,
        query_end=end,
        original_start=None,
        original_end=None,
        distance=1.0,
        tampered=True,
        regions=[],
        other_registration_id=others[0].registration_id if others else None,
    )
