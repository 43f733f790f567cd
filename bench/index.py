"""Frame-index lookups against an exact linear scan, at 10k, 100k and 1M registered originals.

Run from the repository root: ``python -m bench.index [--sizes 10000,100000,1000000]``.

Synthetic but realistic hashes: every original has `--frames` (60) frames, each an independent
random 256-bit PDQ hash (two unrelated frames sit ~128 bits apart, as real PDQ hashes do).
Queries are fingerprints of `--frames` frames: most are a registered original's frames with 0-20
random bit flips each (a re-encode moves a PDQ hash by about that much), some are unregistered
(fresh random hashes). For each size, in one run on the same data:

- index: `FrameIndex.search` (the service's lookup: radius search plus grouping by original),
  after a bulk load (`add_batch(rehash=False)` then `optimize()`, as a rebuild from storage);
- linear: an exact scan, XOR and popcount in numpy over every stored hash, per query frame;
- late: `FrameIndex.search` again after `--incremental` (2%) more originals were added one at a
  time, as registrations arrive (hashed levels plus a brute-forced tail).

Recall counts every (query frame, stored frame) pair within 31 bits that the linear scan finds
(on the queries it is run on) and every planted source frame (on all queries).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np

from harness.synthetic import flip_bits, synthetic_fingerprint
from provenance.verify.index import MATCH_DISTANCE, FrameIndex

_BATCH = 20_000  # originals per add_batch call
_SCAN_CHUNK = 2_000_000  # stored hashes per numpy step of the linear scan


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def linear_scan(stored: np.ndarray, queries: np.ndarray, radius: int) -> list[np.ndarray]:
    """Exact baseline: ids of every stored hash within `radius` of each query, by brute force."""
    words = stored.view(np.uint64)
    results = []
    for query in queries.view(np.uint64):
        hits = []
        for start in range(0, len(words), _SCAN_CHUNK):
            chunk = words[start : start + _SCAN_CHUNK]
            distance = np.bitwise_count(chunk ^ query).sum(axis=1, dtype=np.uint16)
            hits.append(np.flatnonzero(distance <= radius) + start)
        results.append(np.concatenate(hits))
    return results


def run_size(
    originals: int, frames: int, queries: int, unregistered: int, scanned: int, incremental: float, seed: int
) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    total = originals * frames
    stored = rng.integers(0, 256, size=(total, 32), dtype=np.uint8)
    index = FrameIndex(crop_tolerant=False)
    index.reserve(total)
    start = time.perf_counter()
    for first in range(0, originals, _BATCH):
        count = min(_BATCH, originals - first)
        ids = [f"reg-{k}" for k in range(first, first + count)]
        index.add_batch(
            ids, stored[first * frames : (first + count) * frames], [frames] * count, rehash=False
        )
    index.optimize()
    build_s = time.perf_counter() - start

    sources = rng.integers(0, originals, size=queries)
    planted = [flip_bits(stored[s * frames : (s + 1) * frames], rng, 20) for s in sources]
    fresh = [rng.integers(0, 256, size=(frames, 32), dtype=np.uint8) for _ in range(unregistered)]
    query_codes = planted + fresh
    prints = [synthetic_fingerprint(codes) for codes in query_codes]

    index.search(prints[0])  # warm caches outside the timings
    index_times, found = [], []
    for fp in prints:
        t0 = time.perf_counter()
        candidates = index.search(fp, max_distance=MATCH_DISTANCE, limit=5)
        index_times.append(time.perf_counter() - t0)
        found.append(candidates)

    # Recall against the planted sources, on every matching query.
    hit = sum(
        1
        for k, source in enumerate(sources)
        for q in range(frames)
        if any(c.registration_id == f"reg-{source}" and q in c.matches for c in found[k])
    )
    planted_recall = hit / (len(sources) * frames)
    false_unknown = sum(1 for k in range(len(sources), len(prints)) if found[k])

    # Then registrations arriving one by one, as in service: hashed levels plus a flat tail.
    more = max(1, int(originals * incremental))
    extra = rng.integers(0, 256, size=(more * frames, 32), dtype=np.uint8)
    start = time.perf_counter()
    for k in range(more):
        index.add_codes(f"late-{k}", extra[k * frames : (k + 1) * frames])
    add_ms = (time.perf_counter() - start) / more * 1000
    late_times = []
    for fp in prints:
        t0 = time.perf_counter()
        index.search(fp, max_distance=MATCH_DISTANCE, limit=5)
        late_times.append(time.perf_counter() - t0)
    late = synthetic_fingerprint(flip_bits(extra[-frames:], rng, 20))
    late_found = index.search(late)[0].registration_id == f"late-{more - 1}"

    # Exact pairs from the linear scan, on the first `scanned` queries (it is slow at 1M).
    scan_times, truth, got = [], 0, 0
    for k in range(min(scanned, len(prints))):
        t0 = time.perf_counter()
        exact = linear_scan(stored, query_codes[k], MATCH_DISTANCE)
        scan_times.append(time.perf_counter() - t0)
        rows, _, found_ids = index._pdq.search(query_codes[k], MATCH_DISTANCE)
        for q, ids_q in enumerate(exact):
            truth += len(ids_q)
            got += len(set(ids_q.tolist()) & set(found_ids[rows == q].tolist()))
    index_s = statistics.median(index_times)
    scan_s = statistics.median(scan_times)
    return {
        "originals": originals,
        "hashes": total,
        "build_s": build_s,
        "index_ms": index_s * 1000,
        "scan_ms": scan_s * 1000,
        "speedup": scan_s / index_s,
        "recall_scan": got / truth if truth else 1.0,
        "recall_planted": planted_recall,
        "false_matches": false_unknown,
        "rss_gb": _rss_gb(),
        "late_ms": statistics.median(late_times) * 1000,
        "add_ms": add_ms,
        "late_found": float(late_found),
        "type": index.index_type,  # type: ignore[dict-item]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="10000,100000,1000000", help="registered originals, comma-separated"
    )
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--queries", type=int, default=40, help="queries of registered originals")
    parser.add_argument("--unregistered", type=int, default=10, help="queries of nothing registered")
    parser.add_argument("--scanned", type=int, default=2, help="queries also run through the linear scan")
    parser.add_argument(
        "--incremental", type=float, default=0.02, help="share of originals then added one by one"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(
        f"{args.frames} frames per original and per query; {args.queries} registered + "
        f"{args.unregistered} unregistered queries; linear scan on {args.scanned} of them"
    )
    print(
        f"{'originals':>10} {'hashes':>11} {'build s':>8} {'index ms':>9} {'linear ms':>10} "
        f"{'speedup':>8} {'recall':>7} {'planted':>8} {'false':>6} {'rss GB':>7} {'add ms':>7} "
        f"{'late ms':>8}  type after the late adds"
    )
    for size in sizes:
        r = run_size(
            size, args.frames, args.queries, args.unregistered, args.scanned, args.incremental, args.seed
        )
        print(
            f"{size:>10} {int(r['hashes']):>11} {r['build_s']:>8.1f} {r['index_ms']:>9.2f} "
            f"{r['scan_ms']:>10.1f} {r['speedup']:>7.0f}x {r['recall_scan']:>7.4f} "
            f"{r['recall_planted']:>8.4f} {int(r['false_matches']):>6} {r['rss_gb']:>7.2f} "
            f"{r['add_ms']:>7.2f} {r['late_ms']:>8.2f}  {r['type']}"
            f"{'' if r['late_found'] else ' (a late registration was missed)'}",
            flush=True,
        )
    print(
        "times are per query fingerprint (all its frames); recall at Hamming distance <= 31; "
        "add ms: one registration added (with rehashing, amortised); late ms: lookups after those adds"
    )


if __name__ == "__main__":
    main()
