"""Registration intake: the checks a signed capture manifest must pass, and storing it once."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, Engine, insert
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from provenance import fingerprint as fp
from provenance.core.config import Settings
from provenance.core.errors import Conflict, DomainError, NotFound
from provenance.core.security import new_id
from provenance.core.storage import sha256_file, store_verified
from provenance.core.timeutil import utcnow
from provenance.ledger import log
from provenance.models import Device, LogEntry, Registration, UsedNonce
from provenance.signing import (
    CaptureManifest,
    canonical_bytes,
    verify_canonical,
)

# --- API clients ---


@dataclass(frozen=True)
class Upload:
    """Media the camera app uploaded beside its manifest, already bounded in size by the caller."""

    path: Path
    suffix: str


@dataclass(frozen=True)
class Submission:
    """One signed manifest as a client sent it: its JSON text (or the object already parsed from a
    JSON body) and the base64 signature over its RFC 8785 bytes."""

    manifest: str | bytes | dict[str, Any]
    signature: str
    # The API client submitting it: recorded on the registration, checked against the device's binding.
    client_id: str | None = None


@dataclass
class Accepted:
    """A stored registration and its parsed fingerprint (so the index is fed without parsing it again).

    `replayed`: the same client sent the same signed manifest again (a retry after a lost response),
    and this is the registration stored the first time; nothing new was written.
    """

    registration: Registration
    fingerprint: fp.Fingerprint
    replayed: bool = False


def parse_manifest(manifest_json: str | bytes | dict[str, Any]) -> tuple[dict[str, Any], CaptureManifest]:
    if isinstance(manifest_json, dict):
        raw: Any = manifest_json
    else:
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


def _check_device(device: _DeviceRow | None, device_id: str, captured_at: datetime) -> _DeviceRow:
    if device is None:
        raise DomainError("device_unknown", f"device {device_id} is not enrolled", 403)
    if device.revoked_at is not None and device.revoked_at <= captured_at:
        raise DomainError("device_revoked", f"device {device_id} was revoked before the capture time", 403)
    return device


def _check_fingerprint(manifest: CaptureManifest) -> tuple[bytes, fp.Fingerprint]:
    """The fingerprint's bytes, which the stored row keeps verbatim, and their parse."""
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
    # The digest covers `data` and `decode` accepts only what `encode` writes, so `data` is the
    # encoding: storing it as is saves re-encoding every frame record.
    return data, decoded


def _check_upload(
    settings: Settings, manifest: CaptureManifest, claimed: fp.Fingerprint, upload: Upload
) -> None:
    if sha256_file(upload.path) != manifest.content_sha256:
        raise DomainError("content_hash_mismatch", "the uploaded media's SHA-256 is not the manifest's", 422)
    recomputed = fp.compute_fingerprint(
        upload.path, limits=settings.limits, sample_fps=claimed.sample_fps, version=claimed.version
    )
    reason = fp.agreement(claimed, recomputed)
    if reason is not None:
        raise DomainError(
            "fingerprint_mismatch", f"the uploaded media does not match the fingerprint: {reason}", 422
        )


@dataclass(frozen=True)
class _DeviceRow:
    public_key: str
    revoked_at: datetime | None
    client_id: str | None = None


@dataclass
class _Candidate:
    """A manifest that parsed, with everything its checks and rows need, computed once."""

    manifest: CaptureManifest
    canonical: bytes
    signature: str
    fingerprint_bytes: bytes
    fingerprint: fp.Fingerprint
    captured_at: datetime
    client_id: str | None = None


_DEVICES = Device.__table__  # type: ignore[attr-defined]
_NONCES = UsedNonce.__table__  # type: ignore[attr-defined]
_REGISTRATIONS = Registration.__table__  # type: ignore[attr-defined]
_LOG = LogEntry.__table__  # type: ignore[attr-defined]


_SPLICE = b'"fingerprint":{"data":"'
_BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


def canonical_manifest(raw: dict[str, Any]) -> bytes:
    """RFC 8785 bytes of a validated manifest, without escaping its fingerprint's base64 character by
    character (most of a registration's canonicalisation time): the rest is canonicalised with
    `data` empty and the base64, which needs no escaping, spliced in. `"data"` sorts first among the
    fingerprint's fields, and unescaped quotes cannot occur inside strings, so the splice point is
    unique; anything unexpected takes the plain path."""
    ref = raw.get("fingerprint")
    if not isinstance(ref, dict):
        return canonical_bytes(raw)
    data = ref.get("data")
    if not isinstance(data, str) or not data.isascii() or data.encode().translate(None, _BASE64):
        return canonical_bytes(raw)
    light = canonical_bytes({**raw, "fingerprint": {**ref, "data": ""}})
    if light.count(_SPLICE) != 1:
        return canonical_bytes(raw)
    at = light.index(_SPLICE) + len(_SPLICE)
    return light[:at] + data.encode() + light[at:]


def _candidate(submission: Submission) -> _Candidate:
    """The checks that need no database: manifest schema, fingerprint parse, capture time format."""
    raw, manifest = parse_manifest(submission.manifest)
    data, decoded = _check_fingerprint(manifest)
    return _Candidate(
        manifest=manifest,
        canonical=canonical_manifest(raw),
        signature=submission.signature,
        fingerprint_bytes=data,
        fingerprint=decoded,
        captured_at=manifest.captured_at_dt(),
        client_id=submission.client_id,
    )


def _lookup(
    conn: Connection, candidates: Sequence[_Candidate]
) -> tuple[dict[str, _DeviceRow], dict[str, Registration | None]]:
    """Every device the candidates name and every nonce of theirs already used, with the registration
    that used it (None if unknown): two queries, and a third only when some nonce was used."""
    device_ids = sorted({c.manifest.device_id for c in candidates})
    nonces = sorted({c.manifest.nonce for c in candidates})
    devices = {
        row.id: _DeviceRow(row.public_key, row.revoked_at, row.client_id)
        for row in conn.execute(
            sa_select(
                _DEVICES.c.id, _DEVICES.c.public_key, _DEVICES.c.revoked_at, _DEVICES.c.client_id
            ).where(_DEVICES.c.id.in_(device_ids))
        )
    }
    used_rows = conn.execute(
        sa_select(_NONCES.c.nonce, _NONCES.c.registration_id).where(_NONCES.c.nonce.in_(nonces))
    ).all()
    earlier_ids = sorted({r.registration_id for r in used_rows if r.registration_id is not None})
    earlier: dict[str, Registration] = {}
    if earlier_ids:
        earlier = {
            row.id: Registration(**row._mapping)
            for row in conn.execute(sa_select(_REGISTRATIONS).where(_REGISTRATIONS.c.id.in_(earlier_ids)))
        }
    used = {r.nonce: earlier.get(r.registration_id) if r.registration_id else None for r in used_rows}
    return devices, used


def _same_submission(earlier: Registration, candidate: _Candidate) -> bool:
    """An identical retry: the same client sending the same manifest bytes and signature again."""
    return (
        earlier.client_id is not None
        and earlier.client_id == candidate.client_id
        and earlier.signature == candidate.signature
        and earlier.manifest == candidate.canonical.decode()
    )


def _admit(
    settings: Settings,
    candidate: _Candidate,
    devices: dict[str, _DeviceRow],
    used: dict[str, Registration | None],
    now: datetime,
) -> _DeviceRow | Registration:
    """Device enrolled at capture time, signature, device bound to this client (if bound), capture
    time not ahead, nonce unused — in that order. Returns the device, or, for an identical retry of
    a stored registration (a lost response), that registration."""
    manifest = candidate.manifest
    device = _check_device(devices.get(manifest.device_id), manifest.device_id, candidate.captured_at)
    if not verify_canonical(candidate.canonical, candidate.signature, device.public_key):
        raise DomainError(
            "signature_invalid", "the signature does not verify over the canonical manifest", 422
        )
    if device.client_id is not None and candidate.client_id != device.client_id:
        raise DomainError(
            "device_client_mismatch", f"device {manifest.device_id} is bound to another API client", 403
        )
    if candidate.captured_at > now + timedelta(seconds=settings.clock_skew_s):
        raise DomainError("capture_time_in_future", "captured_at is in the future", 422)
    if manifest.nonce in used:
        earlier = used[manifest.nonce]
        if earlier is not None and _same_submission(earlier, candidate):
            return earlier
        raise Conflict("nonce_replayed", "this manifest's nonce was used before")
    return device


def _rows(
    candidate: _Candidate,
    device: _DeviceRow,
    now: datetime,
    media_path: str | None = None,
    c2pa: dict[str, Any] | None = None,
) -> tuple[Registration, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The registration and the rows of its nonce, itself and its transparency-log leaf."""
    manifest = candidate.manifest
    canonical = candidate.canonical.decode()
    values: dict[str, Any] = {
        "id": new_id("reg"),
        "device_id": manifest.device_id,
        "kind": manifest.kind,
        "content_sha256": manifest.content_sha256,
        "fingerprint": candidate.fingerprint_bytes,
        "fingerprint_digest": manifest.fingerprint.digest,
        "manifest": canonical,
        "signature": candidate.signature,
        "captured_at": candidate.captured_at,
        "received_at": now,
        "media_path": media_path,
        "anchor_status": "pending",
        "c2pa": json.dumps(c2pa) if c2pa is not None else None,
        "client_id": candidate.client_id,
    }
    registration = Registration(**values)
    leaf = log.entry_values(
        "registration", registration.id, log.registration_leaf(registration, device.public_key), now
    )
    nonce = {
        "nonce": manifest.nonce,
        "device_id": manifest.device_id,
        "used_at": now,
        "registration_id": registration.id,
    }
    return registration, nonce, values, leaf


def _insert(
    conn: Connection, rows: Sequence[tuple[Any, dict[str, Any], dict[str, Any], dict[str, Any]]]
) -> None:
    """Nonces first (their primary key is what stops a concurrent replay), then registrations, then
    leaves: one statement per table, whatever the number of rows."""
    conn.execute(insert(_NONCES), [r[1] for r in rows])
    conn.execute(insert(_REGISTRATIONS), [r[2] for r in rows])
    conn.execute(insert(_LOG), [r[3] for r in rows])


def register_many(
    engine: Engine, settings: Settings, submissions: Sequence[Submission], retry: bool = True
) -> list[Accepted | DomainError]:
    """Check each signed manifest on its own and store the accepted ones together: one transaction,
    two lookups and three inserts for the lot. Per submission, an `Accepted` or the refusal.

    A nonce used before (here or earlier) is refused, unless the same client sends the same signed
    manifest again: then the stored registration is returned (`replayed`), so a retry after a lost
    response recovers its id. If a concurrent transaction wins a race for a nonce (the insert
    fails), the lot is retried one by one (`retry`), so only the loser is refused (or, if it was
    the same submission, gets the winner's registration).
    """
    outcomes: list[Accepted | DomainError | None] = []
    candidates: list[tuple[int, _Candidate]] = []
    for i, submission in enumerate(submissions):
        try:
            candidates.append((i, _candidate(submission)))
            outcomes.append(None)
        except DomainError as exc:
            outcomes.append(exc)
    if candidates:
        _check_and_store(engine, settings, submissions, candidates, outcomes, retry)
    return [o if o is not None else DomainError("internal_error", "not checked", 500) for o in outcomes]


def _check_and_store(
    engine: Engine,
    settings: Settings,
    submissions: Sequence[Submission],
    candidates: Sequence[tuple[int, _Candidate]],
    outcomes: list[Accepted | DomainError | None],
    retry: bool,
) -> None:
    try:
        with engine.begin() as conn:
            now = utcnow()
            devices, used = _lookup(conn, [c for _, c in candidates])
            rows = []
            for i, candidate in candidates:
                try:
                    admitted = _admit(settings, candidate, devices, used, now)
                except DomainError as exc:
                    outcomes[i] = exc
                    continue
                if isinstance(admitted, Registration):
                    outcomes[i] = Accepted(admitted, candidate.fingerprint, replayed=True)
                    continue
                row = _rows(candidate, admitted, now)
                used[candidate.manifest.nonce] = row[0]
                rows.append(row)
                outcomes[i] = Accepted(row[0], candidate.fingerprint)
            if rows:
                _insert(conn, rows)
    except IntegrityError:
        if len(candidates) == 1 and not retry:
            outcomes[candidates[0][0]] = Conflict("nonce_replayed", "this manifest's nonce was used before")
            return
        for i, _ in candidates:
            outcomes[i] = register_many(engine, settings, [submissions[i]], retry=False)[0]


def register(
    engine: Engine,
    settings: Settings,
    manifest_json: str | bytes | dict[str, Any],
    signature: str,
    upload: Upload | None = None,
    c2pa: dict[str, Any] | None = None,
) -> Registration:
    """Accept a signed capture manifest, or refuse it and write nothing.

    `c2pa` is what the uploaded media's own Content Credentials say, kept with the registration.
    """
    return register_one(engine, settings, Submission(manifest_json, signature), upload, c2pa).registration


def register_one(
    engine: Engine,
    settings: Settings,
    submission: Submission,
    upload: Upload | None = None,
    c2pa: dict[str, Any] | None = None,
) -> Accepted:
    """`register`, keeping the parsed fingerprint. Without media everything happens in one
    transaction; with media the slow recomputation of the fingerprint runs between the checks and
    the write, outside any transaction."""
    if upload is None:
        outcome = register_many(engine, settings, [submission])[0]
        if isinstance(outcome, DomainError):
            raise outcome
        return outcome
    candidate = _candidate(submission)
    with engine.connect() as conn:
        devices, used = _lookup(conn, [candidate])
    earlier = _admit(settings, candidate, devices, used, utcnow())
    if isinstance(earlier, Registration):  # an identical retry: the registration stored before
        return Accepted(earlier, candidate.fingerprint, replayed=True)
    _check_upload(settings, candidate.manifest, candidate.fingerprint, upload)
    media_dir = settings.data_dir / "media"
    media_dir.mkdir(parents=True, exist_ok=True)
    stored = media_dir / f"{candidate.manifest.content_sha256}{upload.suffix}"
    # Copied (temporary file, hash read back, atomic rename) before the transaction, so a full disk
    # writes no row and no partial file, and the write lock is not held during a long copy; a file
    # already there is adopted only when its hash is the manifest's (a truncated one is replaced).
    copied = store_verified(upload.path, stored, candidate.manifest.content_sha256)
    try:
        with engine.begin() as conn:
            now = utcnow()
            devices, used = _lookup(conn, [candidate])
            admitted = _admit(settings, candidate, devices, used, now)
            if isinstance(admitted, Registration):  # an identical retry stored it meanwhile
                replayed: Registration | None = admitted
            else:
                replayed = None
                row = _rows(candidate, admitted, now, str(stored), c2pa)
                _insert(conn, [row])
    except BaseException as exc:
        if copied and not _media_in_use(engine, stored):
            stored.unlink(missing_ok=True)
        if isinstance(exc, IntegrityError):
            raise Conflict("nonce_replayed", "this manifest's nonce was used before") from exc
        raise
    if replayed is not None:
        if copied and not _media_in_use(engine, stored):
            stored.unlink(missing_ok=True)
        return Accepted(replayed, candidate.fingerprint, replayed=True)
    return Accepted(row[0], candidate.fingerprint)


def _media_in_use(engine: Engine, stored: Path) -> bool:
    """Whether a registration of the same bytes, made meanwhile, adopted the copy (when unsure: yes,
    an orphan copy costs only space)."""
    try:
        with Session(engine) as session:
            hit = session.exec(
                select(Registration.id).where(Registration.media_path == str(stored)).limit(1)
            ).first()
    except Exception:
        return True
    return hit is not None


def get_registration(session: Session, registration_id: str) -> Registration:
    registration = session.get(Registration, registration_id)
    if registration is None:
        raise NotFound("registration_not_found", f"no registration {registration_id}")
    return registration
