"""API keys: high-entropy random tokens, stored only as SHA-256 digests."""

from __future__ import annotations

import hashlib
import secrets
from enum import StrEnum


class Scope(StrEnum):
    admin = "admin"
    camera = "camera"
    newsroom = "newsroom"
    factchecker = "factchecker"


KEY_PREFIX = "pvk_"


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    # The keys carry 256 bits of entropy, so a fast hash is enough; a slow KDF would only add latency.
    return hashlib.sha256(key.encode()).hexdigest()


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"
