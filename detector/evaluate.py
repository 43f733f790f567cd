"""Evaluate on held-out footage: `python -m detector.evaluate [--weights detector/weights/model.pt]`.

Two sets, both from footage training never saw (`data.eval_footage()`: bigbuckbunny, the
coffee, rocket and chelsea photos, synthetic scenes of unseen seeds):

- `segments`: every 1 s window with every benign kind and two of every tamper kind, made in
  memory like the training data (but with other pictures and seeds);
- `files`: real files made by the generator's attacks (`FILE_ATTACKS` from the catalogue in
  `generator.attacks`, H.264 through PyAV) of bigbuckbunny and of two held-out clips written to
  MP4, decoded the way the verifier decodes (longer side at most 512): the original at 4 fps
  into stored segment embeddings, each copy at 8 fps on its own clock, its times shifted by an
  alignment error of up to 1/8 s.

For each set, the learned comparer (shipped weights and calibration) on the verifier's per-window
path (`TripletComparer.run` and `judge`: run timing and crop, second look, deferred windows) and,
given a `reference` (`python -m provenance.verify.gate` passes the shipped `PdqGridComparer` at
its shipped threshold), that comparer side by side: ROC AUC and TPR at 1% FPR of the segment
score, localisation IoU, detection and false-positive rates per kind. When the
generator's swap weights exist, `face_swap`: the carphone clip with its face swapped (an attack
training never sees: `detector.swaps`) against benign copies of the same seconds; `--before`
records the headline figures of the model trained without face-swap negatives. A `slice` (the
first windows of three clips) is recorded too: the tests recompute it to check that the shipped
weights still give these numbers. Results go to `evaluation.json` next to the weights.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from detector import data, evalset, swaps
from detector.adjust import IDENTITY
from detector.comparer import TripletComparer, assign_windows
from detector.model import WEIGHTS_FILE, dequantise, load_weights, quantise
from frames.samples import sample_clip
from generator import attacks, tampers, variants

EVAL_SEED = 31337
SLICE_SEED = 2718
SLICE_SOURCES = ("bigbuckbunny", "coffee-0", "synthetic-2000")
SLICE_WINDOWS = 3
ANALYSIS_MAX_SIDE = 512
TimedFrame = tuple[float, np.ndarray]


def sample_file(
    path: Path, fps: float = data.SAMPLE_FPS, max_side: int = ANALYSIS_MAX_SIDE, phase: float = 0.0
) -> list[TimedFrame]:
    """The frames shown at phase + k / fps (the last frame starting at or before each instant).

    Scaled so the longer side is at most `max_side`, as the verifier analyses frames.
    """
    out: list[TimedFrame] = []
    k = 0
    previous: tuple[float, np.ndarray] | None = None
    interval = 1 / 25
    for t, rgb in variants.iter_frames(path):
        while previous is not None and phase + k / fps < t - 1e-6:
            out.append((phase + k / fps, previous[1]))
            k += 1
        if previous is not None:
            interval = t - previous[0]
        previous = (t, rgb)
    if previous is not None:
        # The last frame shows for one frame interval: an instant at the clip's end shows nothing
        # (a 10 s clip has 40 samples at 4 fps, as the verifier's sampler gives, not 41).
        while phase + k / fps < previous[0] + interval - 1e-6:
            out.append((phase + k / fps, previous[1]))
            k += 1
    return [(t, data._fit_max_side(rgb, max_side)) for t, rgb in out]


def slice_footage() -> list[data.Footage]:
    return [f for f in data.eval_footage() if f.name in SLICE_SOURCES]


def evaluate_slice(comparer: TripletComparer) -> dict[str, Any]:
    """The small, fixed slice the tests recompute: learned comparer only, at its calibration."""
    windows = evalset.make_windows(slice_footage(), SLICE_SEED, per_clip=SLICE_WINDOWS)
    learned, _ = evalset.score_windows(windows, comparer)
    summary = evalset.summarise(learned, comparer.threshold, comparer.cell_threshold)
    summary["scores_mean"] = round(float(np.mean([r.score for r in learned])), 4)
    return summary


def _write_source(footage: data.Footage, path: Path, fps: int = 25) -> None:
    count = int(footage.duration * fps)
    variants.write_clip(path, [footage.frame(k / fps) for k in range(count)], Fraction(fps), crf=16)


# The generator's attacks (`generator.attacks`) the `files` set makes of each held-out clip.
FILE_ATTACKS = (
    "reencode_crf32",
    "reencode_300k",
    "downscale",
    "letterbox",
    "pillarbox",
    "crop",
    "colour",
    "change_fps",
    "paste_region",
    "paste_solid",
    "copy_move",
    "replace_range",
)


def _file_cases(
    src: Path, other: Path, work: Path, rng: np.random.Generator, clip: float
) -> list[tuple[attacks.Attack, Path, Callable[[], attacks.Truth]]]:
    """(attack, output, make) for the catalogue's `FILE_ATTACKS` of `src` (`clip` seconds long).

    Tampers edit 2 s from 1 s in, spatial ones a random box of 0.3 x 0.3.
    """
    box = (float(rng.uniform(0.1, 0.5)), float(rng.uniform(0.1, 0.5)), 0.3, 0.3)
    at = attacks.Where(clip=clip, start=1.0, duration=2.0, box=box)
    cases: list[tuple[attacks.Attack, Path, Callable[[], attacks.Truth]]] = []
    for attack in attacks.pick(FILE_ATTACKS):
        out = work / f"{attack.name}.mp4"
        cases.append((attack, out, partial(attack.make, src, other, out, at)))
    return cases


def evaluate_files(
    comparer: TripletComparer, work: Path, reference: evalset.Reference | None = None, seed: int = EVAL_SEED
) -> dict[str, list[evalset.Scored]]:
    """The `files` set: generator variants and tampers of held-out clips, as real H.264 files.

    Each copy is one alignment run on the verifier's path (`TripletComparer.run`, `judge_run`; a
    deferred window goes to `reference`). Returns records for `learned` (clip sampled at 8 fps),
    `learned_4fps` (every other of those frames: what the comparer gets if the verifier only keeps
    its 4 fps samples) and, with a reference, `reference` (those 4 fps frames of each window).
    """
    rng = np.random.default_rng(seed)
    sources: list[tuple[str, Path]] = [("bigbuckbunny", sample_clip("bigbuckbunny.mp4"))]
    for footage in data.eval_footage():
        if footage.name in ("rocket-0", "synthetic-2001"):
            path = work / f"{footage.name}.mp4"
            _write_source(footage, path)
            sources.append((footage.name, path))
    other = sample_clip("carphone_pristine.mp4")
    records: dict[str, list[evalset.Scored]] = {"learned": [], "learned_4fps": [], "reference": []}
    step = 1 / data.SAMPLE_FPS
    for name, src in sources:
        original = sample_file(src)
        segments = [
            dequantise(quantise(s), s.start, s.end, s.frames) for s in comparer.embed_video_frames(original)
        ]
        for attack, out, make in _file_cases(src, other, work, rng, len(original) / data.SAMPLE_FPS):
            truth = make()
            kind = attack.name
            ranges = truth.ranges if isinstance(truth, tampers.TamperTruth) else []
            box = truth.regions[0] if isinstance(truth, tampers.TamperTruth) and truth.regions else None
            # The clip sampled at 8 fps on its own clock, placed with the aligner's error; every
            # other frame is what its fingerprint samples at 4 fps.
            phase, error = float(rng.uniform(0, 0.125)), float(rng.uniform(-0.125, 0.125))
            dense = [(t + error, rgb) for t, rgb in sample_file(out, 2 * data.SAMPLE_FPS, phase=phase)]
            sparse = dense[::2]
            in_window = assign_windows([t for t, _ in sparse], segments)
            members = assign_windows([t for t, _ in dense], segments)
            for label, query in (("learned", dense), ("learned_4fps", sparse)):
                for w, judged in comparer.judge_run(comparer.run(query, segments), segments):
                    window = segments[w]
                    frames = [dense[i] for i in members.get(w, [])]
                    hit = any(a - 1e-6 <= t - error < b - 1e-6 for t, _ in frames for a, b in ranges)
                    inside = [sparse[i] for i in in_window.get(w, [])]
                    around = [f for f in original if window.start - step - 1e-6 <= f[0] <= window.end + 1e-6]
                    score, cells = evalset.judged_outcome(comparer, judged, reference, inside, around)
                    truth_box = box if hit else None
                    records[label].append(evalset.Scored(score, cells, hit, kind, name, truth_box))
                    if label == "learned" and reference is not None and inside:
                        score, cells = reference.score(inside, around)
                        records["reference"].append(evalset.Scored(score, cells, hit, kind, name, truth_box))
    # A window of a tampered file that the tamper does not touch is a benign segment of it.
    tamper_names = {a.name for a in attacks.pick(FILE_ATTACKS) if a.kind == "tamper"}
    for rows in records.values():
        for k, r in enumerate(rows):
            if not r.tampered and r.kind in tamper_names:
                rows[k] = evalset.Scored(
                    r.score, r.cells, False, "untouched part of a tamper", r.source, None
                )
    return records


FACE_SWAP_SEED = 6006


def evaluate_face_swaps(
    comparer: TripletComparer, reference: evalset.Reference | None, held_out_threshold: float
) -> dict[str, Any]:
    """Face swaps of the carphone clip (`swaps.evaluation_swap`): an attack training never saw.

    The comparer trains on swaps of the astronaut's takes only (when the swap weights exist), so
    these measure a held-out swap; carphone itself is training footage (benign), the only clip
    with a face. Besides the calibrated threshold, detection is reported at the threshold giving
    1% false positives on the held-out `segments` set (`held_out_threshold`).
    """
    video, swapped = swaps.evaluation_swap()
    windows = list(swaps.evaluation_windows(video, swapped, FACE_SWAP_SEED))
    learned, base = evalset.score_windows(windows, comparer, reference)
    tampered = [r.score for r in learned if r.tampered]
    out: dict[str, Any] = {
        "source": f"{video.name} (face redrawn as identity B by {swaps.weights_file().name})",
        "frames_with_swapped_face": f"{sum(int(m.max() > 0) for m in swapped.masks)}/{len(swapped.masks)}",
        "learned": evalset.summarise(learned, comparer.threshold, comparer.cell_threshold),
        "learned_detection_at_held_out_1pct_fpr": {
            "threshold": round(held_out_threshold, 5),
            "rate": round(float(np.mean(np.asarray(tampered) > held_out_threshold)), 4),
        },
    }
    if reference is not None:
        out["baseline"] = evalset.summarise(base, 1.0, 1.0)
    return out


def timing(
    comparer: TripletComparer, reference: evalset.Reference | None = None, repeats: int = 20
) -> dict[str, float]:
    """Milliseconds per segment (4 frames of 512x288): embedding (registration), comparison (verification),
    and fitting the crop and tone on one window (done on up to 4 windows per alignment run)."""
    rng = np.random.default_rng(0)
    frames = [
        (k / 4, cv2.GaussianBlur(rng.integers(0, 256, (288, 512, 3), dtype=np.uint8), (0, 0), 3))
        for k in range(4)
    ]
    comparer.embed_window(frames)
    start = time.perf_counter()
    for r in range(repeats):
        comparer._cache.clear()
        embedding = comparer.embed_window([(t, (rgb + r).astype(np.uint8)) for t, rgb in frames])
    embed = (time.perf_counter() - start) / repeats
    # The verifier fits the crop and tone once per alignment run (on up to 4 windows), then
    # compares every window through it: both are timed.
    start = time.perf_counter()
    for _ in range(repeats // 4):
        comparer._cache.clear()
        comparer.fit_adjustment([([rgb for _, rgb in frames], embedding)])
    search = (time.perf_counter() - start) / (repeats // 4)
    start = time.perf_counter()
    for _ in range(repeats):
        comparer._cache.clear()
        comparer.compare_segment(frames, embedding, adjustment=IDENTITY)
    compare = (time.perf_counter() - start) / repeats
    start = time.perf_counter()
    for _ in range(repeats):
        comparer.compare_segment(frames, embedding, adjustment=IDENTITY)
    cached = (time.perf_counter() - start) / repeats
    out = {
        "embed_ms_per_segment": round(1000 * embed, 2),
        "compare_ms_per_segment": round(1000 * compare, 2),
        "compare_ms_per_segment_features_cached": round(1000 * cached, 2),
        "adjustment_search_ms_per_window": round(1000 * search, 2),
        "torch_threads": torch.get_num_threads(),
    }
    if reference is not None:  # its frames described afresh each time, as a verification does
        base_start = time.perf_counter()
        for r in range(repeats // 4):
            reference.score([(t, (rgb + r).astype(np.uint8)) for t, rgb in frames], frames)
        out["baseline_ms_per_segment"] = round(1000 * (time.perf_counter() - base_start) / (repeats // 4), 2)
    return out


def _before(path: Path) -> dict[str, Any]:
    """The headline figures of another evaluation (the model trained without face-swap negatives)."""
    other = json.loads(path.read_text())
    seg = other["segments"]["learned"]
    out: dict[str, Any] = {
        "evaluation": str(path),
        "model_version": other["model_version"],
        "segments": {
            k: seg[k]
            for k in (
                "auc",
                "tpr_at_1pct_fpr",
                "detection_rate_by_tamper",
                "false_positive_rate_by_variant",
                "tpr_at_1pct_fpr_by_change",
            )
        },
    }
    if "face_swap" in other:
        swap = other["face_swap"]
        out["face_swap"] = {
            "auc": swap["learned"]["auc"],
            "detection_rate": swap["learned"]["detection_rate_by_tamper"].get("face_swap"),
            "detection_at_held_out_1pct_fpr": swap["learned_detection_at_held_out_1pct_fpr"]["rate"],
        }
    return out


def _table(rows: Sequence[tuple[str, dict[str, Any]]]) -> str:
    lines = [
        f"{'set / comparer':34} {'AUC':>7} {'TPR@1%':>7} {'TPR@thr':>8} {'FPR@thr':>8} "
        f"{'IoU det':>8} {'IoU all':>8}"
    ]
    for name, s in rows:
        lines.append(
            f"{name:34} {s['auc']:7.4f} {s['tpr_at_1pct_fpr']:7.4f} {s['at_threshold']['tpr']:8.4f} "
            f"{s['at_threshold']['fpr']:8.4f} {s['iou_detected']:8.4f} {s['iou_all_spatial']:8.4f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, reference: evalset.Reference | None = None) -> None:
    """The held-out evaluation; with a `reference` (`python -m provenance.verify.gate` passes the shipped
    `PdqGridComparer`), that comparer side by side on the same path: the figures the gate reads."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=WEIGHTS_FILE)
    parser.add_argument("--out", type=Path, default=None, help="default: evaluation.json next to the weights")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--max-windows", type=int, default=None, help="limit the in-memory set (a quick look)"
    )
    parser.add_argument("--no-files", action="store_true", help="skip the generator-files set")
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="evaluation.json of the model trained without face-swap negatives, recorded for comparison",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, min(2, args.threads)))
    started = time.monotonic()
    model = load_weights(args.weights)
    comparer = TripletComparer(model)
    print("held-out segments ...")
    windows = evalset.make_windows(
        data.eval_footage(),
        EVAL_SEED,
        tampers_per_window=2 * len(data.TAMPER_KINDS),
        max_windows=args.max_windows,
    )
    learned, base = evalset.score_windows(windows, comparer, reference)
    results: dict[str, Any] = {
        "model_version": model.version,
        "weights": str(args.weights),
        "held_out_footage": {
            "videos": list(data.EVAL_VIDEOS),
            "photos": list(data.EVAL_PHOTOS),
            "synthetic_seeds": list(data.EVAL_SYNTHETIC_SEEDS),
        },
        "path": "the verifier's: TripletComparer.run and judge, deferred windows to the baseline",
        "calibration": {"learned": model.calibration},
        "segments": {"learned": evalset.summarise(learned, comparer.threshold, comparer.cell_threshold)},
    }
    rows = [("segments / learned", results["segments"]["learned"])]
    if reference is not None:
        results["baseline"] = reference.name
        results["calibration"]["baseline"] = {"threshold": 1.0, "cell_threshold": 1.0, "shipped": True}
        results["segments"]["baseline"] = evalset.summarise(base, 1.0, 1.0)
        rows.append((f"segments / {reference.name}", results["segments"]["baseline"]))
    if not args.no_files:
        print("generator files ...")
        with tempfile.TemporaryDirectory() as tmp:
            files = evaluate_files(comparer, Path(tmp), reference)
        results["files"] = {
            "learned": evalset.summarise(files["learned"], comparer.threshold, comparer.cell_threshold),
            "learned_4fps": evalset.summarise(
                files["learned_4fps"], comparer.threshold, comparer.cell_threshold
            ),
        }
        rows += [
            ("files / learned (clip at 8 fps)", results["files"]["learned"]),
            ("files / learned (clip at 4 fps)", results["files"]["learned_4fps"]),
        ]
        if reference is not None:
            results["files"]["baseline"] = evalset.summarise(files["reference"], 1.0, 1.0)
            rows.append((f"files / {reference.name}", results["files"]["baseline"]))
    if swaps.available():
        print("face swaps ...")
        benign = [r.score for r in learned if not r.tampered]
        at_1pct = evalset.threshold_at_fpr(benign, 0.01)
        results["face_swap"] = evaluate_face_swaps(comparer, reference, at_1pct)
        rows.append(("face swap / learned", results["face_swap"]["learned"]))
        if reference is not None:
            rows.append((f"face swap / {reference.name}", results["face_swap"]["baseline"]))
    if args.before is not None:
        results["before_face_swap_negatives"] = _before(args.before)
    print("slice and timing ...")
    results["slice"] = evaluate_slice(comparer)
    results["slice_definition"] = {
        "sources": list(SLICE_SOURCES),
        "windows": SLICE_WINDOWS,
        "seed": SLICE_SEED,
    }
    results["timing"] = timing(comparer, reference)
    results["seconds"] = round(time.monotonic() - started, 1)
    out = args.out or args.weights.parent / "evaluation.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(_table(rows))
    print(json.dumps(results["timing"]))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
