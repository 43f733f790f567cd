"""The gate that decides the default comparer: the held-out evaluation of the comparers that ship.

`python -m provenance.verify.gate [detector.evaluate's options]` runs `detector.evaluate` with the
shipped `PdqGridComparer` (geometry, motion and tone search included) injected as its reference:
the learned comparer and this one are measured on the same held-out windows, each on the path
verification runs (`detector.comparer.TripletComparer.run` and `judge`, a deferred window handed
to the PDQ/grid comparer as `LearnedComparer` does). `evaluation.json`'s `segments` figures are
what `provenance.verify.policy.qualifies` reads for `auto`.

The PDQ/grid comparer is taken at its shipped threshold (`CELL_THRESHOLD`), not calibrated again:
its scores are reported over that threshold, so 1 is its decision point.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from provenance.fingerprint import FrameHash, hash_frame
from provenance.verify.compare import PdqGridComparer

TimedFrame = tuple[float, np.ndarray]
# Evaluation times can fall before 0 (a window at the start, placed with the aligner's error);
# frame hashes cannot, and the comparer only uses differences of times.
_TIME_SHIFT = 10.0
_CACHE_FRAMES = 4096


class PdqGridReference:
    """`detector.evalset.Reference` over the shipped `PdqGridComparer`, frames hashed as fingerprints are."""

    def __init__(self, comparer: PdqGridComparer | None = None) -> None:
        self.comparer = comparer or PdqGridComparer()
        self.name = f"{self.comparer.name}-{self.comparer.version}"
        self._hashes: OrderedDict[bytes, FrameHash] = OrderedDict()

    def _hash(self, t: float, rgb: np.ndarray) -> FrameHash:
        """The frame's v1 hashes at time `t` (described once per picture: an original's serve many copies)."""
        key = hashlib.blake2b(rgb.tobytes() + str(rgb.shape).encode(), digest_size=16).digest()
        found = self._hashes.get(key)
        if found is None:
            found = self._hashes[key] = hash_frame(0.0, rgb)
            if len(self._hashes) > _CACHE_FRAMES:
                self._hashes.popitem(last=False)
        return FrameHash(t=round(t + _TIME_SHIFT, 3), pdq=found.pdq, quality=found.quality, grid=found.grid)

    def score(self, query: Sequence[TimedFrame], original: Sequence[TimedFrame]) -> tuple[float, np.ndarray]:
        """(worst cell, (8, 8) cell scores) over the comparer's threshold, as its `compare` decides."""
        cells = self.comparer.cell_scores(
            [self._hash(t, rgb) for t, rgb in query], [self._hash(t, rgb) for t, rgb in original]
        )
        ratio = (cells / self.comparer.threshold).astype(np.float32)
        return float(ratio.max()), ratio


def main(argv: Sequence[str] | None = None) -> None:
    from detector import evaluate

    evaluate.main(argv, reference=PdqGridReference())


if __name__ == "__main__":
    main()
