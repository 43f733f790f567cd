"""Cost of the learned comparer against the shipped PDQ/grid comparer, measured side by side in one run.

Run from the repository root: ``python -m bench.detector [--repeat N] [--clip PATH]``.
The clip (bigbuckbunny.mp4 by default) is sampled once at 4 fps (longer side <= 512, as the
verifier does); then, each repeated and summarised by its median:

- register: learned segment embeddings of the whole clip vs the v1 frame hashes (PDQ + grid) the
  baseline compares (`provenance.fingerprint.hash_frame`);
- verify: every 1 s window of the clip compared with the stored original by each comparer
  (learned: one alignment run, `TripletComparer.compare`; baseline: the clip frames' hashes and
  `PdqGridComparer.compare` against the original's frames around the window);
- storage: bytes per second of video each keeps for the original.

Ratios (learned / baseline) hold on any machine; one torch thread.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from detector.comparer import TripletComparer
from detector.evaluate import sample_file
from detector.model import EMBEDDING_BYTES
from frames.samples import sample_clip
from provenance.fingerprint import hash_frame
from provenance.verify.compare import PdqGridComparer

# What fingerprint v1 stores per frame: PDQ (32 bytes) and the 8x8 grid (1280 bytes).
BASELINE_BYTES_PER_FRAME = 32 + 1280


def _median_seconds(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--clip", type=Path, default=sample_clip("bigbuckbunny.mp4"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    frames = sample_file(args.clip)
    comparer = TripletComparer()
    segments = comparer.embed_video_frames(frames)
    described = [hash_frame(t, rgb) for t, rgb in frames]
    pdq_grid = PdqGridComparer()
    duration = frames[-1][0] + 0.25

    def learned_register() -> None:
        comparer._cache.clear()
        comparer.embed_video_frames(frames)

    def baseline_register() -> None:
        [hash_frame(t, rgb) for t, rgb in frames]

    def learned_verify() -> None:
        comparer._cache.clear()
        comparer.compare(frames, segments)

    def baseline_verify() -> None:
        for k in range(0, len(frames), 4):
            window = [hash_frame(t, rgb) for t, rgb in frames[k : k + 4]]
            pdq_grid.compare(window, described[max(0, k - 1) : k + 5])

    rows = [
        (
            "register",
            _median_seconds(learned_register, args.repeat),
            _median_seconds(baseline_register, args.repeat),
        ),
        (
            "verify",
            _median_seconds(learned_verify, args.repeat),
            _median_seconds(baseline_verify, args.repeat),
        ),
    ]
    count = len(segments)
    print(f"{args.clip.name}: {len(frames)} sampled frames, {count} segments, {duration:.1f} s")
    print(f"{'':10} {'learned ms/seg':>15} {'baseline ms/seg':>16} {'ratio':>7}")
    for name, ours, theirs in rows:
        print(f"{name:10} {1000 * ours / count:15.2f} {1000 * theirs / count:16.2f} {ours / theirs:7.2f}")
    ours_bytes = count * EMBEDDING_BYTES / duration
    theirs_bytes = len(frames) * BASELINE_BYTES_PER_FRAME / duration
    print(f"{'storage':10} {ours_bytes:13.0f} B/s {theirs_bytes:14.0f} B/s {ours_bytes / theirs_bytes:7.2f}")


if __name__ == "__main__":
    main()
