"""Content Credentials for registered originals, and the C2PA soft-binding resolution lookups.

Signing happens on the server because the signing identity (an X.509 chain) is the service's.
Our soft binding is the fingerprint: `byBinding` looks a fingerprint digest up directly, and
`byContent` fingerprints the asset and runs the verification matcher, so a copy whose metadata
was stripped (re-encoded, resized) still finds its manifest.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from provenance.c2pa import (
    SOFT_BINDING_ALG,
    C2paUnreadable,
    SigningIdentity,
    media_type,
    read_credentials,
    registration_reference,
    resolve_identity,
    sign_registered,
)
from provenance.core.config import Settings
from provenance.core.db import session_scope
from provenance.core.errors import DomainError, NotFound
from provenance.core.timeutil import utcnow
from provenance.ledger.log import TreeCache
from provenance.models import C2paManifest, Registration
from provenance.receipts import build_receipt

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class Credentials:
    settings: Settings
    engine: Engine
    cache: TreeCache
    _identity: SigningIdentity | None = None

    @property
    def identity(self) -> SigningIdentity:
        """Made (or loaded) on first use, so a service that never signs never writes keys."""
        if self._identity is None:
            s = self.settings
            self._identity = resolve_identity(
                s.data_dir,
                cert_chain_path=s.c2pa_cert,
                key_path=s.c2pa_key,
                trust_anchors_path=s.c2pa_trust_anchors,
            )
        return self._identity

    def read(self, path: Path) -> dict[str, Any] | None:
        """The `c2pa` field of a verification result: what the file's Content Credentials say, if any."""
        try:
            info = read_credentials(path, self.identity.trust_anchors_pem)
        except C2paUnreadable as exc:
            return {"present": True, "error": exc.detail, "summary": "the Content Credentials cannot be read"}
        if info is None:
            return None
        body = info.to_json()
        if info.hard_binding_valid is False:
            summary = "signed Content Credentials, but the content changed after signing"
        elif info.signature_valid and info.trusted:
            summary = "valid Content Credentials from a trusted signer"
        elif info.signature_valid:
            summary = "valid Content Credentials from a signer not on the trust list"
        else:
            summary = "invalid Content Credentials"
        body["summary"] = summary
        return body

    def sign(self, path: Path, out: Path) -> tuple[str, Registration]:
        """Give a registered original (found by its content hash) a manifest signed by the service."""
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        with Session(self.engine) as session:
            registration = session.exec(
                select(Registration)
                .where(Registration.content_sha256 == digest)
                .order_by(col(Registration.received_at))
            ).first()
            if registration is None:
                raise NotFound(
                    "registration_not_found", "this file is not a registered original (by its SHA-256)"
                )
            reference = registration_reference(registration, build_receipt(session, registration, self.cache))
        store_dir = self.settings.data_dir / "c2pa" / "manifests"
        store_dir.mkdir(parents=True, exist_ok=True)
        staging = store_dir / f".{registration.id}.{utcnow().timestamp():.6f}.c2pa"
        try:
            label = sign_registered(
                path, out, identity=self.identity, soft_binding=reference, store_to=staging
            )
            store = store_dir / f"{_SAFE.sub('_', label)}.c2pa"
            staging.replace(store)
        finally:
            staging.unlink(missing_ok=True)
        with session_scope(self.engine) as session:
            session.add(
                C2paManifest(
                    manifest_id=label,
                    registration_id=registration.id,
                    store_path=str(store),
                    media_type=media_type(path),
                    created_at=utcnow(),
                )
            )
        return label, registration

    def manifests_of(self, session: Session, registration_ids: list[str]) -> list[C2paManifest]:
        if not registration_ids:
            return []
        return list(
            session.exec(
                select(C2paManifest)
                .where(col(C2paManifest.registration_id).in_(registration_ids))
                .order_by(col(C2paManifest.created_at).desc())
            ).all()
        )

    def by_binding(self, alg: str, value: str, max_results: int) -> list[dict[str, Any]]:
        check_alg(alg)
        digest = _digest_from_value(value)
        with Session(self.engine) as session:
            ids = list(
                session.exec(select(Registration.id).where(Registration.fingerprint_digest == digest)).all()
            )
            manifests = self.manifests_of(session, ids)
        return [{"manifestId": m.manifest_id, "similarityScore": 100} for m in manifests[:max_results]]

    def by_outcome(self, outcome: dict[str, Any], max_results: int) -> list[dict[str, Any]]:
        match = outcome.get("match")
        if not match:
            return []
        score = max(0, min(100, round(100 * float(match["similarity"]))))
        with Session(self.engine) as session:
            manifests = self.manifests_of(session, [match["registration_id"]])
        return [{"manifestId": m.manifest_id, "similarityScore": score} for m in manifests[:max_results]]

    def store(self, manifest_id: str) -> bytes:
        with Session(self.engine) as session:
            manifest = session.get(C2paManifest, manifest_id)
        if manifest is None:
            raise NotFound("manifest_not_found", f"no manifest {manifest_id}")
        return Path(manifest.store_path).read_bytes()


def check_alg(alg: str | None) -> None:
    if alg is not None and alg != SOFT_BINDING_ALG:
        raise DomainError(
            "alg_unsupported", f"this service resolves the soft binding {SOFT_BINDING_ALG} only", 400
        )


def _digest_from_value(value: str) -> str:
    """The soft-binding value is the fingerprint digest: base64 of its 32 bytes, or hex."""
    text = value.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return text.lower()
    try:
        raw = base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise DomainError(
            "binding_value_invalid", "value must be base64 of the 32-byte fingerprint digest", 400
        ) from exc
    if len(raw) != 32:
        raise DomainError(
            "binding_value_invalid", "value must be base64 of the 32-byte fingerprint digest", 400
        )
    return raw.hex()
