"""Fingerprinting cost against decoding alone and against a naive hash-every-frame baseline.

Run from the repository root: ``python -m bench.fingerprint [--repeat N] [--clip PATH]``.
All three are measured in the same run on the same clip (bigbuckbunny.mp4, 720p H.264, by
default), each repeated and summarised by its median, so the ratios hold on any machine:

- decode: every frame decoded with the settings `provenance.media` uses, none converted;
- fingerprint: `compute_fingerprint` (probe, sampled decoding at 4 fps, PDQ and grid, and the
  version 2 segment embeddings: a forward pass of the triplet network per sampled frame);
- fingerprint-v1: the same without embeddings (what a verifier computes of a clip);
- naive: every frame converted to RGB at full size and PDQ-hashed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import av
import pdqhash

from frames.samples import sample_clip
from provenance.core.config import DecodeLimits
from provenance.fingerprint import VERSION_1, compute_fingerprint


def default_clip() -> Path:
    return sample_clip("bigbuckbunny.mp4")


def _decode_every_frame(path: Path, on_frame: Callable[[av.VideoFrame], None]) -> int:
    """Decode like `provenance.media` does (file object, threaded, other streams discarded)."""
    frames = 0
    with path.open("rb") as fh, av.open(fh, mode="r") as container:
        stream = container.streams.video[0]
        for other in container.streams:
            if other.index != stream.index:
                other.discard = av.stream.Discard.all
        stream.thread_type = "AUTO"
        for packet in container.demux(stream):
            for frame in stream.decode(packet):
                on_frame(frame)
                frames += 1
    return frames


def decode_only(path: Path) -> int:
    return _decode_every_frame(path, lambda frame: None)


def naive(path: Path) -> int:
    def hash_frame(frame: av.VideoFrame) -> None:
        pdqhash.compute(frame.to_ndarray(format="rgb24"))

    return _decode_every_frame(path, hash_frame)


def fingerprint(path: Path) -> int:
    return len(compute_fingerprint(path, limits=DecodeLimits(), sample_fps=4.0).frames)


def fingerprint_v1(path: Path) -> int:
    return len(compute_fingerprint(path, limits=DecodeLimits(), sample_fps=4.0, version=VERSION_1).frames)


def _timed(run: Callable[[Path], int], path: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds of the whole process (all decoder threads), frames."""
    wall, cpu = time.perf_counter(), time.process_time()
    count = run(path)
    return time.perf_counter() - wall, time.process_time() - cpu, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--clip", type=Path, default=None)
    args = parser.parse_args()
    path: Path = args.clip or default_clip()

    runs: dict[str, Callable[[Path], int]] = {
        "decode": decode_only,
        "fingerprint": fingerprint,
        "fingerprint-v1": fingerprint_v1,
        "naive": naive,
    }
    for run in runs.values():  # warm file cache and lazy imports outside the timings
        run(path)
    # Interleave the repeats so drift in machine load hits all three alike.
    walls: dict[str, list[float]] = {name: [] for name in runs}
    cpus: dict[str, list[float]] = {name: [] for name in runs}
    counts: dict[str, int] = {}
    for _ in range(args.repeat):
        for name, run in runs.items():
            wall_s, cpu_s, counts[name] = _timed(run, path)
            walls[name].append(wall_s)
            cpus[name].append(cpu_s)
    wall = {name: statistics.median(values) for name, values in walls.items()}
    cpu = {name: statistics.median(values) for name, values in cpus.items()}

    print(f"clip: {path.name}; median of {args.repeat} interleaved runs; cpu = all threads of the process")
    print(f"{'method':<14} {'frames':>7} {'wall s':>8} {'x decode':>9} {'cpu s':>8} {'x decode':>9}")
    for name in runs:
        print(
            f"{name:<14} {counts[name]:7d} {wall[name]:8.3f} {wall[name] / wall['decode']:9.2f}"
            f" {cpu[name]:8.3f} {cpu[name] / cpu['decode']:9.2f}"
        )
    print(
        f"wall: fingerprint/decode = {wall['fingerprint'] / wall['decode']:.2f} "
        f"(v1: {wall['fingerprint-v1'] / wall['decode']:.2f}), "
        f"naive/decode = {wall['naive'] / wall['decode']:.2f}"
    )


if __name__ == "__main__":
    main()
