"""In-memory index of every registered frame: which originals could a submitted clip come from?

Two stores of 256-bit codes, both filled incrementally as registrations arrive:

- the frames' PDQ hashes, the primary lookup (a match is a Hamming distance <= 31);
- their *centre hashes* (`provenance.verify.thumbs`), rebuilt from the grid descriptors, which
  still match after a crop of up to 20% per side where PDQ does not. They are searched only when
  PDQ finds too little, so the common case costs one lookup.

- their *strip hashes* (`thumbs.strip_hashes`): `thumbs.STRIP_COUNT` vertical strips per frame,
  which a vertical crop (down to 40% of the width, full height) still shows whole. They are
  searched (`search_crops`) only when nothing else finds the clip: a clip is hashed under every
  crop hypothesis (`thumbs.crop_hypotheses`, ~480 per frame), so the search costs ~480 lookups
  per frame looked at, for `CROP_QUERY_FRAMES` frames at most.

Each store answers exact radius queries. Its newest codes (up to `FLAT_LIMIT`) are brute-forced
by a FAISS `IndexBinaryFlat`; the rest are searched by multi-index hashing (Norouzi et al.):
`MIH_TABLES` = 11 tables over disjoint substrings of up to 23 bits, each a sorted array of code
ids with bucket offsets, probed at every key within `MIH_FLIPS` = 2 bits of the query's. A code
within 31 bits of the query differs in at most 2 bits on one of the 11 substrings (11 x 3 > 31),
so the radius search is exact, not approximate. As registrations arrive the flat tail is hashed
into *levels* of geometrically growing size (a log-structured merge), so adds stay cheap and no
search waits for a rebuild; `optimize()` merges everything after a bulk load.

Why not FAISS's own `IndexBinaryMultiHash`: measured here at 20M codes (11 x 23 bits, 2 flips)
it took 384 s and 8.75 GB to build (a `std::unordered_map` node and vector per bucket) and
answered in 27 ms a frame, 18x a numpy linear scan; 60M codes (1M originals) would not fit in
24 GB. The sorted arrays take 4 bytes per code per table plus the codes themselves, built in
82 s at 60M and answered a 60-frame query in 115 ms (about 2 ms a frame), 1177x the linear scan,
with recall 1.0 (`python -m bench.index`).

Frames of low PDQ quality (flat, black) match everything and are left out of both sides.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

import faiss
import numpy as np
import numpy.typing as npt

from frames.descriptor import PDQ_BYTES
from provenance.fingerprint import Fingerprint, FrameHash
from provenance.verify import thumbs

# A search here is milliseconds of work. FAISS's OpenMP regions waited ~20 ms a call for their
# second thread whenever this 2-core machine was busy; one thread is faster and steadier, and
# callers parallelise across requests. (FAISS bundles its own OpenMP runtime: this setting is
# FAISS-wide in the process, and touches no other library's threads.)
faiss.omp_set_num_threads(1)

MATCH_DISTANCE = 31
MIN_QUALITY = 50
CODE_BITS = PDQ_BYTES * 8
# Brute force beats hashing below this many codes, in time and far more in memory.
FLAT_LIMIT = 20_000
MIH_TABLES = 11
MIH_BITS = 23
MIH_FLIPS = 2
# Original frames kept per matched query frame in a `Candidate`.
_BEST_FRAMES = 3
# Fall back to the centre hashes when PDQ matches fewer than this share of the usable frames.
_CENTRE_FALLBACK = 0.5
# Clip frames (evenly spread over the usable ones) whose crop hypotheses the strip search looks up.
CROP_QUERY_FRAMES = 6


@dataclass(frozen=True)
class Candidate:
    """A registered original that some query frames match.

    `matches` maps a query frame index (into the query's frames) to the indexes of the original
    frames it matches best, best first. `scale` is the crop scale (1.0 = uncropped) under which
    the centre hashes matched, when PDQ did not.
    """

    registration_id: str
    matched_query_frames: int
    matches: dict[int, tuple[int, ...]] = field(repr=False)
    mean_distance: float
    scale: float = 1.0
    # For a strip (vertical crop) match: (offset, width) of the original the clip shows, as
    # fractions of its width.
    crop: tuple[float, float] | None = None
    # For a window match (`search_windows`): the window of the clip's frames that shows the original.
    window: tuple[float, float, float, float] | None = None


def usable(frame: FrameHash) -> bool:
    """Whether a frame's hash says anything: flat frames match every other flat frame."""
    return frame.quality >= MIN_QUALITY


class _Growable:
    """An array with amortised O(1) appends along its first axis (numpy has none)."""

    def __init__(self, dtype: type[np.generic], width: int = 0) -> None:
        self._shape = (width,) if width else ()
        self._data = np.zeros((1024, *self._shape), dtype=dtype)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def reserve(self, capacity: int) -> None:
        """Grow once to `capacity` rows, so a bulk load never holds two copies."""
        if capacity > len(self._data):
            grown = np.zeros((capacity, *self._shape), dtype=self._data.dtype)
            grown[: self._size] = self._data[: self._size]
            self._data = grown

    def extend(self, values: np.ndarray) -> None:
        end = self._size + len(values)
        if end > len(self._data):
            grown = np.zeros((max(end, int(len(self._data) * 1.5)), *self._shape), dtype=self._data.dtype)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size : end] = values
        self._size = end

    def view(self) -> np.ndarray:
        """The filled part; stays valid (if stale) after later appends reallocate."""
        return self._data[: self._size]


@dataclass(frozen=True)
class _Tables:
    """Multi-index hashing over codes[start:start + count]: per substring, ids sorted by key (CSR).

    Ids are relative to `start`.
    """

    start: int
    count: int
    bits: int
    offsets: tuple[np.ndarray, ...]
    ids: tuple[np.ndarray, ...]


def _substring_key(codes: np.ndarray, bits: int, table: int) -> np.ndarray:
    """(n,) uint64: substring `table` (`bits` wide, most significant first) of each code."""
    words = np.ascontiguousarray(codes).view(">u8")
    mask = np.uint64((1 << bits) - 1)
    word, offset = divmod(table * bits, 64)
    if offset + bits <= 64:
        return (words[:, word].astype(np.uint64) >> np.uint64(64 - offset - bits)) & mask
    low = offset + bits - 64
    high = (words[:, word].astype(np.uint64) << np.uint64(low)) & mask
    return high | (words[:, word + 1].astype(np.uint64) >> np.uint64(64 - low))


@lru_cache(maxsize=8)
def _flip_masks(bits: int, flips: int) -> np.ndarray:
    """Every `bits`-bit mask with at most `flips` bits set: the keys probed around a query's."""
    masks = [0]
    for count in range(1, flips + 1):
        masks.extend(sum(1 << b for b in chosen) for chosen in itertools.combinations(range(bits), count))
    return np.asarray(masks, dtype=np.uint64)


def _hamming_rows(a: np.ndarray, b: np.ndarray) -> npt.NDArray[np.int64]:
    """Hamming distance of a[k] and b[k], row by row, for (n, 4) uint64 arrays."""
    bits = np.bitwise_count(a ^ b)
    distances: npt.NDArray[np.int64] = bits[:, 0].astype(np.int64) + bits[:, 1] + bits[:, 2] + bits[:, 3]
    return distances


def _words(codes: np.ndarray) -> np.ndarray:
    """(n, 4) uint64 view of (n, 32) uint8 codes."""
    return np.ascontiguousarray(codes, dtype=np.uint8).view(np.uint64)


class _CodeStore:
    """256-bit codes with their registration and frame, searchable within a Hamming radius.

    Codes live in one append-only array, covered left to right by *levels* of multi-index
    hashing tables and, after them, a short tail searched by brute force (a FAISS
    `IndexBinaryFlat`). When the tail outgrows `flat_limit` it becomes a level of its own, merged
    with the levels before it that are not over twice its size, so level sizes grow
    geometrically: few levels, and each code rehashed O(log n) times in all. Tables are built
    outside the lock; searches meanwhile use the old ones.
    """

    def __init__(self, flat_limit: int) -> None:
        self.flat_limit = flat_limit
        self.lock = threading.Lock()
        self.codes = _Growable(np.uint8, PDQ_BYTES)
        self.owners = _Growable(np.int32)
        self.frames = _Growable(np.int32)
        self.levels: tuple[_Tables, ...] = ()
        self.flat = faiss.IndexBinaryFlat(CODE_BITS)
        self._rebuilding = False

    def __len__(self) -> int:
        return len(self.codes)

    def reserve(self, count: int) -> None:
        with self.lock:
            for array in (self.codes, self.owners, self.frames):
                array.reserve(count)

    @property
    def kind(self) -> str:
        if not self.levels:
            return "flat"
        return f"multi-index hashing ({len(self.levels)} levels) + flat"

    def add(self, codes: np.ndarray, owners: np.ndarray, frames: np.ndarray, rehash: bool = True) -> None:
        if not len(codes):
            return
        with self.lock:
            self.codes.extend(codes)
            self.owners.extend(owners)
            self.frames.extend(frames)
            self.flat.add(np.ascontiguousarray(codes, dtype=np.uint8))
            due = rehash and self.flat.ntotal > self.flat_limit and not self._rebuilding
            if due:
                self._rebuilding = True
        if due:
            self._hash_tail(merge_all=False)

    def rebuild(self) -> None:
        """Hash every code stored so far into one level (after a bulk load)."""
        with self.lock:
            if self._rebuilding:
                return
            self._rebuilding = True
        self._hash_tail(merge_all=True)

    def _hash_tail(self, merge_all: bool) -> None:
        """Turn the flat tail into a level, merging it with smaller levels; searches go on."""
        try:
            with self.lock:
                codes = self.codes.view()
                kept = list(self.levels)
            start = self.hashed_of(kept)
            while kept and (merge_all or kept[-1].count <= 2 * (len(codes) - start)):
                start = kept.pop().start
            level = _build_tables(codes[start:], start)
            with self.lock:
                self.levels = (*kept, level)
                rest = self.codes.view()[level.start + level.count :]
                self.flat = faiss.IndexBinaryFlat(CODE_BITS)
                if len(rest):
                    self.flat.add(np.ascontiguousarray(rest))
        finally:
            with self.lock:
                self._rebuilding = False

    @staticmethod
    def hashed_of(levels: Sequence[_Tables]) -> int:
        return levels[-1].start + levels[-1].count if levels else 0

    def search(self, queries: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query row, distance, code id) of every stored code within `max_distance` of a query."""
        queries = np.ascontiguousarray(queries, dtype=np.uint8)
        with self.lock:
            levels, flat, codes = self.levels, self.flat, self.codes.view()
            parts = [_flat_search(flat, queries, max_distance, self.hashed_of(levels))]
        exact = max_distance < MIH_TABLES * (MIH_FLIPS + 1)
        for level in levels:
            covered = codes[level.start : level.start + level.count]
            if exact:
                rows, distances, ids = _hashed_search(level, covered, queries, max_distance)
            else:
                rows, distances, ids = _linear_search(covered, queries, max_distance)
            parts.append((rows, distances, ids + level.start))
        rows, distances, ids = (np.concatenate(p) for p in zip(*parts, strict=True))
        return rows, distances, ids


def _flat_search(
    flat: faiss.IndexBinaryFlat, queries: np.ndarray, max_distance: int, first_id: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not len(queries) or not flat.ntotal:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    # FAISS's binary radius search keeps distances strictly below the radius.
    lims, distances, ids = flat.range_search(queries, max_distance + 1)
    bounds = np.asarray(lims, dtype=np.int64)
    rows = np.repeat(np.arange(len(queries)), bounds[1:] - bounds[:-1])
    return rows, distances.astype(np.int64), ids.astype(np.int64) + first_id


def _build_tables(codes: np.ndarray, start: int) -> _Tables:
    """Sort code ids by each substring key; the substring width grows with the level's size."""
    count = len(codes)
    bits = int(min(MIH_BITS, max(16, math.ceil(math.log2(max(count, 2))))))
    offsets, ids = [], []
    for h in range(MIH_TABLES):
        key = _substring_key(codes, bits, h)
        counts = np.bincount(key, minlength=1 << bits)
        # Sorting (key, id) packed in one word is several times faster than an argsort.
        key <<= np.uint64(32)
        key |= np.arange(count, dtype=np.uint64)
        key.sort()
        ids.append((key & np.uint64(0xFFFFFFFF)).astype(np.uint32))
        del key
        offsets.append(np.concatenate([[0], np.cumsum(counts)]).astype(np.uint32))
    return _Tables(start=start, count=count, bits=bits, offsets=tuple(offsets), ids=tuple(ids))


def _hashed_search(
    tables: _Tables, codes: np.ndarray, queries: np.ndarray, max_distance: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact radius search: a code within the radius is within `MIH_FLIPS` bits on some substring."""
    masks = _flip_masks(tables.bits, MIH_FLIPS)
    found_rows, found_ids = [], []
    probe_rows = np.repeat(np.arange(len(queries)), len(masks))
    for h in range(MIH_TABLES):
        key = _substring_key(queries, tables.bits, h)
        probes = (key[:, None] ^ masks[None, :]).astype(np.intp).ravel()
        starts = np.take(tables.offsets[h], probes).astype(np.int64)
        lengths = np.take(tables.offsets[h], probes + 1).astype(np.int64) - starts
        total = int(lengths.sum())
        if not total:
            continue
        shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        found_ids.append(np.take(tables.ids[h], shift + np.arange(total)).astype(np.int64))
        found_rows.append(np.repeat(probe_rows, lengths))
    if not found_ids:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    rows, ids = np.concatenate(found_rows), np.concatenate(found_ids)
    # np.take: several times faster than fancy indexing for gathering rows.
    distances = _hamming_rows(np.take(_words(queries), rows, axis=0), np.take(_words(codes), ids, axis=0))
    keep = distances <= max_distance
    rows, ids, distances = rows[keep], ids[keep], distances[keep]
    # A code close on several substrings was found once per substring.
    unique = np.unique(rows * (len(codes) + 1) + ids, return_index=True)[1]
    return rows[unique], distances[unique], ids[unique]


def _linear_search(
    codes: np.ndarray, queries: np.ndarray, max_distance: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact fallback for radii beyond the hashing guarantee."""
    words = _words(codes)
    rows, distances, ids = [], [], []
    for row, query in enumerate(_words(queries)):
        distance = _hamming_rows(words, np.broadcast_to(query, words.shape))
        found = np.flatnonzero(distance <= max_distance)
        rows.append(np.full(len(found), row, dtype=np.int64))
        distances.append(distance[found])
        ids.append(found.astype(np.int64))
    empty = [np.zeros(0, dtype=np.int64)]
    return np.concatenate(rows or empty), np.concatenate(distances or empty), np.concatenate(ids or empty)


class FrameIndex:
    """Thread-safe index of registered frames; see the module docstring for the index types."""

    def __init__(
        self,
        *,
        crop_tolerant: bool = True,
        reframe_tolerant: bool | None = None,
        flat_limit: int = FLAT_LIMIT,
    ) -> None:
        self._lock = threading.Lock()
        self._ids: list[str] = []
        self._numbers: dict[str, int] = {}
        self._pdq = _CodeStore(flat_limit)
        self._centre = _CodeStore(flat_limit) if crop_tolerant else None
        # Strips of every frame, for vertical crops (on with the centre hashes unless said otherwise).
        strips = crop_tolerant if reframe_tolerant is None else reframe_tolerant
        self._strips = _CodeStore(flat_limit) if strips else None

    def __len__(self) -> int:
        """Number of registrations."""
        return len(self._ids)

    @property
    def frame_count(self) -> int:
        """Number of indexed (usable) frames."""
        return len(self._pdq)

    @property
    def index_type(self) -> str:
        """How the PDQ codes are searched now: "flat", or "multi-index hashing + flat"."""
        return self._pdq.kind

    def reserve(self, frames: int) -> None:
        """Make room for `frames` indexed frames in all (bulk loads: one allocation, no copies)."""
        for store in (self._pdq, self._centre):
            if store is not None:
                store.reserve(frames)
        if self._strips is not None:
            self._strips.reserve(frames * thumbs.STRIP_COUNT)

    @property
    def strip_count(self) -> int:
        """Number of indexed strip hashes (0 when the index keeps none)."""
        return len(self._strips) if self._strips is not None else 0

    def optimize(self) -> None:
        """Hash everything indexed so far (after a bulk load), instead of when the flat part fills."""
        for store in (self._pdq, self._centre, self._strips):
            if (
                store is not None
                and len(store) > store.flat_limit
                and (store.flat.ntotal or len(store.levels) > 1)
            ):
                store.rebuild()

    def __contains__(self, registration_id: object) -> bool:
        return registration_id in self._numbers

    @classmethod
    def of(cls, fingerprints: Mapping[str, Fingerprint]) -> FrameIndex:
        """A (crop-tolerant) index of these registrations, id → fingerprint: tests and benchmarks."""
        index = cls()
        for registration_id, fingerprint in fingerprints.items():
            index.add(registration_id, fingerprint)
        return index

    def add(self, registration_id: str, fingerprint: Fingerprint) -> int:
        """Index a registration's usable frames; returns how many. Ids must be new."""
        keep = [i for i, frame in enumerate(fingerprint.frames) if usable(frame)]
        frames = [fingerprint.frames[i] for i in keep]
        centre = thumbs.centre_hashes(frames) if self._centre is not None and frames else None
        count = self.add_codes(
            registration_id, thumbs.pdq_codes(frames), np.asarray(keep, dtype=np.int32), centre
        )
        if self._strips is not None and frames:
            strips = thumbs.strip_hashes(thumbs.luma_thumbnails(frames)).reshape(-1, PDQ_BYTES)
            # Each strip code is owned by its registration; its "frame" is frame * STRIP_COUNT + strip.
            number = self._numbers[registration_id]
            owners = np.full(len(strips), number, dtype=np.int32)
            where = (np.asarray(keep, dtype=np.int32)[:, None] * thumbs.STRIP_COUNT) + np.arange(
                thumbs.STRIP_COUNT, dtype=np.int32
            )
            self._strips.add(strips, owners, where.ravel())
        return count

    def add_codes(
        self,
        registration_id: str,
        pdq: np.ndarray,
        frame_indexes: np.ndarray | None = None,
        centre: np.ndarray | None = None,
    ) -> int:
        """Index precomputed codes of one registration (rebuilds from storage, benchmarks)."""
        return self.add_batch([registration_id], pdq, [len(pdq)], frame_indexes, centre)

    def add_batch(
        self,
        registration_ids: Sequence[str],
        pdq: np.ndarray,
        counts: Sequence[int] | np.ndarray,
        frame_indexes: np.ndarray | None = None,
        centre: np.ndarray | None = None,
        *,
        rehash: bool = True,
    ) -> int:
        """Index many registrations at once: `pdq` holds their codes back to back, `counts[k]` each.

        `frame_indexes` (default: 0, 1, ... within each registration) says which fingerprint frame
        each code hashes. `centre` is required, row for row, when the index is crop-tolerant.
        A bulk load passes `rehash=False` (the codes are searchable at once, by brute force) and
        calls `optimize()` at the end, rather than rehashing a growing index again and again.
        """
        counts = np.asarray(counts, dtype=np.int64)
        pdq = np.asarray(pdq, dtype=np.uint8).reshape(-1, PDQ_BYTES)
        if len(counts) != len(registration_ids) or int(counts.sum()) != len(pdq):
            raise ValueError("counts must give one length per registration, summing to the codes")
        if frame_indexes is None:
            starts = np.repeat(np.cumsum(counts) - counts, counts)
            frame_indexes = np.arange(len(pdq)) - starts
        frame_indexes = np.asarray(frame_indexes, dtype=np.int32)
        if len(frame_indexes) != len(pdq):
            raise ValueError("one frame index per code")
        if self._centre is not None and (centre is None or len(centre) != len(pdq)):
            raise ValueError("a crop-tolerant index needs one centre hash per PDQ hash")
        if len(set(registration_ids)) != len(registration_ids):
            raise ValueError("registration ids repeat within the batch")
        with self._lock:
            known = [rid for rid in registration_ids if rid in self._numbers]
            if known:
                raise ValueError(f"already indexed: {known[0]}")
            first = len(self._ids)
            # Ids first: a concurrent search may find the codes as soon as they are added.
            for offset, rid in enumerate(registration_ids):
                self._numbers[rid] = first + offset
                self._ids.append(rid)
            owners = np.repeat(np.arange(first, first + len(registration_ids), dtype=np.int32), counts)
            self._pdq.add(pdq, owners, frame_indexes, rehash)
            if self._centre is not None and centre is not None:
                self._centre.add(np.asarray(centre, dtype=np.uint8), owners, frame_indexes, rehash)
        return len(pdq)

    def search(
        self, query: Fingerprint, max_distance: int = MATCH_DISTANCE, limit: int = 5
    ) -> list[Candidate]:
        """Registrations whose frames match the query's, most matched query frames first."""
        return self.search_frames(query.frames, max_distance=max_distance, limit=limit)

    def search_frames(
        self,
        frames: Sequence[FrameHash],
        frame_indexes: Sequence[int] | None = None,
        *,
        max_distance: int = MATCH_DISTANCE,
        limit: int = 5,
        exclude: Sequence[str] = (),
        scales: Sequence[float | tuple[float, float]] | None = None,
    ) -> list[Candidate]:
        """`search` over some frames of a query; `frame_indexes` numbers them (default 0, 1, ...).

        `scales` are the crop scales (uniform, or per axis) the centre hashes are looked up at
        when PDQ finds too little (default `thumbs.QUERY_SCALES`); a candidate's `scale` is then
        the (horizontal) scale most of its hits came at."""
        numbers = list(range(len(frames))) if frame_indexes is None else list(frame_indexes)
        if len(numbers) != len(frames):
            raise ValueError("one index per frame")
        keep = [k for k, frame in enumerate(frames) if usable(frame)]
        if not keep or limit < 1:
            return []
        good = [frames[k] for k in keep]
        query_numbers = np.asarray([numbers[k] for k in keep], dtype=np.int64)
        excluded = {self._numbers[rid] for rid in exclude if rid in self._numbers}
        rows, distances, ids = self._pdq.search(thumbs.pdq_codes(good), max_distance)
        owners = self._pdq.owners.view()[ids]
        originals = self._pdq.frames.view()[ids]
        hits = _Hits(query_numbers[rows], distances, owners, originals, np.ones(len(rows)))
        hits = hits.without(excluded)
        if self._centre is not None and hits.best_coverage() < _CENTRE_FALLBACK * len(good):
            centre = self._centre_hits(good, query_numbers, max_distance, scales or thumbs.QUERY_SCALES)
            hits = hits.merged(centre.without(excluded))
        return hits.candidates(self._ids, limit)

    def search_crops(
        self,
        frames: Sequence[FrameHash],
        *,
        mirrored: bool = False,
        max_distance: int = MATCH_DISTANCE,
        limit: int = 3,
        query_frames: int = CROP_QUERY_FRAMES,
    ) -> list[Candidate]:
        """Registrations a vertical crop of the clip's frames (mirrored first, if asked) comes from.

        Looks up every crop hypothesis of up to `query_frames` usable frames in the strip store;
        each hit says which part of the original the clip would show, and the candidate's `crop`
        is the (offset, width) most hits agree on, its `matches` the hits that agree.
        """
        if self._strips is None or not len(self._strips):
            return []
        good = [k for k, frame in enumerate(frames) if usable(frame)]
        if not good:
            return []
        spread = np.linspace(0, len(good) - 1, min(query_frames, len(good))).round().astype(int)
        picked = [good[p] for p in spread]
        picked = list(dict.fromkeys(picked))
        luma = thumbs.luma_thumbnails([frames[k] for k in picked])
        if mirrored:
            luma = np.ascontiguousarray(luma[:, :, ::-1])
        hypotheses = thumbs.crop_hypotheses()
        codes = thumbs.crop_hashes(luma).reshape(-1, PDQ_BYTES)
        rows, distances, ids = self._strips.search(codes, max_distance)
        if not len(rows):
            return []
        owners = self._strips.owners.view()[ids]
        where = self._strips.frames.view()[ids]
        original, strip = where // thumbs.STRIP_COUNT, where % thumbs.STRIP_COUNT
        query = np.asarray(picked, dtype=np.int64)[rows // len(hypotheses)]
        widths = np.asarray([h.width for h in hypotheses])[rows % len(hypotheses)]
        starts = np.asarray([h.start for h in hypotheses])[rows % len(hypotheses)]
        offsets = np.asarray(thumbs.STRIP_OFFSETS)[strip] - starts * widths
        found = []
        for number in np.unique(owners):
            mine = owners == number
            # The crop the hits agree on best: per (offset to 1%, width hypothesis), each query frame
            # counts with its closest hit there (a close hit counts more), summed over frames.
            keys = np.round(offsets[mine] / 0.01).astype(np.int64) * 1000 + np.round(
                widths[mine] * 100
            ).astype(np.int64)
            support: dict[tuple[int, int], int] = {}
            for key, q, d in zip(keys.tolist(), query[mine].tolist(), distances[mine].tolist(), strict=True):
                support[(key, q)] = max(support.get((key, q), 0), max_distance + 1 - d)
            totals: dict[int, int] = {}
            for (key, _), value in support.items():
                totals[key] = totals.get(key, 0) + value
            best = max(totals, key=lambda key: totals[key])
            centre_offset = offsets[mine][keys == best].mean()
            centre_width = widths[mine][keys == best].mean()
            near = mine & (np.abs(offsets - centre_offset) <= 0.02) & (np.abs(widths - centre_width) <= 0.03)
            matched = sorted(set(query[near].tolist()))
            order = np.lexsort((distances[near],))
            matches: dict[int, list[int]] = {}
            for q, o in zip(query[near][order].tolist(), original[near][order].tolist(), strict=True):
                best_frames = matches.setdefault(q, [])
                if len(best_frames) < _BEST_FRAMES and o not in best_frames:
                    best_frames.append(o)
            weights = 1.0 / (1.0 + distances[near])
            found.append(
                Candidate(
                    registration_id=self._ids[int(number)],
                    matched_query_frames=len(matched),
                    matches={q: tuple(v) for q, v in matches.items()},
                    mean_distance=float(distances[near].mean()),
                    crop=(
                        float(np.average(offsets[near], weights=weights)),
                        float(np.average(widths[near], weights=weights)),
                    ),
                )
            )
        found.sort(key=lambda c: (-c.matched_query_frames, c.mean_distance))
        return found[:limit]

    def search_windows(
        self,
        frames: Sequence[FrameHash],
        frame_indexes: Sequence[int],
        windows: Sequence[tuple[float, float, float, float]],
        *,
        max_distance: int = MATCH_DISTANCE,
        limit: int = 2,
    ) -> list[Candidate]:
        """Registrations whose centre hashes a window of the frames matches (`thumbs.window_hashes_of`);
        each candidate's `window` is the one most of its hits came through."""
        if self._centre is None or not windows:
            return []
        keep = [k for k, frame in enumerate(frames) if usable(frame)]
        if not keep:
            return []
        luma = thumbs.luma_thumbnails([frames[k] for k in keep])
        numbers = np.asarray([frame_indexes[k] for k in keep], dtype=np.int64)
        codes = thumbs.window_hashes_of(luma, windows)
        rows, distances, ids = self._centre.search(codes, max_distance)
        owners = self._centre.owners.view()[ids]
        originals = self._centre.frames.view()[ids]
        variant = (rows // len(keep)).astype(np.float64)
        hits = _Hits(numbers[rows % len(keep)], distances, owners, originals, variant)
        return [
            replace(c, scale=1.0, window=windows[int(c.scale)]) for c in hits.candidates(self._ids, limit)
        ]

    def _centre_hits(
        self,
        good: Sequence[FrameHash],
        query_numbers: np.ndarray,
        max_distance: int,
        scales: Sequence[float | tuple[float, float]],
    ) -> _Hits:
        assert self._centre is not None
        luma = thumbs.luma_thumbnails(good)
        pairs = [s if isinstance(s, tuple) else (s, s) for s in scales]
        codes = np.concatenate([thumbs.centre_hashes_of(luma, sx, sy) for sx, sy in pairs])
        rows, distances, ids = self._centre.search(codes, max_distance)
        owners = self._centre.owners.view()[ids]
        originals = self._centre.frames.view()[ids]
        scale = np.asarray([sx for sx, _ in pairs])[rows // len(good)]
        return _Hits(query_numbers[rows % len(good)], distances, owners, originals, scale)


@dataclass(frozen=True)
class _Hits:
    """Flat arrays of (query frame, distance, registration number, original frame, crop scale)."""

    query: np.ndarray
    distance: np.ndarray
    owner: np.ndarray
    original: np.ndarray
    scale: np.ndarray

    def _select(self, mask: np.ndarray) -> _Hits:
        return _Hits(
            self.query[mask], self.distance[mask], self.owner[mask], self.original[mask], self.scale[mask]
        )

    def without(self, owners: set[int]) -> _Hits:
        if not owners or not len(self.owner):
            return self
        return self._select(~np.isin(self.owner, np.fromiter(owners, dtype=np.int64)))

    def merged(self, other: _Hits) -> _Hits:
        return _Hits(*(np.concatenate([a, b]) for a, b in zip(self._arrays(), other._arrays(), strict=True)))

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return self.query, self.distance, self.owner, self.original, self.scale

    def _best_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per (registration, query frame): registration, query frame and best distance."""
        order = np.lexsort((self.distance, self.query, self.owner))
        owner, query, distance = self.owner[order], self.query[order], self.distance[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = (owner[1:] != owner[:-1]) | (query[1:] != query[:-1])
        return owner[first], query[first], distance[first]

    def best_coverage(self) -> int:
        """Most query frames any one registration matches."""
        if not len(self.owner):
            return 0
        owner, _, _ = self._best_pairs()
        return int(np.unique(owner, return_counts=True)[1].max())

    def candidates(self, ids: Sequence[str], limit: int) -> list[Candidate]:
        if not len(self.owner):
            return []
        owner, _, distance = self._best_pairs()
        numbers, start, counts = np.unique(owner, return_index=True, return_counts=True)
        sums = np.add.reduceat(distance, start)
        ranked = sorted(range(len(numbers)), key=lambda k: (-counts[k], sums[k] / counts[k]))[:limit]
        result = []
        for k in ranked:
            number = int(numbers[k])
            mine = self.owner == number
            query, dist, original, scale = (
                self.query[mine],
                self.distance[mine],
                self.original[mine],
                self.scale[mine],
            )
            order = np.lexsort((original, dist, query))
            matches: dict[int, list[int]] = {}
            for q, o in zip(query[order].tolist(), original[order].tolist(), strict=True):
                best = matches.setdefault(q, [])
                if len(best) < _BEST_FRAMES and o not in best:
                    best.append(o)
            values, votes = np.unique(scale, return_counts=True)
            result.append(
                Candidate(
                    registration_id=ids[number],
                    matched_query_frames=int(counts[k]),
                    matches={q: tuple(v) for q, v in matches.items()},
                    mean_distance=float(sums[k] / counts[k]),
                    scale=float(values[np.argmax(votes)]),
                )
            )
        return result
