"""The learned (triplet-network) comparer behind the `Comparer` protocol: an adapter to `detector.comparer`.

Registration stores, in fingerprint version 2, one quantised embedding per ~1 s window of the
original (`detector.comparer`). Verification never needs the original's pixels: the clip's own
frames, kept from the decode that fingerprints it (`ClipFrames`, 8 fps, 64x64 squares), are
placed on the original's timeline by the alignment and embedded against each stored window the
segment covers; the windows' verdicts and flagged cells become the segment's distance and
regions (when and where).

Placing the 8 fps frames: a clip frame between two of the fingerprint's 4 fps frames takes the
mapping of the one before it at speed 1. The rest is `detector.comparer`'s one per-window path,
which the held-out evaluation runs too: per alignment run one timing offset and one crop and
tone (`TripletComparer.run`), per stored window the run's clip frames around it, a second look
at every offset when the run's timing flags it (`TripletComparer.judge`). A window the clip
covers only in part (it starts or ends inside it, or a cut or an insert does) cannot be matched
fairly by an embedding of fewer frames: when such a window is flagged (`Judgement.deferred`),
the segment is judged by the PDQ/grid comparer, frame by frame.

Which comparer a verification uses is `provenance.verify.policy`'s choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from frames.regions import regions_of
from provenance.fingerprint import Fingerprint, FrameHash
from provenance.verify.align import Alignment
from provenance.verify.compare import Comparer, PdqGridComparer, PlacedFrame, SegmentComparison

if TYPE_CHECKING:
    from detector.comparer import Judgement, Run, TripletComparer
    from detector.model import SegmentEmbedding


class ClipFrames:
    """The clip's frames as the network sees them (64x64, bars stripped), on the clip's clock."""

    def __init__(self) -> None:
        from detector.inputs import prepare_frame

        self._prepare = prepare_frame
        self.times: list[float] = []
        self.frames: list[np.ndarray] = []

    def add(self, t: float, rgb: np.ndarray) -> None:
        self.times.append(float(t))
        self.frames.append(self._prepare(rgb))

    def __len__(self) -> int:
        return len(self.times)


class LearnedComparer:
    """Compares a clip's frames with the stored segment embeddings of one original."""

    name = "triplet"

    def __init__(
        self,
        triplet: TripletComparer,
        segments: Sequence[SegmentEmbedding],
        clip: ClipFrames,
        query: Fingerprint,
        alignment: Alignment,
        fallback: Comparer | None = None,
    ) -> None:
        self.triplet = triplet
        self.fallback: Comparer = fallback or PdqGridComparer()
        self.version = triplet.version
        self.segments = list(segments)
        self.clip = clip
        self.query = query
        self.alignment = alignment
        self._clip_times = np.array(clip.times)
        self._query_times = np.array([f.t for f in query.frames])
        self._runs: dict[int | None, Run] = {}
        self._results: dict[tuple[int | None, int], Judgement | None] = {}

    def _placed(self, indexes: Sequence[int]) -> list[tuple[float, np.ndarray]]:
        """The clip's dense frames from fingerprint frame min(indexes) up to the one after max(indexes)."""
        out: list[tuple[float, np.ndarray]] = []
        for i in indexes:
            mapped = self.alignment.mapped[i]
            if mapped is None:
                continue
            start = self._query_times[i]
            end = self._query_times[i + 1] if i + 1 < len(self._query_times) else math.inf
            lo = int(np.searchsorted(self._clip_times, start - 1e-6))
            hi = int(np.searchsorted(self._clip_times, end - 1e-6))
            out.extend((mapped + self.clip.times[k] - start, self.clip.frames[k]) for k in range(lo, hi))
        return out

    def _run(self, run: int | None) -> Run:
        """The run's dense frames on the original's timeline, with its timing offset and crop and tone."""
        if run not in self._runs:
            members = [i for i, r in enumerate(self.alignment.run) if r == run]
            self._runs[run] = self.triplet.run(self._placed(members), self.segments)
        return self._runs[run]

    def _indexes(self, query_frames: Sequence[FrameHash]) -> list[int]:
        """Fingerprint frame indexes of the segment's frames, by their time in the clip."""
        out: list[int] = []
        for f in query_frames:
            if not isinstance(f, PlacedFrame):
                raise TypeError("the learned comparer needs PlacedFrame clip frames (their clip time)")
            i = int(np.argmin(np.abs(self._query_times - f.clip_t)))
            if abs(self._query_times[i] - f.clip_t) > 1e-3:
                raise ValueError(f"no clip frame at {f.clip_t:.3f} s")
            out.append(i)
        return out

    def windows(self, query_frames: Sequence[FrameHash]) -> list[Judgement]:
        """The stored windows the segment's frames fall in, each judged against the run's clip frames.

        `TripletComparer.judge` is the one per-window path (the held-out evaluation runs it too):
        all of the run's frames around the window, the run's timing, a second look at every
        offset for a flagged window, and whether the clip covers the window only in part. So the
        learned comparer says *when* to about a window (1 s) and *where* to a cell. Judgements
        are kept per (run, window): halves of a segment see the same windows again.
        """
        from detector.comparer import assign_windows

        indexes = self._indexes(query_frames)
        run = self.alignment.run[indexes[0]]
        dense = self._run(run)
        results = []
        for w in sorted(assign_windows([f.t for f in query_frames], self.segments)):
            if (run, w) not in self._results:
                self._results[(run, w)] = self.triplet.judge(dense, self.segments[w])
            if (judged := self._results[(run, w)]) is not None:
                results.append(judged)
        return results

    def compare(
        self, query_frames: Sequence[FrameHash], original_frames: Sequence[FrameHash]
    ) -> SegmentComparison:
        from detector.model import GRID

        if not query_frames:
            raise ValueError("compare needs clip frames")
        judged = self.windows(query_frames)
        if not judged or any(j.deferred for j in judged):
            # No window to judge, or a flagged one the clip shows only in part: the frame-by-frame
            # comparer judges this segment (`Judgement.deferred`).
            return self.fallback.compare(query_frames, original_frames)
        results = [j.result for j in judged]
        flagged = np.zeros((GRID, GRID), dtype=bool)
        for r in results:
            flagged |= r.flagged
        tampered = any(r.tampered for r in results)
        return SegmentComparison(
            distance=max(r.distance for r in results),
            tampered=tampered,
            regions=regions_of(flagged) if tampered else [],
        )
