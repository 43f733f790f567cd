"""C2PA Content Credentials: sign registered originals, read and validate credentials in submitted files.

- `certs`: the X.509 signing identity (self-made root and leaf under `DATA_DIR/c2pa/` by default,
  or an operator's PEM chain and key);
- `sign`: `sign_registered` writes a manifest with our soft binding and registration assertion;
- `read`: `read_credentials` validates what a file carries (signature, trust, hard binding).

Kept apart from HTTP: the API layer only calls these functions.
"""

from __future__ import annotations

from provenance.c2pa.certs import (
    C2paIdentityError,
    SigningIdentity,
    ensure_default_identity,
    load_identity,
    load_trust_anchors,
    resolve_identity,
)
from provenance.c2pa.read import (
    REGISTRATION_LABEL,
    SOFT_BINDING_ALG,
    SOFT_BINDING_LABEL,
    C2paInfo,
    C2paUnreadable,
    ValidationCode,
    read_credentials,
)
from provenance.c2pa.sign import C2paSignError, media_type, registration_reference, sign_registered

__all__ = [
    "REGISTRATION_LABEL",
    "SOFT_BINDING_ALG",
    "SOFT_BINDING_LABEL",
    "C2paIdentityError",
    "C2paInfo",
    "C2paSignError",
    "C2paUnreadable",
    "SigningIdentity",
    "ValidationCode",
    "ensure_default_identity",
    "load_identity",
    "load_trust_anchors",
    "media_type",
    "read_credentials",
    "registration_reference",
    "resolve_identity",
    "sign_registered",
]
