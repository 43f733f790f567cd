"""A first start shows the product: a demo device registers the sample clips that ship offline,
and a re-encoded and a tampered copy wait under ./var/demo to be verified."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from sqlmodel import Session, func, select

from frames.samples import sample_dir
from generator.tampers import paste_region
from generator.variants import reencode
from provenance import clients, devices, registry
from provenance import fingerprint as fp
from provenance.core.db import session_scope
from provenance.core.security import Scope
from provenance.core.storage import sha256_file
from provenance.models import Registration
from provenance.signing import (
    device_id_for,
    fingerprint_manifest,
    raw_public_key,
    sign_manifest,
    write_key_files,
)

if TYPE_CHECKING:
    from provenance.service import Service

SAMPLES = ("bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4")


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")


def seed_demo(service: Service) -> list[str] | None:
    """Seed once, on an empty database; returns the commands to try, or None when nothing was seeded."""
    with Session(service.engine) as session:
        if session.exec(select(func.count()).select_from(Registration)).one():
            return None
    source = sample_dir()
    if source is None or not (source / SAMPLES[0]).is_file():
        return None
    settings = service.settings
    demo = settings.data_dir / "demo"
    demo.mkdir(parents=True, exist_ok=True)
    key_file = demo / "device.key"
    for stale in (key_file, Path(f"{key_file}.pub")):
        stale.unlink(missing_ok=True)
    key = write_key_files(key_file)
    raw = raw_public_key(key.public_key())
    with session_scope(service.engine) as session:
        devices.enroll_device(session, "demo camera", base64.b64encode(raw).decode())
        _, newsroom_key = clients.create_client(session, "demo newsroom", Scope.newsroom)
    _write_secret(demo / "newsroom.key", newsroom_key)
    for name in SAMPLES:
        clip = source / name
        fingerprint = fp.compute_fingerprint(clip, limits=settings.limits, sample_fps=settings.sample_fps)
        manifest = fingerprint_manifest(
            fingerprint,
            content_sha256=sha256_file(clip),
            device_id=device_id_for(raw),
            app={"name": "provenance demo"},
        ).to_json()
        upload = registry.Upload(path=clip, suffix=clip.suffix)
        # Seeded before the service starts, so the index picks these up when it is built.
        registry.register(
            service.engine, settings, json.dumps(manifest), sign_manifest(manifest, key), upload
        )
    original = source / SAMPLES[0]
    reencode(original, demo / "bikes-reencoded.mp4", bitrate=150_000)
    paste_region(original, demo / "bikes-tampered.mp4", start=3.0, duration=2.0, box=(0.55, 0.2, 0.3, 0.45))
    env = f"PROVENANCE_API_KEY=$(cat {demo / 'newsroom.key'})"
    return [
        f"{env} .venv/bin/provenance verify {demo / 'bikes-reencoded.mp4'}",
        f"{env} .venv/bin/provenance verify {demo / 'bikes-tampered.mp4'}",
        f"{env} .venv/bin/provenance verify {source / 'bigbuckbunny.mp4'} --json",
    ]
