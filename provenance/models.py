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


class ApiClient(SQLModel, table=True):
    __tablename__ = "api_clients"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    scope: str = Field(max_length=16)
    key_hash: str = Field(max_length=64, unique=True, index=True)
    created_at: datetime
    revoked_at: datetime | None = None


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


class UsedNonce(SQLModel, table=True):
    __tablename__ = "used_nonces"

    nonce: str = Field(primary_key=True, max_length=128)
    device_id: str = Field(foreign_key="devices.id", max_length=64)
    used_at: datetime
