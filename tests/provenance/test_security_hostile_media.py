"""Hostile media through the real HTTP API: registration uploads and verifications.

Every file of the corpus must come back as a clear 4xx problem with a stable `media_*` code,
within a bounded time and a bounded growth of peak memory, and leave the database and the media
directory exactly as they were.
"""

from __future__ import annotations

import hashlib
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from frames.samples import sample_clip
from harness.accounts import enrol_device, make_key
from harness.manifests import signed_form
from provenance import fingerprint as fp
from provenance.api.app import create_app
from provenance.core.config import DecodeLimits
from provenance.models import LogEntry, Registration, UsedNonce, Verification
from provenance.service import Service, open_service
from tests.conftest import chainless_settings
from tests.provenance.hostile_media import CORPUS, png_with_inflating_chunk

# Generous for a loaded 2-core machine; a naive decoder of these files takes minutes or gigabytes.
MAX_SECONDS = 15.0
MAX_PEAK_GROWTH_MB = 300.0
LIMITS = DecodeLimits(max_upload_bytes=20 * 1024 * 1024, max_decode_seconds=20)


@dataclass
class HostileStack:
    service: Service
    http: TestClient
    camera: dict[str, str]
    newsroom: dict[str, str]
    device_key: Ed25519PrivateKey
    device_id: str
    claimed: fp.Fingerprint


@pytest.fixture(scope="module")
def hostile_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileStack]:
    """One service for the whole corpus (module scope: set-up is most of the cost)."""
    root = tmp_path_factory.mktemp("hostile")
    service = open_service(chainless_settings(root, f"sqlite:///{root / 'hostile.db'}", limits=LIMITS))
    admin = {"Authorization": f"Bearer {service.new_admin_key}"}
    with TestClient(create_app(service), raise_server_exceptions=False) as http:
        camera, newsroom = (make_key(http, admin, scope, scope) for scope in ("camera", "newsroom"))
        device = enrol_device(http, admin, "hostile camera")
        claimed = fp.compute_fingerprint(sample_clip("carphone_pristine.mp4"), limits=LIMITS, sample_fps=4.0)
        yield HostileStack(service, http, camera, newsroom, device.key, device.id, claimed)
    service.engine.dispose()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("corpus")
    return {name: entry.maker(root / f"{name}{entry.suffix}") for name, entry in CORPUS.items()}


def _rows(service: Service) -> dict[str, int]:
    with Session(service.engine) as session:
        return {
            table.__name__: session.exec(select(func.count()).select_from(table)).one()
            for table in (Registration, UsedNonce, LogEntry, Verification)
        }


def _stored_media(service: Service) -> list[Path]:
    media = service.settings.data_dir / "media"
    return sorted(media.iterdir()) if media.exists() else []


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark for this process (Linux: write 5 to clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


@dataclass
class Measured:
    status: int
    body: dict[str, object]
    seconds: float
    peak_growth_mb: float


def _measure(call: object) -> Measured:
    """Run one request, measuring wall time and how far peak RSS rose above the RSS before it."""
    assert callable(call)
    precise = _reset_peak_rss()
    before_kb = _status_kb("VmRSS") if precise else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    response = call()
    seconds = time.monotonic() - started
    after_kb = _status_kb("VmHWM") if precise else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return Measured(response.status_code, response.json(), seconds, (after_kb - before_kb) / 1024)


def _assert_refused(name: str, measured: Measured) -> None:
    codes = CORPUS[name].codes
    assert 400 <= measured.status < 500, (name, measured.status, measured.body)
    assert measured.body.get("code") in codes, (name, measured.body)
    assert measured.body.get("status") == measured.status and measured.body.get("detail")
    assert measured.seconds < MAX_SECONDS, (name, measured.seconds)
    assert measured.peak_growth_mb < MAX_PEAK_GROWTH_MB, (name, measured.peak_growth_mb)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_registration_upload_refuses_hostile_media(
    hostile_stack: HostileStack, corpus: dict[str, Path], name: str
) -> None:
    """A validly signed manifest naming the hostile file's hash, so the upload really is decoded."""
    data = corpus[name].read_bytes()
    form = signed_form(
        hostile_stack.claimed,
        hostile_stack.device_key,
        hostile_stack.device_id,
        hashlib.sha256(data).hexdigest(),
    )
    rows, media = _rows(hostile_stack.service), _stored_media(hostile_stack.service)
    measured = _measure(
        lambda: hostile_stack.http.post(
            "/v1/registrations",
            data=form,
            files={"media": (corpus[name].name, data, "application/octet-stream")},
            headers=hostile_stack.camera,
        )
    )
    _assert_refused(name, measured)
    assert _rows(hostile_stack.service) == rows
    assert _stored_media(hostile_stack.service) == media


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_verification_refuses_hostile_media(
    hostile_stack: HostileStack, corpus: dict[str, Path], name: str
) -> None:
    data = corpus[name].read_bytes()
    rows = _rows(hostile_stack.service)
    measured = _measure(
        lambda: hostile_stack.http.post(
            "/v1/verifications",
            files={"media": (corpus[name].name, data, "application/octet-stream")},
            headers=hostile_stack.newsroom,
        )
    )
    _assert_refused(name, measured)
    assert _rows(hostile_stack.service) == rows


def test_corpus_files_are_small(corpus: dict[str, Path]) -> None:
    """The bombs are bombs: tiny on the wire, huge (or endless) once decoded naively."""
    for name in ("png_header_30000", "png_decompression_bomb", "h264_resolution_bomb", "many_streams"):
        assert corpus[name].stat().st_size < 64 * 1024, name


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_content_lookup_refuses_hostile_media(
    hostile_stack: HostileStack, corpus: dict[str, Path], name: str
) -> None:
    """The C2PA soft-binding lookup by content decodes the body too: the same bounds hold there."""
    rows = _rows(hostile_stack.service)
    measured = _measure(
        lambda: hostile_stack.http.post(
            "/matches/byContent",
            content=corpus[name].read_bytes(),
            headers={**hostile_stack.newsroom, "Content-Type": "application/octet-stream"},
        )
    )
    _assert_refused(name, measured)
    assert _rows(hostile_stack.service) == rows


@pytest.mark.parametrize("chunk", [b"iCCP", b"zTXt"])
def test_png_with_inflating_chunk_is_read_in_bounded_memory(
    hostile_stack: HostileStack, tmp_path: Path, chunk: bytes
) -> None:
    """A real picture with a 1 MB chunk that inflates to 1 GB: the picture is verified, the chunk never
    inflated (a naive decode peaks at about 2 GB)."""
    data = png_with_inflating_chunk(tmp_path / "bomb.png", chunk).read_bytes()
    assert len(data) < 2 * 1024 * 1024
    measured = _measure(
        lambda: hostile_stack.http.post(
            "/v1/verifications",
            files={"media": ("bomb.png", data, "image/png")},
            headers=hostile_stack.newsroom,
        )
    )
    assert measured.status == 201, measured.body
    assert measured.body["verdict"] == "unknown"
    assert measured.peak_growth_mb < MAX_PEAK_GROWTH_MB, measured.peak_growth_mb


def test_stored_upload_is_named_by_its_content_not_its_name(
    hostile_stack: HostileStack, tmp_path: Path
) -> None:
    """A registered original is stored under its container's suffix, whatever the client named it."""
    data = sample_clip("carphone_pristine.mp4").read_bytes()
    form = signed_form(
        hostile_stack.claimed,
        hostile_stack.device_key,
        hostile_stack.device_id,
        hashlib.sha256(data).hexdigest(),
    )
    response = hostile_stack.http.post(
        "/v1/registrations",
        data=form,
        files={"media": ("clip.m3u8", data, "application/vnd.apple.mpegurl")},
        headers=hostile_stack.camera,
    )
    assert response.status_code == 201, response.text
    stored = [p.name for p in _stored_media(hostile_stack.service)]
    assert f"{hashlib.sha256(data).hexdigest()}.mp4" in stored, stored
