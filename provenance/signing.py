"""Device keys and capture manifests: RFC 8785 canonical JSON signed with Ed25519.

The device id is derived from the public key, so a camera app knows its own id
before it is enrolled and can never claim another device's id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

from provenance.core.errors import DomainError
from provenance.core.timeutil import iso, parse_iso, utcnow

if TYPE_CHECKING:
    from provenance.fingerprint import Fingerprint

MANIFEST_SCHEMA = "provenance.capture/v1"


class FingerprintRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    data: str = Field(description="base64 of the binary fingerprint")


class Location(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    accuracy_m: float | None = Field(default=None, ge=0)


class CaptureManifest(BaseModel):
    """What the device signs at capture time. Unknown fields are refused, so nothing unsigned slips in."""

    model_config = ConfigDict(extra="forbid")

    schema_: Literal["provenance.capture/v1"] = Field(alias="schema")
    kind: Literal["video", "image"]
    content_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    fingerprint: FingerprintRef
    captured_at: str
    device_id: str = Field(pattern=r"^dev_[0-9a-f]{32}$")
    nonce: str = Field(pattern=r"^[0-9a-f]{32,128}$")
    location: Location | None = None
    app: dict[str, str] | None = None

    def captured_at_dt(self) -> datetime:
        try:
            return parse_iso(self.captured_at)
        except ValueError as exc:
            raise DomainError("manifest_invalid", f"captured_at: {exc}", 422) from exc

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


def canonical_bytes(manifest: dict[str, Any]) -> bytes:
    return rfc8785.dumps(manifest)


def device_id_for(public_key: bytes) -> str:
    return "dev_" + hashlib.sha256(public_key).hexdigest()[:32]


def new_nonce() -> str:
    return secrets.token_hex(16)


def build_manifest(
    *,
    kind: Literal["video", "image"],
    content_sha256: str,
    fingerprint_version: int,
    fingerprint_bytes: bytes,
    fingerprint_digest: str,
    captured_at: datetime,
    device_id: str,
    location: Location | None = None,
    app: dict[str, str] | None = None,
) -> CaptureManifest:
    return CaptureManifest.model_validate(
        {
            "schema": MANIFEST_SCHEMA,
            "kind": kind,
            "content_sha256": content_sha256,
            "fingerprint": {
                "version": fingerprint_version,
                "digest": fingerprint_digest,
                "data": base64.b64encode(fingerprint_bytes).decode(),
            },
            "captured_at": iso(captured_at),
            "device_id": device_id,
            "nonce": new_nonce(),
            "location": location.model_dump(exclude_none=True) if location else None,
            "app": app,
        }
    )


def fingerprint_manifest(
    fingerprint: Fingerprint,
    *,
    content_sha256: str,
    device_id: str,
    captured_at: datetime | None = None,
    app: dict[str, str] | None = None,
) -> CaptureManifest:
    """The capture manifest of media with this fingerprint (its kind, version, encoding and digest)
    whose SHA-256 is `content_sha256`: captured now unless `captured_at` says when."""
    return build_manifest(
        kind="image" if fingerprint.kind == "image" else "video",
        content_sha256=content_sha256,
        fingerprint_version=fingerprint.version,
        fingerprint_bytes=fingerprint.encode(),
        fingerprint_digest=fingerprint.digest(),
        captured_at=captured_at or utcnow(),
        device_id=device_id,
        app=app,
    )


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def sign_manifest(manifest: dict[str, Any], key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.sign(canonical_bytes(manifest))).decode()


def verify_signature(manifest: dict[str, Any], signature_b64: str, public_key_b64: str) -> bool:
    return verify_canonical(canonical_bytes(manifest), signature_b64, public_key_b64)


@lru_cache(maxsize=4096)
def _public_key(public_key_b64: str) -> Ed25519PublicKey:
    """Parsed once per key: registrations from one device all verify against the same key."""
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))


def verify_canonical(data: bytes, signature_b64: str, public_key_b64: str) -> bool:
    """`verify_signature` over RFC 8785 bytes already made, so the hot path canonicalises once."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        _public_key(public_key_b64).verify(signature, data)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def decode_public_key(public_key_b64: str) -> bytes:
    """The raw 32 bytes of a base64 Ed25519 public key, or a `public_key_invalid` refusal."""
    try:
        raw = base64.b64decode(public_key_b64, validate=True)
        Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error) as exc:
        raise DomainError(
            "public_key_invalid", "public_key must be base64 of a raw Ed25519 key", 422
        ) from exc
    return raw


# --- key files (what `provenance device init` writes on the device) ---


def write_key_files(path: Path) -> Ed25519PrivateKey:
    """KEYFILE holds the private key (PKCS#8 PEM, mode 0600); KEYFILE.pub the public key (PEM)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    Path(f"{path}.pub").write_bytes(pub_pem)
    return key


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Accepts a PEM public key or the base64 of the raw 32 bytes."""
    data = path.read_bytes().strip()
    if data.startswith(b"-----BEGIN"):
        key = serialization.load_pem_public_key(data)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"{path} is not an Ed25519 public key")
        return key
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(data, validate=True))
