"""The service's X.509 signing identity for C2PA Content Credentials.

C2PA signs with X.509 certificates, not with the Ed25519 device keys. Production points the
service at a PEM certificate chain and key from a real CA (`load_identity`). The embedded
default (`ensure_default_identity`) makes, once, under `DATA_DIR/c2pa/`:

============== ========================================================================
file           contents
============== ========================================================================
root-ca.key    P-256 key of a self-made root CA (PKCS#8 PEM, mode 0600); kept so the
               leaf can be renewed without changing the trust anchor readers know
root-ca.pem    the root certificate: the trust anchor a reader must be given
signer.key     P-256 key of the signing leaf (PKCS#8 PEM, mode 0600)
signer.pem     the leaf certificate (CA false, digitalSignature, EKUs emailProtection and
               C2PA claim signing 1.3.6.1.4.1.62558.2.1, subject/authority key ids)
============== ========================================================================

Files made earlier are reused, so Content Credentials signed before a restart stay trusted
by readers that were given `root-ca.pem`. A leaf within `RENEW_BEFORE` of expiry is reissued
from the same root. Several processes may start at once: a lock file serialises creation.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from provenance.core.errors import DomainError

ROOT_KEY = "root-ca.key"
ROOT_CERT = "root-ca.pem"
SIGNER_KEY = "signer.key"
SIGNER_CERT = "signer.pem"
LOCK_FILE = ".lock"

# id-kp-c2pa-claimSigning, the EKU the C2PA trust model defines for claim signers.
C2PA_CLAIM_SIGNING = ObjectIdentifier("1.3.6.1.4.1.62558.2.1")
ROOT_LIFETIME = timedelta(days=20 * 365)
LEAF_LIFETIME = timedelta(days=2 * 365)
RENEW_BEFORE = timedelta(days=30)
# Backdating covers clock skew between the signer and readers checking "not before".
BACKDATE = timedelta(hours=1)
DEFAULT_ORGANIZATION = "Provenance service (embedded default)"


class C2paIdentityError(DomainError):
    """The configured certificate, key or trust anchors are unusable: an operator must fix them."""

    status = 500

    def __init__(self, detail: str) -> None:
        super().__init__("c2pa_identity_invalid", detail)


@dataclass(frozen=True)
class SigningIdentity:
    """What signing needs (chain and key) and what a reader must trust to call it trusted."""

    cert_chain_pem: bytes
    """Leaf first, then any intermediates; the root (trust anchor) is left out."""
    private_key_pem: bytes
    trust_anchors_pem: bytes | None
    """Root certificate(s) a reader needs as trust anchors; None when the operator gave none."""
    alg: str
    """C2PA signing algorithm name as c2pa-python spells it: es256, es384, es512, ps256, ed25519."""
    tsa_url: str | None = None
    """RFC 3161 time-stamp authority; with one, readers learn a trusted signing time."""

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificates(self.cert_chain_pem)[0]


def ensure_default_identity(
    directory: Path, *, organization: str = DEFAULT_ORGANIZATION, now: datetime | None = None
) -> SigningIdentity:
    """The embedded default identity under `directory`, made on first use and reused later."""
    now = now or datetime.now(UTC)
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory / LOCK_FILE):
        root_key_path, root_cert_path = directory / ROOT_KEY, directory / ROOT_CERT
        if root_key_path.exists() != root_cert_path.exists():
            raise C2paIdentityError(f"{directory}: only one of {ROOT_KEY} and {ROOT_CERT} exists")
        if root_key_path.exists():
            root_key = _load_ec_key(root_key_path)
            root_cert = _load_cert(root_cert_path)
        else:
            root_key = ec.generate_private_key(ec.SECP256R1())
            root_cert = _make_root(root_key, organization, now)
            _write_private(root_key_path, _key_pem(root_key))
            _write_public(root_cert_path, root_cert.public_bytes(serialization.Encoding.PEM))
            # A new root makes any old leaf unverifiable; force a fresh one.
            (directory / SIGNER_CERT).unlink(missing_ok=True)
            (directory / SIGNER_KEY).unlink(missing_ok=True)

        leaf_key_path, leaf_cert_path = directory / SIGNER_KEY, directory / SIGNER_CERT
        leaf_cert = _load_cert(leaf_cert_path) if leaf_cert_path.exists() else None
        if (
            leaf_cert is None
            or not leaf_key_path.exists()
            or leaf_cert.not_valid_after_utc - now < RENEW_BEFORE
            or leaf_cert.issuer != root_cert.subject
        ):
            leaf_key = ec.generate_private_key(ec.SECP256R1())
            leaf_cert = _make_leaf(leaf_key, root_key, root_cert, organization, now)
            # Key first: a crash between the two writes leaves no certificate without its key.
            _write_private(leaf_key_path, _key_pem(leaf_key))
            _write_public(leaf_cert_path, leaf_cert.public_bytes(serialization.Encoding.PEM))

    return load_identity(leaf_cert_path, leaf_key_path, root_cert_path)


def load_identity(
    cert_chain_path: Path,
    key_path: Path,
    trust_anchors_path: Path | None = None,
    *,
    tsa_url: str | None = None,
) -> SigningIdentity:
    """An operator's identity: PEM chain (leaf first), its PEM key, optional PEM trust anchors.

    Checked here, at start-up, so a wrong file fails loudly instead of at the first signature.
    """
    try:
        certs = x509.load_pem_x509_certificates(cert_chain_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise C2paIdentityError(f"cannot load C2PA certificate or key: {exc}") from None
    leaf = certs[0]
    if leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise C2paIdentityError(f"{key_path} is not the key of the first certificate in {cert_chain_path}")
    alg = _alg_for(key)
    # A self-signed root in the chain is the trust anchor, not part of what is signed.
    chain = [c for c in certs if not (_is_self_signed(c) and c is not leaf)]
    chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    anchors = load_trust_anchors(trust_anchors_path) if trust_anchors_path is not None else None
    return SigningIdentity(
        cert_chain_pem=chain_pem, private_key_pem=key_pem, trust_anchors_pem=anchors, alg=alg, tsa_url=tsa_url
    )


def load_trust_anchors(path: Path) -> bytes:
    """PEM trust anchors, checked to parse (c2pa would otherwise fail on every read)."""
    try:
        pem = path.read_bytes()
        certs = x509.load_pem_x509_certificates(pem)
    except (OSError, ValueError) as exc:
        raise C2paIdentityError(f"cannot load C2PA trust anchors from {path}: {exc}") from None
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def resolve_identity(
    data_dir: Path,
    *,
    cert_chain_path: Path | None = None,
    key_path: Path | None = None,
    trust_anchors_path: Path | None = None,
    tsa_url: str | None = None,
) -> SigningIdentity:
    """The operator's identity when both cert and key are configured, else the embedded default.

    Extra trust anchors are added to the identity's own, so a reader trusts both.
    """
    if (cert_chain_path is None) != (key_path is None):
        raise C2paIdentityError("configure both the C2PA certificate chain and its key, or neither")
    if cert_chain_path is not None and key_path is not None:
        return load_identity(cert_chain_path, key_path, trust_anchors_path, tsa_url=tsa_url)
    identity = ensure_default_identity(data_dir / "c2pa")
    if trust_anchors_path is None and tsa_url is None:
        return identity
    extra = load_trust_anchors(trust_anchors_path) if trust_anchors_path is not None else b""
    return SigningIdentity(
        cert_chain_pem=identity.cert_chain_pem,
        private_key_pem=identity.private_key_pem,
        trust_anchors_pem=(identity.trust_anchors_pem or b"") + extra,
        alg=identity.alg,
        tsa_url=tsa_url,
    )


# --- making certificates ---


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )


def _key_usage(*, digital_signature: bool, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _make_root(key: ec.EllipticCurvePrivateKey, organization: str, now: datetime) -> x509.Certificate:
    name = _name("Provenance C2PA root CA", organization)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + ROOT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(digital_signature=False, cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _make_leaf(
    key: ec.EllipticCurvePrivateKey,
    root_key: ec.EllipticCurvePrivateKey,
    root: x509.Certificate,
    organization: str,
    now: datetime,
) -> x509.Certificate:
    not_after = min(now + LEAF_LIFETIME, root.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(_name("Provenance C2PA signer", organization))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True, cert_sign=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, C2PA_CLAIM_SIGNING]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )


# --- files ---


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write via a 0600 temporary file and rename, so the key is never readable by others, even briefly."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise C2paIdentityError(f"cannot load {path}: {exc}") from None


def _load_ec_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise C2paIdentityError(f"cannot load {path}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise C2paIdentityError(f"{path} is not an EC private key")
    return key


def _alg_for(key: object) -> str:
    """The C2PA algorithm a key signs with (ECDSA by curve; RSA as PSS, which C2PA requires)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        by_curve = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
        if key.curve.name in by_curve:
            return by_curve[key.curve.name]
        raise C2paIdentityError(f"C2PA cannot sign with the EC curve {key.curve.name}")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    raise C2paIdentityError(f"C2PA cannot sign with a {type(key).__name__}")


def _is_self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
