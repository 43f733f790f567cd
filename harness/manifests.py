"""Signed registration forms, as a camera app sends them: tests and benchmarks build many."""

from __future__ import annotations

import json
import secrets

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from provenance import fingerprint as fp
from provenance.core.timeutil import utcnow
from provenance.signing import build_manifest, sign_manifest


def signed_form(
    fpr: fp.Fingerprint, key: Ed25519PrivateKey, device_id: str, content_sha256: str | None = None
) -> dict[str, str]:
    """The form fields of one registration (`manifest` JSON text, `signature`), captured now with a
    fresh nonce; without `content_sha256`, a random one (a distinct capture each call)."""
    manifest = build_manifest(
        kind="video",
        content_sha256=content_sha256 or secrets.token_hex(32),
        fingerprint_version=fpr.version,
        fingerprint_bytes=fpr.encode(),
        fingerprint_digest=fpr.digest(),
        captured_at=utcnow(),
        device_id=device_id,
    ).to_json()
    return {"manifest": json.dumps(manifest), "signature": sign_manifest(manifest, key)}
