"""Reading and validating C2PA Content Credentials in a submitted file, with c2pa-python.

What a verifier needs is split into separate answers, because they fail separately:

- `signature_valid`: the claim's COSE signature verifies against the certificate in it;
- `trusted`: that certificate chains to one of the trust anchors we were given;
- `hard_binding_valid`: the data hash (JPEG, PNG) or BMFF hash (MP4) in the manifest still
  matches the file's bytes. A validly signed file whose pixels changed afterwards has a valid
  signature and a broken hard binding (`assertion.dataHash.mismatch` /
  `assertion.bmffHash.mismatch`).

Our own assertions (`c2pa.soft-binding` with our algorithm, `io.provenance.registration`) are
returned as found. They are claims of whoever signed the file: rely on them only when
`trusted` is true with our own trust anchors, and check them against the registry.

The file is hostile input: remote manifests and OCSP are never fetched (no requests to
addresses chosen by an uploader), and every field of the manifest JSON is type-checked.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import c2pa

from provenance.core.errors import DomainError

log = logging.getLogger(__name__)

SOFT_BINDING_LABEL = "c2pa.soft-binding"
SOFT_BINDING_ALG = "io.provenance.pdq-grid.v1"
REGISTRATION_LABEL = "io.provenance.registration"

# Validation codes of the hard-binding assertions (data hash, BMFF hash, box hash, collection hash).
_HARD_BINDING_PREFIXES = (
    "assertion.dataHash.",
    "assertion.bmffHash.",
    "assertion.boxesHash.",
    "assertion.collectionHash.",
)
# Failures that mean the signature itself (not only trust in its signer) is bad.
_SIGNATURE_FAILURE_PREFIXES = ("claimSignature.", "signingCredential.invalid", "signingCredential.revoked")
_SIGNATURE_FAILURE_CODES = {"signingCredential.expired", "timeStamp.mismatch", "general.error"}


class C2paUnreadable(DomainError):
    """The file looks like a format that can carry Content Credentials, but cannot be parsed."""

    status = 422

    def __init__(self, detail: str) -> None:
        super().__init__("c2pa_unreadable", detail)


@dataclass(frozen=True)
class ValidationCode:
    """One validation status entry as c2pa reports it."""

    code: str
    outcome: str
    """success, informational or failure"""
    url: str | None = None
    explanation: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "outcome": self.outcome, "url": self.url, "explanation": self.explanation}


@dataclass(frozen=True)
class C2paInfo:
    """The Content Credentials found in one file, and what their validation says."""

    present: bool
    manifest_id: str | None
    claim_generator: str | None
    signer: dict[str, str | None]
    """issuer (organisation), common_name, alg, cert_serial_number of the signing certificate"""
    signed_at: str | None
    """time from a trusted timestamp when the signature carries one; None otherwise"""
    validation_state: str | None
    """c2pa's verdict: Invalid, Valid (signature fine, signer not trusted) or Trusted"""
    signature_valid: bool
    trusted: bool
    hard_binding_valid: bool | None
    """None when c2pa reported nothing about a hard binding (e.g. the manifest could not be read)"""
    validation_codes: tuple[ValidationCode, ...] = ()
    assertion_labels: tuple[str, ...] = ()
    soft_binding: dict[str, Any] | None = None
    """our c2pa.soft-binding assertion (alg SOFT_BINDING_ALG), if present and unaltered since signing"""
    registration: dict[str, Any] | None = None
    """our io.provenance.registration assertion, if present and unaltered since signing"""
    error: str | None = None
    """set when a manifest is present but c2pa could not parse or verify its structure"""
    failures: tuple[str, ...] = ()
    """the failure codes alone, for quick checks"""

    @property
    def registration_id(self) -> str | None:
        value = (self.registration or {}).get("registration_id")
        return value if isinstance(value, str) else None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON for the `c2pa` field of a verification result."""
        return {
            "present": self.present,
            "manifest_id": self.manifest_id,
            "claim_generator": self.claim_generator,
            "signer": dict(self.signer),
            "signed_at": self.signed_at,
            "validation_state": self.validation_state,
            "signature_valid": self.signature_valid,
            "trusted": self.trusted,
            "hard_binding_valid": self.hard_binding_valid,
            "failures": list(self.failures),
            "validation_codes": [c.to_json() for c in self.validation_codes],
            "assertion_labels": list(self.assertion_labels),
            "soft_binding": self.soft_binding,
            "registration": self.registration,
            "error": self.error,
        }


def reader_settings(trust_anchors_pem: bytes | None) -> dict[str, Any]:
    """c2pa settings for reading untrusted uploads: verify everything, fetch nothing."""
    settings: dict[str, Any] = {
        "verify": {
            "verify_after_reading": True,
            "verify_trust": True,
            "remote_manifest_fetch": False,
            "ocsp_fetch": False,
        },
        "core": {"allowed_network_hosts": []},
    }
    if trust_anchors_pem:
        settings["trust"] = {"user_anchors": trust_anchors_pem.decode("ascii")}
    return settings


def read_credentials(path: Path, trust_anchors_pem: bytes | None) -> C2paInfo | None:
    """The Content Credentials in `path`, validated; None when it carries none.

    None also for formats that cannot carry C2PA (nothing to find). A container that claims a
    supported format but cannot be parsed raises `c2pa_unreadable` (422). A manifest that is
    present but structurally broken (e.g. its JUMBF was overwritten) comes back as an
    `Invalid` result with `error` set, since that is itself evidence of tampering.
    """
    try:
        context = c2pa.Context.from_dict(reader_settings(trust_anchors_pem))
    except (c2pa.C2paError, UnicodeDecodeError) as exc:
        raise DomainError(
            "c2pa_trust_anchors_invalid", f"c2pa rejected the trust anchors: {exc}", 500
        ) from None
    try:
        with context, path.open("rb") as stream:
            # No format: c2pa detects the container from the bytes, whatever the file is named.
            reader = c2pa.Reader.try_create(None, stream, None, context)
            if reader is None:
                return None
            with reader:
                store = json.loads(reader.json())
    except OSError as exc:
        raise C2paUnreadable(f"cannot read the file: {exc.strerror or exc}") from None
    except c2pa.C2paError.ManifestNotFound:
        return None
    except c2pa.C2paError.NotSupported:
        return None
    except _MANIFEST_ERRORS as exc:
        return _broken_manifest(str(exc))
    except c2pa.C2paError as exc:
        raise C2paUnreadable(f"c2pa could not parse the file: {exc}") from None
    except (ValueError, TypeError, RecursionError) as exc:
        # json.loads or ctypes on a hostile manifest; never a raw exception to the caller.
        log.warning("c2pa read of %s failed: %r", path, exc)
        raise C2paUnreadable("c2pa returned a manifest store that cannot be decoded") from None
    if not isinstance(store, dict):
        raise C2paUnreadable("c2pa returned a manifest store that is not an object")
    return info_from_store(store)


_MANIFEST_ERRORS: tuple[type[BaseException], ...] = (
    c2pa.C2paError.Verify,
    c2pa.C2paError.Json,
    c2pa.C2paError.Manifest,
    c2pa.C2paError.Decoding,
    c2pa.C2paError.Signature,
    c2pa.C2paError.Assertion,
    c2pa.C2paError.AssertionNotFound,
    c2pa.C2paError.RemoteManifest,
    c2pa.C2paError.ResourceNotFound,
)


def _broken_manifest(error: str) -> C2paInfo:
    return C2paInfo(
        present=True,
        manifest_id=None,
        claim_generator=None,
        signer={"issuer": None, "common_name": None, "alg": None, "cert_serial_number": None},
        signed_at=None,
        validation_state="Invalid",
        signature_valid=False,
        trusted=False,
        hard_binding_valid=None,
        error=error[:500],
    )


def info_from_store(store: dict[str, Any]) -> C2paInfo:
    """Interpret c2pa's manifest-store JSON (`Reader.json()`); tolerant of missing or odd fields."""
    manifest_id = _str(store.get("active_manifest"))
    manifests = store.get("manifests")
    manifest = manifests.get(manifest_id) if isinstance(manifests, dict) and manifest_id else None
    manifest = manifest if isinstance(manifest, dict) else {}

    codes = _validation_codes(store)
    success = {c.code for c in codes if c.outcome == "success"}
    failure = [c.code for c in codes if c.outcome == "failure"]

    signature_valid = "claimSignature.validated" in success and not any(
        code.startswith(_SIGNATURE_FAILURE_PREFIXES) or code in _SIGNATURE_FAILURE_CODES for code in failure
    )
    trusted = (
        signature_valid
        and "signingCredential.trusted" in success
        and not any(code.startswith("signingCredential.") for code in failure)
    )
    hard_failures = [code for code in failure if code.startswith(_HARD_BINDING_PREFIXES)]
    hard_matches = [c for c in success if c.startswith(_HARD_BINDING_PREFIXES) and c.endswith(".match")]
    hard_binding_valid: bool | None = False if hard_failures else (True if hard_matches else None)

    signature_info = manifest.get("signature_info")
    signature_info = signature_info if isinstance(signature_info, dict) else {}
    assertions = manifest.get("assertions")
    assertions = [a for a in assertions if isinstance(a, dict)] if isinstance(assertions, list) else []
    labels = tuple(label for a in assertions if (label := _str(a.get("label"))) is not None)
    intact = _intact_labels(codes)

    return C2paInfo(
        present=True,
        manifest_id=manifest_id,
        claim_generator=_claim_generator(manifest),
        signer={
            "issuer": _str(signature_info.get("issuer")),
            "common_name": _str(signature_info.get("common_name")),
            "alg": _str(signature_info.get("alg")),
            "cert_serial_number": _str(signature_info.get("cert_serial_number")),
        },
        signed_at=_str(signature_info.get("time")),
        validation_state=_str(store.get("validation_state")),
        signature_valid=signature_valid,
        trusted=trusted,
        hard_binding_valid=hard_binding_valid,
        validation_codes=tuple(codes),
        assertion_labels=labels,
        soft_binding=_our_soft_binding(assertions, intact),
        registration=_assertion_data(assertions, REGISTRATION_LABEL, intact),
        failures=tuple(failure),
    )


def _validation_codes(store: dict[str, Any]) -> list[ValidationCode]:
    """The active manifest's success, informational and failure entries.

    Older stores carry only `validation_status` (the failures); use it when the results are absent.
    """
    results = store.get("validation_results")
    active = results.get("activeManifest") if isinstance(results, dict) else None
    entries: list[tuple[str, Any]] = []
    if isinstance(active, dict):
        for outcome in ("success", "informational", "failure"):
            items = active.get(outcome)
            if isinstance(items, list):
                entries.extend((outcome, item) for item in items)
    else:
        status = store.get("validation_status")
        if isinstance(status, list):
            entries.extend(("failure", item) for item in status)
    codes = []
    for outcome, item in entries:
        if isinstance(item, dict) and (code := _str(item.get("code"))) is not None:
            codes.append(ValidationCode(code, outcome, _str(item.get("url")), _str(item.get("explanation"))))
    return codes


def _claim_generator(manifest: dict[str, Any]) -> str | None:
    infos = manifest.get("claim_generator_info")
    if isinstance(infos, list) and infos and isinstance(infos[0], dict):
        name, version = _str(infos[0].get("name")), _str(infos[0].get("version"))
        if name:
            return f"{name}/{version}" if version else name
    return _str(manifest.get("claim_generator"))


def _base_label(label: str) -> str:
    """`c2pa.soft-binding__2` and `c2pa.actions.v2` name the same kinds as their base labels."""
    return label.split("__", 1)[0]


def _intact_labels(codes: list[ValidationCode]) -> set[str]:
    """Labels of assertions whose hash in the signed claim matched their bytes.

    An assertion altered after signing still parses, so its content is only ours to report
    when c2pa says `assertion.hashedURI.match` for it and no failure points at it.
    """

    def label(url: str | None) -> str | None:
        marker = "/c2pa.assertions/"
        return url.rsplit(marker, 1)[1] if url and marker in url else None

    matched = {
        label(c.url) for c in codes if c.outcome == "success" and c.code == "assertion.hashedURI.match"
    }
    failed = {label(c.url) for c in codes if c.outcome == "failure"}
    return {lbl for lbl in matched - failed if lbl is not None}


def _assertion_data(assertions: list[dict[str, Any]], label: str, intact: set[str]) -> dict[str, Any] | None:
    for assertion in assertions:
        full = _str(assertion.get("label")) or ""
        if _base_label(full) == label and full in intact and isinstance(assertion.get("data"), dict):
            data: dict[str, Any] = assertion["data"]
            return data
    return None


def _our_soft_binding(assertions: list[dict[str, Any]], intact: set[str]) -> dict[str, Any] | None:
    for assertion in assertions:
        full = _str(assertion.get("label")) or ""
        data = assertion.get("data")
        if (
            _base_label(full) == SOFT_BINDING_LABEL
            and full in intact
            and isinstance(data, dict)
            and data.get("alg") == SOFT_BINDING_ALG
        ):
            return data
    return None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
