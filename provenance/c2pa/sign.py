"""Writing C2PA Content Credentials onto a registered original (MP4 video, JPEG or PNG photo).

The manifest says three things, so C2PA tools and our verifier can each find what they need:

- `c2pa.actions` with `c2pa.created` (digital capture): what any C2PA reader shows;
- `c2pa.soft-binding` with our algorithm `io.provenance.pdq-grid.v1`: one block whose value is
  the registration's fingerprint digest (hex SHA-256 of the binary fingerprint v1), scoped to
  the clip's timespan. A soft binding survives what breaks the hard binding (re-encoding,
  stripping the manifest): recompute the fingerprint, find the registration, and the manifest
  with it;
- `io.provenance.registration`: the registration id, content hash of the original, fingerprint
  digest, capture time, and where its Merkle root was anchored (chain, contract, transaction,
  block, root), so anyone can check the receipt on chain without asking us.

c2pa adds the hard binding itself (`c2pa.hash.data` for JPEG/PNG, `c2pa.hash.bmff.v3` for MP4).
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import c2pa

from provenance import __version__
from provenance.c2pa.certs import SigningIdentity
from provenance.c2pa.read import REGISTRATION_LABEL, SOFT_BINDING_ALG, SOFT_BINDING_LABEL
from provenance.core.errors import DomainError
from provenance.core.timeutil import iso
from provenance.fingerprint import Fingerprint
from provenance.models import Registration

REGISTRATION_SCHEMA = "io.provenance.registration/v1"
DIGITAL_CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
CLAIM_GENERATOR = "provenance"
_HEX64 = re.compile(r"[0-9a-f]{64}")
# ISO BMFF major brands that are still pictures, not video: c2pa would sign them, but not as MP4.
_IMAGE_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}


class C2paSignError(DomainError):
    """The media cannot carry a manifest, or c2pa refused to sign it."""

    status = 422


@dataclass(frozen=True)
class RegistrationReference:
    """What the manifest records about a registration; built with `registration_reference`."""

    registration_id: str
    content_sha256: str
    fingerprint_digest: str
    device_id: str | None = None
    captured_at: str | None = None
    kind: str | None = None
    duration_ms: int | None = None
    anchor: Mapping[str, Any] | None = None
    leaf_index: int | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RegistrationReference:
        """Check the keys a manifest cannot do without; a wrong reference is a bug, so fail loudly."""
        for key in ("content_sha256", "fingerprint_digest"):
            if not isinstance(data.get(key), str) or not _HEX64.fullmatch(data[key]):
                raise ValueError(f"{key} must be lowercase hex SHA-256")
        if not isinstance(data.get("registration_id"), str) or not data["registration_id"]:
            raise ValueError("registration_id is required")
        duration = data.get("duration_ms")
        if duration is not None and (not isinstance(duration, int) or duration < 0):
            raise ValueError("duration_ms must be a non-negative integer")
        anchor = data.get("anchor")
        if anchor is not None and not isinstance(anchor, Mapping):
            raise ValueError("anchor must be a mapping")
        return cls(
            registration_id=data["registration_id"],
            content_sha256=data["content_sha256"],
            fingerprint_digest=data["fingerprint_digest"],
            device_id=data.get("device_id"),
            captured_at=data.get("captured_at"),
            kind=data.get("kind"),
            duration_ms=duration,
            anchor=anchor,
            leaf_index=data.get("leaf_index"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "registration_id": self.registration_id,
            "content_sha256": self.content_sha256,
            "fingerprint_digest": self.fingerprint_digest,
            "device_id": self.device_id,
            "captured_at": self.captured_at,
            "kind": self.kind,
            "duration_ms": self.duration_ms,
            "anchor": dict(self.anchor) if self.anchor is not None else None,
            "leaf_index": self.leaf_index,
        }


def registration_reference(registration: Registration, receipt: Mapping[str, Any]) -> dict[str, Any]:
    """The `soft_binding` argument of `sign_registered` for a stored registration and its receipt.

    `receipt` is `provenance.receipts.build_receipt(...)`; while its root is not anchored yet the
    anchor says `{"status": "pending"}` and has no chain fields.
    """
    fingerprint = Fingerprint.decode(registration.fingerprint)
    receipt_anchor = receipt.get("anchor") or {}
    anchor: dict[str, Any] = {"status": receipt_anchor.get("status", "pending")}
    if anchor["status"] == "anchored":
        anchor.update(
            chain_id=receipt_anchor.get("chain_id"),
            contract=receipt_anchor.get("contract"),
            transaction=receipt_anchor.get("transaction"),
            block_number=receipt_anchor.get("block_number"),
            root=receipt.get("root"),
            tree_size=receipt.get("tree_size"),
        )
    return RegistrationReference(
        registration_id=registration.id,
        content_sha256=registration.content_sha256,
        fingerprint_digest=registration.fingerprint_digest,
        device_id=registration.device_id,
        captured_at=iso(registration.captured_at),
        kind=fingerprint.kind,
        duration_ms=round(fingerprint.duration * 1000) if fingerprint.kind == "video" else None,
        anchor=anchor,
        leaf_index=receipt.get("leaf_index"),
    ).to_dict()


def media_type(path: Path) -> str:
    """The MIME type to sign `path` as, from its first bytes (uploads have arbitrary names)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise C2paSignError(
            "c2pa_media_unreadable", f"cannot read {path.name}: {exc.strerror or exc}"
        ) from None
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[4:8] == b"ftyp" and head[8:12] not in _IMAGE_BRANDS:
        return "video/quicktime" if head[8:12] == b"qt  " else "video/mp4"
    raise C2paSignError(
        "c2pa_unsupported_media", "Content Credentials are written only onto MP4, JPEG and PNG", 415
    )


def build_manifest(reference: RegistrationReference, *, mime: str) -> dict[str, Any]:
    """The manifest definition c2pa's Builder takes (c2pa adds the hard binding and signature)."""
    created: dict[str, Any] = {
        "action": "c2pa.created",
        "digitalSourceType": DIGITAL_CAPTURE,
        "softwareAgent": {"name": CLAIM_GENERATOR, "version": __version__},
    }
    if reference.captured_at:
        created["when"] = reference.captured_at
    scope: dict[str, Any] = {}
    if reference.duration_ms is not None:
        scope["timespan"] = {"start": 0, "end": reference.duration_ms}
    soft_binding = {
        "alg": SOFT_BINDING_ALG,
        "name": "fingerprint v1 of the registered original (per-frame PDQ and 8x8 grid descriptors)",
        "alg_params": "value: lowercase hex SHA-256 of the binary fingerprint v1; the registry's lookup key",
        "blocks": [{"scope": scope, "value": reference.fingerprint_digest}],
        "pad": [],
    }
    registration = {
        "schema": REGISTRATION_SCHEMA,
        "registration_id": reference.registration_id,
        "device_id": reference.device_id,
        "captured_at": reference.captured_at,
        # Of the registered original: the signed copy differs by the manifest it now carries.
        "content_sha256": reference.content_sha256,
        "fingerprint_digest": reference.fingerprint_digest,
        "anchor": dict(reference.anchor) if reference.anchor is not None else {"status": "pending"},
        "leaf_index": reference.leaf_index,
    }
    return {
        "claim_generator_info": [{"name": CLAIM_GENERATOR, "version": __version__}],
        "label": f"urn:c2pa:{uuid.uuid4()}",
        "format": mime,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [created]}},
            {"label": SOFT_BINDING_LABEL, "data": soft_binding},
            {"label": REGISTRATION_LABEL, "data": {k: v for k, v in registration.items() if v is not None}},
        ],
    }


def sign_registered(
    src: Path,
    dst: Path,
    *,
    identity: SigningIdentity,
    soft_binding: Mapping[str, Any],
    store_to: Path | None = None,
) -> str:
    """Write `src` with a signed C2PA manifest to `dst`; returns the manifest label (its id).

    `soft_binding` is `registration_reference(...)`. `dst` appears complete or not at all.
    `store_to` receives the manifest store bytes (application/c2pa), what the soft-binding
    resolution API serves for a copy whose metadata was stripped.
    """
    if src.resolve() == dst.resolve():
        raise ValueError("sign into a new file: c2pa reads the source while writing the destination")
    reference = RegistrationReference.from_mapping(soft_binding)
    mime = media_type(src)
    manifest = build_manifest(reference, mime=mime)
    settings = {
        "builder": {"thumbnail": {"enabled": False}},
        "verify": {"verify_after_sign": True, "remote_manifest_fetch": False, "ocsp_fetch": False},
    }
    fd, tmp_name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with (
            os.fdopen(fd, "w+b") as out,
            src.open("rb") as source,
            c2pa.Context.from_dict(settings) as context,
            c2pa.Builder(manifest, context=context) as builder,
            _signer(identity) as signer,
        ):
            store = builder.sign(signer, mime, source, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dst)
        if store_to is not None:
            store_to.write_bytes(bytes(store))
    except c2pa.C2paError as exc:
        raise C2paSignError("c2pa_sign_failed", f"c2pa could not sign {src.name}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    label: str = manifest["label"]
    return label


def _signer(identity: SigningIdentity) -> Any:
    info = c2pa.C2paSignerInfo(
        alg=identity.alg.encode("ascii"),
        sign_cert=identity.cert_chain_pem,
        private_key=identity.private_key_pem,
        ta_url=identity.tsa_url.encode("ascii") if identity.tsa_url else None,
    )
    return c2pa.Signer.from_info(info)
