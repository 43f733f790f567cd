"""Match reports: drawn from real verifications of real clips, written by the hook, served by the API."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from frames.samples import sample_clip
from generator.tampers import TamperTruth, paste_region, paste_region_image, replace_range
from provenance import fingerprint as fp
from provenance import reports
from provenance.core.config import DecodeLimits
from provenance.fingerprint import Fingerprint
from provenance.media import open_media
from provenance.reports import FrameStore, render_report
from provenance.reports import frames as report_frames
from provenance.reports.frames import region_scores as fr_region_scores
from provenance.reports.render import _range_words, confidence_words, headline, segment_similarity
from provenance.reports.timeline import TimelineGeometry
from provenance.verify.compare import PdqGridComparer
from provenance.verify.index import FrameIndex
from provenance.verify.verdict import verify_fingerprint
from tests.provenance.conftest import Stack

BIKES = sample_clip("bikes.mp4")
LIMITS = DecodeLimits(max_decode_seconds=60)
BOX = (0.55, 0.2, 0.3, 0.45)


# --- rendering, without a server ---

# The clip, its truth, the original's fingerprint, the result, and what the verification decoded.
Tampered = tuple[Path, TamperTruth, Fingerprint, dict[str, Any], "Seen"]
Seen = tuple[Fingerprint, FrameStore]


def observe(clip: Path) -> Seen:
    """The query's fingerprint and report stills from one decode, as `Matcher.examine` makes them."""
    stills = FrameStore()
    return fp.compute_fingerprint(clip, limits=LIMITS, sinks=[stills]), stills


@pytest.fixture(scope="module")
def tampered(
    tmp_path_factory: pytest.TempPathFactory,
) -> Tampered:
    """bikes.mp4 with a texture pasted over 3-5 s, and the verifier's result for it."""
    clip = tmp_path_factory.mktemp("clips") / "bikes-tampered.mp4"
    truth = paste_region(BIKES, clip, start=3.0, duration=2.0, box=BOX)
    original = fp.compute_fingerprint(BIKES, limits=LIMITS)
    index = FrameIndex()
    index.add("reg_original", original)
    seen = observe(clip)
    result = verify_fingerprint(seen[0], index, lambda _: original, PdqGridComparer()).to_json()
    assert result["verdict"] == "tampered", result
    result["id"] = "ver_test"
    result["match"].update(
        device_id="dev_test",
        captured_at="2026-01-02T03:04:05.000Z",
        signature_valid=True,
        anchor={
            "status": "anchored",
            "chain_id": 31337,
            "contract": "0x" + "ab" * 20,
            "transaction": "0x" + "cd" * 32,
            "block": 7,
            "root": "ef" * 32,
            "inclusion_proof": "valid",
        },
        receipt_url="/v1/registrations/reg_original/receipt",
    )
    return clip, truth, original, result, seen


def _rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _self_contained(html: str) -> None:
    assert "<script" not in html
    sources = re.findall(r'<img[^>]* src="([^"]+)"', html)
    assert sources and all(s.startswith("data:image/") for s in sources)
    assert not re.search(r'(src|href)="https?://', html)
    assert all(re.search(r'<img[^>]* alt="[^"]{10,}"', tag) for tag in re.findall(r"<img[^>]*>", html))


def test_tampered_report(tampered: Tampered, tmp_path: Path) -> None:
    clip, truth, original, result, seen = tampered
    path = render_report(result, *seen, BIKES, original, tmp_path / "report", LIMITS, filename=clip.name)
    html = path.read_text()
    _self_contained(html)
    assert "This clip is a tampered copy of the original registered as reg_original." in html
    assert f"Confidence <strong>{confidence_words(result)}</strong>" in html
    assert "100 %" not in confidence_words(result)
    assert re.search(
        r"3\.0–[45]\.[05] s of the clip differs from the original: \d changed regions? of the", html
    )
    assert "dev_test" in html and "2026-01-02T03:04:05.000Z" in html and "valid" in html
    assert "provenance receipt verify receipt-reg_original.json --rpc RPC_URL" in html
    assert 'href="/v1/registrations/reg_original/receipt"' in html
    assert "0x" + "cd" * 32 in html and "ef" * 32 in html

    # The timeline: its alt text and data attribute name the tampered range, and the PNG shades it.
    [(t0, t1)] = truth.ranges
    meta = json.loads((tmp_path / "report" / "report.json").read_text())
    ranges = meta["timeline"]["tampered_ranges"]
    assert ranges and all(a < t1 + 0.6 and b > t0 - 0.6 for a, b in ranges), ranges
    attr = re.search(r'<img id="timeline"[^>]* data-tampered-ranges="([^"]+)"', html)
    assert attr is not None and attr.group(1) == ";".join(f"{a:.3f}-{b:.3f}" for a, b in ranges)
    alt = re.search(r'<img id="timeline"[^>]* alt="([^"]+)"', html)
    assert alt is not None and "Tampered ranges, shaded: 3.0–5.0 s" in alt.group(1)
    geometry = TimelineGeometry(**{**meta["timeline"], "axes_px": tuple(meta["timeline"]["axes_px"])})
    png = _rgb(tmp_path / "report" / "timeline.png")
    assert png.shape[:2] == (geometry.height, geometry.width)
    y = round(geometry.y_px(1.04))  # above every bar: only the shading (or the white paper) is there
    shade = np.array(geometry.shade_rgb)
    for a, b in ranges:
        assert np.abs(png[y, round(geometry.x_px((a + b) / 2))].astype(int) - shade).max() <= 3
    for t in (1.5, 7.5):
        assert png[y, round(geometry.x_px(t))].min() >= 250, "no shading outside the tampered ranges"

    # Frames side by side, and heat maps whose outlined, hot cells sit on the pasted patch.
    names = {image["name"] for image in meta["images"]}
    moments = meta["moments"]
    assert 2 <= len(moments) <= 4
    assert any(t0 <= m["query_t"] <= t1 for m in moments) and any(
        not t0 <= m["query_t"] <= t1 for m in moments
    )
    for k in range(1, len(moments) + 1):
        assert {f"moment-{k}-original.jpg", f"moment-{k}-clip.jpg", f"moment-{k}-changes.jpg"} <= names
    inside = next(i for i, m in enumerate(moments, start=1) if t0 <= m["query_t"] <= t1)
    heat = _rgb(tmp_path / "report" / f"moment-{inside}-changes.jpg").astype(int)
    height, width = heat.shape[:2]
    x, y0, w, h = BOX
    redness = heat[..., 0] - heat[..., 2]
    patch = redness[
        round(y0 * height) + 6 : round((y0 + h) * height) - 6,
        round(x * width) + 6 : round((x + w) * width) - 6,
    ]
    rest = redness[:, : round(0.4 * width)]
    assert patch.mean() > rest.mean() + 40, (patch.mean(), rest.mean())
    assert max(image["width"] for image in meta["images"] if image["name"].endswith(".jpg")) <= 480
    assert "outlined as changed" in html and 'class="frame frame-changes heatmap"' in html
    assert "heat-legend.png" in names


def test_report_embeds_the_receipt(tampered: Tampered, tmp_path: Path) -> None:
    """The saved report carries the receipt itself (no API key needed) and the command that checks it."""
    _, _, original, result, seen = tampered
    receipt = {
        "schema": "provenance.receipt/v1",
        "registration_id": "reg_original",
        "anchor": {"status": "anchored"},
    }
    other = {
        "registration_id": "reg_b",
        "device_id": "dev_b",
        "captured_at": "2026-01-01T00:00:00Z",
        "order": "earlier",
    }
    result = {**result, "match": {**result["match"], "also_registered": [other]}}
    html = render_report(
        result, *seen, None, original, tmp_path / "report", LIMITS, receipt=receipt
    ).read_text()
    _self_contained(html)
    [uri] = re.findall(
        r'href="data:application/json;base64,([^"]+)" download="receipt-reg_original.json"', html
    )
    assert json.loads(base64.b64decode(uri)) == receipt
    assert 'id="receipt-json"' in html and "provenance.receipt/v1" in html
    assert (
        "Also registered by" in html
        and "<code>reg_b</code>" in html
        and ": earlier than this registration" in html
    )
    assert "provenance receipt verify receipt-reg_original.json --rpc RPC_URL" in html


def test_heat_map_from_the_verdicts_comparer(tampered: Tampered, tmp_path: Path) -> None:
    """A verdict from the learned comparer: the heat map tints only the cells of its regions, so
    no cell outside the outline reads as changed (the PDQ grid's scores are not mixed in)."""
    _, truth, original, result, seen = tampered
    learned = {**result, "comparer": {"name": "triplet", "version": "test", "note": None}}
    html = render_report(learned, *seen, BIKES, original, tmp_path / "report", LIMITS).read_text()
    assert "The heat maps come from the comparer that gave the verdict (triplet)" in html
    meta = json.loads((tmp_path / "report" / "report.json").read_text())
    [(t0, t1)] = truth.ranges
    for k, moment in enumerate(meta["moments"], start=1):
        heat = _rgb(tmp_path / "report" / f"moment-{k}-changes.jpg").astype(int)
        height, width = heat.shape[:2]
        redness = heat[..., 0] - heat[..., 2]
        if t0 <= moment["query_t"] <= t1:
            x, y0, w, h = BOX
            outside = np.ones(redness.shape, dtype=bool)
            outside[
                round(y0 * height) - 8 : round((y0 + h) * height) + 8,
                round(x * width) - 8 : round((x + w) * width) + 8,
            ] = False
            inside = redness[
                round(y0 * height) + 8 : round((y0 + h) * height) - 8,
                round(x * width) + 8 : round((x + w) * width) - 8,
            ]
            assert inside.mean() > redness[outside].mean() + 60, (inside.mean(), redness[outside].mean())
            assert redness[outside].mean() < 25, "nothing red outside the outline"
        else:
            assert redness.mean() < 25, "a clean segment's heat map shows no change"
    assert fr_region_scores([[0.5, 0.0, 0.5, 0.25]])[:2, 4:].min() > 0
    assert fr_region_scores([[0.5, 0.0, 0.5, 0.25]])[2:, :].max() == 0


def test_report_without_original_media(tampered: Tampered, tmp_path: Path) -> None:
    """No uploaded original: the fingerprint's coarse picture stands in, the heat maps remain."""
    _, _, original, result, seen = tampered
    render_report(result, *seen, None, original, tmp_path / "report", LIMITS)
    meta = json.loads((tmp_path / "report" / "report.json").read_text())
    names = {image["name"] for image in meta["images"]}
    assert "moment-1-original.png" in names and "moment-1-changes.jpg" in names
    html = (tmp_path / "report" / "index.html").read_text()
    assert "rebuilt from its fingerprint" in html and "the original media is not available" in html


def test_unknown_report(tmp_path: Path) -> None:
    clip = sample_clip("bigbuckbunny.mp4")
    query, stills = observe(clip)
    result = verify_fingerprint(query, FrameIndex(), lambda _: query, PdqGridComparer()).to_json()
    assert result["verdict"] == "unknown" and result["match"] is None
    result["id"] = "ver_unknown"
    path = render_report(result, query, stills, None, None, tmp_path / "report", LIMITS)
    html = path.read_text()
    _self_contained(html)
    assert "No registered original matches this clip." in html
    assert "Confidence" not in html and "100 %" not in html
    assert "Closest: no registered original shares any of the clip" in html
    assert 'id="timeline"' not in html and "Chain evidence" not in html and "receipt verify" not in html
    meta = json.loads((tmp_path / "report" / "report.json").read_text())
    assert meta["timeline"] is None and meta["moments"]
    assert all(image["name"].endswith("-clip.jpg") for image in meta["images"])


def test_replaced_footage_report(tmp_path: Path) -> None:
    """Footage from another registered original: named in words, shown without a heat map."""
    carphone = sample_clip("carphone_pristine.mp4")
    clip = tmp_path / "bikes-replaced.mp4"
    replace_range(BIKES, carphone, clip, start=3.0, duration=2.0)
    originals = {
        "reg_bikes": fp.compute_fingerprint(BIKES, limits=LIMITS),
        "reg_carphone": fp.compute_fingerprint(carphone, limits=LIMITS),
    }
    query, stills = observe(clip)
    result = verify_fingerprint(
        query, FrameIndex.of(originals), originals.__getitem__, PdqGridComparer()
    ).to_json()
    assert result["verdict"] == "tampered" and result["match"]["registration_id"] == "reg_bikes", result
    out = tmp_path / "report"
    html = render_report(result, query, stills, BIKES, originals["reg_bikes"], out, LIMITS).read_text()
    assert "differs from the original: footage with no counterpart in the original (inserted or " in html
    assert "replaced, showing another registered original, reg_carphone)" in html
    assert "<td>no counterpart</td>" in html, "not a similarity of 0.00 from a capped distance"
    meta = json.loads((tmp_path / "report" / "report.json").read_text())
    foreign = [m for m in meta["moments"] if 3.0 <= m["query_t"] <= 5.0]
    assert foreign and all(
        m["images"] == [f"moment-{meta['moments'].index(m) + 1}-clip.jpg"] for m in foreign
    )


def test_photo_report(tmp_path: Path) -> None:
    """A photo has moments but no timeline; its heat map still points at the pasted patch."""
    spec = importlib.util.find_spec("skimage")
    assert spec is not None and spec.submodule_search_locations
    photo = Path(next(iter(spec.submodule_search_locations))) / "data" / "astronaut.png"
    edited = tmp_path / "astronaut-edited.jpg"
    paste_region_image(photo, edited, box=(0.6, 0.1, 0.3, 0.3))
    original = fp.compute_fingerprint(photo, limits=LIMITS)
    index = FrameIndex()
    index.add("reg_photo", original)
    query, stills = observe(edited)
    result = verify_fingerprint(query, index, lambda _: original, PdqGridComparer()).to_json()
    assert result["verdict"] == "tampered", result
    result["id"] = "ver_photo"
    path = render_report(result, query, stills, photo, original, tmp_path / "report", LIMITS)
    html = path.read_text()
    _self_contained(html)
    assert "This clip is a tampered copy" in html and 'id="timeline"' not in html
    meta = json.loads((tmp_path / "report" / "report.json").read_text())
    assert [m["images"] for m in meta["moments"]] == [
        ["moment-1-original.jpg", "moment-1-clip.jpg", "moment-1-changes.jpg"]
    ]
    assert "top right" in html


# --- written by the hook, served by the API ---


def test_report_served_and_scoped(
    http: TestClient, stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registration_id = stack.register(BIKES)
    newsroom = stack.key("newsroom")
    paste_region(BIKES, tmp_path / "tampered.mp4", start=3.0, duration=2.0, box=BOX)
    # Which files the report decodes (a spy that calls through): the original, never the upload.
    opened: list[Path] = []
    real_open = open_media  # what reports.frames calls, from provenance.media

    def spy(path: Path, limits: DecodeLimits) -> Any:
        opened.append(Path(path))
        return real_open(path, limits)

    monkeypatch.setattr(report_frames, "open_media", spy)
    result = stack.verify(newsroom, tmp_path / "tampered.mp4").json()
    assert result["verdict"] == "tampered", result
    [stored_original] = opened
    assert stored_original.is_relative_to(stack.service.settings.data_dir / "media"), opened
    report_dir = stack.service.settings.data_dir / "reports" / result["id"]
    assert (report_dir / "index.html").is_file() and (report_dir / "timeline.png").is_file()
    assert not list(report_dir.parent.glob(".*")), "no scratch directories left behind"

    response = http.get(result["report_url"], headers=newsroom)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "img-src data:" in csp and "'sha256-" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "This clip is a tampered copy of the original registered as " + registration_id in response.text
    assert 'href="/ui/"' in response.text, "served with the site's navigation"

    download = http.get(result["report_url"], params={"download": 1}, headers=newsroom)
    assert download.headers["content-disposition"] == f'attachment; filename="report-{result["id"]}.html"'
    assert 'href="/ui/"' not in download.text

    # Scoped like the result: another client's report does not exist for it; cameras may not read.
    other = stack.key("factchecker")
    assert http.get(result["report_url"], headers=other).json()["code"] == "verification_not_found"
    assert http.get(result["report_url"], headers=stack.camera).json()["code"] == "scope_forbidden"
    assert http.get(result["report_url"], headers=stack.admin).status_code == 200
    assert http.get(result["report_url"]).json()["code"] == "api_key_missing"
    browser = http.get(result["report_url"], headers={"Accept": "text/html"}, follow_redirects=False)
    assert browser.status_code == 303 and browser.headers["location"].startswith("/ui/sign-in?next=")

    # The client's own list.
    stack.verify(newsroom, BIKES)
    listed = http.get("/v1/verifications", params={"limit": 5}, headers=newsroom).json()["items"]
    assert [item["verdict"] for item in listed] == ["authentic", "tampered"]
    assert listed[1]["id"] == result["id"] and listed[1]["report_url"] == result["report_url"]
    assert http.get("/v1/verifications", headers=other).json()["items"] == []
    assert http.get("/v1/verifications", params={"limit": 0}, headers=newsroom).status_code == 422


def test_report_failure_leaves_verification_done(
    http: TestClient, stack: Stack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_: Any, **__: Any) -> Path:
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(reports, "render_report", broken)
    stack.register(BIKES)
    newsroom = stack.key("newsroom")
    response = stack.verify(newsroom, BIKES)
    assert response.status_code == 201 and response.json()["status"] == "done"
    assert "could not be written" in caplog.text
    page = http.get(response.json()["report_url"], headers={**newsroom, "Accept": "text/html"})
    assert page.status_code == 200 and "Report unavailable" in page.text and "Verdict: authentic" in page.text
    reports_dir = stack.service.settings.data_dir / "reports"
    assert [p.name for p in reports_dir.iterdir()] == [f"{response.json()['id']}.failed"]


def test_readable_numbers() -> None:
    """Exact copies say so; unknown says how close the nearest came; capped distances are not 0.00;
    several kinds of change in one range make one sentence."""
    segment = {"query_start": 0.0, "query_end": 1.0, "original_start": 0.0, "original_end": 1.0}
    exact = {
        "verdict": "authentic",
        "confidence": 1.0,
        "match": {"registration_id": "reg_a", "exact_copy": True, "segments": [], "tampered_ranges": []},
    }
    assert headline(exact).startswith("This file is an exact copy of the original registered as reg_a")
    assert confidence_words(exact) == "certain (identical SHA-256)"
    assert confidence_words({"verdict": "authentic", "confidence": 0.998, "match": {}}) == ">99 %"
    near = {
        "verdict": "unknown",
        "confidence": 0.99,
        "match": None,
        "nearest": {"matched_frames": 1, "usable_frames": 40},
    }
    assert (
        confidence_words(near)
        == "the nearest registered original matched only 1 of the clip's 40 usable frames"
    )
    assert segment_similarity({**segment, "distance": 1.0}) == "unlike (off the scale)"
    assert segment_similarity({**segment, "distance": 0.25}) == "75 %"
    assert segment_similarity({**segment, "original_start": None, "distance": 1.0}) == "no counterpart"
    mixed = {
        "verdict": "tampered",
        "match": {
            "tampered_ranges": [[0.0, 2.0]],
            "segments": [
                {**segment, "distance": 0.7, "tampered": True, "regions": [[0, 0, 0.1, 0.1]]},
                {
                    **segment,
                    "query_start": 1.0,
                    "query_end": 2.0,
                    "distance": 0.8,
                    "tampered": True,
                    "regions": [[0, 0, 0.1, 0.1], [0.5, 0.5, 0.1, 0.1]],
                },
                {
                    **segment,
                    "query_start": 1.5,
                    "query_end": 1.6,
                    "distance": 0.8,
                    "tampered": True,
                    "regions": [],
                },
            ],
        },
    }
    [line] = _range_words(mixed)
    assert line == (
        "0.0–2.0 s of the clip differs from the original: 2 changed regions of the picture and "
        "a jump within the original (frames cut or reordered)"
    ), line
