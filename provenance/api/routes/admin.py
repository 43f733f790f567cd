"""Admin: API clients and device enrolment."""

from __future__ import annotations

from fastapi import APIRouter, status

from provenance import registry
from provenance.api.deps import AdminDep, SessionDep
from provenance.api.schemas import ClientCreate, ClientCreated, DeviceCreate, DevicePublic

router = APIRouter(prefix="/v1", tags=["admin"])


@router.post("/clients", status_code=status.HTTP_201_CREATED, response_model=ClientCreated)
def create_client(body: ClientCreate, session: SessionDep, _: AdminDep) -> ClientCreated:
    client, key = registry.create_client(session, body.name, body.scope)
    return ClientCreated(
        id=client.id, name=client.name, scope=body.scope, api_key=key, created_at=client.created_at
    )


@router.post("/devices", status_code=status.HTTP_201_CREATED, response_model=DevicePublic)
def enroll_device(body: DeviceCreate, session: SessionDep, _: AdminDep) -> DevicePublic:
    return DevicePublic.of(registry.enroll_device(session, body.name, body.public_key))


@router.get("/devices/{device_id}", response_model=DevicePublic)
def get_device(device_id: str, session: SessionDep, _: AdminDep) -> DevicePublic:
    return DevicePublic.of(registry.get_device(session, device_id))


@router.post("/devices/{device_id}/revoke", response_model=DevicePublic)
def revoke_device(device_id: str, session: SessionDep, _: AdminDep) -> DevicePublic:
    return DevicePublic.of(registry.revoke_device(session, device_id))
