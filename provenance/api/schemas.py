"""Public shapes of the API (what clients see), separate from the stored tables."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, StrictFloat

from provenance.core.security import Scope
from provenance.models import ApiClient, Device, Registration


class ClientCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    scope: Scope


class ClientCreated(BaseModel):
    id: str
    name: str
    scope: Scope
    api_key: str = Field(description="shown once; only its hash is stored")
    created_at: datetime


class ClientRotate(BaseModel):
    # Strict: `false` or `"5"` is a client bug to report, not a number to guess.
    grace_seconds: StrictFloat = Field(
        default=86400.0, ge=0, le=30 * 86400, description="how long the old key keeps working (0: not at all)"
    )


class ClientRotated(BaseModel):
    id: str
    api_key: str = Field(description="the new key, shown once")
    previous_key_expires_at: datetime | None = Field(description="when the old key stops working")


class ClientPublic(BaseModel):
    id: str
    name: str
    scope: str
    created_at: datetime
    revoked_at: datetime | None
    previous_key_expires_at: datetime | None

    @classmethod
    def of(cls, client: ApiClient) -> ClientPublic:
        return cls.model_validate(client, from_attributes=True)


class DeviceRotate(BaseModel):
    """A successor key, signed by the device's current key over the RFC 8785 bytes of
    {"schema": "provenance.device-rotation/v1", "device_id", "new_public_key", "effective_at"}."""

    new_public_key: str = Field(description="base64 of the raw 32-byte Ed25519 public key", max_length=64)
    effective_at: str = Field(
        description="ISO 8601 time, as signed, from which the current key is revoked", max_length=40
    )
    signature: str = Field(description="base64 Ed25519 signature by the current key", max_length=128)


class AuditEventPublic(BaseModel):
    id: str
    at: datetime
    actor_id: str
    action: str
    target_kind: str
    target_id: str
    details: dict[str, Any]
    leaf_hash: str | None = Field(description="the entry's transparency-log leaf")
    leaf_index: int | None = Field(description="null until the batcher orders the leaf")


class AuditPage(BaseModel):
    events: list[AuditEventPublic]


class DeviceCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    public_key: str = Field(description="base64 of the raw 32-byte Ed25519 public key", max_length=64)
    client_id: str | None = Field(
        default=None,
        max_length=64,
        description="bind the device to this camera client: only it may register the device's captures",
    )


class DeviceBind(BaseModel):
    client_id: str | None = Field(
        max_length=64, description="the only API client that may register the device's captures; null: any"
    )


class DevicePublic(BaseModel):
    id: str
    name: str
    public_key: str
    status: str
    enrolled_at: datetime
    revoked_at: datetime | None
    predecessor_id: str | None = None
    client_id: str | None = Field(
        default=None, description="the client it is bound to; null: any camera client"
    )

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


class RegistrationSubmission(BaseModel):
    """A signed capture manifest as a JSON body: the manifest object itself (or its JSON text) and the
    base64 Ed25519 signature over its RFC 8785 bytes."""

    manifest: dict[str, Any] | str = Field(description="the capture manifest (an object, or its JSON text)")
    signature: str = Field(max_length=200, description="base64 Ed25519 signature over the RFC 8785 bytes")


class RegistrationBatch(BaseModel):
    """Captures a camera app made offline, synced in one request; each is checked on its own."""

    items: list[RegistrationSubmission] = Field(min_length=1)


class RegistrationRefusal(BaseModel):
    code: str = Field(description="the problem code a single registration would have been refused with")
    status: int
    detail: str


class RegistrationSummary(BaseModel):
    """An accepted batch item: enough to fetch it and its receipt (the manifest is the client's own)."""

    id: str
    device_id: str
    content_sha256: str
    captured_at: datetime
    received_at: datetime
    anchor_status: str

    @classmethod
    def of(cls, registration: Registration) -> RegistrationSummary:
        return cls(
            id=registration.id,
            device_id=registration.device_id,
            content_sha256=registration.content_sha256,
            captured_at=registration.captured_at,
            received_at=registration.received_at,
            anchor_status=registration.anchor_status,
        )


class RegistrationBatchItem(BaseModel):
    index: int = Field(description="position in the request's items")
    accepted: bool
    replayed: bool = Field(
        default=False, description="an identical retry by the same client: the registration stored before"
    )
    registration: RegistrationSummary | None = None
    problem: RegistrationRefusal | None = None


class RegistrationBatchResult(BaseModel):
    accepted: int
    refused: int
    items: list[RegistrationBatchItem]


class Health(BaseModel):
    status: str
    version: str
    database: str
    chain: dict[str, Any]
    worker: str
    evaluation: dict[str, Any]
    # Anchoring: `behind` (and status degraded) when a leaf has waited longer than `bound_s`.
    anchoring: dict[str, Any] = Field(default_factory=dict)
    # Why the status is `degraded`: one short line per part that is not ok (empty when ok).
    reasons: list[str] = Field(default_factory=list)
    # Free space of the data directory: `low` (and status degraded) under `min_free_disk_bytes`.
    disk: dict[str, Any] = Field(default_factory=dict)


class LogRoot(BaseModel):
    tree_size: int = Field(ge=0)
    root: str = Field(description="hex RFC 6962 root of the first tree_size leaves", pattern="^[0-9a-f]{64}$")


class ConsistencyProof(BaseModel):
    first: int = Field(ge=1)
    second: int = Field(ge=1)
    first_root: str = Field(pattern="^[0-9a-f]{64}$")
    second_root: str = Field(pattern="^[0-9a-f]{64}$")
    proof: list[str] = Field(description="hex RFC 6962 consistency proof")
