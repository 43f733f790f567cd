"""Signed capture manifests and registration forms, as a camera app sends them: tests and
benchmarks build many."""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from provenance import fingerprint as fp
from provenance.signing import fingerprint_manifest, sign_manifest


def signed_manifest(
    fpr: fp.Fingerprint,
    key: Ed25519PrivateKey,
    device_id: str,
    content_sha256: str | None = None,
    captured_at: datetime | None = None,
) -> tuple[dict[str, Any], str]:
    """One capture manifest (its JSON object, fresh nonce) and its signature by `key`: captured now
    unless `captured_at`; without `content_sha256`, a random one (a distinct capture each call)."""
    manifest = fingerprint_manifest(
        fpr,
        content_sha256=content_sha256 or secrets.token_hex(32),
        device_id=device_id,
        captured_at=captured_at,
    ).to_json()
    return manifest, sign_manifest(manifest, key)


def signed_form(
    fpr: fp.Fingerprint, key: Ed25519PrivateKey, device_id: str, content_sha256: str | None = None
) -> dict[str, str]:
    """The form fields of one registration (`manifest` JSON text, `signature`), as `signed_manifest`
    makes them."""
    manifest, signature = signed_manifest(fpr, key, device_id, content_sha256)
    return {"manifest": json.dumps(manifest), "signature": signature}
