"""C2PA Content Credentials with c2pa-python on real media: sign, read back, tamper, trust."""

from __future__ import annotations

import json
import os
import stat
import struct
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from frames.descriptor import GRID_BYTES
from frames.samples import sample_clip
from provenance.c2pa import (
    REGISTRATION_LABEL,
    SOFT_BINDING_ALG,
    SOFT_BINDING_LABEL,
    C2paIdentityError,
    C2paInfo,
    C2paSignError,
    C2paUnreadable,
    SigningIdentity,
    ensure_default_identity,
    load_identity,
    read_credentials,
    registration_reference,
    resolve_identity,
    sign_registered,
)
from provenance.c2pa.certs import C2PA_CLAIM_SIGNING, ROOT_CERT, ROOT_KEY, SIGNER_CERT, SIGNER_KEY
from provenance.core.config import DecodeLimits
from provenance.core.errors import DomainError
from provenance.fingerprint import VERSION_1, Fingerprint, FrameHash, compute_fingerprint
from provenance.models import Registration
from tests.provenance.media_fixtures import astronaut

CAPTURED_AT = datetime(2025, 5, 4, 12, 30, tzinfo=UTC)
RECEIPT: dict[str, Any] = {
    "leaf_index": 7,
    "tree_size": 8,
    "root": "ab" * 32,
    "anchor": {
        "status": "anchored",
        "chain_id": 31337,
        "contract": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "transaction": "0x" + "cd" * 32,
        "block_number": 42,
    },
}


def _registration(kind: str, duration: float) -> Registration:
    frames = (FrameHash(t=0.0, pdq=bytes(range(32)), quality=90, grid=bytes(GRID_BYTES)),)
    fingerprint = Fingerprint(
        version=VERSION_1,
        kind=kind,
        width=640,
        height=272,
        duration=duration,
        sample_fps=4.0,
        frames=frames,
    )
    return Registration(
        id="reg_0123456789abcdef01234567",
        device_id="dev_abc",
        kind=kind,
        content_sha256="12" * 32,
        fingerprint=fingerprint.encode(),
        fingerprint_digest=fingerprint.digest(),
        manifest="{}",
        signature="sig",
        captured_at=CAPTURED_AT,
        received_at=CAPTURED_AT,
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("c2pa")


@pytest.fixture(scope="module")
def identity(workdir: Path) -> SigningIdentity:
    return ensure_default_identity(workdir / "data" / "c2pa")


@pytest.fixture(scope="module")
def other_identity(workdir: Path) -> SigningIdentity:
    return ensure_default_identity(workdir / "other" / "c2pa")


@pytest.fixture(scope="module")
def video_reference() -> dict[str, Any]:
    return registration_reference(_registration("video", 10.0), RECEIPT)


@pytest.fixture(scope="module")
def signed_clip(
    workdir: Path, identity: SigningIdentity, video_reference: dict[str, Any]
) -> tuple[Path, str]:
    dst = workdir / "bikes-signed.mp4"
    label = sign_registered(sample_clip("bikes.mp4"), dst, identity=identity, soft_binding=video_reference)
    return dst, label


@pytest.fixture(scope="module")
def photo(workdir: Path) -> Path:
    return astronaut(workdir / "astronaut.jpg")


@pytest.fixture(scope="module")
def signed_photo(workdir: Path, identity: SigningIdentity, photo: Path) -> tuple[Path, str]:
    dst = workdir / "astronaut-signed.jpg"
    reference = registration_reference(_registration("image", 0.0), RECEIPT)
    return dst, sign_registered(photo, dst, identity=identity, soft_binding=reference)


def _read(path: Path, anchors: bytes | None) -> C2paInfo:
    info = read_credentials(path, anchors)
    assert info is not None
    json.dumps(info.to_json())  # always plain JSON
    return info


# --- identity ---


def test_default_identity_is_made_once_and_reused(workdir: Path, identity: SigningIdentity) -> None:
    directory = workdir / "data" / "c2pa"
    again = ensure_default_identity(directory)
    assert again == identity
    for name in (ROOT_KEY, SIGNER_KEY):
        assert stat.S_IMODE(os.stat(directory / name).st_mode) == 0o600
    assert identity.alg == "es256"
    assert identity.trust_anchors_pem == (directory / ROOT_CERT).read_bytes()


def test_leaf_has_the_c2pa_signer_profile(identity: SigningIdentity) -> None:
    leaf = identity.certificate
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    ekus = set(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert ekus == {ExtendedKeyUsageOID.EMAIL_PROTECTION, C2PA_CLAIM_SIGNING}
    leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert identity.trust_anchors_pem is not None
    root = x509.load_pem_x509_certificate(identity.trust_anchors_pem)
    leaf.verify_directly_issued_by(root)
    assert len(x509.load_pem_x509_certificates(identity.cert_chain_pem)) == 1  # the root is not sent


def test_leaf_near_expiry_is_renewed_under_the_same_root(tmp_path: Path) -> None:
    first = ensure_default_identity(tmp_path)
    later = ensure_default_identity(tmp_path, now=datetime.now(UTC) + timedelta(days=2 * 365))
    assert later.cert_chain_pem != first.cert_chain_pem
    assert later.trust_anchors_pem == first.trust_anchors_pem
    assert stat.S_IMODE(os.stat(tmp_path / SIGNER_KEY).st_mode) == 0o600


def test_operator_identity_from_pem_paths(
    workdir: Path, identity: SigningIdentity, other_identity: SigningIdentity
) -> None:
    directory = workdir / "data" / "c2pa"
    loaded = load_identity(directory / SIGNER_CERT, directory / SIGNER_KEY, directory / ROOT_CERT)
    assert loaded == identity
    # A chain file that also carries the root: the root is dropped from what is signed.
    chain = workdir / "chain-with-root.pem"
    chain.write_bytes((directory / SIGNER_CERT).read_bytes() + (directory / ROOT_CERT).read_bytes())
    assert load_identity(chain, directory / SIGNER_KEY).cert_chain_pem == identity.cert_chain_pem
    with pytest.raises(C2paIdentityError) as wrong_key:
        load_identity(directory / SIGNER_CERT, workdir / "other" / "c2pa" / SIGNER_KEY)
    assert wrong_key.value.code == "c2pa_identity_invalid"
    with pytest.raises(C2paIdentityError):
        resolve_identity(workdir / "data", cert_chain_path=directory / SIGNER_CERT)
    with pytest.raises(C2paIdentityError):
        load_identity(workdir / "missing.pem", directory / SIGNER_KEY)
    # Without cert and key: the embedded default under DATA_DIR/c2pa, plus extra anchors if given.
    assert resolve_identity(workdir / "data") == identity
    extra = resolve_identity(workdir / "data", trust_anchors_path=workdir / "other" / "c2pa" / ROOT_CERT)
    assert extra.trust_anchors_pem == (identity.trust_anchors_pem or b"") + (
        other_identity.trust_anchors_pem or b""
    )


# --- video ---


def test_signed_clip_is_valid_and_trusted_with_our_anchor(
    signed_clip: tuple[Path, str], identity: SigningIdentity
) -> None:
    path, label = signed_clip
    info = _read(path, identity.trust_anchors_pem)
    assert info.present and info.manifest_id == label and label.startswith("urn:c2pa:")
    assert info.validation_state == "Trusted"
    assert info.signature_valid and info.trusted and info.hard_binding_valid is True
    assert info.failures == ()
    codes = {c.code for c in info.validation_codes}
    assert {"claimSignature.validated", "signingCredential.trusted", "assertion.bmffHash.match"} <= codes
    assert info.claim_generator is not None and info.claim_generator.startswith("provenance/")
    assert info.signer["common_name"] == "Provenance C2PA signer"
    assert info.signer["issuer"] == "Provenance service (embedded default)"
    assert {"c2pa.actions.v2", "c2pa.hash.bmff.v3", SOFT_BINDING_LABEL, REGISTRATION_LABEL} <= set(
        info.assertion_labels
    )


def test_signed_clip_without_our_anchor_is_valid_but_not_trusted(
    signed_clip: tuple[Path, str], other_identity: SigningIdentity
) -> None:
    for anchors in (None, other_identity.trust_anchors_pem):
        info = _read(signed_clip[0], anchors)
        assert info.validation_state == "Valid"
        assert info.signature_valid and not info.trusted and info.hard_binding_valid is True
        assert info.failures == ("signingCredential.untrusted",)


def test_soft_binding_and_registration_round_trip(
    signed_clip: tuple[Path, str], identity: SigningIdentity, video_reference: dict[str, Any]
) -> None:
    info = _read(signed_clip[0], identity.trust_anchors_pem)
    assert info.soft_binding is not None
    assert info.soft_binding["alg"] == SOFT_BINDING_ALG
    assert info.soft_binding["blocks"] == [
        {"scope": {"timespan": {"start": 0, "end": 10_000}}, "value": video_reference["fingerprint_digest"]}
    ]
    registration = info.registration
    assert registration is not None and info.registration_id == "reg_0123456789abcdef01234567"
    assert registration["schema"] == "io.provenance.registration/v1"
    assert registration["content_sha256"] == "12" * 32
    assert registration["fingerprint_digest"] == video_reference["fingerprint_digest"]
    assert registration["captured_at"] == "2025-05-04T12:30:00.000Z"
    assert registration["device_id"] == "dev_abc"
    assert registration["leaf_index"] == 7
    assert registration["anchor"] == {**RECEIPT["anchor"], "root": "ab" * 32, "tree_size": 8}


def _mp4_boxes(data: bytes | bytearray) -> Iterator[tuple[bytes, int, int]]:
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, offset)
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, offset + 8)
        elif size == 0:
            size = len(data) - offset
        yield kind, offset, size
        offset += size


def test_pixels_changed_after_signing_break_the_hard_binding(
    signed_clip: tuple[Path, str], identity: SigningIdentity, tmp_path: Path
) -> None:
    data = bytearray(signed_clip[0].read_bytes())
    _, offset, size = next(box for box in _mp4_boxes(data) if box[0] == b"mdat")
    middle = offset + size // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    tampered = tmp_path / "tampered.mp4"
    tampered.write_bytes(data)

    info = _read(tampered, identity.trust_anchors_pem)
    assert info.hard_binding_valid is False
    assert "assertion.bmffHash.mismatch" in info.failures
    assert info.validation_state == "Invalid"
    # The signature over the claim is still fine: only the media no longer matches it.
    assert info.signature_valid and info.trusted
    assert info.registration is not None  # still readable, to say which original it claims


@pytest.mark.parametrize(
    ("offset", "expect"),
    [
        (200, "unparseable"),  # the JUMBF box structure: c2pa raises Verify, we report it
        (1000, "assertion.hashedURI.mismatch"),  # inside an assertion: the claim no longer matches it
        (3000, "claimSignature.mismatch"),  # inside the COSE signature
    ],
)
def test_overwritten_manifest_is_reported_not_raised(
    signed_clip: tuple[Path, str], identity: SigningIdentity, tmp_path: Path, offset: int, expect: str
) -> None:
    data = bytearray(signed_clip[0].read_bytes())
    _, start, _ = next(box for box in _mp4_boxes(data) if box[0] == b"uuid")
    data[start + offset : start + offset + 16] = bytes(
        b ^ 0xFF for b in data[start + offset : start + offset + 16]
    )
    broken = tmp_path / "broken-manifest.mp4"
    broken.write_bytes(data)
    info = _read(broken, identity.trust_anchors_pem)
    assert info.present and info.validation_state == "Invalid"
    if expect == "unparseable":
        assert info.error and not info.signature_valid and info.hard_binding_valid is None
    else:
        assert expect in info.failures
    if expect == "claimSignature.mismatch":
        assert not info.signature_valid and not info.trusted


def test_edited_registration_assertion_is_not_handed_out(
    signed_clip: tuple[Path, str], identity: SigningIdentity, tmp_path: Path
) -> None:
    data = signed_clip[0].read_bytes()
    assert data.count(b"reg_0123456789abcdef01234567") == 1
    forged = tmp_path / "forged.mp4"
    forged.write_bytes(data.replace(b"reg_0123456789abcdef01234567", b"reg_0123456789abcdef0123456X"))
    info = _read(forged, identity.trust_anchors_pem)
    # Still well-formed CBOR, so it parses; but its hash in the signed claim no longer matches.
    assert info.validation_state == "Invalid" and "assertion.hashedURI.mismatch" in info.failures
    assert info.registration is None and info.registration_id is None
    assert info.soft_binding is not None  # untouched assertions are still reported


def test_files_without_credentials_give_none(photo: Path) -> None:
    assert read_credentials(sample_clip("bikes.mp4"), None) is None
    assert read_credentials(photo, None) is None


@pytest.mark.parametrize("name", ["random.mp4", "random.bin", "empty.jpg", "text.png"])
def test_garbage_never_crashes(tmp_path: Path, name: str) -> None:
    content = {"random.mp4": os.urandom(4096), "random.bin": os.urandom(100), "empty.jpg": b""}
    path = tmp_path / name
    path.write_bytes(content.get(name, b"hello, not a picture"))
    assert read_credentials(path, None) is None


def test_truncated_signed_clip_is_a_clear_error(signed_clip: tuple[Path, str], tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(signed_clip[0].read_bytes()[:3000])
    with pytest.raises(C2paUnreadable) as err:
        read_credentials(truncated, None)
    assert err.value.code == "c2pa_unreadable" and err.value.status == 422


# --- photos ---


def test_signed_photo_is_trusted_and_round_trips(
    signed_photo: tuple[Path, str], identity: SigningIdentity
) -> None:
    path, label = signed_photo
    info = _read(path, identity.trust_anchors_pem)
    assert info.manifest_id == label and info.validation_state == "Trusted"
    assert info.signature_valid and info.trusted and info.hard_binding_valid is True
    assert "assertion.dataHash.match" in {c.code for c in info.validation_codes}
    assert info.soft_binding is not None
    assert info.soft_binding["blocks"][0]["scope"] == {}  # a still has no timespan
    assert info.registration is not None and info.registration["content_sha256"] == "12" * 32
    assert _read(path, None).validation_state == "Valid"


def test_photo_pixels_changed_after_signing(
    signed_photo: tuple[Path, str], identity: SigningIdentity, tmp_path: Path
) -> None:
    data = bytearray(signed_photo[0].read_bytes())
    start = data.rfind(b"\xff\xda") + 2000  # inside the entropy-coded scan, past the manifest
    changed = 0
    for i in range(start, len(data) - 16):
        # Flip a low bit of ordinary bytes only, so no JPEG marker appears or disappears.
        if data[i] not in (0x00, 0x01, 0xFE, 0xFF) and data[i - 1] != 0xFF:
            data[i] ^= 0x01
            changed += 1
            if changed == 32:
                break
    tampered = tmp_path / "tampered.jpg"
    tampered.write_bytes(data)
    info = _read(tampered, identity.trust_anchors_pem)
    assert info.hard_binding_valid is False and "assertion.dataHash.mismatch" in info.failures
    assert info.signature_valid and info.validation_state == "Invalid"


def test_png_photo(tmp_path: Path, identity: SigningIdentity) -> None:
    png = astronaut(tmp_path / "astronaut.png")
    dst = tmp_path / "signed.png"
    reference = registration_reference(_registration("image", 0.0), {"anchor": {"status": "pending"}})
    label = sign_registered(png, dst, identity=identity, soft_binding=reference)
    info = _read(dst, identity.trust_anchors_pem)
    assert info.manifest_id == label and info.trusted and info.hard_binding_valid is True
    assert info.registration is not None and info.registration["anchor"] == {"status": "pending"}


# --- signing refusals ---


def test_unsupported_media_and_bad_references(
    tmp_path: Path, identity: SigningIdentity, video_reference: dict[str, Any]
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not media")
    with pytest.raises(C2paSignError) as err:
        sign_registered(text, tmp_path / "out.txt", identity=identity, soft_binding=video_reference)
    assert err.value.code == "c2pa_unsupported_media" and err.value.status == 415
    with pytest.raises(ValueError):
        sign_registered(
            sample_clip("bikes.mp4"),
            tmp_path / "out.mp4",
            identity=identity,
            soft_binding={**video_reference, "fingerprint_digest": "nothex"},
        )
    assert not (tmp_path / "out.mp4").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]  # no temporary left behind


def test_signed_clip_keeps_the_registered_fingerprint(signed_clip: tuple[Path, str]) -> None:
    """The manifest goes into its own box: frames, and so the fingerprint, are untouched."""
    original = sample_clip("bikes.mp4")
    limits = DecodeLimits()
    assert compute_fingerprint(signed_clip[0], limits=limits) == compute_fingerprint(original, limits=limits)
    assert signed_clip[0].read_bytes() != original.read_bytes()


def test_unusable_trust_anchors_are_a_configuration_error(signed_clip: tuple[Path, str]) -> None:
    with pytest.raises(DomainError) as err:
        read_credentials(signed_clip[0], b"\xff\xfe not a certificate")
    assert err.value.code == "c2pa_trust_anchors_invalid"
