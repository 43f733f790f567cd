"""The choice of comparer per verification: the PDQ/grid comparer, or the learned one when it may run.

`ComparerPolicy` picks the comparer per verification (`ComparerMode` is the setting
`PROVENANCE_COMPARER`):

- a version 1 registration: `PdqGridComparer` (nothing else is stored for it);
- `baseline`: `PdqGridComparer`;
- `auto` (default): the learned comparer only when the shipped weights' held-out evaluation
  (`detector/weights/evaluation.json`, same model version, measured by `provenance.verify.gate`
  on the path verification runs) shows it beating the real `PdqGridComparer` there, in AUC and in
  TPR at 1% FPR, with at most 1% false positives at its shipped threshold; else the baseline,
  with a note. The gate compares the two comparers that could ship: missing the issue's absolute
  targets (AUC >= 0.98, TPR >= 0.90) is reported in the note, not answered with the weaker one;
- `learned`: the learned comparer whatever the evaluation says;
- embeddings of another model version than the loaded weights (stale after retraining), weights
  that fail to load, or no clip frames kept: the baseline, with a note saying why.

A `TripletComparer` caches frame features and is not thread-safe, so one is made per
verification around the network loaded once per policy (inference on a shared module is).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from provenance.core.config import ComparerMode
from provenance.fingerprint import Fingerprint
from provenance.verify.align import Alignment
from provenance.verify.compare import Chosen, Comparer, ComparerFactory, PdqGridComparer
from provenance.verify.learned import ClipFrames, LearnedComparer

if TYPE_CHECKING:
    from detector.model import LoadedModel

logger = logging.getLogger(__name__)

MODES: tuple[ComparerMode, ...] = get_args(ComparerMode)
# The targets for the learned comparer (reported, see the module docstring).
TARGET_AUC = 0.98
TARGET_TPR = 0.90
# The most benign held-out segments it may flag at its shipped threshold and still be the default.
MAX_FPR_AT_THRESHOLD = 0.01
# The clip is sampled this many times faster than the fingerprint for the learned comparer: with
# 8 fps frames the offset search lines clip frames up with the original's instants to 1/16 s.
DENSE_FACTOR = 2


def weights_dir() -> Path:
    from detector.model import WEIGHTS_DIR

    return WEIGHTS_DIR


def qualifies(evaluation: dict[str, Any], model_version: str) -> tuple[bool, str]:
    """(whether the held-out evaluation makes the learned comparer the default, a sentence saying why)."""
    if evaluation.get("model_version") != model_version:
        return False, (
            f"evaluation.json is of model {evaluation.get('model_version')}, the weights are {model_version}"
        )
    try:
        learned = evaluation["segments"]["learned"]
        baseline = evaluation["segments"]["baseline"]
        auc, tpr = float(learned["auc"]), float(learned["tpr_at_1pct_fpr"])
        fpr = float(learned["at_threshold"]["fpr"])
        base_auc, base_tpr = float(baseline["auc"]), float(baseline["tpr_at_1pct_fpr"])
    except (KeyError, TypeError, ValueError):
        return False, "evaluation.json has no held-out segment figures"
    figures = (
        f"held-out AUC {auc:.4f} (baseline {base_auc:.4f}), TPR at 1% FPR {tpr:.3f} "
        f"(baseline {base_tpr:.3f}), {fpr:.2%} false positives at its threshold"
    )
    if not (auc > base_auc and tpr > base_tpr and fpr <= MAX_FPR_AT_THRESHOLD):
        return (
            False,
            f"{figures}; needs AUC and TPR above the baseline's, at most {MAX_FPR_AT_THRESHOLD:.0%} FP",
        )
    if auc < TARGET_AUC or tpr < TARGET_TPR:
        figures += f"; below the targets AUC >= {TARGET_AUC}, TPR >= {TARGET_TPR}"
    return True, figures


@dataclass
class _Model:
    loaded: LoadedModel | None
    note: str | None  # why the learned comparer cannot be used at all (None: it can)
    qualified: bool
    evaluation: str


class ComparerPolicy:
    """Chooses the comparer per verification: see the module docstring."""

    def __init__(self, mode: ComparerMode = "auto", baseline: Comparer | None = None) -> None:
        if mode not in MODES:
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
            qualified, why = qualifies(evaluation, loaded.version)
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
