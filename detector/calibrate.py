"""Calibration of the decision thresholds on the validation set (never on the held-out footage).

The validation set is built from `data.validation_footage()`: other camera takes of the training
pictures, the training videos, and synthetic scenes of seeds used neither in training nor in
evaluation. The learned comparer's threshold is set at 0.5% false positives there (stricter
than the 1% the evaluation reports, to leave room for footage unlike the training's), and its
cell threshold where localisation IoU is best. The baseline is calibrated the same way, on the
same segments, so the comparison is fair.
"""

from __future__ import annotations

from typing import Any

from detector import data, evalset
from detector.comparer import TripletComparer
from detector.model import TripletNet

VALIDATION_SEED = 4242
BENIGN_PER_WINDOW = 5
TAMPERS_PER_WINDOW = 3
FPR_TARGET = 0.005


def validation_records(
    comparer: TripletComparer | None, with_baseline: bool, max_windows: int | None = None
) -> tuple[list[evalset.Scored], list[evalset.Scored]]:
    windows = evalset.make_windows(
        data.validation_footage(),
        VALIDATION_SEED,
        benign_per_window=BENIGN_PER_WINDOW,
        tampers_per_window=TAMPERS_PER_WINDOW,
        max_windows=max_windows,
    )
    return evalset.score_windows(windows, comparer, with_baseline=with_baseline)


def calibrate(net: TripletNet, segments: int = 400, seed: int = 0) -> tuple[dict[str, float], dict[str, Any]]:
    """(calibration to store with the weights, validation metrics at that calibration).

    `segments` bounds the number of validation windows (each holds 8 copies); `seed` is recorded
    only: the validation set is fixed so runs with different seeds are calibrated alike.
    """
    comparer = TripletComparer(net)
    learned, _ = validation_records(comparer, with_baseline=False, max_windows=max(10, segments))
    calibration = evalset.calibrate_thresholds(learned, FPR_TARGET)
    summary = evalset.summarise(learned, calibration["threshold"], calibration["cell_threshold"])
    summary["training_seed"] = seed
    return calibration, summary
