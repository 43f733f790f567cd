"""The learned (triplet-network) comparer behind the `Comparer` protocol, and the choice of comparer.

Registration stores, in fingerprint version 2, one quantised embedding per ~1 s window of the
original (`detector.comparer`). Verification never needs the original's pixels: the clip's own
frames, kept from the decode that fingerprints it (`ClipFrames`, 8 fps, 64x64 squares), are
placed on the original's timeline by the alignment and embedded against each stored window the
segment covers; the windows' verdicts and flagged cells become the segment's distance and
regions (when and where).

Placing the 8 fps frames: a clip frame between two of the fingerprint's 4 fps frames takes the
mapping of the one before it at speed 1. The aligner only knows a moment to about half a 4 fps
step, so the timing offset between clip and original is estimated once per alignment run
(`TripletComparer.estimate_offset` over all of the run's frames) and used for all its segments:
a local edit cannot pull the timing its own way. So are the crop and tone the clip shows the
original with (`detector.adjust`, fitted on a few of the run's windows). A window that timing
flags gets a second look at every offset, the best-fitting one deciding (a cut just inside a
window otherwise flags a copy sampled at another phase).

Each stored window a segment touches is compared with all of the run's clip frames around it, so
the learned comparer places an edit to about a window (1 s) and a cell (1/8 of the picture). A
window the clip covers only in part (it starts or ends inside it, or a cut or an insert does)
cannot be matched fairly by an embedding of fewer frames: when such a window is flagged, the
segment is judged by the PDQ/grid comparer, frame by frame.

`ComparerPolicy` picks the comparer per verification:

- a version 1 registration: `PdqGridComparer` (nothing else is stored for it);
- `PROVENANCE_COMPARER=baseline`: `PdqGridComparer`;
- `auto` (default): the learned comparer only when the shipped weights' held-out evaluation
  (`detector/weights/evaluation.json`, same model version) meets the targets, AUC >= 0.98 and TPR
  at 1% FPR >= 0.90, both better than the baseline's; else the baseline, with a note;
- `learned`: the learned comparer whatever the evaluation says;
- embeddings of another model version than the loaded weights (stale after retraining), weights
  that fail to load, or no clip frames kept: the baseline, with a note saying why.

A `TripletComparer` caches frame features and is not thread-safe, so one is made per
verification around the network loaded once per policy (inference on a shared module is).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from frames.regions import regions_of
from provenance.fingerprint import Fingerprint, FrameHash
from provenance.verify.align import Alignment
from provenance.verify.compare import (
    Chosen,
    Comparer,
    ComparerFactory,
    PdqGridComparer,
    PlacedFrame,
    SegmentComparison,
)

if TYPE_CHECKING:
    from detector.adjust import Adjustment
    from detector.comparer import SegmentResult, TripletComparer
    from detector.model import LoadedModel, SegmentEmbedding

logger = logging.getLogger(__name__)

Mode = Literal["auto", "learned", "baseline"]
# The targets for making the learned comparer the default.
TARGET_AUC = 0.98
TARGET_TPR = 0.90
# The clip is sampled this many times faster than the fingerprint for the learned comparer: with
# 8 fps frames the offset search lines clip frames up with the original's instants to 1/16 s.
DENSE_FACTOR = 2


def weights_dir() -> Path:
    from detector.model import WEIGHTS_DIR

    return WEIGHTS_DIR


def meets_targets(evaluation: dict[str, Any], model_version: str) -> tuple[bool, str]:
    """(whether the held-out evaluation qualifies the learned comparer, a sentence saying why)."""
    if evaluation.get("model_version") != model_version:
        return False, (
            f"evaluation.json is of model {evaluation.get('model_version')}, the weights are {model_version}"
        )
    try:
        learned = evaluation["segments"]["learned"]
        baseline = evaluation["segments"]["baseline"]
        auc, tpr = float(learned["auc"]), float(learned["tpr_at_1pct_fpr"])
        base_auc, base_tpr = float(baseline["auc"]), float(baseline["tpr_at_1pct_fpr"])
    except (KeyError, TypeError, ValueError):
        return False, "evaluation.json has no held-out segment figures"
    figures = (
        f"held-out AUC {auc:.4f} (baseline {base_auc:.4f}), TPR at 1% FPR {tpr:.3f} (baseline {base_tpr:.3f})"
    )
    if auc >= TARGET_AUC and tpr >= TARGET_TPR and auc > base_auc and tpr > base_tpr:
        return True, figures
    return False, f"{figures}; targets AUC >= {TARGET_AUC}, TPR >= {TARGET_TPR}, both above baseline"


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
        self._runs: dict[int | None, tuple[list[tuple[float, np.ndarray]], float, Adjustment]] = {}
        # Window results by (run, window): halves of a segment see the same windows again.
        self._results: dict[tuple[int | None, int], tuple[SegmentResult, bool] | None] = {}

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

    def _run(self, run: int | None) -> tuple[list[tuple[float, np.ndarray]], float, Adjustment]:
        """(the run's dense frames on the original's timeline, its timing offset, its crop and tone)."""
        if run not in self._runs:
            members = [i for i, r in enumerate(self.alignment.run) if r == run]
            placed = self._placed(members)
            offset = self.triplet.estimate_offset(placed, self.segments)
            adjustment = self.triplet.estimate_adjustment(placed, self.segments, offset)
            self._runs[run] = (placed, offset, adjustment)
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

    def windows(self, query_frames: Sequence[FrameHash]) -> list[tuple[SegmentResult, bool]]:
        """The stored windows the segment's frames fall in, compared with the clip around them.

        Each comes with whether the clip covers the window only in part: some of its sampling
        instants, at the run's timing, have no clip frame near them.

        A window is compared with all of the run's clip frames around it, not only the segment's:
        a segment covering half a window (the verifier splits flagged stretches) would otherwise
        pit two frames against an embedding of four, which in fast motion differs by itself. So
        the learned comparer says *when* to about a window (1 s) and *where* to a cell.

        A window the run's timing flags gets a second opinion: every timing offset, the one that
        fits the picture as a whole best (median cell distance, which a local edit hardly moves).
        A cut just inside a window otherwise flags a benign copy sampled at another phase: the
        clip's frame nearest the window's first instant can be past the cut.
        """
        from detector.comparer import SAMPLE_FPS, assign_windows

        indexes = self._indexes(query_frames)
        run = self.alignment.run[indexes[0]]
        dense, offset, adjustment = self._run(run)
        step = 1.0 / SAMPLE_FPS
        results = []
        for w in sorted(assign_windows([f.t for f in query_frames], self.segments)):
            if (run, w) not in self._results:
                window = self.segments[w]
                near = [f for f in dense if window.start - step <= f[0] < window.end]
                found: tuple[SegmentResult, bool] | None = None
                if near:
                    try:
                        result = self.triplet.compare_segment(near, window, offset, adjustment)
                        partial = result.frames < window.frames
                        if result.tampered:
                            result = self.triplet.compare_segment(near, window, None, adjustment)
                        found = (result, partial)
                    except ValueError:  # no frame near enough to the window's instants
                        found = None
                self._results[(run, w)] = found
            if (cached := self._results[(run, w)]) is not None:
                results.append(cached)
        return results

    def compare(
        self, query_frames: Sequence[FrameHash], original_frames: Sequence[FrameHash]
    ) -> SegmentComparison:
        from detector.model import GRID

        if not query_frames:
            raise ValueError("compare needs clip frames")
        pairs = self.windows(query_frames)
        if any(r.tampered and partial for r, partial in pairs) or not pairs:
            # The clip shows only part of a flagged window (it starts or ends inside it, or a cut
            # does): an embedding of fewer frames is no fair match for the stored one of all of
            # them, so the frame-by-frame comparer judges this segment.
            return self.fallback.compare(query_frames, original_frames)
        results = [r for r, _ in pairs]
        flagged = np.zeros((GRID, GRID), dtype=bool)
        for r in results:
            flagged |= r.flagged
        tampered = any(r.tampered for r in results)
        return SegmentComparison(
            distance=max(r.distance for r in results),
            tampered=tampered,
            regions=regions_of(flagged) if tampered else [],
        )


@dataclass
class _Model:
    loaded: LoadedModel | None
    note: str | None  # why the learned comparer cannot be used at all (None: it can)
    qualified: bool
    evaluation: str


class ComparerPolicy:
    """Chooses the comparer per verification: see the module docstring."""

    def __init__(self, mode: Mode = "auto", baseline: Comparer | None = None) -> None:
        if mode not in ("auto", "learned", "baseline"):
            raise ValueError(f"comparer mode is auto, learned or baseline, not {mode!r}")
        self.mode = mode
        self.baseline: Comparer = baseline or PdqGridComparer()
        self._model: _Model | None = None
        self._lock = threading.Lock()

    def model(self) -> _Model:
        """The shipped weights and whether their evaluation qualifies them, loaded once."""
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> _Model:
        try:
            from detector.model import WEIGHTS_FILE, load_weights

            loaded = load_weights(WEIGHTS_FILE)
        except Exception as exc:  # missing or unreadable weights must not stop verification
            logger.warning("learned comparer unavailable: %s", exc)
            return _Model(None, f"learned comparer unavailable: {exc}", False, "")
        try:
            evaluation = json.loads((weights_dir() / "evaluation.json").read_text())
            qualified, why = meets_targets(evaluation, loaded.version)
        except (OSError, ValueError) as exc:
            qualified, why = False, f"no readable evaluation.json ({exc})"
        return _Model(loaded, None, qualified, why)

    def wants_clip_frames(self) -> bool:
        """Whether a verification should keep the clip's frames: only when the learned comparer may run."""
        if self.mode == "baseline":
            return False
        model = self.model()
        return model.loaded is not None and (self.mode == "learned" or model.qualified)

    def factory(self, clip: ClipFrames | None) -> ComparerFactory:
        """The comparer choice for one verification, given the clip frames it kept (if any)."""

        def choose(
            registration_id: str, original: Fingerprint, query: Fingerprint, alignment: Alignment
        ) -> Chosen:
            return self.choose(original, query, alignment, clip)

        return choose

    def choose(
        self, original: Fingerprint, query: Fingerprint, alignment: Alignment, clip: ClipFrames | None
    ) -> Chosen:
        if original.version < 2:
            return Chosen(self.baseline, "registered with fingerprint v1 (no embeddings)")
        if self.mode == "baseline":
            return Chosen(self.baseline, "PROVENANCE_COMPARER=baseline")
        model = self.model()
        if model.loaded is None:
            return Chosen(self.baseline, model.note)
        if self.mode == "auto" and not model.qualified:
            return Chosen(self.baseline, f"learned comparer not the default: {model.evaluation}")
        stored_version, segments = original.segments()
        if stored_version != model.loaded.version:
            return Chosen(
                self.baseline,
                f"embeddings of model {stored_version}, loaded weights are {model.loaded.version}",
            )
        if clip is None or not len(clip):
            return Chosen(self.baseline, "no clip frames kept for the learned comparer")
        from detector.comparer import TripletComparer

        learned = LearnedComparer(
            TripletComparer(model.loaded), segments, clip, query, alignment, fallback=self.baseline
        )
        note = None if self.mode == "auto" else "PROVENANCE_COMPARER=learned"
        return Chosen(learned, note)


def fingerprint_clip(
    path: Path, policy: ComparerPolicy, **kwargs: Any
) -> tuple[Fingerprint, ClipFrames | None]:
    """A clip's version 1 fingerprint, and its dense frames when the policy may use them (one decode)."""
    from provenance.fingerprint import VERSION_1, compute_fingerprint

    sample_fps = float(kwargs.pop("sample_fps", 4.0))
    if not policy.wants_clip_frames():
        return compute_fingerprint(path, sample_fps=sample_fps, version=VERSION_1, **kwargs), None
    clip = ClipFrames()
    query = compute_fingerprint(
        path,
        sample_fps=sample_fps,
        version=VERSION_1,
        keep=clip.add,
        keep_fps=sample_fps * DENSE_FACTOR,
        **kwargs,
    )
    return query, clip
