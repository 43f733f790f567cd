"""Temporal alignment: which seconds of an original each sampled frame of a clip shows.

Both fingerprints sample their own timeline at the same rate (4 fps), so a clip that follows
the original advances through it at speed 1 whatever its frame rate; trimming shifts the
offset, a removed stretch makes it jump forward, an inserted one makes the clip advance while
the original does not. The aligner:

1. computes the Hamming distances of every clip frame to every original frame, taking for each
   pair the smaller of the PDQ distance and the centre-hash distance (at the crop scale the
   index found, so cropped clips align too); pairs within `MATCH_DISTANCE` are anchors, frames
   of low PDQ quality never are;
2. finds the best *monotonic chain* of anchors (both indexes increasing) by dynamic
   programming: each anchor earns 1..2 (by distance), a step between anchors costs a little for
   drifting off speed 1 within `STEP_TOLERANCE` (sampling jitter, dropped frames), and
   `JUMP_COST` for anything larger: a cut or an insert. The chain skips anchors that fit no
   timeline (a static scene matching many frames, a repeated shot) and clip frames that match
   nothing (edited, foreign);
3. splits the chain at jumps into runs and maps every clip frame inside a run to an original
   time by interpolating its anchors, and the frames before the first and after the last run by
   extrapolating at speed 1 while that stays inside the original. Clip frames between two runs
   have no place in the original (`None`).

Each placed clip frame is then paired with the original frame nearest its mapped time (of the
two or three within one sampling step, the one whose hash is closest) for the comparer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from provenance.fingerprint import Fingerprint
from provenance.verify import thumbs
from provenance.verify.index import MATCH_DISTANCE, usable

STEP_TOLERANCE = 0.35
# Per second between anchors: drift a little (a dropped frame), never a second per minute.
DRIFT_TOLERANCE = 0.02
DRIFT_COST = 0.6
JUMP_COST = 2.0
JUMP_SLOPE = 0.1
# Anchors kept per clip frame (its closest original frames) and rows looked back over.
MAX_ANCHORS_PER_FRAME = 16
LOOKBACK_ROWS = 64
# The distance of a pair that cannot match (a frame of low PDQ quality on either side).
NO_MATCH = 1 << 10
_NO_MATCH = NO_MATCH


@dataclass(frozen=True)
class FramePair:
    """A clip frame and an original frame (indexes into each fingerprint's frames)."""

    query_index: int
    original_index: int
    distance: int


@dataclass(frozen=True)
class Break:
    """Where the clip jumps in the original: at `query_time`, by `jump` seconds (< 0: inserted)."""

    query_time: float
    jump: float
    before_run: int
    after_run: int


@dataclass(frozen=True)
class Alignment:
    """A clip laid along one original.

    Per clip frame (same order as the clip's frames): `mapped` original time or None, `run`
    (which steady stretch placed it) or None, and `paired` original frame index or None.
    `chain` holds the anchors the alignment rests on.
    """

    chain: tuple[FramePair, ...]
    mapped: tuple[float | None, ...]
    run: tuple[int | None, ...]
    paired: tuple[int | None, ...]
    breaks: tuple[Break, ...]
    query_range: tuple[float, float]
    original_range: tuple[float, float]
    score: float
    usable_frames: int
    distances: np.ndarray

    @property
    def matched_frames(self) -> int:
        return len(self.chain)

    @property
    def pairs(self) -> list[FramePair]:
        """Every placed clip frame with the original frame it is compared against."""
        return [
            FramePair(i, j, int(self.distances[i, j])) for i, j in enumerate(self.paired) if j is not None
        ]


def distance_matrix(query: Fingerprint, original: Fingerprint, scale: float = 1.0) -> np.ndarray:
    """(clip frames, original frames) hash distances; pairs with an unusable frame get a huge one."""
    pdq = thumbs.hamming_matrix(thumbs.pdq_codes(query.frames), thumbs.pdq_codes(original.frames))
    q_luma = thumbs.luma_thumbnails(query.frames)
    o_centre = thumbs.centre_hashes(original.frames)
    best = pdq
    for s in {1.0, scale}:
        best = np.minimum(best, thumbs.hamming_matrix(thumbs.centre_hashes_of(q_luma, s), o_centre))
    q_ok = np.array([usable(f) for f in query.frames])
    o_ok = np.array([usable(f) for f in original.frames])
    return np.where(q_ok[:, None] & o_ok[None, :], best, _NO_MATCH)


def _tolerance(dq: np.ndarray) -> npt.NDArray[np.floating]:
    tolerance: npt.NDArray[np.floating] = STEP_TOLERANCE + DRIFT_TOLERANCE * np.abs(dq)
    return tolerance


def _chain(
    distances: np.ndarray, qt: np.ndarray, ot: np.ndarray, max_distance: int
) -> tuple[list[int], list[int], float]:
    """Best monotonic chain of anchors: (clip indexes, original indexes, score)."""
    rows: list[int] = []
    cols: list[int] = []
    for i in range(distances.shape[0]):
        row = distances[i]
        candidates = np.flatnonzero(row <= max_distance)
        if len(candidates) > MAX_ANCHORS_PER_FRAME:
            candidates = candidates[np.argsort(row[candidates], kind="stable")[:MAX_ANCHORS_PER_FRAME]]
        for j in np.sort(candidates):
            rows.append(i)
            cols.append(int(j))
    if not rows:
        return [], [], 0.0
    qi, oj = np.asarray(rows), np.asarray(cols)
    weight = 1.0 + (max_distance - distances[qi, oj]) / (max_distance + 1)
    score = np.zeros(len(qi))
    back = np.full(len(qi), -1)
    starts = np.flatnonzero(np.r_[True, qi[1:] != qi[:-1]])
    ends = np.r_[starts[1:], len(qi)]
    for r, (start, end) in enumerate(zip(starts, ends, strict=True)):
        lo = starts[max(0, r - LOOKBACK_ROWS)]
        here = slice(start, end)
        if lo == start:
            score[here] = weight[here]
            continue
        prev = slice(lo, start)
        dq = qt[qi[here]][:, None] - qt[qi[prev]][None, :]
        do = ot[oj[here]][:, None] - ot[oj[prev]][None, :]
        drift = np.abs(do - dq)
        cost = np.where(drift <= _tolerance(dq), DRIFT_COST * drift, JUMP_COST + JUMP_SLOPE * drift)
        value = np.where(oj[here][:, None] > oj[prev][None, :], score[prev][None, :] - cost, -np.inf)
        best = np.argmax(value, axis=1)
        gain = value[np.arange(end - start), best]
        score[here] = weight[here] + np.maximum(gain, 0.0)
        back[here] = np.where(gain > 0, lo + best, -1)
    k = int(np.argmax(score))
    total = float(score[k])
    path: list[int] = []
    while k >= 0:
        path.append(k)
        k = int(back[k])
    path.reverse()
    return [int(qi[p]) for p in path], [int(oj[p]) for p in path], total


def align(
    query: Fingerprint,
    original: Fingerprint,
    *,
    scale: float = 1.0,
    max_distance: int = MATCH_DISTANCE,
    distances: np.ndarray | None = None,
) -> Alignment | None:
    """Lay `query` along `original`; None when not a single frame pair matches.

    `distances` (clip frames x original frames) replaces `distance_matrix` when the caller
    compares the frames its own way (a vertical crop: the strip of the original it shows).
    """
    if distances is None:
        distances = distance_matrix(query, original, scale)
    elif distances.shape != (len(query.frames), len(original.frames)):
        raise ValueError("one distance per pair of clip and original frames")
    qt = np.array([f.t for f in query.frames])
    ot = np.array([f.t for f in original.frames])
    chain_q, chain_o, score = _chain(distances, qt, ot, max_distance)
    if not chain_q:
        return None
    step = 1.0 / query.sample_fps
    # Split the chain into runs at jumps.
    run_starts = [0]
    breaks_at: list[tuple[int, float]] = []
    for k in range(1, len(chain_q)):
        dq = qt[chain_q[k]] - qt[chain_q[k - 1]]
        drift = (ot[chain_o[k]] - ot[chain_o[k - 1]]) - dq
        if abs(drift) > _tolerance(np.asarray(dq)):
            run_starts.append(k)
            breaks_at.append((k, float(drift)))
    run_ends = [*run_starts[1:], len(chain_q)]
    n = len(query.frames)
    mapped: list[float | None] = [None] * n
    run: list[int | None] = [None] * n
    last_run = len(run_starts) - 1
    o_end = float(ot[-1]) + step / 2
    for r, (a, b) in enumerate(zip(run_starts, run_ends, strict=True)):
        anchors_q = qt[chain_q[a:b]]
        anchors_o = ot[chain_o[a:b]]
        first, last = chain_q[a], chain_q[b - 1]
        lo = 0 if r == 0 else first
        hi = n - 1 if r == last_run else last
        for i in range(lo, hi + 1):
            if i < first:
                t = float(anchors_o[0] + qt[i] - anchors_q[0])
            elif i > last:
                t = float(anchors_o[-1] + qt[i] - anchors_q[-1])
            else:
                t = float(np.interp(qt[i], anchors_q, anchors_o))
            if -step / 2 <= t <= o_end:
                mapped[i] = max(0.0, t)
                run[i] = r
    paired = [
        _pair(distances[i], ot, t, step, max_distance) if t is not None else None
        for i, t in enumerate(mapped)
    ]
    breaks = tuple(
        Break(query_time=float(qt[chain_q[k]]), jump=drift, before_run=r, after_run=r + 1)
        for r, (k, drift) in enumerate(breaks_at)
    )
    placed = [i for i in range(n) if mapped[i] is not None]
    times = [t for t in mapped if t is not None]
    q_end = float(qt[placed[-1]]) + step if query.kind == "video" else float(qt[placed[-1]])
    o_stop = max(times) + step if original.kind == "video" else max(times)
    return Alignment(
        chain=tuple(FramePair(i, j, int(distances[i, j])) for i, j in zip(chain_q, chain_o, strict=True)),
        mapped=tuple(mapped),
        run=tuple(run),
        paired=tuple(paired),
        breaks=breaks,
        query_range=(float(qt[placed[0]]), _clip(q_end, query)),
        original_range=(min(times), _clip(o_stop, original)),
        score=score,
        usable_frames=sum(usable(f) for f in query.frames),
        distances=distances,
    )


def _clip(t: float, fingerprint: Fingerprint) -> float:
    """Keep an end time inside the media when its duration is known."""
    return min(t, fingerprint.duration) if fingerprint.duration > 0 else t


def _pair(row: np.ndarray, ot: np.ndarray, t: float, step: float, max_distance: int) -> int:
    """The original frame a clip frame mapped to time `t` is compared with."""
    near = np.flatnonzero(np.abs(ot - t) <= step * 0.75)
    if len(near) == 0:
        return int(np.argmin(np.abs(ot - t)))
    matching = near[row[near] <= max_distance]
    if len(matching):
        return int(matching[np.argmin(row[matching])])
    return int(near[np.argmin(np.abs(ot[near] - t))])


def rounded(value: float) -> float:
    """Seconds and distances as the result JSON carries them: to the millisecond."""
    return round(float(value), 3)


class Span(Protocol):
    """A stretch of the clip and where it lies in the original (None: nowhere)."""

    @property
    def query_start(self) -> float: ...
    @property
    def query_end(self) -> float: ...
    @property
    def original_start(self) -> float | None: ...
    @property
    def original_end(self) -> float | None: ...
    @property
    def distance(self) -> float: ...
    @property
    def tampered(self) -> bool: ...


def span_json(span: Span) -> dict[str, Any]:
    """The shape the picture's segments and the sound's windows share in the result JSON."""
    return {
        "query_start": rounded(span.query_start),
        "query_end": rounded(span.query_end),
        "original_start": None if span.original_start is None else rounded(span.original_start),
        "original_end": None if span.original_end is None else rounded(span.original_end),
        "distance": rounded(span.distance),
        "tampered": span.tampered,
    }
