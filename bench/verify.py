"""End-to-end verification of a 720p clip against decoding the same clip, and nothing else.

Run from the repository root: ``python -m bench.verify [--repeat N]``.

The clip is bigbuckbunny.mp4 (1280x720, 5.3 s) re-encoded by the generator at a lower quality;
the original bigbuckbunny, bikes and carphone are registered in a `FrameIndex` beforehand (not
timed, that is registration). Measured in one run, interleaved, median of `--repeat`:

- decode: every frame of the clip decoded with the settings `provenance.media` uses
  (`bench.fingerprint.decode_only`), none converted;
- verify: `compute_fingerprint` of the clip (bounded decode, sampling at 4 fps, PDQ and grid)
  plus `verify_fingerprint` (index search, alignment, segment comparison, verdict) with the
  PDQ/grid comparer;
- verify (learned): the same with the learned comparer forced against the originals' version 2
  embeddings: the decode samples 8 fps, keeps those frames (64x64) for the network and hashes the
  4 fps ones; the comparer embeds the clip's frames per stored window.

Target: verify / decode <= 2, for each comparer.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.fingerprint import decode_only, default_clip
from generator.variants import reencode
from provenance.core.config import DecodeLimits
from provenance.fingerprint import VERSION_1, Fingerprint, compute_fingerprint
from provenance.verify.compare import PdqGridComparer
from provenance.verify.index import FrameIndex
from provenance.verify.policy import ComparerPolicy, fingerprint_clip
from provenance.verify.verdict import Outcome, verify_fingerprint

LIMITS = DecodeLimits()


def _registered(clip: Path) -> tuple[FrameIndex, dict[str, Fingerprint]]:
    data = clip.parent
    prints = {
        "bunny": compute_fingerprint(clip, limits=LIMITS),
        "bikes": compute_fingerprint(data / "bikes.mp4", limits=LIMITS),
        "carphone": compute_fingerprint(data / "carphone_pristine.mp4", limits=LIMITS),
    }
    return FrameIndex.of(prints), prints


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--crf", type=int, default=28, help="quality of the re-encoded clip")
    parser.add_argument(
        "--preset",
        default="medium",
        help="x264 preset of the re-encode: medium (B-frames, CABAC) decodes like real uploads",
    )
    args = parser.parse_args()
    original = default_clip()
    index, prints = _registered(original)
    comparer = PdqGridComparer()
    learned = ComparerPolicy("learned")
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "bunny-reencoded.mp4"
        reencode(original, clip, crf=args.crf, preset=args.preset)
        split: dict[str, list[float]] = {
            "fingerprint": [],
            "match": [],
            "fingerprint (learned)": [],
            "match (learned)": [],
        }
        outcome: Outcome | None = None
        learned_outcome: Outcome | None = None

        def verify(path: Path) -> int:
            nonlocal outcome
            t0 = time.perf_counter()
            query = compute_fingerprint(path, limits=LIMITS, version=VERSION_1)
            t1 = time.perf_counter()
            outcome = verify_fingerprint(query, index, prints.__getitem__, comparer)
            split["fingerprint"].append(t1 - t0)
            split["match"].append(time.perf_counter() - t1)
            return len(query.frames)

        def verify_learned(path: Path) -> int:
            nonlocal learned_outcome
            t0 = time.perf_counter()
            query, clip = fingerprint_clip(path, learned, limits=LIMITS)
            t1 = time.perf_counter()
            learned_outcome = verify_fingerprint(query, index, prints.__getitem__, learned.factory(clip))
            split["fingerprint (learned)"].append(t1 - t0)
            split["match (learned)"].append(time.perf_counter() - t1)
            return len(clip or ())

        runs: dict[str, Callable[[Path], int]] = {
            "decode": decode_only,
            "verify": verify,
            "verify-learned": verify_learned,
        }
        for run in runs.values():  # warm the file cache and lazy imports outside the timings
            run(clip)
        split = {name: [] for name in split}
        samples: dict[str, list[float]] = {name: [] for name in runs}
        counts: dict[str, int] = {}
        for _ in range(args.repeat):
            for name, run in runs.items():
                start = time.perf_counter()
                counts[name] = run(clip)
                samples[name].append(time.perf_counter() - start)

    decode_s = statistics.median(samples["decode"])
    verify_s = statistics.median(samples["verify"])
    learned_s = statistics.median(samples["verify-learned"])
    assert outcome is not None and learned_outcome is not None
    print(
        f"clip: {original.name} re-encoded (x264 {args.preset}, crf {args.crf}), "
        f"median of {args.repeat} runs each"
    )
    print(f"{'step':<22} {'seconds':>8} {'x decode':>9}")
    print(f"{'decode (all frames)':<22} {decode_s:8.3f} {1.0:9.2f}   ({counts['decode']} frames)")
    print(
        f"{'verify end to end':<22} {verify_s:8.3f} {verify_s / decode_s:9.2f}   "
        f"({counts['verify']} frames hashed)"
    )
    print(
        f"{'verify, learned':<22} {learned_s:8.3f} {learned_s / decode_s:9.2f}   "
        f"({counts['verify-learned']} frames kept at 8 fps)"
    )
    for name, values in split.items():
        seconds = statistics.median(values)
        print(f"{'  of which ' + name:<31} {seconds:8.3f} {seconds / decode_s:9.2f}")
    for label, found in (("pdq-grid", outcome), ("learned", learned_outcome)):
        result = found.to_json()
        match = result["match"] or {}
        used = found.comparer.to_json() if found.comparer else None
        print(
            f"verdict ({label}): {result['verdict']} ({result['confidence']:.2f}), "
            f"registration {match.get('registration_id')}, original range {match.get('original_range')}, "
            f"comparer {used}"
        )
    print(f"verify/decode = {verify_s / decode_s:.2f} (target <= 2)")
    print(f"verify (learned)/decode = {learned_s / decode_s:.2f} (target <= 2)")


if __name__ == "__main__":
    main()
