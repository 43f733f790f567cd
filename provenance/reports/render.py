"""Rendering a match report: one self-contained HTML file a fact-checker can read and forward.

The file inlines its images as `data:` URIs and its CSS in one `<style>` element, runs no script
and loads nothing, so it reads the same from our server, from a mail attachment or from disk; its
own Content-Security-Policy (a `<meta>`, repeated as a header when served) allows nothing else.
The images are also written beside it, with `report.json` describing them and the timeline's
geometry, for tools and tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

import provenance.reports.frames as fr
from provenance import fingerprint as fp
from provenance.core.config import DecodeLimits
from provenance.core.errors import MediaError
from provenance.core.timeutil import iso, utcnow
from provenance.fingerprint import Fingerprint, FrameHash
from provenance.media import SampledFrame
from provenance.reports.frames import Image
from provenance.reports.timeline import seconds, span, timeline_alt, timeline_png
from provenance.verify.compare import CELL_THRESHOLD, PdqGridComparer

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
# Frames shown side by side: enough to see each tampered range and one untouched moment.
MAX_MOMENTS = 4
NAV_MARKER = "<!--provenance:nav-->"
RECEIPT_COMMAND = "provenance receipt verify {file} --rpc RPC_URL"

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_STYLE = re.compile(r"<style>(.*?)</style>", re.DOTALL)


def style_hash(css: str) -> str:
    """The CSP source that admits exactly this inline stylesheet."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(css.encode()).digest()).decode() + "'"


def report_csp(html: str) -> str:
    """The Content-Security-Policy of a rendered report: its own stylesheet and inline images, no more."""
    match = _STYLE.search(html)
    style = style_hash(match.group(1)) if match else "'none'"
    return (
        f"default-src 'none'; img-src data:; style-src {style}; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )


@dataclass
class Moment:
    """A moment shown side by side: a time of the clip, the original's time, the segment it lies in."""

    query_t: float
    original_t: float | None = None
    segment: dict[str, Any] | None = None
    images: list[Image] = field(default_factory=list)
    caption: str = ""


def _segments(match: dict[str, Any] | None) -> list[dict[str, Any]]:
    return list(match.get("segments", [])) if match else []


def _tampered_ranges(result: dict[str, Any]) -> list[list[float]]:
    match = result.get("match") or {}
    ranges = match.get("tampered_ranges", result.get("tampered_ranges", []))
    return [[float(a), float(b)] for a, b in ranges]


def _mid(segment: dict[str, Any]) -> float:
    return (float(segment["query_start"]) + float(segment["query_end"])) / 2


def original_time(segment: dict[str, Any], t: float) -> float | None:
    """Where `t` of the clip falls in the original, by the segment's alignment (None: nowhere)."""
    o_start, o_end = segment.get("original_start"), segment.get("original_end")
    if o_start is None or o_end is None:
        return None
    q_start, q_end = float(segment["query_start"]), float(segment["query_end"])
    if q_end <= q_start:
        return float(o_start)
    return float(o_start) + (t - q_start) * (float(o_end) - float(o_start)) / (q_end - q_start)


def choose_moments(result: dict[str, Any], duration: float) -> list[Moment]:
    """At most `MAX_MOMENTS` moments: the worst segment of each tampered range, then context.

    An authentic clip shows its start, middle and end; an unmatched one the same of the clip alone.
    """
    segments = _segments(result.get("match"))
    if not segments:
        end = max(duration, 0.0)
        times = sorted({0.0, round(end / 2, 3), round(end * 0.9, 3)}) if end > 0 else [0.0]
        return [Moment(query_t=t) for t in times]
    chosen: list[dict[str, Any]] = []
    for start, end in _tampered_ranges(result):
        inside = [s for s in segments if s["tampered"] and start <= _mid(s) <= end]
        if inside and len(chosen) < MAX_MOMENTS - 1:
            chosen.append(max(inside, key=lambda s: float(s["distance"])))
    # Room left: more of the tampered segments, spread over the clip.
    others = [s for s in segments if s["tampered"] and s not in chosen]
    room = MAX_MOMENTS - 1 - len(chosen)
    if chosen and others and room > 0:
        picks = np.linspace(0, len(others) - 1, num=min(room, len(others))).round().astype(int)
        chosen += [others[i] for i in sorted(set(picks.tolist()))]
    clean = [s for s in segments if not s["tampered"]]
    if chosen and clean:
        first = float(chosen[0]["query_start"])
        chosen.append(min(clean, key=lambda s: abs(_mid(s) - first)))
    elif not chosen:
        picks = np.linspace(0, len(segments) - 1, num=min(3, len(segments))).round().astype(int)
        chosen = [segments[i] for i in sorted(set(picks.tolist()))]
    moments = [Moment(query_t=_mid(s), original_t=original_time(s, _mid(s)), segment=s) for s in chosen]
    return sorted(moments, key=lambda m: m.query_t)


def _segment_words(segment: dict[str, Any]) -> str:
    """What is wrong with a tampered segment, as a noun phrase ("2 changed regions of the picture")."""
    if segment.get("original_start") is None:
        other = segment.get("other_registration_id")
        shows = f", showing another registered original, {other}" if other else ""
        return f"footage with no counterpart in the original (inserted or replaced{shows})"
    if segment.get("regions"):
        count = len(segment["regions"])
        return f"{count} changed region{'s' if count > 1 else ''} of the picture"
    return "a jump within the original (frames cut or reordered)"


def _and(parts: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


_SOUND_WORDS = {
    "audio_replaced": "other sound than the original's (voice replaced or dubbed)",
    "audio_removed": "the original's sound removed (muted or cut)",
    "audio_inserted": "sound the original does not have",
}


def _range_words(result: dict[str, Any]) -> list[str]:
    """One sentence per tampered range: "0.0–1.0 s of the clip: 2 changed regions of the picture"."""
    segments = _segments(result.get("match"))
    sound = [f for f in result.get("findings", []) if f.get("kind") in _SOUND_WORDS]
    lines = []
    for start, end in _tampered_ranges(result):
        touched = [s for s in segments if s["tampered"] and start <= _mid(s) <= end]
        kinds: list[str] = []
        # The most regions one segment flags: neighbouring segments usually flag the same spot.
        regions = max(
            (len(s.get("regions") or []) for s in touched if s.get("original_start") is not None), default=0
        )
        if regions:
            kinds.append(f"{regions} changed region{'s' if regions > 1 else ''} of the picture")
        for s in touched:
            if s.get("regions") and s.get("original_start") is not None:
                continue
            words = _segment_words(s)
            if words not in kinds:
                kinds.append(words)
        for f in sound:
            words = _SOUND_WORDS[f["kind"]]
            if float(f["query_range"][0]) < end and float(f["query_range"][1]) > start and words not in kinds:
                kinds.append(words)
        lines.append(
            f"{span(start, end)} of the clip differs from the original"
            + (f": {_and(kinds)}" if kinds else "")
        )
    return lines


def _sound_timeline(result: dict[str, Any], duration: float) -> tuple[Image | None, Any]:
    """The sound's similarity window by window, under the picture's (None without a compared sound)."""
    audio = (result.get("match") or {}).get("audio") or {}
    windows = audio.get("segments") or []
    if not windows or duration <= 0:
        return None, None
    ranges = [f["query_range"] for f in result.get("findings", []) if f.get("kind") in _SOUND_WORDS]
    png, geometry = timeline_png(windows, ranges, duration)
    offset = audio.get("offset")
    words = timeline_alt(windows, ranges, duration).replace(
        "segment by segment", "of the sound, window by window"
    )
    if offset is not None and abs(offset) >= 0.05:
        words += f" The sound is {abs(offset):.2f} s {'late' if offset > 0 else 'early'} against the picture."
    elif offset is not None:
        words += " The sound is in step with the picture."
    return Image("audio-timeline.png", "image/png", png, geometry.width, geometry.height, words), geometry


def headline(result: dict[str, Any]) -> str:
    """The verdict in plain words: the first thing the report says."""
    match = result.get("match")
    verdict = result.get("verdict")
    if verdict == "tampered" and match:
        return f"This clip is a tampered copy of the original registered as {match['registration_id']}."
    if verdict == "authentic" and match and match.get("exact_copy"):
        return (
            f"This file is an exact copy of the original registered as {match['registration_id']}: "
            "its bytes are identical."
        )
    if verdict == "authentic" and match:
        return f"This clip is authentic: it matches the original registered as {match['registration_id']}."
    return "No registered original matches this clip."


def confidence_words(result: dict[str, Any]) -> str:
    """The confidence as people read it: never "100 %" short of identical bytes, and for `unknown`
    how close the nearest registered original came instead of a bare percentage."""
    value = float(result.get("confidence", 0.0))
    match = result.get("match") or {}
    if match.get("exact_copy"):
        return "certain (identical SHA-256)"
    if result.get("verdict") == "unknown":
        nearest = result.get("nearest") or {}
        usable = int(nearest.get("usable_frames") or 0)
        matched = int(nearest.get("matched_frames") or 0)
        if not usable:
            return "no usable frames to compare (blank or flat picture)"
        if not matched:
            return f"no registered original shares any of the clip's {usable} usable frames"
        return f"the nearest registered original matched only {matched} of the clip's {usable} usable frames"
    percent = 100 * value
    return ">99 %" if percent >= 99.5 else f"{percent:.0f} %"


def segment_similarity(segment: dict[str, Any]) -> str:
    """A segment's similarity in words a reader can use: the comparer's distance is capped at 1, so a
    distance of 1 means "beyond the comparer's range", not a measured 0."""
    if segment.get("original_start") is None:
        return "no counterpart"
    distance = float(segment.get("distance", 0.0))
    if distance >= 1.0:
        return "unlike (off the scale)"
    return f"{100 * (1 - distance):.0f} %"


def _heat_alt(
    t: float, scores: np.ndarray | None, regions: Sequence[Sequence[float]], from_regions: bool = False
) -> str:
    if scores is None:
        return f"Clip frame at {seconds(t)} with no comparison: the original's frame is not available."
    worst = float(scores.max())
    tail = (
        "tinted: the cells the comparer that gave the verdict flags."
        if from_regions
        else f"strongest cell score {worst:.0f} (threshold {CELL_THRESHOLD:.0f})."
    )
    if not regions:
        return f"Heat map of changes at {seconds(t)} of the clip: no region is flagged; {tail}"
    where = "; ".join(fr.describe_box(*(float(v) for v in box)) for box in regions)
    return f"Heat map of changes at {seconds(t)} of the clip: outlined as changed, {where}; {tail}"


def _render_moment(
    k: int,
    moment: Moment,
    query_frame: fr.KeptFrame | None,
    query_fingerprint: Fingerprint,
    original_frame: SampledFrame | None,
    original_fingerprint: Fingerprint | None,
    cells_from_regions: bool = False,
) -> None:
    """Fill `moment.images` (original, clip, changes) and its caption.

    `cells_from_regions`: the verdict came from a comparer with no per-cell scores of its own (the
    learned one), so the heat map tints the cells of the verdict's regions instead of showing the
    fingerprint comparer's scores, which could disagree with the verdict and the outline."""
    if query_frame is None:
        return
    t = query_frame.t  # the frame shown, which may sit a little off the moment asked for
    clip_image = Image(
        f"moment-{k}-clip.jpg",
        "image/jpeg",
        query_frame.jpeg,
        query_frame.width,
        query_frame.height,
        f"Frame of the clip at {seconds(t)}.",
    )
    box = query_frame.box
    if moment.segment is None:
        moment.images.append(clip_image)
        moment.caption = f"The clip at {seconds(t)}."
        return
    regions = moment.segment.get("regions", [])
    original_hash: FrameHash | None = None
    o_t = moment.original_t
    if o_t is not None:
        if original_fingerprint is not None:
            original_hash = fr.nearest_frame(original_fingerprint, o_t)
        elif original_frame is not None:
            original_hash = fp.hash_frame(original_frame.t, original_frame.rgb)
        if original_frame is not None:
            moment.images.append(
                fr.encode_jpeg(
                    f"moment-{k}-original.jpg",
                    fr.fit(original_frame.rgb),
                    f"Frame of the registered original at {seconds(original_frame.t)}.",
                )
            )
        elif original_hash is not None:
            top, bottom, left, right = box
            moment.images.append(
                fr.encode_png(
                    f"moment-{k}-original.png",
                    fr.coarse_original(original_hash, right - left, bottom - top),
                    f"Coarse picture of the registered original at {seconds(original_hash.t)}, rebuilt "
                    "from its fingerprint (32 by 32 grey levels): the original media is not available.",
                )
            )
    moment.images.append(clip_image)
    scores = None
    query_hash = fr.nearest_frame(query_fingerprint, t)  # the very frame kept: both sample alike
    if original_hash is not None and query_hash is not None:
        scores = (
            fr.region_scores(regions) if cells_from_regions else fr.cell_scores(query_hash, original_hash)
        )
    if scores is not None or regions:  # footage with no counterpart has nothing to compare
        moment.images.append(
            fr.encode_jpeg(
                f"moment-{k}-changes.jpg",
                fr.heatmap(query_frame.rgb(), box, scores, regions),
                _heat_alt(t, scores, regions, cells_from_regions),
            )
        )
    segment = moment.segment
    where = f"{span(segment['query_start'], segment['query_end'])} of the clip"
    state = f"shows {_segment_words(segment)}" if segment["tampered"] else "matches the original"
    at_original = f", {seconds(o_t)} of the original" if o_t is not None else ""
    moment.caption = f"At {seconds(t)} of the clip{at_original}. The segment {where} {state}."


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _data_uri(image: Image) -> str:
    return f"data:{image.mime};base64,{base64.b64encode(image.data).decode()}"


def _anchor_view(anchor: dict[str, Any] | None) -> dict[str, Any]:
    anchor = anchor or {"status": "unknown"}
    status = anchor.get("status")
    if status == "anchored":
        proof = anchor.get("inclusion_proof")
        summary = (
            "The original's fingerprint is in a Merkle tree whose root is recorded on chain, and the "
            f"inclusion proof is {proof}."
        )
    elif status == "pending":
        summary = (
            "The original is logged but its log root is not on chain yet (roots are anchored every few "
            "seconds): download the receipt again later for the chain proof."
        )
    else:
        summary = f"Anchoring status: {status}."
    return {**anchor, "summary": summary}


def render_report(
    result: dict[str, Any],
    query: Fingerprint,
    query_frames: fr.FrameStore,
    original_path: Path | None,
    original_fingerprint: Fingerprint | None,
    out_dir: Path,
    limits: DecodeLimits,
    *,
    filename: str | None = None,
    generated_at: datetime | None = None,
    receipt: dict[str, Any] | None = None,
) -> Path:
    """Write `out_dir/index.html` (self-contained) and its images; returns the HTML's path.

    The clip's side is what its verification kept (`query`, its fingerprint, and `query_frames`,
    its stills): the upload is not decoded again. `original_path` is the original media when it
    was uploaded; otherwise the original's side comes from `original_fingerprint`. Decoding the
    original stays within `limits` and a few frames.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    match = result.get("match")
    segments = _segments(match)
    ranges = _tampered_ranges(result)
    duration = float(match["query_range"][1]) if match else query.duration
    if segments:
        duration = max(duration, *(float(s["query_end"]) for s in segments))

    # One comparer for verdict, outline and heat map: the fingerprint comparer's cell scores only
    # when it gave the verdict (or no comparer is named); otherwise the verdict's own regions.
    verdict_comparer = (result.get("comparer") or {}).get("name")
    cells_from_regions = verdict_comparer not in (None, PdqGridComparer.name)
    moments = choose_moments(result, duration)
    shown = [query_frames.nearest(m.query_t) for m in moments]
    original_times = [m.original_t for m in moments if m.original_t is not None]
    original_frames: list[SampledFrame | None] = []
    if original_path is not None and original_path.is_file() and original_times:
        try:
            original_frames = fr.grab_frames(original_path, original_times, limits)
        except MediaError as exc:  # the fingerprint still shows the original, coarsely
            logger.warning("report: cannot decode the original %s: %s", original_path, exc.code)
    frames_by_time = dict(zip(original_times, original_frames, strict=False))
    for k, (moment, query_frame) in enumerate(zip(moments, shown, strict=True), start=1):
        original_frame = frames_by_time.get(moment.original_t) if moment.original_t is not None else None
        _render_moment(
            k, moment, query_frame, query, original_frame, original_fingerprint, cells_from_regions
        )
    moments = [m for m in moments if m.images]

    images: list[Image] = [img for m in moments for img in m.images]
    timeline: Image | None = None
    timeline_phone: Image | None = None
    geometry = None
    if segments and duration > 0:  # a photo has no timeline
        png, geometry = timeline_png(segments, ranges, duration)
        timeline = Image(
            "timeline.png",
            "image/png",
            png,
            geometry.width,
            geometry.height,
            timeline_alt(segments, ranges, duration),
        )
        images.append(timeline)
        phone_png, _ = timeline_png(segments, ranges, duration, phone=True)
        phone_size = png_size(phone_png)
        timeline_phone = Image(
            "timeline-phone.png", "image/png", phone_png, phone_size[0], phone_size[1], timeline.alt
        )
        images.append(timeline_phone)
    sound_timeline, sound_geometry = _sound_timeline(result, duration)
    if sound_timeline is not None:
        images.append(sound_timeline)
    legend: Image | None = None
    if any(len(m.images) > 1 for m in moments):
        legend = fr.encode_png(
            "heat-legend.png",
            fr.legend_bar(),
            "Colour scale of the heat maps: from faint yellow (same as the original) through orange at the "
            "threshold (the middle mark) to red (clearly changed).",
        )
        images.append(legend)

    css = (TEMPLATES / "report.css").read_text()
    registration_id = match["registration_id"] if match else None
    receipt_file = f"receipt-{registration_id}.json" if registration_id else "RECEIPT.json"
    context = {
        "result": result,
        "verification_id": result.get("id", ""),
        "verdict": result.get("verdict", "unknown"),
        "headline": headline(result),
        "confidence": confidence_words(result),
        "segment_similarity": segment_similarity,
        "range_lines": _range_words(result),
        "match": match,
        "segments": segments,
        "seconds": seconds,
        "span": span,
        "filename": filename,
        "generated_at": iso(generated_at or utcnow()),
        "moments": moments,
        "coarse_original": any(i.name.endswith("-original.png") for m in moments for i in m.images),
        "timeline": timeline,
        "timeline_phone": timeline_phone,
        "sound_timeline": sound_timeline,
        "sound_offset": ((match or {}).get("audio") or {}).get("offset"),
        "tampered_attr": ";".join(f"{a:.3f}-{b:.3f}" for a, b in ranges),
        "legend": legend,
        "threshold": CELL_THRESHOLD,
        "cells_from_regions": cells_from_regions,
        "verdict_comparer": verdict_comparer,
        "anchor": _anchor_view(match.get("anchor") if match else None),
        "receipt_url": (match.get("receipt_url") or f"/v1/registrations/{registration_id}/receipt")
        if match
        else None,
        "receipt_file": receipt_file,
        "receipt_command": RECEIPT_COMMAND.format(file=receipt_file),
        # The receipt itself, so the saved report carries its proof (a download needs no API key).
        "receipt_json": json.dumps(receipt, indent=2, sort_keys=True) if receipt else None,
        "receipt_data_uri": (
            "data:application/json;base64,"
            + base64.b64encode(json.dumps(receipt, indent=2, sort_keys=True).encode()).decode()
            if receipt
            else None
        ),
        "c2pa": result.get("c2pa"),
        "result_json": json.dumps(result, indent=2, sort_keys=True),
        "css": Markup(css),
        "style_source": style_hash(css),
        "data_uri": _data_uri,
        "nav_marker": Markup(NAV_MARKER),
    }
    html = _env.get_template("report.html").render(**context)
    path = out_dir / "index.html"
    path.write_text(html, encoding="utf-8")
    for image in images:
        (out_dir / image.name).write_bytes(image.data)
    meta = {
        "verification_id": result.get("id"),
        "verdict": result.get("verdict"),
        "images": [
            {"name": i.name, "mime": i.mime, "width": i.width, "height": i.height, "alt": i.alt}
            for i in images
        ],
        "moments": [
            {"query_t": m.query_t, "original_t": m.original_t, "images": [i.name for i in m.images]}
            for m in moments
        ],
        "timeline": geometry.to_json() if geometry else None,
        "audio_timeline": sound_geometry.to_json() if sound_geometry else None,
    }
    (out_dir / "report.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return path
