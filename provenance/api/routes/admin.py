"""Admin: API clients (create, rotate, revoke), device enrolment, and the audit log.

Devices rotate their own key (a camera-scope call signed by the current device key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from sqlmodel import Session

from provenance import audit, clients, devices
from provenance.api.deps import AdminDep, CameraDep, ServiceDep, SessionDep, SettingsDep
from provenance.api.schemas import (
    AuditEventPublic,
    AuditPage,
    ClientCreate,
    ClientCreated,
    ClientPublic,
    ClientRotate,
    ClientRotated,
    DeviceBind,
    DeviceCreate,
    DevicePublic,
    DeviceRotate,
)

router = APIRouter(prefix="/v1", tags=["admin"])


@router.post("/clients", status_code=status.HTTP_201_CREATED, response_model=ClientCreated)
def create_client(body: ClientCreate, session: SessionDep, admin: AdminDep) -> ClientCreated:
    client, key = clients.create_client(session, body.name, body.scope, actor=admin.id)
    return ClientCreated(
        id=client.id, name=client.name, scope=body.scope, api_key=key, created_at=client.created_at
    )


@router.get("/clients/{client_id}", response_model=ClientPublic)
def get_client(client_id: str, session: SessionDep, _: AdminDep) -> ClientPublic:
    return ClientPublic.of(clients.get_client(session, client_id))


@router.post("/clients/{client_id}/rotate", response_model=ClientRotated)
def rotate_client(client_id: str, body: ClientRotate, service: ServiceDep, admin: AdminDep) -> ClientRotated:
    """A new key; the old one keeps working for `grace_seconds` (then, or on revocation, it stops)."""
    client, key = service.clients.rotate(client_id, body.grace_seconds, actor=admin.id)
    return ClientRotated(id=client.id, api_key=key, previous_key_expires_at=client.previous_key_expires_at)


@router.post("/clients/{client_id}/revoke", response_model=ClientPublic)
def revoke_client(client_id: str, service: ServiceDep, admin: AdminDep) -> ClientPublic:
    return ClientPublic.of(service.clients.revoke(client_id, actor=admin.id))


@router.post("/devices", status_code=status.HTTP_201_CREATED, response_model=DevicePublic)
def enroll_device(body: DeviceCreate, session: SessionDep, admin: AdminDep) -> DevicePublic:
    """Enrol a device key; with `client_id`, only that camera client may register its captures
    (others get 403 `device_client_mismatch`)."""
    device = devices.enroll_device(
        session, body.name, body.public_key, actor=admin.id, client_id=body.client_id
    )
    return DevicePublic.of(device)


@router.post("/devices/{device_id}/bind", response_model=DevicePublic)
def bind_device(device_id: str, body: DeviceBind, session: SessionDep, admin: AdminDep) -> DevicePublic:
    """Bind a device to the one camera client that may register its captures (null: unbind)."""
    return DevicePublic.of(devices.bind_device(session, device_id, body.client_id, actor=admin.id))


@router.get("/devices/{device_id}", response_model=DevicePublic)
def get_device(device_id: str, session: SessionDep, _: AdminDep) -> DevicePublic:
    return DevicePublic.of(devices.get_device(session, device_id))


@router.post("/devices/{device_id}/revoke", response_model=DevicePublic)
def revoke_device(device_id: str, session: SessionDep, admin: AdminDep) -> DevicePublic:
    return DevicePublic.of(devices.revoke_device(session, device_id, actor=admin.id))


@router.post("/devices/{device_id}/rotate", status_code=status.HTTP_201_CREATED, response_model=DevicePublic)
def rotate_device(
    device_id: str, body: DeviceRotate, session: SessionDep, settings: SettingsDep, client: CameraDep
) -> DevicePublic:
    """Enrol the successor key the device signed with its current key; returns the successor."""
    successor = devices.rotate_device(
        session,
        settings,
        device_id,
        body.new_public_key,
        body.signature,
        body.effective_at,
        actor=client.id,
    )
    return DevicePublic.of(successor)


def _public(session: Session, event: audit.AuditEvent) -> AuditEventPublic:
    leaf = audit.leaf_of(session, event.id)
    return AuditEventPublic(
        id=event.id,
        at=event.at,
        actor_id=event.actor_id,
        action=event.action,
        target_kind=event.target_kind,
        target_id=event.target_id,
        details=audit.details_of(event),
        leaf_hash=leaf.leaf_hash if leaf else None,
        leaf_index=leaf.leaf_index if leaf else None,
    )


@router.get("/audit", response_model=AuditPage)
def read_audit(
    session: SessionDep,
    _: AdminDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        str | None,
        Query(
            description="page back: entries older than this ISO 8601 time",
            max_length=40,
            json_schema_extra={"format": "date-time"},
        ),
    ] = None,
) -> AuditPage:
    """Admin actions, newest first; each is also a leaf of the transparency log."""
    events = audit.recent(session, limit, audit.parse_before(before))
    return AuditPage(events=[_public(session, e) for e in events])
