"""Labelled segments for calibration and evaluation, scored by the learned comparer and a reference.

A `Window` is one ~1 s segment of an original (its 4 sampled frames, plus the frames either
side for the reference, which compares each clip frame with its temporal neighbours) and the
copies of it to judge: benign variants of every kind in `data.BENIGN_KINDS` (plus `reencode-25`,
a full-rate real re-encode at another size and frame rate), and tampers of every kind in
`data.TAMPER_KINDS`, each followed by a benign chain. A copy's frames are sampled as the
verifier would sample the clip (8 fps on its own clock, some copies at another frame rate) and
carry the aligner's timing error (up to half a 4 fps step, `data.dense_query`). Both comparers
run the verifier's path (`score_windows`): the learned one `TripletComparer.run` and `judge`, the
reference (`Reference`: the shipped `PdqGridComparer`, injected by `provenance.verify.gate`) the
copy's 4 fps frames that fall in the window against the original's frames around their times.

Metrics: ROC AUC and TPR at 1% FPR of the segment score; at the calibrated threshold, the
detection rate per tamper kind, the false-positive rate per benign kind, and localisation IoU of
the flagged regions' bounding box with the true box (`frames.regions.box_iou`, as
`provenance.evaluation` scores it), over detected spatial tampers and over all of them (a missed
one counting 0).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from detector import data
from detector.comparer import Judgement, TripletComparer
from detector.model import GRID, dequantise, quantise
from frames.regions import box_iou, regions_of

TimedFrame = tuple[float, np.ndarray]
FULL_REENCODE = "reencode-25"
CHANGE_BUCKETS = ((12.0, 25.0), (25.0, 50.0), (50.0, math.inf))


@dataclass
class Query:
    """A copy of a window: its frames, their times on the original's timeline, and the truth."""

    frames: list[np.ndarray]
    times: list[float]
    tampered: bool
    kind: str
    truth_box: list[float] | None = None
    detail: dict[str, float] = field(default_factory=dict)


@dataclass
class Window:
    source: str
    t0: float
    original: list[TimedFrame]
    context: list[TimedFrame]
    queries: list[Query]


@dataclass
class Scored:
    """One query's outcome under one comparer: its score and per-cell scores, with the truth."""

    score: float
    cells: np.ndarray
    tampered: bool
    kind: str
    source: str
    truth_box: list[float] | None
    detail: dict[str, float] = field(default_factory=dict)


def truth_box(masks: np.ndarray) -> list[float] | None:
    """Bounding box, normalised, of where the prepared masks (T, S, S) say pixels were altered."""
    union = masks.max(axis=0)
    for level in (0.5, 0.25):
        ys, xs = np.nonzero(union > level)
        if ys.size:
            side = union.shape[0]
            x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
            return [x0 / side, y0 / side, (x1 - x0) / side, (y1 - y0) / side]
    return None


def make_windows(
    footage: Sequence[data.Footage],
    seed: int,
    *,
    benign_per_window: int | None = None,
    tampers_per_window: int | None = None,
    full_reencode: bool = True,
    max_windows: int | None = None,
    per_clip: int | None = None,
) -> Iterator[Window]:
    """Windows at whole seconds of every footage, each with its benign and tampered copies.

    `None` per window means every kind once; a number draws that many kinds, cycling through
    them so each kind appears about equally often.
    """
    rng = np.random.default_rng(seed)
    donors = data.Donors(footage, seed)
    benign_kinds = list(data.BENIGN_KINDS) + ([FULL_REENCODE] if full_reencode else [])
    tamper_kinds = list(data.TAMPER_KINDS)
    b_cycle, t_cycle = 0, 0
    produced = 0
    for item in footage:
        copy = None
        if full_reencode:
            copy = data.reencode_footage(
                item,
                data.Codec("libx264", crf=int(rng.integers(30, 38))),
                fps=float(rng.choice([15.0, 24.0, 25.0, 30.0])),
                scale=float(rng.choice([0.5, 0.75])),
            )
        starts = np.arange(0.0, item.duration - data.SEGMENT_SECONDS + 1e-6, data.SEGMENT_SECONDS)
        for t0 in starts[:per_clip]:
            if max_windows is not None and produced >= max_windows:
                return
            t0 = float(t0)
            times = data.anchor_times(t0)
            original = [(t, item.frame(t)) for t in times]
            around = [t0 - 1 / data.SAMPLE_FPS, *times, t0 + data.SEGMENT_SECONDS]
            context = [(t, item.frame(t)) for t in around if 0 <= t < item.duration]
            queries: list[Query] = []
            nb = len(benign_kinds) if benign_per_window is None else benign_per_window
            for _ in range(nb):
                kind = benign_kinds[b_cycle % len(benign_kinds)]
                b_cycle += 1
                shown, mapped = data.dense_query(item, t0, rng)
                if kind == FULL_REENCODE:
                    assert copy is not None
                    frames = [copy.frame(t) for t in shown]
                    chain = data.Benign(seed=int(rng.integers(0, 1 << 30)))
                else:
                    frames = [item.frame(t) for t in shown]
                    chain = data.sample_benign(rng, kind)
                out, _ = chain.apply_segment(frames)
                queries.append(Query(out, mapped, False, kind))
            nt = len(tamper_kinds) if tampers_per_window is None else tampers_per_window
            for _ in range(nt):
                kind = tamper_kinds[t_cycle % len(tamper_kinds)]
                t_cycle += 1
                shown, mapped = data.dense_query(item, t0, rng)
                tampered = data.tamper_segment(kind, item, shown, rng, donors)
                chain = data.sample_benign(rng)
                out, masks = chain.apply_segment(tampered.frames, list(tampered.masks))
                _, prepared = data.prepared_segment(out, masks)
                assert prepared is not None
                box = truth_box(prepared) if tampered.spatial else None
                queries.append(Query(out, mapped, True, kind, box, dict(tampered.detail)))
            produced += 1
            yield Window(item.name, t0, original, context, queries)


class Reference(Protocol):
    """A frame-by-frame comparer: a deferred window goes to it, and the learned one is measured against it.

    Injected, since the detector never imports the service: `provenance.verify.gate` passes the
    shipped `PdqGridComparer`. `score` takes the clip's 4 fps frames of a window and the
    original's frames around them (times on the original's timeline) and returns (segment score,
    (G, G) cell scores), both over the comparer's own threshold: above 1 flags.
    """

    name: str

    def score(
        self, query: Sequence[TimedFrame], original: Sequence[TimedFrame]
    ) -> tuple[float, np.ndarray]: ...


def judged_outcome(
    comparer: TripletComparer,
    judged: Judgement,
    reference: Reference | None,
    query: Sequence[TimedFrame],
    original: Sequence[TimedFrame],
) -> tuple[float, np.ndarray]:
    """(score, cell scores) of a judged window in the learned comparer's units, as the verifier decides it.

    A deferred window (`Judgement.deferred`) goes to `reference` with the clip's 4 fps frames of
    it (`query`), its verdict mapped onto the learned thresholds (its threshold to `threshold`,
    cell for cell to `cell_threshold`); without a reference, or frames to give it, the learned
    result stands.
    """
    if judged.deferred and reference is not None and query:
        score, cells = reference.score(query, original)
        return score * comparer.threshold, (cells * comparer.cell_threshold).astype(np.float32)
    return judged.result.score, judged.result.cell_distances


def score_windows(
    windows: Iterable[Window], comparer: TripletComparer | None, reference: Reference | None = None
) -> tuple[list[Scored], list[Scored]]:
    """(learned, reference) outcomes of every query, each on the path the verifier runs.

    The learned comparer: the copy is one alignment run (`TripletComparer.run`) and its window is
    judged by `TripletComparer.judge`, a deferred window going to `reference`; stored embeddings
    go through quantisation. The reference compares the copy's 4 fps frames in the window (every
    other of its 8 fps ones, as the verifier's fingerprint samples them) with the original's
    frames around them. Its records are in its own units (threshold 1).
    """
    learned: list[Scored] = []
    base: list[Scored] = []
    half = 0.5 / data.SAMPLE_FPS
    for window in windows:
        stored = None
        if comparer is not None:
            embedding = comparer.embed_window(window.original)
            stored = dequantise(quantise(embedding), embedding.start, embedding.end, embedding.frames)
        for q in window.queries:
            query = list(zip(q.times, q.frames, strict=True))
            inside = [
                f for f in query[::2] if window.t0 - half <= f[0] < window.t0 + data.SEGMENT_SECONDS - half
            ]
            if comparer is not None and stored is not None:
                judged = comparer.judge(comparer.run(query, [stored]), stored)
                if judged is None:
                    raise ValueError(f"no frame of a {q.kind} copy falls near {window.source} at {window.t0}")
                score, cells = judged_outcome(comparer, judged, reference, inside, window.context)
                learned.append(Scored(score, cells, q.tampered, q.kind, window.source, q.truth_box, q.detail))
            if reference is not None:
                score, cells = reference.score(inside, window.context)
                base.append(Scored(score, cells, q.tampered, q.kind, window.source, q.truth_box, q.detail))
    return learned, base


# ------------------------------------------------------------------------------------------------
# Metrics


def roc_auc(benign: Sequence[float], tampered: Sequence[float]) -> float:
    """Probability a tampered score exceeds a benign one (ties count half): the ROC AUC."""
    b = np.asarray(benign, dtype=np.float64)
    t = np.asarray(tampered, dtype=np.float64)
    if not b.size or not t.size:
        return math.nan
    values = np.concatenate([b, t])
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    i = 0
    while i < len(values):  # average ranks over ties
        j = i
        while j + 1 < len(values) and sorted_values[j + 1] == sorted_values[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = ranks[len(b) :].sum()
    return float((rank_sum - len(t) * (len(t) + 1) / 2) / (len(b) * len(t)))


def threshold_at_fpr(benign: Sequence[float], fpr: float) -> float:
    """The lowest threshold (score > threshold flags) with at most `fpr` of benign scores above it."""
    b = np.sort(np.asarray(benign, dtype=np.float64))[::-1]
    allowed = math.floor(fpr * len(b) + 1e-9)
    return float(b[min(allowed, len(b) - 1)])


def tpr_at_fpr(benign: Sequence[float], tampered: Sequence[float], fpr: float = 0.01) -> float:
    threshold = threshold_at_fpr(benign, fpr)
    return float(np.mean(np.asarray(tampered) > threshold))


def flagged_regions(record: Scored, threshold: float, cell_threshold: float) -> list[list[float]]:
    """Regions a comparer with these thresholds reports for a record (none when not tampered)."""
    if record.score <= threshold:
        return []
    mask = record.cells > cell_threshold
    if not mask.any():
        mask = np.ones((GRID, GRID), dtype=bool)
    return regions_of(mask)


def localisation(records: Sequence[Scored], threshold: float, cell_threshold: float) -> tuple[float, float]:
    """(mean IoU over detected spatial tampers, mean IoU over all spatial tampers)."""
    detected: list[float] = []
    every: list[float] = []
    for r in records:
        if not r.tampered or r.truth_box is None:
            continue
        regions = flagged_regions(r, threshold, cell_threshold)
        iou = box_iou(regions, [r.truth_box])
        every.append(iou)
        if r.score > threshold:
            detected.append(iou)
    return (float(np.mean(detected)) if detected else 0.0, float(np.mean(every)) if every else 0.0)


def calibrate_thresholds(records: Sequence[Scored], fpr: float = 0.005) -> dict[str, float]:
    """Decision threshold at `fpr` of benign segments, then the cell threshold that localises best."""
    benign = [r.score for r in records if not r.tampered]
    threshold = threshold_at_fpr(benign, fpr)
    best, best_iou = threshold, -1.0
    for cell_threshold in np.linspace(0.3 * threshold, 1.5 * threshold, 37):
        iou, _ = localisation(records, threshold, float(cell_threshold))
        if iou > best_iou + 1e-9:
            best, best_iou = float(cell_threshold), iou
    return {"threshold": round(threshold, 5), "cell_threshold": round(best, 5), "fpr_target": fpr}


def summarise(records: Sequence[Scored], threshold: float, cell_threshold: float) -> dict[str, Any]:
    """Headline metrics and per-kind rates of one comparer on one set of records."""
    benign = [r.score for r in records if not r.tampered]
    tampered = [r.score for r in records if r.tampered]
    iou_detected, iou_all = localisation(records, threshold, cell_threshold)
    per_tamper: dict[str, float] = {}
    per_benign: dict[str, float] = {}
    for kind in sorted({r.kind for r in records}):
        rows = [r for r in records if r.kind == kind]
        rate = float(np.mean([r.score > threshold for r in rows]))
        (per_tamper if rows[0].tampered else per_benign)[kind] = round(rate, 4)
    # How detection depends on how much a tamper changed its box (mean absolute RGB levels).
    at_1pct = threshold_at_fpr(benign, 0.01) if benign else math.inf
    by_change: dict[str, float] = {}
    for lo, hi in CHANGE_BUCKETS:
        rows = [r for r in records if r.tampered and lo <= r.detail.get("change", -1.0) < hi]
        if rows:
            by_change[f"{lo:g}-{hi:g}" if hi < math.inf else f">={lo:g}"] = round(
                float(np.mean([r.score > at_1pct for r in rows])), 4
            )
    return {
        "benign_segments": len(benign),
        "tampered_segments": len(tampered),
        "auc": round(roc_auc(benign, tampered), 4),
        "tpr_at_1pct_fpr": round(tpr_at_fpr(benign, tampered, 0.01), 4),
        "at_threshold": {
            "threshold": threshold,
            "tpr": round(float(np.mean(np.asarray(tampered) > threshold)), 4),
            "fpr": round(float(np.mean(np.asarray(benign) > threshold)), 4),
        },
        "iou_detected": round(iou_detected, 4),
        "iou_all_spatial": round(iou_all, 4),
        "detection_rate_by_tamper": per_tamper,
        "tpr_at_1pct_fpr_by_change": by_change,
        "false_positive_rate_by_variant": per_benign,
    }
