"""Public shapes of the API (what clients see), separate from the stored tables."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from provenance.core.security import Scope
from provenance.models import Device, Registration


class ClientCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    scope: Scope


class ClientCreated(BaseModel):
    id: str
    name: str
    scope: Scope
    api_key: str = Field(description="shown once; only its hash is stored")
    created_at: datetime


class DeviceCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    public_key: str = Field(description="base64 of the raw 32-byte Ed25519 public key", max_length=64)


class DevicePublic(BaseModel):
    id: str
    name: str
    public_key: str
    status: str
    enrolled_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, device: Device) -> DevicePublic:
        return cls.model_validate(device, from_attributes=True)


class RegistrationPublic(BaseModel):
    id: str
    device_id: str
    kind: str
    content_sha256: str
    fingerprint_digest: str
    captured_at: datetime
    received_at: datetime
    media_uploaded: bool
    anchor_status: str
    manifest: dict[str, Any]
    signature: str
    c2pa: dict[str, Any] | None = None

    @classmethod
    def of(cls, registration: Registration) -> RegistrationPublic:
        return cls(
            id=registration.id,
            device_id=registration.device_id,
            kind=registration.kind,
            content_sha256=registration.content_sha256,
            fingerprint_digest=registration.fingerprint_digest,
            captured_at=registration.captured_at,
            received_at=registration.received_at,
            media_uploaded=registration.media_path is not None,
            anchor_status=registration.anchor_status,
            manifest=json.loads(registration.manifest),
            signature=registration.signature,
            c2pa=json.loads(registration.c2pa) if registration.c2pa else None,
        )


class Health(BaseModel):
    status: str
    version: str
    database: str
    chain: dict[str, Any]
    worker: str
    evaluation: dict[str, Any]
