"""The faces evaluation (#18): face swaps of registered talking heads, and benign copies of them,
through the verification the service runs.

For each face source (`generator.footage`: animated LFW crops and Grace Hopper by split, plus
the real carphone clip) the original is registered as fingerprint version 3 (with its face
channel) by `Evaluator.register`, then swapped by each method over a known range of seconds
(`METHODS`: the three classic swaps of `generator.classic_swaps` with a face of another identity
from the train split, and the shipped autoencoder of `generator.swap`), and copied by the benign
variants of the attack catalogue (`BENIGN`: low-bitrate re-encode, downscale, colour grade, crop,
letterbox). Every copy goes through `Verifier.submit` (fingerprint, index, alignment, picture
and face channels, verdict): the same code a newsroom's upload runs, not a re-implementation.

Scores:

- a swapped frame is *caught* when a `face_swap` or `face_edit` finding covers its time and
  the finding's region has IoU >= `MIN_IOU` with the true face box of that frame (the camera-moved
  dlib box of the footage; for carphone, dlib's tracked box); per method and split the share of
  swapped seconds caught, with the misses split into "no face finding at that time", "a finding
  with the box elsewhere" and "matched another original";
- a benign copy should be `authentic` with no finding that makes a clip tampered: per variant and
  split the verdict counts, the face findings and the picture findings by kind.

The verifications run on a service of their own (`isolated_service`: a fresh SQLite database in a
temporary directory, no chain): a data directory's other registrations (the demo registers the
carphone clip as version 2) would compete for the same clips, and registrations made by older
code would keep their old face blocks. Made media can be kept between runs (`media`): the
generator does not change when the verifier does, so a re-run only registers and verifies.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import generator
from frames.regions import box_iou
from frames.samples import sample_clip
from generator import attacks as catalogue
from generator import footage
from generator.tampers import NotApplicable
from provenance.core.config import Settings
from provenance.evaluation import SWAP_WEIGHTS, Evaluator
from provenance.verify.verdict import NOTE_KINDS

Split = Literal["validation", "heldout", "carphone"]
SPLITS: tuple[Split, ...] = ("validation", "heldout", "carphone")
Method = Literal["triangle", "poisson", "feather", "autoencoder"]
METHODS: tuple[Method, ...] = ("triangle", "poisson", "feather", "autoencoder")
BENIGN: tuple[str, ...] = ("reencode", "downscale", "colour", "crop", "letterbox")
# Animated footage: this long, swapped over this range of seconds.
CLIP_SECONDS = 6.0
SWAP_AT = (1.5, 4.5)
# The carphone clip is about 4 s long.
CARPHONE_SWAP_AT = (1.0, 3.0)
# Faces put in by the classic swaps: stills of the train split, never a target's identity.
DONORS = ("astronaut", "lfw_002", "lfw_003", "lfw_007", "lfw_008")
MIN_IOU = 0.5
FACE_KINDS = ("face_swap", "face_edit")
# Bump when what is made changes, so kept media are made again.
MEDIA_LAYOUT = 1


@dataclass(frozen=True)
class Original:
    """A registered face clip: its split, file, frame rate and the true face box of every frame."""

    name: str
    split: Split
    path: Path
    fps: float
    boxes: list[list[float] | None]
    swap_at: tuple[float, float]


@dataclass(frozen=True)
class Swap:
    """A swapped copy: which frames show the swapped face."""

    method: Method
    path: Path
    changed: list[bool]


def pick_sources(per_split: int) -> list[tuple[Split, str]]:
    """The first `per_split` sources of the validation and the held-out split, and carphone."""
    chosen: list[tuple[Split, str]] = []
    for split in ("validation", "heldout"):
        chosen += [(split, s.name) for s in footage.sources(split)[:per_split]]
    return [*chosen, ("carphone", "carphone")]


def donor_for(index: int) -> str:
    return DONORS[index % len(DONORS)]


# --- making the media (kept in `media` between runs) ---


def _layout_key() -> str:
    digest = hashlib.sha256(SWAP_WEIGHTS.read_bytes()).hexdigest()[:12] if SWAP_WEIGHTS.is_file() else "none"
    return json.dumps(
        [MEDIA_LAYOUT, generator.__version__, digest, CLIP_SECONDS, SWAP_AT, CARPHONE_SWAP_AT, DONORS]
    )


def _kept(path: Path) -> dict[str, Any] | None:
    """The truth stored beside a kept file, None when either is missing."""
    side = path.with_suffix(".json")
    if path.is_file() and side.is_file():
        data: dict[str, Any] = json.loads(side.read_text())
        return data
    return None


def _keep(path: Path, truth: dict[str, Any]) -> dict[str, Any]:
    path.with_suffix(".json").write_text(json.dumps(truth))
    return truth


def make_original(split: Split, name: str, directory: Path) -> Original:
    path = directory / "original.mp4"
    truth = _kept(path)
    if truth is None:
        if split == "carphone":
            from generator.landmarks import track
            from generator.variants import read_clip

            shutil.copyfile(sample_clip("carphone_pristine.mp4"), path)
            clip = read_clip(path)
            width, height = clip.size
            boxes = [f.normalised_box(width, height) if f else None for f in track(clip.frames)]
            truth = {"fps": float(clip.fps), "boxes": boxes}
        else:
            made = footage.make_clip(name, path, seconds=CLIP_SECONDS, seed=0)
            truth = {"fps": float(made.fps), "boxes": made.face_boxes}
        _keep(path, truth)
    swap_at = CARPHONE_SWAP_AT if split == "carphone" else SWAP_AT
    return Original(name, split, path, truth["fps"], truth["boxes"], swap_at)


def make_swap(method: Method, original: Original, donor: str, directory: Path) -> Swap:
    """`original` with its face swapped by `method` over `original.swap_at`; NotApplicable when
    the method finds no face to swap."""
    path = directory / f"{method}.mp4"
    truth = _kept(path)
    if truth is None:
        start, end = original.swap_at
        if method == "autoencoder":
            changed = _autoencoder_swap(original, path, start, end)
        else:
            from generator.classic_swaps import classic_swap

            result = classic_swap(method, original.path, footage.still(donor), path, start=start, end=end)
            changed = result.changed
        truth = _keep(path, {"changed": changed})
    return Swap(method, path, truth["changed"])


def _autoencoder_swap(original: Original, out: Path, start: float, end: float) -> list[bool]:
    """The shipped autoencoder's swap (campaign's face track), on the frames of [start, end) only."""
    from generator import campaign
    from generator.swap.convert import swap_video

    model = campaign.shipped_model(SWAP_WEIGHTS)
    track = campaign.face_track(original.path)
    inside = [
        face if face is not None and start - 1e-6 <= k / original.fps < end - 1e-6 else None
        for k, face in enumerate(track)
    ]
    if not any(inside):
        raise NotApplicable(f"the autoencoder's tracker finds no face in {original.name} in [{start}, {end})")
    return swap_video(model, original.path, out, progress=False, faces=inside).changed


def make_benign(variant: str, original: Original, directory: Path) -> Path:
    path = directory / f"{variant}.mp4"
    if _kept(path) is None:
        [attack] = catalogue.pick([variant])
        where = catalogue.Where(clip=0.0, start=0.0, duration=0.0)
        attack.make(original.path, original.path, path, where)
        _keep(path, {"variant": variant})
    return path


# --- scoring ---


def face_findings(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in result.get("findings", []) if f.get("kind") in FACE_KINDS]


def score_swap(
    result: dict[str, Any], swap: Swap, original: Original, registration_id: str
) -> dict[str, float]:
    """Seconds swapped, caught (a face finding over the frame, its region on the true face box),
    and missed by reason."""
    step = 1 / original.fps
    right = (result.get("match") or {}).get("registration_id") == registration_id
    findings = face_findings(result) if right else []
    row = {"swapped_s": 0.0, "caught_s": 0.0, "no_finding_s": 0.0, "elsewhere_s": 0.0, "other_match_s": 0.0}
    for k, hit in enumerate(swap.changed):
        if not hit:
            continue
        row["swapped_s"] += step
        t = (k + 0.5) * step
        covering = [f for f in findings if f["query_range"][0] <= t < f["query_range"][1]]
        box = original.boxes[k] if k < len(original.boxes) else None
        if not right:
            row["other_match_s"] += step
        elif not covering:
            row["no_finding_s"] += step
        elif box is not None and any(box_iou(f["regions"], [box]) >= MIN_IOU for f in covering):
            row["caught_s"] += step
        else:
            row["elsewhere_s"] += step
    return row


def score_benign(result: dict[str, Any], registration_id: str) -> dict[str, Any]:
    match = result.get("match") or {}
    kinds = [f["kind"] for f in result.get("findings", []) if f.get("kind") not in NOTE_KINDS]
    return {
        "verdict": result.get("verdict"),
        "right_original": match.get("registration_id") == registration_id,
        "face_findings": sum(k in FACE_KINDS for k in kinds),
        "picture_findings": [k for k in kinds if k not in FACE_KINDS],
    }


def summarise(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per method and split (and all splits) the caught share; per variant and split the verdicts."""

    def seconds(rows: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {"n": len(rows)}
        for key in ("swapped_s", "caught_s", "no_finding_s", "elsewhere_s", "other_match_s"):
            out[key] = round(sum(r[key] for r in rows), 2)
        out["caught_rate"] = round(out["caught_s"] / out["swapped_s"], 4) if out["swapped_s"] else None
        return out

    def verdicts(rows: list[dict[str, Any]]) -> dict[str, Any]:
        picture: dict[str, int] = {}
        for r in rows:
            for kind in r["picture_findings"]:
                picture[kind] = picture.get(kind, 0) + 1
        return {
            "n": len(rows),
            "authentic": sum(r["verdict"] == "authentic" and r["right_original"] for r in rows),
            "tampered": sum(r["verdict"] == "tampered" for r in rows),
            "unknown": sum(r["verdict"] == "unknown" for r in rows),
            "other_match": sum(r["verdict"] != "unknown" and not r["right_original"] for r in rows),
            "face_findings": sum(r["face_findings"] for r in rows),
            "picture_findings": picture,
        }

    swaps: dict[str, Any] = {}
    for method in METHODS:
        rows = [s for s in samples if s["kind"] == "swap" and s["method"] == method]
        swaps[method] = {split: seconds([r for r in rows if r["split"] == split]) for split in SPLITS}
        swaps[method]["all"] = seconds(rows)
    benign: dict[str, Any] = {}
    for variant in BENIGN:
        rows = [s for s in samples if s["kind"] == "benign" and s["variant"] == variant]
        benign[variant] = {split: verdicts([r for r in rows if r["split"] == split]) for split in SPLITS}
        benign[variant]["all"] = verdicts(rows)
    every = [s for s in samples if s["kind"] == "benign"]
    benign["all"] = {split: verdicts([r for r in every if r["split"] == split]) for split in SPLITS}
    benign["all"]["all"] = verdicts(every)
    return {"swaps": swaps, "benign": benign}


# --- the run ---


@contextmanager
def isolated_service(settings: Settings) -> Iterator[Any]:
    """A service of the same code on a fresh SQLite database in a temporary directory (no chain,
    no demo), removed afterwards."""
    from provenance.service import open_service

    parent = settings.data_dir / "eval"
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="faces-", dir=parent) as tmp:
        own = settings.model_copy(
            update={
                "data_dir": Path(tmp),
                "database_url": f"sqlite:///{Path(tmp) / 'faces.db'}",
                "chain_mode": "off",
                "chain_rpc": None,
                "demo": False,
                "eval_interval_s": 0.0,
                "role": "all",
            }
        )
        service = open_service(own)
        try:
            yield service
        finally:
            service.stop()
            service.engine.dispose()


def evaluate(
    evaluator: Evaluator,
    sources: int = 8,
    media: Path | None = None,
    progress: Callable[[str], None] | None = None,
    *,
    only: Sequence[tuple[Split, str]] | None = None,
    methods: Sequence[Method] = METHODS,
    variants: Sequence[str] = BENIGN,
) -> dict[str, Any]:
    """Register `sources` face sources per split (and carphone) as version 3, verify their swaps
    and benign copies through `evaluator`'s service, and return the figures (see the module).

    `only` names the (split, source) pairs instead; `methods` and `variants` narrow the copies
    (the tests' short runs)."""
    began = time.monotonic()
    say = progress or (lambda line: None)
    client_id = evaluator.client_id()
    samples: list[dict[str, Any]] = []
    skipped: list[str] = []
    chosen = list(only) if only is not None else pick_sources(sources)
    with tempfile.TemporaryDirectory(dir=evaluator.settings.data_dir) as tmp:
        root = media or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        stamp = root / "layout.json"
        if stamp.is_file() and stamp.read_text() != _layout_key():
            for child in root.iterdir():
                if child.is_dir():
                    shutil.rmtree(child)
        stamp.write_text(_layout_key())
        for i, (split, name) in enumerate(chosen):
            directory = root / name
            directory.mkdir(exist_ok=True)
            original = make_original(split, name, directory)
            registration_id = evaluator.register(original.path, version=3)
            for method in methods:
                try:
                    swap = make_swap(method, original, donor_for(i), directory)
                except NotApplicable as exc:
                    skipped.append(f"{method} on {name}: {exc}")
                    say(f"{method} on {name}: skipped, {exc}")
                    continue
                result = _verify(evaluator, client_id, swap.path, tmp)
                row = score_swap(result, swap, original, registration_id)
                samples.append({"kind": "swap", "method": method, "split": split, "source": name, **row})
                say(
                    f"{method} on {name} ({split}): caught {row['caught_s']:.1f} of {row['swapped_s']:.1f} s"
                    f" ({result.get('verdict')})"
                )
            for variant in variants:
                path = make_benign(variant, original, directory)
                result = _verify(evaluator, client_id, path, tmp)
                outcome = score_benign(result, registration_id)
                samples.append(
                    {"kind": "benign", "variant": variant, "split": split, "source": name, **outcome}
                )
                say(
                    f"{variant} of {name} ({split}): {outcome['verdict']}"
                    + "".join(f", {k}" for k in outcome["picture_findings"])
                    + (f", {outcome['face_findings']} face finding(s)" if outcome["face_findings"] else "")
                )
    figures = summarise(samples)
    comparer = evaluator.service.matcher.comparer
    return {
        "schema": "provenance.eval-faces/v1",
        "sources": [{"name": name, "split": split} for split, name in chosen],
        "donors": list(DONORS),
        "swap_at": {"footage": list(SWAP_AT), "carphone": list(CARPHONE_SWAP_AT)},
        "min_iou": MIN_IOU,
        **figures,
        "skipped": skipped,
        "samples": samples,
        "baseline_comparer": f"{comparer.name}-{comparer.version}",
        "generator": f"{generator.__version__}",
        "seconds": round(time.monotonic() - began, 1),
    }


def _verify(evaluator: Evaluator, client_id: str, path: Path, tmp: str) -> dict[str, Any]:
    """One clip through `Verifier.submit` (it takes the file: a copy goes in)."""
    copy = Path(tmp) / f"submit-{path.parent.name}-{path.name}"
    shutil.copyfile(path, copy)
    sha = hashlib.sha256(copy.read_bytes()).hexdigest()
    verification = evaluator.service.verifier.submit(client_id, copy, path.name, sha)
    result: dict[str, Any] = json.loads(verification.result or "{}")
    copy.unlink(missing_ok=True)
    return result


def table(figures: dict[str, Any]) -> list[str]:
    """The figures as text lines: caught share per method and split, then the benign verdicts."""

    def pct(row: dict[str, Any]) -> str:
        rate = row.get("caught_rate")
        return "     —" if rate is None else f"{100 * rate:5.1f}%"

    lines = [f"{'swapped seconds caught':24}" + "".join(f"{s:>13}" for s in (*SPLITS, "all"))]
    for method, rows in figures["swaps"].items():
        cells = "".join(f"{pct(rows[s]):>7} ({rows[s]['n']:2d})" for s in (*SPLITS, "all"))
        lines.append(f"  {method:22}{cells}")
    lines.append(
        f"{'benign (authentic/n)':24}" + "".join(f"{s:>13}" for s in (*SPLITS, "all")) + "   face  picture"
    )
    for variant, rows in figures["benign"].items():
        cells = "".join(f"{rows[s]['authentic']:>9}/{rows[s]['n']:<3}" for s in (*SPLITS, "all"))
        every = rows["all"]
        picture = ", ".join(f"{k} {v}" for k, v in sorted(every["picture_findings"].items())) or "—"
        extra = f"  unknown {every['unknown']}" if every["unknown"] else ""
        extra += f"  other original {every['other_match']}" if every["other_match"] else ""
        lines.append(f"  {variant:22}{cells}  {every['face_findings']:5d}  {picture}{extra}")
    for reason in figures.get("skipped", []):
        lines.append(f"skipped {reason}")
    lines.append(f"{len(figures['sources'])} sources, {figures['seconds']:.0f} s")
    return lines
