"""Registering originals: clients, devices, and the checks a capture manifest must pass."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from provenance import fingerprint as fp
from provenance.core.config import Settings
from provenance.core.db import session_scope
from provenance.core.errors import Conflict, DomainError, NotFound
from provenance.core.security import Scope, hash_api_key, new_api_key, new_id
from provenance.core.timeutil import utcnow
from provenance.ledger import log
from provenance.models import ApiClient, Device, Registration, UsedNonce
from provenance.signing import (
    CaptureManifest,
    canonical_bytes,
    decode_public_key,
    device_id_for,
    verify_signature,
)

# --- API clients ---


def create_client(session: Session, name: str, scope: Scope) -> tuple[ApiClient, str]:
    """Returns the stored client and its key; the key itself is never stored."""
    key = new_api_key()
    client = ApiClient(
        id=new_id("cli"), name=name, scope=scope.value, key_hash=hash_api_key(key), created_at=utcnow()
    )
    session.add(client)
    session.flush()
    return client, key


def authenticate(session: Session, key: str) -> ApiClient | None:
    client = session.exec(select(ApiClient).where(ApiClient.key_hash == hash_api_key(key))).first()
    if client is None or client.revoked_at is not None:
        return None
    return client


class ClientCache:
    """Authenticated clients remembered for a few seconds: one key lookup per request is most of a
    request's database time, and a key revoked in the database stops working within `ttl` seconds."""

    def __init__(self, engine: Engine, ttl: float = 10.0) -> None:
        self.engine = engine
        self.ttl = ttl
        self._entries: dict[str, tuple[ApiClient, float]] = {}
        self._lock = threading.Lock()

    def authenticate(self, key: str) -> ApiClient | None:
        digest = hash_api_key(key)
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        with session_scope(self.engine) as session:
            client = authenticate(session, key)
        if client is not None:
            with self._lock:
                if len(self._entries) > 10_000:
                    self._entries.clear()
                self._entries[digest] = (client, now + self.ttl)
        return client


def ensure_admin_key(engine: Engine, key_file: Path) -> str | None:
    """On a first start (no admin client yet) make one and write its key to `key_file` (mode 0600)."""
    with session_scope(engine) as session:
        if session.exec(select(ApiClient).where(ApiClient.scope == Scope.admin.value)).first():
            return None
        _, key = create_client(session, "admin (first start)", Scope.admin)
        key_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = key_file.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        tmp.touch(mode=0o600)
        tmp.write_text(key + "\n")
        tmp.replace(key_file)
        return key


# --- devices ---


def enroll_device(session: Session, name: str, public_key_b64: str) -> Device:
    raw = decode_public_key(public_key_b64)
    device_id = device_id_for(raw)
    if session.get(Device, device_id) is not None:
        raise Conflict("device_exists", f"device {device_id} is already enrolled")
    device = Device(
        id=device_id,
        name=name,
        public_key=base64.b64encode(raw).decode(),
        status="active",
        enrolled_at=utcnow(),
    )
    session.add(device)
    log.append(session, "device", device.id, log.device_leaf(device, "enrolled"))
    session.flush()
    return device


def get_device(session: Session, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise NotFound("device_not_found", f"no device {device_id}")
    return device


def revoke_device(session: Session, device_id: str) -> Device:
    device = get_device(session, device_id)
    if device.revoked_at is not None:
        raise Conflict("device_already_revoked", f"device {device_id} was revoked already")
    device.status = "revoked"
    device.revoked_at = utcnow()
    session.add(device)
    log.append(session, "device", device.id, log.device_leaf(device, "revoked"))
    session.flush()
    return device


# --- registrations ---


@dataclass(frozen=True)
class Upload:
    """Media the camera app uploaded beside its manifest, already bounded in size by the caller."""

    path: Path
    suffix: str


def parse_manifest(manifest_json: str | bytes) -> tuple[dict[str, object], CaptureManifest]:
    try:
        raw = json.loads(manifest_json)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DomainError("manifest_invalid", f"manifest is not JSON: {exc}", 422) from exc
    if not isinstance(raw, dict):
        raise DomainError("manifest_invalid", "manifest must be a JSON object", 422)
    try:
        manifest = CaptureManifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DomainError("manifest_invalid", f"manifest field {where}: {first['msg']}", 422) from exc
    return raw, manifest


def _check_device(device: Device | None, device_id: str, captured_at: datetime) -> Device:
    if device is None:
        raise DomainError("device_unknown", f"device {device_id} is not enrolled", 403)
    if device.revoked_at is not None and device.revoked_at <= captured_at:
        raise DomainError("device_revoked", f"device {device_id} was revoked before the capture time", 403)
    return device


def _check_fingerprint(manifest: CaptureManifest) -> fp.Fingerprint:
    try:
        data = base64.b64decode(manifest.fingerprint.data, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise DomainError("fingerprint_malformed", "fingerprint.data is not base64", 422) from exc
    if hashlib.sha256(data).hexdigest() != manifest.fingerprint.digest:
        raise DomainError(
            "fingerprint_digest_mismatch", "fingerprint.digest is not the digest of its data", 422
        )
    decoded = fp.Fingerprint.decode(data)
    if decoded.version != manifest.fingerprint.version or decoded.kind != manifest.kind:
        raise DomainError(
            "fingerprint_malformed", "fingerprint version or kind disagrees with the manifest", 422
        )
    return decoded


def _check_upload(
    settings: Settings, manifest: CaptureManifest, claimed: fp.Fingerprint, upload: Upload
) -> None:
    sha = hashlib.sha256()
    with upload.path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
    if sha.hexdigest() != manifest.content_sha256:
        raise DomainError("content_hash_mismatch", "the uploaded media's SHA-256 is not the manifest's", 422)
    recomputed = fp.compute_fingerprint(upload.path, limits=settings.limits, sample_fps=claimed.sample_fps)
    reason = fp.agreement(claimed, recomputed)
    if reason is not None:
        raise DomainError(
            "fingerprint_mismatch", f"the uploaded media does not match the fingerprint: {reason}", 422
        )


def _admit(
    session: Session,
    settings: Settings,
    raw: dict[str, object],
    manifest: CaptureManifest,
    signature: str,
    now: datetime,
) -> Device:
    """The checks that need the database: device state, signature, capture time, nonce."""
    captured_at = manifest.captured_at_dt()
    device = _check_device(session.get(Device, manifest.device_id), manifest.device_id, captured_at)
    if not verify_signature(raw, signature, device.public_key):
        raise DomainError(
            "signature_invalid", "the signature does not verify over the canonical manifest", 422
        )
    if captured_at > now + timedelta(seconds=settings.clock_skew_s):
        raise DomainError("capture_time_in_future", "captured_at is in the future", 422)
    if session.get(UsedNonce, manifest.nonce) is not None:
        raise Conflict("nonce_replayed", "this manifest's nonce was used before")
    return device


def _write(
    session: Session,
    registration: Registration,
    device: Device,
    nonce: str,
    upload: Upload | None,
    stored: Path | None,
) -> bool:
    """Insert the registration, its nonce and its log leaf; returns whether the media file was copied."""
    session.add(UsedNonce(nonce=nonce, device_id=device.id, used_at=registration.received_at))
    session.add(registration)
    log.append(
        session, "registration", registration.id, log.registration_leaf(registration, device.public_key)
    )
    session.flush()
    if upload is not None and stored is not None and not stored.exists():
        shutil.copyfile(upload.path, stored)
        return True
    return False


def register(
    engine: Engine,
    settings: Settings,
    manifest_json: str | bytes,
    signature: str,
    upload: Upload | None = None,
    c2pa: dict[str, Any] | None = None,
) -> Registration:
    """Accept a signed capture manifest, or refuse it and write nothing.

    `c2pa` is what the uploaded media's own Content Credentials say, kept with the registration.

    Without media everything happens in one transaction; with media the slow recomputation of the
    fingerprint runs between the checks and the write, outside any transaction.
    """
    raw, manifest = parse_manifest(manifest_json)
    claimed = _check_fingerprint(manifest)
    now = utcnow()
    registration = Registration(
        id=new_id("reg"),
        device_id=manifest.device_id,
        kind=manifest.kind,
        content_sha256=manifest.content_sha256,
        fingerprint=claimed.encode(),
        fingerprint_digest=manifest.fingerprint.digest,
        manifest=canonical_bytes(raw).decode(),
        signature=signature,
        captured_at=manifest.captured_at_dt(),
        received_at=now,
        c2pa=json.dumps(c2pa) if c2pa is not None else None,
    )
    stored: Path | None = None
    if upload is not None:
        with session_scope(engine) as session:
            _admit(session, settings, raw, manifest, signature, now)
        _check_upload(settings, manifest, claimed, upload)
        media_dir = settings.data_dir / "media"
        media_dir.mkdir(parents=True, exist_ok=True)
        stored = media_dir / f"{manifest.content_sha256}{upload.suffix}"
        registration.media_path = str(stored)
    copied = False
    try:
        with session_scope(engine) as session:
            device = _admit(session, settings, raw, manifest, signature, now)
            copied = _write(session, registration, device, manifest.nonce, upload, stored)
    except BaseException as exc:
        if copied and stored is not None:
            stored.unlink(missing_ok=True)
        if isinstance(exc, IntegrityError):
            raise Conflict("nonce_replayed", "this manifest's nonce was used before") from exc
        raise
    return registration


def get_registration(session: Session, registration_id: str) -> Registration:
    registration = session.get(Registration, registration_id)
    if registration is None:
        raise NotFound("registration_not_found", f"no registration {registration_id}")
    return registration
