"""The audio channel of verification: the clip's sound against the original's, where the picture says.

The picture's alignment says which instant of the original each stretch of the clip shows (a
steady run maps clip time t to t + c). The sound is expected at the same instant, give or take a
constant offset between sound and picture (an editor's slip, a container's priming delay), so the
sound is compared in ~0.5 s windows every 0.25 s (`WINDOW`, `STRIDE` frames of 25 ms) at every lag
within `MAX_LAG_S` of the picture's instant, in steps of a quarter frame (the clip's frames are
taken at the phase that lines up with the original's, so a lag need not be a whole frame).

A window's cost at a lag is the share of differing sub-fingerprint bits over the frames that are
loud on either side; two silent windows cost nothing (silence has no stable bits, and agrees at any
lag); sound against silence costs `PRESENCE_COST`. A Viterbi path through the windows, whose states
are the lags and one state *unmatched* (cost `UNMATCHED_COST` a window), keeps one lag unless the
evidence pays `JUMP_COST` to change it, and enters or leaves *unmatched* for `SWITCH_COST`: so a
constant offset is found wherever the sound is, single noisy windows are absorbed, and a stretch of
other sound is one run of unmatched windows. Then:

- unmatched windows are `audio_replaced` where both sides have sound, `audio_removed` where the
  original has sound and the clip has silence (muted), `audio_inserted` where the clip has sound
  and the original silence;
- a lag that jumps between matched windows is a cut (`audio_removed`, the clip skips sound of the
  original) or a repeat (`audio_inserted`);
- the path's typical lag is the offset between sound and picture: `audio_offset`, a note, when at
  least `OFFSET_NOTE_S` (the picture's own alignment is only good to about an eighth of a second);
- a clip without sound (no track, or nothing above silence) of an original with sound gets the note
  `audio_missing`; sound where the original had no track at all is `audio_inserted`.

Stretches of the clip that show nothing of the original (the picture channel reports them) are not
judged. Thresholds were chosen on the validation split of `provenance eval audio` (docs/evaluation.md).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from provenance.audio import (
    BITS,
    FRAME_S,
    HOP,
    HOP_S,
    AudioTrack,
    QueryAudio,
    frame_times,
    level_db,
    loud_frames,
    loud_level,
)
from provenance.verify.align import span_json

AudioKind = Literal["audio_replaced", "audio_removed", "audio_inserted", "audio_offset", "audio_missing"]
TAMPER_KINDS: frozenset[str] = frozenset({"audio_replaced", "audio_removed", "audio_inserted"})
State = Literal["match", "silent", "replaced", "removed", "inserted", "unplaced"]

WINDOW = 20  # frames of 25 ms: 0.5 s
STRIDE = 10  # 0.25 s
PHASES = 4  # the clip's frames are taken at quarter-frame phases: lags in steps of 6.25 ms
MAX_LAG_S = 1.25  # a constant offset of up to 1 s, plus the picture alignment's own error
# Chosen on the validation split of `provenance eval audio`: every edit caught and no benign copy
# flagged from 0.10 to 0.28 (a false positive at 0.08, a missed edit at 0.30); the middle of that range.
UNMATCHED_COST = 0.20
SWITCH_COST = 0.15
JUMP_COST = 1.5
DRIFT_COST = 0.02
PRESENCE_COST = 0.5
# A window is silent on a side with fewer loud frames than this, and counts as sound against
# silence when the other side has at least half a window of them.
QUIET_FRAMES = 3
# A change of lag between matched windows larger than this is a cut or a repeat, not drift.
JUMP_S = 0.15
# An unmatched run is named after most of its frames: muted (the original loud, the clip quiet),
# added (the reverse) or changed (both loud, more than this share of their bits differing).
CHANGED_FRAME = 1 / 3
# Two changed stretches of one kind with at most this much silence between them are one finding.
MERGE_SILENCE_S = 0.75
OFFSET_NOTE_S = 0.2

_LAG_STEP_S = HOP_S / PHASES
_LAGS = round(MAX_LAG_S / _LAG_STEP_S)
_SPEED_ONE = 0.03  # a run whose fitted speed is within this of 1 is taken at speed 1 exactly


@dataclass(frozen=True)
class AudioEvent:
    kind: AudioKind
    query_range: tuple[float, float]
    original_range: tuple[float, float] | None
    detail: str


@dataclass(frozen=True)
class AudioWindow:
    """A stretch of the clip (0.25 s, tiling it) and how its sound compares: the report's timeline."""

    query_start: float
    query_end: float
    original_start: float | None
    original_end: float | None
    distance: float
    state: State

    @property
    def tampered(self) -> bool:
        return self.state in ("replaced", "removed", "inserted")

    def to_json(self) -> dict[str, Any]:
        return {
            **span_json(self),
            "state": self.state,
        }


@dataclass(frozen=True)
class AudioComparison:
    """The audio channel's answer: events (findings), the lag found, and the windows for a timeline."""

    events: list[AudioEvent]
    offset: float | None
    windows: list[AudioWindow]

    @property
    def tampered_ranges(self) -> list[tuple[float, float]]:
        return [e.query_range for e in self.events if e.kind in TAMPER_KINDS]

    def to_json(self) -> dict[str, Any]:
        return {
            "offset": None if self.offset is None else _r(self.offset),
            "segments": [w.to_json() for w in self.windows],
        }


def _r(value: float) -> float:
    return round(float(value), 3)


@dataclass(frozen=True)
class _Run:
    """A steady stretch of the picture's alignment: clip time t shows original time slope * t + intercept."""

    start: float
    end: float
    slope: float
    intercept: float

    def at(self, t: float) -> float:
        return self.slope * t + self.intercept


def picture_runs(
    query_times: Sequence[float], mapped: Sequence[float | None], runs: Sequence[int | None], step: float
) -> list[_Run]:
    """The alignment's runs as lines: speed 1 and the median offset when the fit is near 1."""
    by_run: dict[int, list[tuple[float, float]]] = {}
    for t, m, r in zip(query_times, mapped, runs, strict=True):
        if m is not None and r is not None:
            by_run.setdefault(r, []).append((t, m))
    lines = []
    for points in by_run.values():
        ts = np.array([p[0] for p in points])
        ms = np.array([p[1] for p in points])
        slope = 1.0
        if len(points) >= 3 and ts[-1] - ts[0] > 1.0:
            fitted = float(np.polyfit(ts, ms, 1)[0])
            if abs(fitted - 1.0) > _SPEED_ONE:
                slope = fitted
        intercept = float(np.median(ms - slope * ts))
        lines.append(_Run(float(ts[0]) - step / 2, float(ts[-1]) + step, slope, intercept))
    return sorted(lines, key=lambda r: r.start)


def _run_at(lines: Sequence[_Run], t: float) -> _Run | None:
    for line in lines:
        if line.start <= t < line.end:
            return line
    return None


def compare_audio(
    query: QueryAudio | None,
    original: AudioTrack,
    query_times: Sequence[float],
    mapped: Sequence[float | None],
    runs: Sequence[int | None],
    step: float,
    query_range: tuple[float, float],
    threshold: float = UNMATCHED_COST,
) -> AudioComparison:
    """How the clip's sound differs from the original's (see the module docstring); `threshold`
    is the unmatched state's cost (the evaluation sweeps it on its validation split)."""
    heard_original = original.heard()
    if query is None or not query.present:
        if heard_original:
            return AudioComparison([_missing(query_range, "the clip has no sound track")], None, [])
        return AudioComparison([], None, [])
    bits0, levels0 = query.phase(0)
    level_db0 = level_db(levels0)
    if not len(bits0) or not loud_frames(level_db0).any():
        if heard_original:
            return AudioComparison([_missing(query_range, "the clip's sound track is silent")], None, [])
        return AudioComparison([], None, [])
    if not heard_original:
        loud_times = frame_times(query.start, len(bits0))[loud_frames(level_db0)]
        span = (
            max(query_range[0], float(loud_times[0]) - FRAME_S / 2),
            min(query_range[1], float(loud_times[-1]) + FRAME_S / 2),
        )
        detail = "the original has no sound track" if not original.present else "the original is silent here"
        return AudioComparison([AudioEvent("audio_inserted", span, None, detail)], None, [])
    lines = picture_runs(query_times, mapped, runs, step)
    return _Comparison(query, original, lines, threshold).run()


def _missing(query_range: tuple[float, float], why: str) -> AudioEvent:
    return AudioEvent("audio_missing", query_range, None, f"{why}; the original has sound")


class _Comparison:
    def __init__(
        self,
        query: QueryAudio,
        original: AudioTrack,
        lines: list[_Run],
        threshold: float,
    ) -> None:
        self.threshold = threshold
        self.query = query
        self.original = original
        self.lines = lines
        self.o_bits = original.bits
        self.o_loud = original.loud()
        # The clip's frames at each phase, padded to one length; loudness judged against the
        # phase-0 track's own reference level (the clip may be louder or quieter as a whole).
        phases = [query.phase(p * HOP // PHASES) for p in range(PHASES)]
        count = len(phases[0][0])
        self.count = count
        self.q_bits = np.zeros((PHASES, count), np.uint32)
        self.q_loud = np.zeros((PHASES, count), bool)
        floor = loud_level(level_db(phases[0][1]))
        for p, (bits, levels) in enumerate(phases):
            n = min(count, len(bits))
            self.q_bits[p, :n] = bits[:n]
            self.q_loud[p, :n] = level_db(levels[:n]) >= floor
        self.q_times = frame_times(query.start, count)

    def windows(self) -> list[int]:
        if self.count < WINDOW:
            return [0] if self.count >= QUIET_FRAMES else []
        starts = list(range(0, self.count - WINDOW + 1, STRIDE))
        if starts[-1] + WINDOW < self.count:
            starts.append(self.count - WINDOW)
        return starts

    def run(self) -> AudioComparison:
        starts = self.windows()
        if not starts:
            return AudioComparison([], None, [])
        size = min(WINDOW, self.count)
        centres = [float(self.q_times[s : s + size].mean()) for s in starts]
        bounds = _tiles(
            centres,
            float(self.q_times[starts[0]]) - HOP_S / 2,
            float(self.q_times[starts[-1] + size - 1]) + HOP_S / 2,
        )
        lags = np.arange(-_LAGS, _LAGS + 1)
        shape = (len(starts), len(lags))
        costs, bers = np.zeros(shape), np.full(shape, np.nan)
        o_loud, valid = np.zeros(shape, int), np.zeros(shape, int)
        q_loud = np.array([int(self.q_loud[0, first : first + size].sum()) for first in starts])
        offsets: list[float | None] = []
        for w, (first, centre) in enumerate(zip(starts, centres, strict=True)):
            line = _run_at(self.lines, centre)
            offsets.append(None if line is None else line.at(centre) - centre)
            if line is not None:
                costs[w], bers[w], o_loud[w], valid[w] = self._window_costs(
                    first, size, line.at(centre) - centre, lags, int(q_loud[w])
                )
        placed = np.array([o is not None for o in offsets])
        path = _viterbi(costs, placed, self.threshold)
        informative = [
            w
            for w in range(len(starts))
            if placed[w] and path[w] >= 0 and q_loud[w] >= QUIET_FRAMES and o_loud[w, path[w]] >= QUIET_FRAMES
        ]
        typical = int(np.median([path[w] for w in informative])) if informative else _LAGS
        offset = -float(lags[typical]) * _LAG_STEP_S if informative else None
        # Each window's lag: its own on the path, the typical one where it matched nothing.
        chosen = [int(path[w]) if path[w] >= 0 else typical for w in range(len(starts))]
        states: list[State] = []
        for w in range(len(starts)):
            if not placed[w] or valid[w, chosen[w]] < size // 2:
                states.append("unplaced")  # no picture to place it, or past the original's sound
            elif path[w] < 0:
                states.append("replaced")  # unmatched; its kind is decided per run below
            elif q_loud[w] < QUIET_FRAMES and o_loud[w, chosen[w]] < QUIET_FRAMES:
                states.append("silent")
            else:
                states.append("match")
        for first, stop in _runs([s == "replaced" for s in states]):
            evidence = np.zeros(3, int)
            for w in range(first, stop):
                # The window's middle stride only, so that overlapping windows count a frame once.
                middle = starts[w] + max(0, (size - STRIDE) // 2)
                evidence += self._evidence(middle, min(STRIDE, size), offsets[w] or 0.0, lags[chosen[w]])
            kind: State = ("removed", "inserted", "replaced")[int(np.argmax(evidence))]
            states[first:stop] = [kind] * (stop - first)
        windows = []
        for w, state in enumerate(states):
            shift = None if offsets[w] is None else (offsets[w] or 0.0) + float(lags[chosen[w]]) * _LAG_STEP_S
            a, b = bounds[w]
            windows.append(
                AudioWindow(
                    a,
                    b,
                    None if shift is None else a + shift,
                    None if shift is None else b + shift,
                    _distance(state, float(bers[w, chosen[w]]), self.threshold),
                    state,
                )
            )
        events = [*_events(windows), *self._jumps(path, placed, lags, windows)]
        if offset is not None and abs(offset) >= OFFSET_NOTE_S:
            late = "late" if offset > 0 else "early"
            events.append(
                AudioEvent(
                    "audio_offset",
                    (windows[0].query_start, windows[-1].query_end),
                    None,
                    f"the sound runs {abs(offset):.2f} s {late} against the picture (offset {offset:+.2f} s)",
                )
            )
        return AudioComparison(sorted(events, key=lambda e: e.query_range), offset, windows)

    def _evidence(self, first: int, size: int, video_offset: float, lag: int) -> np.ndarray:
        """Frames of a stretch at one lag that are muted (the original loud, the clip quiet), added
        (the reverse) or changed (both loud, over a third of the bits differing)."""
        errors, q_loud, o_loud, inside = self._aligned(first, size, video_offset, np.array([lag]))
        q_loud &= inside
        return np.array(
            [
                int((o_loud & ~q_loud).sum()),
                int((q_loud & ~o_loud).sum()),
                int((q_loud & o_loud & (errors > BITS * CHANGED_FRAME)).sum()),
            ]
        )

    def _aligned(
        self, first: int, size: int, video_offset: float, lags: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(lags, frames) arrays for clip frames [first, first + size) lined up with the original at
        each lag: differing bits, the clip's loud frames, the original's loud frames, and whether
        the frame falls inside the original's track at all.

        A lag is the picture's offset plus `lags` quarter-frames; the clip's frames are taken at
        the phase that puts their centres on the original's (see `QueryAudio.phase`).
        """
        z = (self.query.start - self.original.start + video_offset + lags * _LAG_STEP_S) / HOP_S
        phase = np.mod(-np.rint(z * PHASES).astype(int), PHASES)
        shift = np.rint(phase / PHASES + z).astype(int)
        rows = np.arange(first, first + size)
        j = rows[None, :] + shift[:, None]
        inside = (j >= 0) & (j < len(self.o_bits))
        jj = np.clip(j, 0, max(0, len(self.o_bits) - 1))
        errors = np.bitwise_count(self.q_bits[phase[:, None], rows[None, :]] ^ self.o_bits[jj])
        q_loud = self.q_loud[phase[:, None], rows[None, :]]
        return errors.astype(np.int64), q_loud, self.o_loud[jj] & inside, inside

    def _window_costs(
        self, first: int, size: int, video_offset: float, lags: np.ndarray, q_loud: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per lag: the window's cost, its bit error rate (NaN: nothing to compare), the original's
        loud frames and the frames that fall inside the original's track."""
        errors, q_loud_frames, o_loud, valid = self._aligned(first, size, video_offset, lags)
        o_count = o_loud.sum(axis=1)
        considered = (o_loud | q_loud_frames) & valid
        n = considered.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            ber = np.where(n > 0, (errors * considered).sum(axis=1) / (BITS * np.maximum(n, 1)), np.nan)
        cost = np.where(np.isnan(ber), 0.0, ber)
        silent = (o_count < QUIET_FRAMES) & (q_loud < QUIET_FRAMES)
        one_sided = ((o_count >= size // 2) & (q_loud < QUIET_FRAMES)) | (
            (q_loud >= size // 2) & (o_count < QUIET_FRAMES)
        )
        cost = np.where(silent, 0.0, np.where(one_sided, PRESENCE_COST, cost))
        # Lags that run the window off the original: nothing to hold against them, nothing for.
        inside = valid.sum(axis=1)
        off = inside < size // 2
        cost = np.where(off, self.threshold, cost)
        return cost, np.where(silent | off, np.nan, ber), o_count, inside

    def _jumps(
        self, path: np.ndarray, placed: np.ndarray, lags: np.ndarray, windows: list[AudioWindow]
    ) -> list[AudioEvent]:
        """Cuts and repeats: the lag changing between two matched windows next to each other."""
        events = []
        for w in range(1, len(path)):
            a, b = path[w - 1], path[w]
            if not (placed[w - 1] and placed[w]) or a < 0 or b < 0:
                continue
            jump = float(lags[b] - lags[a]) * _LAG_STEP_S
            if abs(jump) < JUMP_S:
                continue
            before, after = windows[w - 1], windows[w]
            at = (before.query_end + after.query_start) / 2
            span = (at - STRIDE * HOP_S / 2, at + STRIDE * HOP_S / 2)
            o_at = before.original_end
            original = None if o_at is None else (min(o_at, o_at + jump), max(o_at, o_at + jump))
            if jump > 0:
                events.append(
                    AudioEvent(
                        "audio_removed", span, original, f"the sound skips {jump:.2f} s of the original"
                    )
                )
            else:
                events.append(
                    AudioEvent(
                        "audio_inserted", span, original, f"the sound repeats {-jump:.2f} s of the original"
                    )
                )
        return events


def _tiles(centres: Sequence[float], first: float, last: float) -> list[tuple[float, float]]:
    """Consecutive ranges around window centres, meeting half-way, from `first` to `last`."""
    edges = [first, *((a + b) / 2 for a, b in itertools.pairwise(centres)), last]
    return [(edges[k], edges[k + 1]) for k in range(len(centres))]


def _viterbi(costs: np.ndarray, placed: np.ndarray, threshold: float) -> np.ndarray:
    """Per window the chosen lag index, or -1 for unmatched (see the module docstring)."""
    windows, lags = costs.shape
    unmatched = lags  # the extra state's index
    prior = 0.01 * np.abs(np.arange(lags) - lags // 2) / max(1, lags // 2)
    score = np.append(costs[0] + prior, threshold if placed[0] else 1e3)
    back = np.zeros((windows, lags + 1), dtype=np.int32)
    back[0] = np.arange(lags + 1)
    for w in range(1, windows):
        prev_m = score[:lags]
        best_m = int(np.argmin(prev_m))
        stay = prev_m.copy()
        from_idx = np.arange(lags)
        left = np.full(lags, np.inf)
        left[1:] = prev_m[:-1] + DRIFT_COST
        right = np.full(lags, np.inf)
        right[:-1] = prev_m[1:] + DRIFT_COST
        candidates = np.stack(
            [
                stay,
                left,
                right,
                np.full(lags, prev_m[best_m] + JUMP_COST),
                np.full(lags, score[unmatched] + SWITCH_COST),
            ]
        )
        sources = np.stack(
            [from_idx, from_idx - 1, from_idx + 1, np.full(lags, best_m), np.full(lags, unmatched)]
        )
        pick = np.argmin(candidates, axis=0)
        new_m = candidates[pick, from_idx]
        back[w, :lags] = sources[pick, from_idx]
        to_unmatched = (score[unmatched], prev_m[best_m] + SWITCH_COST)
        back[w, unmatched] = unmatched if to_unmatched[0] <= to_unmatched[1] else best_m
        emission_m = costs[w] if placed[w] else np.zeros(lags)
        emission_u = threshold if placed[w] else 1e3
        score = np.append(new_m + emission_m, min(to_unmatched) + emission_u)
    state = int(np.argmin(score))
    path = np.empty(windows, dtype=np.int64)
    for w in range(windows - 1, -1, -1):
        path[w] = -1 if state == unmatched else state
        state = int(back[w, state])
    return path


def _runs(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """[first, stop) of each run of consecutive True flags."""
    runs, first = [], None
    for k, flag in enumerate([*flags, False]):
        if flag and first is None:
            first = k
        elif not flag and first is not None:
            runs.append((first, k))
            first = None
    return runs


def _distance(state: State, ber: float, threshold: float) -> float:
    """0..1 for the timeline, 0.5 at the threshold: matched windows under it, changed ones over."""
    if state in ("silent", "unplaced"):
        return 0.0
    scaled = 1.0 if math.isnan(ber) else min(1.0, 0.5 * ber / threshold)
    return min(scaled, 0.5) if state == "match" else max(scaled, 0.55)


_KINDS: dict[State, AudioKind] = {
    "replaced": "audio_replaced",
    "removed": "audio_removed",
    "inserted": "audio_inserted",
}
_DETAILS: dict[AudioKind, str] = {
    "audio_replaced": "the clip's sound differs from the original's here",
    "audio_removed": "the original has sound here, the clip silence",
    "audio_inserted": "the clip has sound here, the original silence",
}


def _events(windows: Sequence[AudioWindow]) -> list[AudioEvent]:
    """Each run of changed windows (one kind per run) as one event; two runs of one kind with only
    silence between them (a pause in the speech, unchanged because silent) are one event."""
    runs: list[tuple[int, int]] = []
    for first, stop in _runs([w.tampered for w in windows]):
        if runs:
            last_first, last_stop = runs[-1]
            between = windows[last_stop:first]
            if (
                windows[last_first].state == windows[first].state
                and all(w.state == "silent" for w in between)
                and windows[first].query_start - windows[last_stop - 1].query_end <= MERGE_SILENCE_S
            ):
                runs[-1] = (last_first, stop)
                continue
        runs.append((first, stop))
    events = []
    for first, stop in runs:
        run = windows[first:stop]
        kind = _KINDS[run[0].state]
        starts = [x.original_start for x in run if x.original_start is not None]
        ends = [x.original_end for x in run if x.original_end is not None]
        original = (min(starts), max(ends)) if starts and ends else None
        events.append(AudioEvent(kind, (run[0].query_start, run[-1].query_end), original, _DETAILS[kind]))
    return events
