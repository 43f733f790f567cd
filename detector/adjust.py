"""How a copy was re-framed and re-toned: corrections the comparer searches before it judges a clip.

Copies of a clip are often cropped a little or re-graded (gamma, saturation). The network is
trained to tolerate both, yet its cells still move, and those benign moves are what set the
threshold a subtle edit has to pass: with the shipped weights, crops and colour grades were most
of the held-out false positives at 1% FPR. So the comparer looks for the correction that maps the
clip back onto the original best — the crop it shows (up to `CROP_STEPS[-1]` of each side) and
its tone — judged, like the timing offset, by the median cell distance, which a local edit hardly
moves, and compares the clip through it. Nothing of the original is needed beyond its stored
embedding. The search is greedy, one stage at a time (`STAGES`: left and right crop, top and
bottom crop, gamma and saturation), 25 candidates in all.

An `Adjustment` acts on the comparer's 64x64 squares (`detector.inputs.prepare`), not on frames.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache

import cv2
import numpy as np

# Share of the original a copy may have cut off one side: the crops the network trained on.
CROP_STEPS = (0.0, 0.025, 0.05)
GAMMAS = (0.77, 1.0, 1.3)
SATURATIONS = (0.75, 1.0, 1.33)


@cache
def _gamma_table(gamma: float) -> np.ndarray:
    return np.clip(255 * (np.arange(256) / 255) ** gamma, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Adjustment:
    """A correction of a copy: the crop it shows (left, top, right, bottom shares cut off), its tone."""

    crop: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    gamma: float = 1.0
    saturation: float = 1.0

    def apply(self, square: np.ndarray) -> np.ndarray:
        """A (S, S, 3) uint8 square of the copy, put back into the original's framing and tone.

        The part the crop cut off is filled with the copy's edge pixels: it cannot be checked.
        """
        out = np.ascontiguousarray(square)
        left, top, right, bottom = self.crop
        if any(self.crop):
            side = out.shape[0]
            matrix = np.array(
                [[1 - left - right, 0, left * side], [0, 1 - top - bottom, top * side]], dtype=np.float32
            )
            out = cv2.warpAffine(
                out, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
        if self.gamma != 1.0:
            out = cv2.LUT(out, _gamma_table(self.gamma))
        if self.saturation != 1.0:
            grey = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
            out = cv2.addWeighted(out, self.saturation, grey, 1 - self.saturation, 0)
        return out


IDENTITY = Adjustment()


def _horizontal(best: Adjustment) -> list[Adjustment]:
    _, top, _, bottom = best.crop
    return [replace(best, crop=(lt, top, rt, bottom)) for lt in CROP_STEPS for rt in CROP_STEPS]


def _vertical(best: Adjustment) -> list[Adjustment]:
    left, _, right, _ = best.crop
    return [replace(best, crop=(left, tp, right, bt)) for tp in CROP_STEPS for bt in CROP_STEPS]


def _tone(best: Adjustment) -> list[Adjustment]:
    return [replace(best, gamma=g, saturation=s) for g in GAMMAS for s in SATURATIONS]


STAGES: tuple[Callable[[Adjustment], list[Adjustment]], ...] = (_horizontal, _vertical, _tone)


def search(fits: Callable[[list[Adjustment]], list[float]]) -> Adjustment:
    """The adjustment with the lowest fit, stage by stage; the identity unless another fits better.

    `fits` scores a stage's candidates together (the comparer embeds them in one batch).
    """
    best, best_fit = IDENTITY, fits([IDENTITY])[0]
    for stage in STAGES:
        candidates = [c for c in stage(best) if c != best]
        for candidate, value in zip(candidates, fits(candidates), strict=True):
            if value < best_fit - 1e-9:
                best, best_fit = candidate, value
    return best
