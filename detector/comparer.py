"""The learned comparer for the verifier: segment embeddings at registration, comparisons at verification.

Registration (fingerprint v2) stores, per ~1 s of the original, a `SegmentEmbedding`:
`embed_video_frames` groups the sampled frames (4 fps) into consecutive windows of
`FRAMES_PER_SEGMENT` frames and embeds each window; `quantise` / `encode_segments` turn them
into bytes (`EMBEDDING_BYTES` = 544 per segment). The verifier never needs the original's pixels.

Verification: the clip's sampled frames, decoded, each with the time of the original the
alignment maps it to (best sampled at 8 fps or more: see `TripletComparer.search`). A stored
window is compared when a clip frame falls in it (its [start, end) shifted back by half a
sampling step); the clip frames nearest its sampling instants, under the best of a few timing
offsets, are embedded together, through the crop and tone that map the clip back onto the
original best (`detector.adjust`), and compared with the stored embedding:

- cell distances (8x8) and the global distance, unit vectors, so each is 0..2, averaged with
  those of the clip frames half a step off when the clip is sampled densely;
- cell scores: each cell's distance above the median cell's (`_evidence`);
- `score` = the largest cell score or the global distance; `tampered` when it exceeds the
  calibrated `threshold` (stored with the weights: 0.5% false positives on the validation
  set); `distance` = score / (2 x threshold) capped at 1, so 0.5 is the decision point as in
  `provenance.verify`;
- flagged cells: those above the lower `cell_threshold` (calibrated for localisation IoU) in a
  tampered segment; `regions` are the bounding boxes of their 8-connected groups, normalised
  ``[x, y, w, h]`` of the clip's letterbox-stripped picture.

The per-window path, written once here and run by the verifier (`provenance.verify.learned`),
the held-out evaluation and calibration alike: `run` fixes one timing offset and one crop and
tone per alignment run; `judge` compares a stored window with the run's frames around it at that
timing, records whether the clip covers it only in part, and gives a flagged window a second look
at every offset; a flagged, partly covered window is `Judgement.deferred` to a frame-by-frame
comparer, which the caller supplies.

Frame features are cached by content, so comparing halves of a segment again (as the verifier
does to sharpen a flagged stretch) costs only the aggregation. The cache makes a comparer
unsafe to share between threads: use one per worker thread.

Storage (`encode_segments`, little-endian): header ``b"PVSE"``, layout (u8, 2), model version
(16 ASCII bytes: the weights' SHA-256 prefix, so stale embeddings are recognised), sample fps
(f64), segment count (u16); then per segment start and end (u32 ms each), frame count (u8) and
the 544-byte quantised embedding: 31 + 553 bytes per second of video.
"""

from __future__ import annotations

import hashlib
import struct
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from detector import adjust
from detector.adjust import IDENTITY, Adjustment
from detector.inputs import Prepared, prepare
from detector.model import (
    EMBEDDING_BYTES,
    GRID,
    WEIGHTS_FILE,
    LoadedModel,
    SegmentEmbedding,
    TripletNet,
    dequantise,
    dequantise_layout_1,
    inference_encoder,
    load_weights,
    quantise,
    to_tensor,
)
from frames.regions import regions_of

SAMPLE_FPS = 4.0
FRAMES_PER_SEGMENT = 4
# Used until a weights file brings calibrated values.
DEFAULT_CALIBRATION = {"threshold": 0.8, "cell_threshold": 0.7}
# Frame features kept (~6 kB each): a run's frames, and their adjusted copies while searching.
_CACHE_FRAMES = 2048
# Squares the encoder embeds at once.
_ENCODE_BATCH = 256
# Windows of a run an adjustment is fitted on: those that fit best as they are.
_FIT_WINDOWS = 1
# Timing offsets (s) the comparer tries between the clip's frames and a window's instants.
OFFSETS = (-0.125, -0.0625, 0.0, 0.0625, 0.125)
# Half a sampling step: how far a clip's samples land from the original's.
_HALF_STEP = 0.5 / SAMPLE_FPS
_SEGMENTS_MAGIC = b"PVSE"
_SEGMENTS_HEADER = struct.Struct("<4sB16sdH")
_SEGMENT_RECORD = struct.Struct(f"<IIB{EMBEDDING_BYTES}s")
# Layout 2: cells of 16 components at 4 bits; layout 1 (8 components at 8 bits) is still read.
_LAYOUT = 2
_DEQUANTISE = {1: dequantise_layout_1, 2: dequantise}

TimedFrame = tuple[float, np.ndarray]
# One choice of clip frames for a window: (fit, score, cell distances, global distance, frames).
_Try = tuple[float, float, np.ndarray, float, tuple[int, ...]]


@dataclass(frozen=True)
class SegmentResult:
    """One stored window compared with the clip frames that fall in it."""

    start: float
    end: float
    frames: int
    score: float
    distance: float
    tampered: bool
    cell_distances: np.ndarray  # (GRID, GRID) cell scores: distance above the median cell's
    global_distance: float
    flagged: np.ndarray  # (GRID, GRID) bool
    regions: list[list[float]] = field(default_factory=list)


def group_windows(
    frames: Sequence[TimedFrame], per_window: int = FRAMES_PER_SEGMENT
) -> list[list[TimedFrame]]:
    """Consecutive windows of `per_window` sampled frames (the last one may be shorter)."""
    ordered = sorted(frames, key=lambda f: f[0])
    return [ordered[i : i + per_window] for i in range(0, len(ordered), per_window)]


class TripletComparer:
    """Embeds originals and compares clips with them, with the shipped (or given) weights."""

    name = "triplet"

    def __init__(
        self,
        model: LoadedModel | TripletNet | None = None,
        calibration: dict[str, float] | None = None,
        weights: Path = WEIGHTS_FILE,
    ) -> None:
        if model is None:
            model = load_weights(weights)
        if isinstance(model, LoadedModel):
            self.net = model.net
            self.version = model.version
            base = dict(model.calibration)
        else:
            self.net = model
            self.version = "unsaved"
            base = dict(DEFAULT_CALIBRATION)
        base.update(calibration or {})
        self.threshold = float(base["threshold"])
        self.cell_threshold = float(base.get("cell_threshold", self.threshold))
        self.net.eval()
        self._encoder = inference_encoder(self.net.encoder)
        self._cache: OrderedDict[bytes, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    # -- frame features -----------------------------------------------------------------------

    def _features(self, prepared: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """(cells (N, Fc, G, G), global (N, Fg)) of prepared squares: cached ones looked up, the rest
        embedded in batches of `_ENCODE_BATCH` (memory stays bounded however many a search asks for).
        """
        keys = [hashlib.blake2b(p.tobytes(), digest_size=16).digest() for p in prepared]
        found = {k: self._cache[k] for k in keys if k in self._cache}
        missing = list({k: i for i, k in enumerate(keys) if k not in found}.values())
        for at in range(0, len(missing), _ENCODE_BATCH):
            chunk = missing[at : at + _ENCODE_BATCH]
            with torch.no_grad():
                cells, glob = self._encoder(to_tensor(np.stack([prepared[i] for i in chunk])))
            for j, i in enumerate(chunk):
                found[keys[i]] = self._cache[keys[i]] = (cells[j], glob[j])
                if len(self._cache) > _CACHE_FRAMES:
                    self._cache.popitem(last=False)
        return torch.stack([found[k][0] for k in keys]), torch.stack([found[k][1] for k in keys])

    def _aggregate(self, frames: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        cells, glob = self._features([prepare(f, self.net.config.side) for f in frames])
        mask = torch.ones((1, len(frames)), dtype=torch.bool)
        with torch.no_grad():
            cell_emb, glob_emb = self.net.aggregator(cells[None], glob[None], mask)
        return cell_emb[0].numpy(), glob_emb[0].numpy()

    def _distances(
        self, groups: Sequence[Sequence[np.ndarray]], stored: Sequence[SegmentEmbedding]
    ) -> list[tuple[np.ndarray, float]]:
        """(cell distances, global distance) of each group of prepared squares against its window.

        One encoder batch for every square and one aggregator batch for every group: the searches
        compare many candidates, and one call each costs far less than a call per candidate.
        """
        if not groups:
            return []
        flat_cells, flat_glob = self._features([q for group in groups for q in group])
        longest = max(len(group) for group in groups)
        cells = flat_cells.new_zeros((len(groups), longest, *flat_cells.shape[1:]))
        glob = flat_glob.new_zeros((len(groups), longest, flat_glob.shape[-1]))
        mask = torch.zeros((len(groups), longest), dtype=torch.bool)
        start = 0
        for i, group in enumerate(groups):  # valid frames first, as the aggregator expects
            cells[i, : len(group)] = flat_cells[start : start + len(group)]
            glob[i, : len(group)] = flat_glob[start : start + len(group)]
            mask[i, : len(group)] = True
            start += len(group)
        with torch.no_grad():
            cell_emb, glob_emb = self.net.aggregator(cells, glob, mask)
        stored_cells = np.stack([s.cells for s in stored])
        stored_glob = np.stack([s.global_vec for s in stored])
        cell_d = np.linalg.norm(cell_emb.numpy() - stored_cells, axis=-1).astype(np.float32)
        glob_d = np.linalg.norm(glob_emb.numpy() - stored_glob, axis=-1)
        return [(cell_d[i], float(glob_d[i])) for i in range(len(groups))]

    # -- registration -------------------------------------------------------------------------

    def embed_window(self, frames: Sequence[TimedFrame], end: float | None = None) -> SegmentEmbedding:
        """The embedding of one window of the original's sampled frames."""
        if not frames:
            raise ValueError("a segment has at least one frame")
        cells, glob = self._aggregate([rgb for _, rgb in frames])
        start = frames[0][0]
        stop = end if end is not None else frames[-1][0] + 1.0 / SAMPLE_FPS
        return SegmentEmbedding(start=start, end=stop, frames=len(frames), global_vec=glob, cells=cells)

    def embed_video_frames(self, frames: Sequence[TimedFrame]) -> list[SegmentEmbedding]:
        """Segment embeddings of a whole original (frames sampled at 4 fps, any order)."""
        windows = group_windows(frames)
        out = []
        for k, window in enumerate(windows):
            end = windows[k + 1][0][0] if k + 1 < len(windows) else None
            out.append(self.embed_window(window, end))
        return out

    # -- verification -------------------------------------------------------------------------

    def score(
        self, frames: Sequence[np.ndarray], stored: SegmentEmbedding, adjustment: Adjustment = IDENTITY
    ) -> tuple[float, np.ndarray, float]:
        """(score, cell distances (G, G), global distance) of clip frames against a stored window."""
        squares = [adjustment.apply(prepare(f, self.net.config.side)) for f in frames]
        [(cell_d, glob_d)] = self._distances([squares], [stored])
        return max(float(cell_d.max()), glob_d), cell_d, glob_d

    def decide(
        self, stored: SegmentEmbedding, frames: int, score: float, cell_d: np.ndarray, glob_d: float
    ) -> SegmentResult:
        """Threshold a window's distances into a verdict, a distance 0..1 and flagged cells."""
        tampered = score > self.threshold
        flagged = np.zeros((GRID, GRID), dtype=bool)
        if tampered:
            flagged = cell_d > self.cell_threshold
            if not flagged.any():  # only the global vector moved: the whole picture changed
                flagged[:] = True
        return SegmentResult(
            start=stored.start,
            end=stored.end,
            frames=frames,
            score=score,
            distance=float(min(1.0, 0.5 * score / self.threshold)),
            tampered=tampered,
            cell_distances=cell_d,
            global_distance=glob_d,
            flagged=flagged,
            regions=regions_of(flagged) if tampered else [],
        )

    @staticmethod
    def _picks(times: np.ndarray, stored: SegmentEmbedding, offset: float) -> tuple[int, ...]:
        """Clip frames nearest the window's instants shifted by `offset` (within half a step)."""
        step = 1.0 / SAMPLE_FPS
        picks = set()
        for target in stored.start + step * np.arange(max(stored.frames, 1)) + offset:
            if not len(times):
                break
            j = int(np.argmin(np.abs(times - target)))
            if abs(times[j] - target) < step / 2 - 1e-3:  # ties would shift a whole step
                picks.add(j)
        return tuple(sorted(picks))

    def _tries(
        self,
        query: Sequence[TimedFrame],
        stored: SegmentEmbedding,
        offsets: Sequence[float],
        adjustment: Adjustment = IDENTITY,
    ) -> list[_Try]:
        """(fit, score, cell distances, global distance, frames chosen) per distinct choice of frames.

        `fit`, the median cell distance, says how well the picture as a whole lines up: a local
        edit moves few cells, so it picks the timing without being swayed by the edit, where the
        lowest score would prefer an offset reaching past an edit's ends for a clean frame.
        """
        times = np.array([t for t, _ in query])
        options: list[tuple[int, ...]] = []
        for offset in offsets:
            option = self._picks(times, stored, offset)
            if option and option not in options:
                options.append(option)
        if not options:
            return []
        fullest = max(len(o) for o in options)
        out = []
        for option in options:
            if len(option) < fullest - 1:  # an offset that drops frames would hide what they show
                continue
            score, cell_d, glob_d = self.score([query[j][1] for j in option], stored, adjustment)
            out.append((float(np.median(cell_d)), score, cell_d, glob_d, option))
        return out

    def search(
        self,
        query: Sequence[TimedFrame],
        stored: SegmentEmbedding,
        offset: float | None = None,
        adjustment: Adjustment | None = None,
    ) -> tuple[float, np.ndarray, float, int]:
        """(score, cell scores, global distance, frames used) of clip frames against a stored window.

        The aligner places clip frames on the original's timeline only to within half a 4 fps
        step. Given the clip's `offset` (see `estimate_offset`), the window's sampling instants
        are shifted by it; without, each of `OFFSETS` is tried and the best fit kept. At each,
        the clip frame nearest every instant (within half a step) is taken: with clip frames
        sampled densely (8 fps or more) that lines them up with the original's instants to within
        1/16 s; with 4 fps frames every offset picks the same frames (one try).

        The clip is compared through `adjustment` (crop and tone, `detector.adjust`); without
        one, the best for the frames chosen is searched for. Then `_evidence` turns the
        distances into scores.
        """
        fixed = adjustment or IDENTITY
        times = np.array([t for t, _ in query])
        tries: list[_Try] = []
        if offset is not None:
            # The given offset's own choice first, then the frames half a step either side.
            tries = self._tries(query, stored, (offset, offset - _HALF_STEP, offset + _HALF_STEP), fixed)
            if tries and tries[0][4] != self._picks(times, stored, offset):
                tries = []
        if tries:
            tries = [tries[0], *sorted(tries[1:], key=lambda t: t[0])]
        else:  # no offset given, or none of the clip's frames near it (the clip's ends)
            tries = sorted(self._tries(query, stored, OFFSETS, fixed), key=lambda t: t[0])
        if not tries:
            raise ValueError("no clip frame falls near this window")
        chosen = tries[:2]
        if adjustment is None:
            found = self.fit_adjustment([([query[j][1] for j in chosen[0][4]], stored)])
            if found != IDENTITY:
                chosen = [
                    (fit, *self.score([query[j][1] for j in option], stored, found), option)
                    for fit, _, _, _, option in chosen
                ]
        score, cells, glob_d = _evidence([(t[2], t[3]) for t in chosen])
        return score, cells, glob_d, len(chosen[0][4])

    def fit_adjustment(self, pairs: Sequence[tuple[Sequence[np.ndarray], SegmentEmbedding]]) -> Adjustment:
        """The crop and tone that map clip frames onto their stored windows best (mean median fit)."""
        side = self.net.config.side
        squares = [[prepare(f, side) for f in frames] for frames, _ in pairs]
        stored = [s for _, s in pairs]

        def fits(candidates: list[Adjustment]) -> list[float]:
            groups = [[c.apply(q).view(Prepared) for q in group] for c in candidates for group in squares]
            medians = [float(np.median(d)) for d, _ in self._distances(groups, stored * len(candidates))]
            n = len(squares)
            return [float(np.mean(medians[k * n : (k + 1) * n])) for k in range(len(candidates))]

        return adjust.search(fits) if pairs else IDENTITY

    def estimate_adjustment(
        self, query: Sequence[TimedFrame], segments: Sequence[SegmentEmbedding], offset: float
    ) -> Adjustment:
        """One crop and tone for a clip run against the original, fitted on the best-fitting window.

        Like the timing offset, it holds for a whole alignment run. A crop or a grade shows in
        every window alike, an edit in a few: the `_FIT_WINDOWS` windows that fit best as they
        are (least likely edited) are enough to fit it, and keep the search cheap (the held-out
        evaluation fits one window at a time).
        """
        pairs = []
        for w, near in self._near_frames(query, segments):
            option = self._picks(np.array([t for t, _ in near]), segments[w], offset)
            if len(option) >= max(1, segments[w].frames - 1):
                pairs.append(([near[j][1] for j in option], segments[w]))
        if len(pairs) > _FIT_WINDOWS:
            side = self.net.config.side
            as_is = self._distances(
                [[prepare(f, side) for f in frames] for frames, _ in pairs], [s for _, s in pairs]
            )
            order = np.argsort([np.median(cell_d) for cell_d, _ in as_is], kind="stable")
            pairs = [pairs[i] for i in sorted(order[:_FIT_WINDOWS])]
        return self.fit_adjustment(pairs)

    def estimate_offset(self, query: Sequence[TimedFrame], segments: Sequence[SegmentEmbedding]) -> float:
        """The timing offset of a clip run against the original: the best median fit over its windows.

        One offset holds for a whole run of the alignment, so an edit in a few windows cannot sway
        it, unlike a per-window choice.
        """
        side = self.net.config.side
        tried: list[tuple[float, list[np.ndarray], SegmentEmbedding]] = []
        for w, near in self._near_frames(query, segments):
            times = np.array([t for t, _ in near])
            for offset in OFFSETS:
                option = self._picks(times, segments[w], offset)
                if len(option) >= max(1, segments[w].frames - 1):
                    tried.append((offset, [prepare(near[j][1], side) for j in option], segments[w]))
        distances = self._distances([frames for _, frames, _ in tried], [window for _, _, window in tried])
        fits: dict[float, list[float]] = {o: [] for o in OFFSETS}
        for (offset, _, _), (cell_d, _) in zip(tried, distances, strict=True):
            fits[offset].append(float(np.median(cell_d)))
        scored = {o: float(np.median(v)) for o, v in fits.items() if v}
        return min(scored, key=lambda o: (scored[o], abs(o))) if scored else 0.0

    def _near_frames(
        self, query: Sequence[TimedFrame], segments: Sequence[SegmentEmbedding]
    ) -> list[tuple[int, list[TimedFrame]]]:
        """(window, clip frames a search may use) for each window some clip frame falls in."""
        step = 1.0 / SAMPLE_FPS
        buckets = assign_windows([t for t, _ in query], segments)
        return [
            (w, [f for f in query if segments[w].start - step <= f[0] < segments[w].end])
            for w in sorted(buckets)
        ]

    def compare_segment(
        self,
        query: Sequence[TimedFrame],
        stored: SegmentEmbedding,
        offset: float | None = None,
        adjustment: Adjustment | None = None,
    ) -> SegmentResult:
        """Clip frames around `stored`'s window (times on the original's timeline) against it."""
        score, cell_d, glob_d, used = self.search(query, stored, offset, adjustment)
        return self.decide(stored, used, score, cell_d, glob_d)

    # -- one alignment run: the per-window path the verifier and the evaluation both run -------

    def run(self, frames: Sequence[TimedFrame], segments: Sequence[SegmentEmbedding]) -> Run:
        """One alignment run of a clip: its frames, the timing offset and the crop and tone, each once.

        One offset (`estimate_offset`) and one adjustment (`estimate_adjustment`) hold for the whole
        run, so an edit in a few windows cannot sway either its own way.
        """
        placed = sorted(frames, key=lambda f: f[0])
        offset = self.estimate_offset(placed, segments)
        return Run(placed, offset, self.estimate_adjustment(placed, segments, offset))

    def judge(self, run: Run, window: SegmentEmbedding) -> Judgement | None:
        """One stored window against the run's clip frames around it (None: no clip frame near it).

        All of the run's frames from a step before the window to its end take part, not only those
        of one segment: half a window against an embedding of four frames differs by itself in
        fast motion. First at the run's timing; whether the clip covers the window only in part
        (`Judgement.partial`) is read there. A window that timing flags gets a second look at every
        offset (`OFFSETS`), the one fitting the picture as a whole best deciding: a cut just inside
        a window otherwise flags a benign copy sampled at another phase.
        """
        step = 1.0 / SAMPLE_FPS
        near = [f for f in run.frames if window.start - step <= f[0] < window.end]
        if not near:
            return None
        try:
            result = self.compare_segment(near, window, run.offset, run.adjustment)
            partial = result.frames < window.frames
            if result.tampered:
                result = self.compare_segment(near, window, None, run.adjustment)
        except ValueError:  # no clip frame near enough to the window's instants
            return None
        return Judgement(result, partial)

    def judge_run(self, run: Run, segments: Sequence[SegmentEmbedding]) -> list[tuple[int, Judgement]]:
        """(window index, judgement) of each stored window a frame of the run falls in (`assign_windows`)."""
        out = []
        for w in sorted(assign_windows([t for t, _ in run.frames], segments)):
            judged = self.judge(run, segments[w])
            if judged is not None:
                out.append((w, judged))
        return out

    def compare(
        self, query: Sequence[TimedFrame], segments: Sequence[SegmentEmbedding]
    ) -> list[SegmentResult]:
        """Clip frames (one alignment run on the original's timeline, any density) against the stored windows.

        `run` then `judge_run`: what the verifier does per run. A window `Judgement.deferred` says
        to hand to a frame-by-frame comparer keeps the learned result here.
        """
        return [judged.result for _, judged in self.judge_run(self.run(query, segments), segments)]


@dataclass(frozen=True)
class Run:
    """One alignment run of a clip: its frames on the original's timeline, timing offset, crop and tone."""

    frames: list[TimedFrame]
    offset: float
    adjustment: Adjustment


@dataclass(frozen=True)
class Judgement:
    """One stored window judged (`TripletComparer.judge`), and whether the clip covers it only in part.

    `partial`: some of the window's sampling instants, at the run's timing, have no clip frame
    near them (the clip starts or ends inside the window, or a cut or an insert does).
    """

    result: SegmentResult
    partial: bool

    @property
    def deferred(self) -> bool:
        """A flagged window the clip covers in part: an embedding of fewer frames is no fair match for
        the stored one of all of them, so a frame-by-frame comparer judges it instead."""
        return self.result.tampered and self.partial


def _evidence(choices: Sequence[tuple[np.ndarray, float]]) -> tuple[float, np.ndarray, float]:
    """(score, cell scores, global distance) from the (cell, global) distances of one or two frame choices.

    With clip frames sampled densely, the frames half a step off the window's instants are a
    second look at the same second: averaging the two evens out part of the noise of either, while an edit
    shows in both. A cell scores how far it lies above the median cell, the level re-encoding,
    blur or a tone change raise everywhere and a local edit does not; the global distance stands
    as it is (a change of the whole picture moves the median itself).
    """
    cell_d = np.mean([c for c, _ in choices], axis=0)
    glob_d = float(np.mean([g for _, g in choices]))
    cells = (cell_d - np.median(cell_d)).astype(np.float32)
    return max(float(cells.max()), glob_d), cells, glob_d


def assign_windows(times: Sequence[float], segments: Sequence[SegmentEmbedding]) -> dict[int, list[int]]:
    """Window index → indexes of the clip times that fall in it.

    A window holding samples at start, start + 1/4, ... covers [start - 1/8, end - 1/8): the
    clip's own 4 fps samples land up to half a step either side of the original's. Times outside
    every window go to the nearest one when within half a step of it, else nowhere.
    """
    out: dict[int, list[int]] = {}
    if not segments:
        return out
    starts = np.array([s.start for s in segments]) - _HALF_STEP
    ends = np.array([s.end for s in segments]) - _HALF_STEP
    for i, t in enumerate(times):
        inside = np.flatnonzero((starts <= t) & (t < ends))
        if inside.size:
            w = int(inside[0])
        else:
            gaps = np.maximum(starts - t, t - ends)
            w = int(np.argmin(gaps))
            if gaps[w] > _HALF_STEP:
                continue
        out.setdefault(w, []).append(i)
    return out


_default: TripletComparer | None = None


def default_comparer() -> TripletComparer:
    """The comparer with the shipped weights, loaded once per process."""
    global _default
    if _default is None:
        _default = TripletComparer()
    return _default


def embed_video_frames(frames: list[tuple[float, np.ndarray]]) -> list[SegmentEmbedding]:
    """What registration stores (fingerprint v2): segment embeddings of an original's 4 fps frames."""
    return default_comparer().embed_video_frames(frames)


def encode_segments(segments: Sequence[SegmentEmbedding], model_version: str) -> bytes:
    """A self-describing block: magic, layout version, model version (16 hex chars), fps, count, records.

    Each record: start and end in ms (u32 each), frame count (u8), the quantised embedding.
    """
    version = model_version.encode("ascii")[:16].ljust(16, b"\0")
    parts = [_SEGMENTS_HEADER.pack(_SEGMENTS_MAGIC, _LAYOUT, version, SAMPLE_FPS, len(segments))]
    for s in segments:
        parts.append(_SEGMENT_RECORD.pack(round(s.start * 1000), round(s.end * 1000), s.frames, quantise(s)))
    return b"".join(parts)


def decode_segments(data: bytes) -> tuple[str, list[SegmentEmbedding]]:
    """Inverse of `encode_segments`: (model version, segments); raises ValueError when malformed."""
    if len(data) < _SEGMENTS_HEADER.size:
        raise ValueError("too short for a segment block")
    magic, layout, version, _fps, count = _SEGMENTS_HEADER.unpack_from(data)
    if magic != _SEGMENTS_MAGIC or layout not in _DEQUANTISE:
        raise ValueError("not a segment block of layout 1 or 2")
    if len(data) != _SEGMENTS_HEADER.size + count * _SEGMENT_RECORD.size:
        raise ValueError(f"length {len(data)} does not match {count} segment records")
    segments = [
        _DEQUANTISE[layout](payload, start_ms / 1000, end_ms / 1000, frames)
        for start_ms, end_ms, frames, payload in _SEGMENT_RECORD.iter_unpack(data[_SEGMENTS_HEADER.size :])
    ]
    return version.rstrip(b"\0").decode("ascii"), segments
