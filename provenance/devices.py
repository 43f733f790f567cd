"""Camera devices: enrolment, binding to a camera client, revocation and signed key rotation."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

from sqlmodel import Session

from provenance import audit

# --- API clients ---
from provenance.clients import get_client
from provenance.core.config import Settings
from provenance.core.errors import Conflict, DomainError, NotFound
from provenance.core.security import Scope
from provenance.core.text import refuse_nul
from provenance.core.timeutil import iso, parse_iso, utcnow
from provenance.ledger import log
from provenance.models import ApiClient, Device
from provenance.signing import (
    decode_public_key,
    device_id_for,
    verify_signature,
)


def _bindable_client(session: Session, client_id: str) -> ApiClient:
    """A client a device may be bound to: one that exists, is not revoked and may register."""
    refuse_nul(client_id, "client_id")
    client = get_client(session, client_id)
    if client.revoked_at is not None:
        raise Conflict("client_revoked", f"client {client_id} is revoked")
    if client.scope not in (Scope.camera.value, Scope.admin.value):
        raise DomainError(
            "client_scope_invalid", f"client {client_id} has scope {client.scope}; it cannot register", 422
        )
    return client


def enroll_device(
    session: Session,
    name: str,
    public_key_b64: str,
    actor: str | None = None,
    client_id: str | None = None,
) -> Device:
    """Enrol a device key; with `client_id`, only that API client may register its captures."""
    refuse_nul(name, "name")
    raw = decode_public_key(public_key_b64)
    device_id = device_id_for(raw)
    if session.get(Device, device_id) is not None:
        raise Conflict("device_exists", f"device {device_id} is already enrolled")
    if client_id is not None:
        _bindable_client(session, client_id)
    device = Device(
        id=device_id,
        name=name,
        public_key=base64.b64encode(raw).decode(),
        status="active",
        enrolled_at=utcnow(),
        client_id=client_id,
    )
    session.add(device)
    log.append(session, "device", device.id, log.device_leaf(device, "enrolled"))
    details: dict[str, Any] = {"name": name}
    if client_id is not None:
        details["client_id"] = client_id
    audit.record(session, actor, "device.enroll", "device", device.id, details)
    session.flush()
    return device


def bind_device(session: Session, device_id: str, client_id: str | None, actor: str | None = None) -> Device:
    """Bind a device to the one API client that may register its captures (None: unbind, any
    camera client may). Registrations already stored keep the client that submitted them."""
    device = get_device(session, device_id)
    if client_id is not None:
        _bindable_client(session, client_id)
    previous = device.client_id
    device.client_id = client_id
    session.add(device)
    audit.record(
        session, actor, "device.bind", "device", device.id, {"client_id": client_id, "previous": previous}
    )
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
        client_id=device.client_id,  # a new key for the same device stays bound to the same client
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
