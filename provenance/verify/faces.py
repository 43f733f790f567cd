"""The face channel of verification: each face of the clip against the original's at the same instant.

The alignment says which instant of the original each sampled frame of the clip shows. There,
every face of the clip is paired with the original's face in the same place, and two things are
asked of the pair: is it the same person (identity distance), and do the mouth and eyes look the
same (thumbnail distance, the smallest against the original's two nearest instants, since the
clip's instant falls between the original's)? A different person is a `face_swap`; the same
person with a changed mouth or eyes is a `face_edit`. One odd instant is noise (a blink caught
half a frame apart); an event needs `MIN_INSTANTS` in a row of the same face.

Thresholds, on dlib's metric (the same person re-encoded at 64 kbit/s, halved or graded sat at
0.2-0.52 on the carphone clip; swaps at 0.67-0.79) and on the thumbnails (benign copies up to
~10, swaps 13-30), leave a margin on both sides; they are not tuned to one clip's optimum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from provenance.faces import Face, Faces, identity_distance, thumb_distance

FaceKind = Literal["face_swap", "face_edit"]

# dlib's own same-person boundary.
SWAP_IDENTITY = 0.6
# Mouth or eye thumbnails this far apart (mean absolute difference of normalised values).
EDIT_THUMB = 15.0
MIN_INSTANTS = 2
# A clip face pairs with the original face whose centre is nearest, within this share of the frame.
PAIR_DISTANCE = 0.25
# The original's instants considered for a clip instant: its nearest ones within this many seconds.
NEAR_S = 0.3


@dataclass(frozen=True)
class FaceEvent:
    """Consecutive instants where one face of the clip differs from the original's."""

    kind: FaceKind
    query_range: tuple[float, float]
    original_range: tuple[float, float]
    # Union of the clip face's boxes over the event, normalised [x, y, w, h].
    region: tuple[float, float, float, float]
    identity_distance: float | None
    thumb_distance: float


@dataclass(frozen=True)
class _Evidence:
    t: float
    original_t: float
    face: Face
    kind: FaceKind | None
    identity: float | None
    thumb: float


def compare_faces(
    query: Faces,
    original: Faces,
    query_times: Sequence[float],
    mapped: Sequence[float | None],
    step: float,
) -> list[FaceEvent]:
    """Face events of the clip: `mapped[i]` is the original time of the clip frame at `query_times[i]`."""
    if query.model != original.model or not original.instants:
        return []
    index = {round(t * 1000): i for i, t in enumerate(query_times)}
    by_track: dict[int, list[_Evidence]] = {}
    for t in query.instants:
        i = index.get(round(t * 1000))
        original_t = mapped[i] if i is not None else None
        if original_t is None:
            continue  # shows nothing of the original: the picture channel reports it
        near = [s for s in original.nearest_instants(original_t, 2) if abs(s - original_t) <= NEAR_S]
        if not near:
            continue
        candidates = [f for f in original.faces if any(abs(f.t - s) < 1e-6 for s in near)]
        for face in query.at(t, 1e-6):
            evidence = _judge(face, original_t, candidates, original)
            if evidence is not None:
                by_track.setdefault(face.track, []).append(evidence)
    events = []
    for evidences in by_track.values():
        events.extend(_events(evidences, step))
    return sorted(events, key=lambda e: e.query_range)


def _judge(face: Face, original_t: float, candidates: list[Face], original: Faces) -> _Evidence | None:
    """How one clip face compares with the original face in its place (None: no face there)."""
    if not candidates:
        return None
    centre = _centre(face.box)
    nearest = min(candidates, key=lambda f: float(np.hypot(*np.subtract(_centre(f.box), centre))))
    if float(np.hypot(*np.subtract(_centre(nearest.box), centre))) > PAIR_DISTANCE:
        return None
    same_track = [f for f in candidates if f.track == nearest.track]
    thumb = min(
        max(thumb_distance(face.mouth, f.mouth), thumb_distance(face.eyes, f.eyes)) for f in same_track
    )
    identity = None
    known = _identity_near(original, nearest.track, original_t)
    if face.identity is not None and known is not None:
        identity = identity_distance(face.identity, known)
    kind: FaceKind | None = None
    if identity is not None and identity >= SWAP_IDENTITY:
        kind = "face_swap"
    elif thumb >= EDIT_THUMB:
        kind = "face_edit"
    return _Evidence(face.t, original_t, face, kind, identity, thumb)


def _identity_near(original: Faces, track: int, t: float) -> np.ndarray | None:
    """The original track's identity taken nearest in time to `t`."""
    known = [f for f in original.faces if f.track == track and f.identity is not None]
    if not known:
        return None
    identity = min(known, key=lambda f: abs(f.t - t)).identity
    return identity


def _events(evidences: list[_Evidence], step: float) -> list[FaceEvent]:
    """Runs of at least `MIN_INSTANTS` consecutive flagged instants of one track."""
    events = []
    run: list[_Evidence] = []
    for evidence in [*sorted(evidences, key=lambda e: e.t), None]:
        if evidence is not None and evidence.kind is not None:
            run.append(evidence)
            continue
        if len(run) >= MIN_INSTANTS:
            events.append(_event(run, step))
        run = []
    return events


def _event(run: list[_Evidence], step: float) -> FaceEvent:
    kind: FaceKind = "face_swap" if any(e.kind == "face_swap" for e in run) else "face_edit"
    identities = [e.identity for e in run if e.identity is not None]
    x0 = min(e.face.box[0] for e in run)
    y0 = min(e.face.box[1] for e in run)
    x1 = max(e.face.box[0] + e.face.box[2] for e in run)
    y1 = max(e.face.box[1] + e.face.box[3] for e in run)
    return FaceEvent(
        kind=kind,
        query_range=(run[0].t, run[-1].t + step),
        original_range=(min(e.original_t for e in run), max(e.original_t for e in run) + step),
        region=(x0, y0, x1 - x0, y1 - y0),
        identity_distance=max(identities) if identities else None,
        thumb_distance=max(e.thumb for e in run),
    )


def _centre(box: tuple[float, float, float, float]) -> tuple[float, float]:
    return box[0] + box[2] / 2, box[1] + box[3] / 2
