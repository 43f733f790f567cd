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
from sqlalchemy import Engine, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from provenance import audit
from provenance import fingerprint as fp
from provenance.core.config import Settings
from provenance.core.db import session_scope
from provenance.core.errors import Conflict, DomainError, NotFound
from provenance.core.security import Scope, hash_api_key, new_api_key, new_id
from provenance.core.timeutil import iso, parse_iso, utcnow
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


def create_client(
    session: Session, name: str, scope: Scope, actor: str | None = None
) -> tuple[ApiClient, str]:
    """Returns the stored client and its key; the key itself is never stored."""
    key = new_api_key()
    client = ApiClient(
        id=new_id("cli"), name=name, scope=scope.value, key_hash=hash_api_key(key), created_at=utcnow()
    )
    session.add(client)
    audit.record(session, actor, "client.create", "client", client.id, {"name": name, "scope": scope.value})
    session.flush()
    return client, key


def get_client(session: Session, client_id: str) -> ApiClient:
    client = session.get(ApiClient, client_id)
    if client is None:
        raise NotFound("client_not_found", f"no client {client_id}")
    return client


def rotate_client(
    session: Session, client_id: str, grace_s: float, actor: str | None = None
) -> tuple[ApiClient, str]:
    """A new key for the client; the current one keeps working for `grace_s` seconds (0: not at all).

    Only one previous key is kept: rotating again within the grace period ends the older one.
    """
    client = get_client(session, client_id)
    if client.revoked_at is not None:
        raise Conflict("client_revoked", f"client {client_id} is revoked")
    key = new_api_key()
    now = utcnow()
    client.previous_key_hash = client.key_hash if grace_s > 0 else None
    client.previous_key_expires_at = now + timedelta(seconds=grace_s) if grace_s > 0 else None
    client.key_hash = hash_api_key(key)
    session.add(client)
    audit.record(
        session,
        actor,
        "client.rotate",
        "client",
        client.id,
        {
            "grace_s": grace_s,
            "previous_key_expires_at": (
                iso(client.previous_key_expires_at) if client.previous_key_expires_at else None
            ),
        },
    )
    session.flush()
    return client, key


def revoke_client(session: Session, client_id: str, actor: str | None = None) -> ApiClient:
    """Every key of the client stops working (within the cache TTL in other processes)."""
    client = get_client(session, client_id)
    if client.revoked_at is not None:
        raise Conflict("client_already_revoked", f"client {client_id} was revoked already")
    client.revoked_at = utcnow()
    session.add(client)
    audit.record(session, actor, "client.revoke", "client", client.id, {})
    session.flush()
    return client


def _key_valid_until(client: ApiClient, digest: str) -> datetime | None:
    """None for the current key (valid until rotated or revoked), else when the previous key ends."""
    if client.key_hash == digest:
        return None
    return client.previous_key_expires_at


def authenticate(session: Session, key: str) -> ApiClient | None:
    digest = hash_api_key(key)
    client = session.exec(
        select(ApiClient).where(
            or_(col(ApiClient.key_hash) == digest, col(ApiClient.previous_key_hash) == digest)
        )
    ).first()
    if client is None or client.revoked_at is not None:
        return None
    until = _key_valid_until(client, digest)
    if client.key_hash != digest and (until is None or until <= utcnow()):
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
            ttl = self.ttl
            until = _key_valid_until(client, digest)
            if until is not None:  # a previous key in its grace period: never cached past its end
                ttl = min(ttl, (until - utcnow()).total_seconds())
            with self._lock:
                if len(self._entries) > 10_000:
                    self._entries.clear()
                self._entries[digest] = (client, now + ttl)
        return client

    def forget(self, client_id: str) -> None:
        """Drop a client's cached keys at once (after a rotation or revocation in this process)."""
        with self._lock:
            for digest in [d for d, (c, _) in self._entries.items() if c.id == client_id]:
                del self._entries[digest]


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


def enroll_device(session: Session, name: str, public_key_b64: str, actor: str | None = None) -> Device:
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
    audit.record(session, actor, "device.enroll", "device", device.id, {"name": name})
    session.flush()
    return device


def get_device(session: Session, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise NotFound("device_not_found", f"no device {device_id}")
    return device


def revoke_device(session: Session, device_id: str, actor: str | None = None) -> Device:
    device = get_device(session, device_id)
    if device.revoked_at is not None:
        raise Conflict("device_already_revoked", f"device {device_id} was revoked already")
    device.status = "revoked"
    device.revoked_at = utcnow()
    session.add(device)
    log.append(session, "device", device.id, log.device_leaf(device, "revoked"))
    audit.record(session, actor, "device.revoke", "device", device.id, {})
    session.flush()
    return device


ROTATION_SCHEMA = "provenance.device-rotation/v1"


def rotation_statement(device_id: str, new_public_key_b64: str, effective_at: str) -> dict[str, Any]:
    """What a device signs (RFC 8785 bytes) with its current key to hand over to its successor key.

    `effective_at` is the ISO 8601 text exactly as signed, so no re-rendering can break the signature.
    """
    return {
        "schema": ROTATION_SCHEMA,
        "device_id": device_id,
        "new_public_key": new_public_key_b64,
        "effective_at": effective_at,
    }


def rotate_device(
    session: Session,
    settings: Settings,
    device_id: str,
    new_public_key_b64: str,
    signature: str,
    effective_at_text: str,
    actor: str | None = None,
) -> Device:
    """Enrol the successor key a device signed with its current key; the current key is revoked from
    `effective_at`, so what it signed before then keeps verifying. Returns the successor device.

    `effective_at` may be later than now (a planned hand-over) but not earlier than the clock skew
    allows: taking back past signatures is an admin revocation, not a rotation.
    """
    device = get_device(session, device_id)
    if device.revoked_at is not None:
        raise Conflict("device_already_revoked", f"device {device_id} is revoked or rotated already")
    raw = decode_public_key(new_public_key_b64)
    try:
        effective_at = parse_iso(effective_at_text)
    except ValueError as exc:
        raise DomainError("rotation_time_invalid", "effective_at is not an ISO 8601 time", 422) from exc
    statement = rotation_statement(device.id, new_public_key_b64, effective_at_text)
    if not verify_signature(statement, signature, device.public_key):
        raise DomainError(
            "rotation_signature_invalid", "the rotation is not signed by the device's current key", 422
        )
    now = utcnow()
    if effective_at < now - timedelta(seconds=settings.clock_skew_s):
        raise DomainError("rotation_time_in_past", "effective_at may not lie in the past", 422)
    successor_id = device_id_for(raw)
    if session.get(Device, successor_id) is not None:
        raise Conflict("device_exists", f"device {successor_id} is already enrolled")
    successor = Device(
        id=successor_id,
        name=device.name,
        public_key=base64.b64encode(raw).decode(),
        status="active",
        enrolled_at=now,
        predecessor_id=device.id,
    )
    device.status = "rotated"
    device.revoked_at = effective_at
    session.add(successor)
    session.add(device)
    leaf = log.device_leaf(successor, "rotated_in")
    leaf.update(
        predecessor_id=device.id,
        rotation_statement=statement,
        rotation_signature=signature,
        effective_at=iso(effective_at),
    )
    log.append(session, "device", successor.id, leaf)
    log.append(session, "device", device.id, log.device_leaf(device, "revoked"))
    audit.record(
        session,
        actor,
        "device.rotate",
        "device",
        device.id,
        {"successor_id": successor.id, "effective_at": iso(effective_at)},
    )
    session.flush()
    return successor


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
    recomputed = fp.compute_fingerprint(
        upload.path, limits=settings.limits, sample_fps=claimed.sample_fps, version=claimed.version
    )
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
