"""Stored tables. Datetimes are aware UTC (SQLModel stores them with UTCDateTime)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, LargeBinary, Text
from sqlmodel import Field, SQLModel


class Device(SQLModel, table=True):
    __tablename__ = "devices"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    public_key: str = Field(max_length=64, unique=True, description="base64 of the raw 32-byte Ed25519 key")
    status: str = Field(default="active", max_length=16)
    enrolled_at: datetime
    revoked_at: datetime | None = None
    # The key this one succeeds (a rotation signed by that key); None for a first enrolment.
    predecessor_id: str | None = Field(default=None, max_length=64)
    # The only API client that may register this device's captures (None: any camera client), so a
    # camera client cannot pass off captures of another client's device as its own. No foreign key:
    # adding one would make SQLite rebuild the devices table that registrations refer to.
    client_id: str | None = Field(default=None, max_length=64)


class ApiClient(SQLModel, table=True):
    __tablename__ = "api_clients"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    scope: str = Field(max_length=16)
    key_hash: str = Field(max_length=64, unique=True, index=True)
    created_at: datetime
    revoked_at: datetime | None = None
    # After a rotation the old key keeps working until `previous_key_expires_at` (the grace period).
    previous_key_hash: str | None = Field(default=None, max_length=64, unique=True, index=True)
    previous_key_expires_at: datetime | None = None


class Registration(SQLModel, table=True):
    __tablename__ = "registrations"

    id: str = Field(primary_key=True, max_length=64)
    device_id: str = Field(foreign_key="devices.id", index=True, max_length=64)
    kind: str = Field(max_length=16)
    content_sha256: str = Field(index=True, max_length=64)
    fingerprint: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    fingerprint_digest: str = Field(index=True, max_length=64)
    manifest: str = Field(sa_column=Column(Text, nullable=False), description="canonical JSON bytes, UTF-8")
    signature: str = Field(max_length=128)
    captured_at: datetime
    received_at: datetime
    media_path: str | None = Field(default=None, max_length=500)
    anchor_status: str = Field(default="pending", max_length=16)
    c2pa: str | None = Field(
        default=None,
        sa_column=Column(Text, nullable=True),
        description="JSON: Content Credentials the uploaded media carried",
    )
    # The API client that submitted it (None for registrations made before this was recorded).
    client_id: str | None = Field(default=None, index=True, max_length=64)


class UsedNonce(SQLModel, table=True):
    __tablename__ = "used_nonces"

    nonce: str = Field(primary_key=True, max_length=128)
    device_id: str = Field(foreign_key="devices.id", max_length=64)
    used_at: datetime
    # The registration that used it, so an identical retry of a lost response finds it again.
    registration_id: str | None = Field(default=None, max_length=64)


class LogEntry(SQLModel, table=True):
    """A leaf of the transparency log, written in the same transaction as the fact it records.

    `leaf_index` is assigned later, in order, by the single batcher that holds the log lock, so
    the hot path never contends for the next index.
    """

    __tablename__ = "log_entries"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    ref_id: str = Field(index=True, max_length=64)
    data: str = Field(sa_column=Column(Text, nullable=False), description="canonical JSON of the leaf")
    leaf_hash: str = Field(max_length=64)
    leaf_index: int | None = Field(default=None, unique=True, index=True)
    created_at: datetime


class Anchor(SQLModel, table=True):
    """One root put on chain. Written as `pending` before the transaction is sent (the outbox)."""

    __tablename__ = "anchors"

    id: int | None = Field(default=None, primary_key=True)
    epoch: int = Field(default=0, description="bumped when the chain lost its state and we re-anchored")
    tree_size: int = Field(index=True)
    root: str = Field(max_length=64)
    status: str = Field(default="pending", max_length=16)
    chain_id: int | None = None
    contract: str | None = Field(default=None, max_length=42)
    tx_hash: str | None = Field(default=None, max_length=66)
    block_number: int | None = None
    created_at: datetime
    confirmed_at: datetime | None = None


class ServiceState(SQLModel, table=True):
    """Small durable facts: the contract address, the chain epoch, the last chain incident."""

    __tablename__ = "service_state"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(sa_column=Column(Text, nullable=False))


class Verification(SQLModel, table=True):
    """A submitted clip and, once done, its result JSON (schema provenance.verification/v1)."""

    __tablename__ = "verifications"

    id: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(index=True, max_length=64)
    status: str = Field(default="queued", max_length=16, description="queued, running, done, failed")
    filename: str = Field(max_length=255)
    media_sha256: str = Field(max_length=64)
    result: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime
    finished_at: datetime | None = None


class C2paManifest(SQLModel, table=True):
    """A Content Credentials manifest we signed for a registered original, kept for soft-binding lookups."""

    __tablename__ = "c2pa_manifests"

    manifest_id: str = Field(primary_key=True, max_length=100)
    registration_id: str = Field(foreign_key="registrations.id", index=True, max_length=64)
    store_path: str = Field(max_length=500)
    media_type: str = Field(max_length=64)
    created_at: datetime


class EvaluationRun(SQLModel, table=True):
    """One pass of the generator's fakes and benign variants through the real verification flow."""

    __tablename__ = "evaluation_runs"

    id: str = Field(primary_key=True, max_length=64)
    status: str = Field(default="running", max_length=16, description="running, done, failed")
    started_at: datetime
    finished_at: datetime | None = None
    comparer: str = Field(max_length=100)
    generator: str = Field(max_length=100)
    metrics: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class AuditEvent(SQLModel, table=True):
    """One admin action (who did what to which client or device); each is also a transparency-log leaf."""

    __tablename__ = "audit_events"

    id: str = Field(primary_key=True, max_length=64)
    at: datetime = Field(index=True)
    actor_id: str = Field(max_length=64, description="the API client that acted, or 'system'")
    action: str = Field(max_length=64, description="e.g. client.create, device.revoke")
    target_kind: str = Field(max_length=32)
    target_id: str = Field(index=True, max_length=64)
    details: str = Field(sa_column=Column(Text, nullable=False), description="JSON object")


class RateLimitWindow(SQLModel, table=True):
    """A fixed-window request counter shared by every API process on the same database."""

    __tablename__ = "rate_limit_windows"

    key: str = Field(primary_key=True, max_length=200)
    count: int
    expires_at: float = Field(description="Unix time the window ends")


class WebSession(SQLModel, table=True):
    """A signed-in browser: the cookie holds a random token, only its SHA-256 is stored here, so
    every API process sees the same sessions and signing out ends one everywhere at once."""

    __tablename__ = "web_sessions"

    token_hash: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(foreign_key="api_clients.id", index=True, max_length=64)
    key_hash: str = Field(
        max_length=64, description="the API key signed in with: rotated out, the session ends"
    )
    created_at: datetime
    expires_at: datetime = Field(index=True)
