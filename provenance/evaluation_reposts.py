"""The repost evaluation: is the original found when a clip comes back reframed, filled or mirrored?

`provenance eval reposts` registers every footage source with the evaluation device (the same
identity as `provenance eval run`), makes each repost form of the generator's catalogue
(`generator.attacks.REPOSTS`: vertical crops, blurred and solid fills, screen recordings, picture
in picture, rotations, mirrors and their combinations) of each source, plus benign controls and
real tampers (some inside reposts), sends each through the service's `Verifier` (the path the API
runs) and writes per split and form:

- reposts: the share judged `authentic` with the right original (the target), the shares judged
  `tampered` (a false alarm) and `unknown` (not found), and how often the findings carry the note
  the form calls for (`reframed`, `mirrored`);
- tampers: the share judged `tampered` with the right original;
- benign copies (controls and reposts): the false-positive rate (judged `tampered`);
- copies of footage that is *not* registered (`UNREGISTERED_FORMS` of one source per split): the
  false-match rate (anything but `unknown`: the views must not find an original that is not
  there);
- seconds per verification (mean, and per form).

Sources are split by footage, never by form: `validation` is what thresholds and strategies were
chosen on, `heldout` is only reported. Each source draws its own form parameters (crop width and
offset, scale, angle) from a seed of its name, so the held-out copies are not the validation's
geometry either. The generated scenes are written once under DATA_DIR/eval/footage.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from frames.samples import sample_clip
from generator import attacks as catalogue
from generator import scenes, tampers
from generator.variants import subclip
from provenance import fingerprint as fp
from provenance.core.errors import DomainError
from provenance.evaluation import where

Split = Literal["validation", "heldout"]
SPLITS: tuple[Split, ...] = ("validation", "heldout")
# Real clips longer than this are cut to it: the forms, not the length, are under test.
MAX_SECONDS = 6.0
CONTROLS = ("reencode", "crop")
# Forms made of the unregistered sources: each must come back `unknown`.
UNREGISTERED_FORMS = ("reencode", "crop_offcentre", "fill_blurred", "screen_recording", "rotate", "mirror")
TAMPERS = ("paste_region", "replace_range", *catalogue.REPOSTED_TAMPERS)
# The note a repost form calls for in the findings, when it is found.
NOTES = {
    "crop_centre": "reframed",
    "crop_offcentre": "reframed",
    "fill_blurred": "reframed",
    "fill_solid": "reframed",
    "screen_recording": "reframed",
    "picture_in_picture": "reframed",
    "rotate": "reframed",
    "rotate_framed": "reframed",
    "mirror": "mirrored",
    "mirror_crop": "mirrored",
    "mirror_fill_blurred": "mirrored",
}


@dataclass(frozen=True)
class Source:
    """One footage source: a real sample clip or a scene made from a photo (`generator.scenes`)."""

    name: str
    split: Split
    real: bool
    registered: bool = True

    def path(self, footage: Path) -> Path:
        """The clip (made or cut on first use under `footage`)."""
        out = footage / f"{self.name}.mp4"
        if out.is_file():
            return out
        footage.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(f"{out.stem}.partial.mp4")
        if self.real:
            clip = sample_clip(f"{self.name}.mp4")
            duration = fp.compute_fingerprint(clip, limits=_limits(), sample_fps=1.0).duration
            subclip(clip, partial, 0.0, min(duration, MAX_SECONDS))
        else:
            scenes.make_scene(self.name.removeprefix("scene-"), partial, seed=1)
        partial.replace(out)
        return out


SOURCES: tuple[Source, ...] = (
    Source("bikes", "validation", real=True),
    Source("carphone_pristine", "validation", real=True),
    Source("scene-coffee", "validation", real=False),
    Source("scene-motorcycle", "validation", real=False),
    Source("bigbuckbunny", "heldout", real=True),
    Source("scene-chelsea", "heldout", real=False),
    Source("scene-rocket", "heldout", real=False),
    Source("scene-astronaut", "heldout", real=False),
    Source("scene-hubble", "validation", real=False, registered=False),
    Source("scene-ihc", "heldout", real=False, registered=False),
)


def _limits() -> Any:
    from provenance.core.config import DecodeLimits

    return DecodeLimits()


def seed_of(source: Source) -> int:
    """The seed a source draws its forms' parameters from."""
    return zlib.crc32(source.name.encode())


def score(
    kind: str, name: str, truth: catalogue.Truth, result: dict[str, Any], registration_id: str | None
) -> dict[str, Any]:
    """One verification's row: what it said and whether that is right for this copy (a copy of
    unregistered footage, `registration_id` None, is right only when `unknown`)."""
    match = result.get("match") or {}
    right = match.get("registration_id") == registration_id
    verdict = result.get("verdict")
    kinds = sorted({f["kind"] for f in result.get("findings", [])})
    row: dict[str, Any] = {
        "verdict": verdict,
        "right_original": right,
        "confidence": result.get("confidence"),
        "findings": kinds,
        "transform": getattr(truth, "transform", None) or getattr(truth, "kind", ""),
    }
    if registration_id is None:
        row["correct"] = verdict == "unknown"
    elif kind == "tamper":
        row["correct"] = verdict == "tampered" and right
    else:
        row["correct"] = verdict == "authentic" and right
        note = NOTES.get(name)
        if note is not None:
            row["noted"] = note in kinds
    return row


def _rate(rows: Sequence[dict[str, Any]], test: Callable[[dict[str, Any]], bool]) -> float | None:
    return round(sum(1 for r in rows if test(r)) / len(rows), 4) if rows else None


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per split and form, and per split overall (see the module docstring)."""
    out: dict[str, Any] = {}
    for split in SPLITS:
        mine = [r for r in rows if r["split"] == split]
        if not mine:
            continue
        forms: dict[str, Any] = {}
        for name in dict.fromkeys(
            r["form"] if r["group"] != "unregistered" else f"unregistered {r['form']}" for r in mine
        ):
            group = [
                r
                for r in mine
                if (r["form"] if r["group"] != "unregistered" else f"unregistered {r['form']}") == name
            ]
            entry: dict[str, Any] = {
                "group": group[0]["group"],
                "n": len(group),
                "correct_rate": _rate(group, lambda r: r["correct"]),
                "authentic_rate": _rate(group, lambda r: r["verdict"] == "authentic"),
                "tampered_rate": _rate(group, lambda r: r["verdict"] == "tampered"),
                "unknown_rate": _rate(group, lambda r: r["verdict"] == "unknown"),
                "right_original_rate": _rate(group, lambda r: r["right_original"]),
                "seconds_mean": round(sum(r["seconds"] for r in group) / len(group), 3),
            }
            noted = [r for r in group if "noted" in r]
            if noted:
                entry["noted_rate"] = _rate(noted, lambda r: r["noted"])
            forms[name] = entry
        reposts = [r for r in mine if r["group"] == "repost"]
        foreign = [r for r in mine if r["group"] == "unregistered"]
        benign = [r for r in mine if r["group"] in ("repost", "control")]
        tampered = [r for r in mine if r["group"] == "tamper"]
        out[split] = {
            "forms": forms,
            "overall": {
                "reposts_n": len(reposts),
                "reposts_authentic_right_original": _rate(reposts, lambda r: r["correct"]),
                "reposts_unknown": _rate(reposts, lambda r: r["verdict"] == "unknown"),
                "tampers_n": len(tampered),
                "tampers_detected": _rate(tampered, lambda r: r["correct"]),
                "benign_n": len(benign),
                "benign_false_positive_rate": _rate(benign, lambda r: r["verdict"] == "tampered"),
                "unregistered_n": len(foreign),
                "unregistered_false_match_rate": _rate(foreign, lambda r: r["verdict"] != "unknown"),
                "seconds_mean": round(sum(r["seconds"] for r in mine) / len(mine), 3),
            },
        }
    return out


def run(
    service: Any,
    *,
    splits: Sequence[Split] = SPLITS,
    forms: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Make and verify every copy (see the module docstring); writes and returns the report."""
    names = list(forms) if forms else [*catalogue.REPOSTS, *CONTROLS, *TAMPERS]
    chosen = catalogue.pick(names)
    groups = {
        a.name: "repost" if a.name in catalogue.REPOSTS else "control" if a.kind == "benign" else "tamper"
        for a in chosen
    }
    settings = service.settings
    evaluator = service.evaluator
    footage = settings.data_dir / "eval" / "footage"
    client_id = evaluator.client_id()
    # Every registered source is registered, whatever the split run: the others are distractors.
    paths = {s.name: s.path(footage) for s in SOURCES}
    registrations: dict[str, str | None] = {
        s.name: evaluator.register(paths[s.name]) if s.registered else None for s in SOURCES
    }
    service.matcher.drain()
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=settings.data_dir) as tmp:
        for source in (s for s in SOURCES if s.split in splits):
            src = paths[source.name]
            others = [s for s in SOURCES if s.name != source.name and s.registered]
            other = paths[others[seed_of(source) % len(others)].name]
            duration = fp.compute_fingerprint(src, limits=settings.limits, sample_fps=1.0).duration
            at = where(duration)
            at = catalogue.Where(at.clip, at.start, at.duration, at.box, seed=seed_of(source))
            todo = chosen if source.registered else [a for a in chosen if a.name in UNREGISTERED_FORMS]
            for attack in todo:
                out = Path(tmp) / f"{attack.name}-{source.name}.mp4"
                try:
                    truth = attack.make(src, other, out, at)
                except tampers.NotApplicable as exc:
                    if progress:
                        progress(f"{attack.name} of {source.name}: skipped, {exc}")
                    continue
                sha = hashlib.sha256(out.read_bytes()).hexdigest()
                clock = time.perf_counter()
                try:
                    verification = service.verifier.submit(client_id, out, out.name, sha)
                    result = json.loads(verification.result or "{}")
                except DomainError as exc:
                    result = {"verdict": "error", "error": exc.code}
                seconds = time.perf_counter() - clock
                row = score(attack.kind, attack.name, truth, result, registrations[source.name])
                row.update(
                    source=source.name,
                    split=source.split,
                    form=attack.name,
                    group=groups[attack.name] if source.registered else "unregistered",
                    seconds=round(seconds, 3),
                )
                rows.append(row)
                out.unlink(missing_ok=True)
                if progress:
                    progress(
                        f"{source.split:10} {source.name:18} {attack.name:20} {row['verdict']:9}"
                        f" {'ok ' if row['correct'] else 'BAD'} {row['confidence']}"
                        f" {','.join(row['findings'])}"
                        f" ({seconds:.2f} s)"
                    )
    report = {
        "schema": "provenance.eval.reposts/v1",
        "comparer_mode": settings.comparer,
        "reframes": settings.reframes,
        "seconds": round(time.monotonic() - started, 1),
        "splits": summarise(rows),
        "samples": rows,
    }
    path = settings.data_dir / "eval" / "reposts.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    report["path"] = str(path)
    return report
