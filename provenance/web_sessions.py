"""Server-side sessions of the web interface.

The cookie carries a random token, never the API key: only the token's SHA-256 is stored, with the
client, the key signed in with and an expiry, so every API process sharing the database knows the
same sessions, signing out ends one everywhere at once, and a stolen database row cannot be
replayed as a cookie. A session ends when it expires, when it is signed out, when its client is
revoked, and when the key it was opened with stops working (rotated out, its grace period over).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, delete
from sqlmodel import select

from provenance.core.db import session_scope
from provenance.core.security import hash_api_key
from provenance.core.timeutil import utcnow
from provenance.models import ApiClient, WebSession

TOKEN_PREFIX = "pvs_"
# Where the session middleware notes the token it turned into a bearer header for a same-origin
# page request: a key in the ASGI scope, which no client can set.
SCOPE_KEY = "provenance.session_token"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def is_token(credential: str) -> bool:
    return credential.startswith(TOKEN_PREFIX)


def vouched(scope: Mapping[str, Any], credential: str) -> bool:
    """False for a session token the session middleware did not put there itself: a token is a
    cookie of our pages, bound to their same-origin checks, never an API key a client sends."""
    return not is_token(credential) or scope.get(SCOPE_KEY) == credential


def create(engine: Engine, client: ApiClient, api_key: str, ttl_s: float) -> str:
    """Open a session for `client`, signed in with `api_key`; returns the token (never stored)."""
    token = new_token()
    now = utcnow()
    with session_scope(engine) as session:
        # Expired sessions are dropped as new ones open, so the table stays as small as the live set.
        session.execute(delete(WebSession).where(WebSession.expires_at <= now))  # type: ignore[arg-type]
        session.add(
            WebSession(
                token_hash=hash_api_key(token),
                client_id=client.id,
                key_hash=hash_api_key(api_key),
                created_at=now,
                expires_at=now + timedelta(seconds=ttl_s),
            )
        )
    return token


def authenticate(engine: Engine, token: str) -> ApiClient | None:
    """The client of a live session, or None (unknown, expired, signed out, client or key revoked)."""
    now = utcnow()
    with session_scope(engine) as session:
        row = session.exec(
            select(WebSession, ApiClient)
            .join(ApiClient, ApiClient.id == WebSession.client_id)  # type: ignore[arg-type]
            .where(WebSession.token_hash == hash_api_key(token))
        ).first()
    if row is None:
        return None
    web_session, client = row
    if web_session.expires_at <= now or client.revoked_at is not None:
        return None
    if web_session.key_hash == client.key_hash:
        return client
    previous_live = client.previous_key_expires_at is not None and client.previous_key_expires_at > now
    return client if web_session.key_hash == client.previous_key_hash and previous_live else None


def revoke(engine: Engine, token: str) -> None:
    """End a session at once, in every process (signing out)."""
    with session_scope(engine) as session:
        session.execute(delete(WebSession).where(WebSession.token_hash == hash_api_key(token)))  # type: ignore[arg-type]
