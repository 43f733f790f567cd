"""API clients: their keys (created, rotated with a grace period, revoked), authentication and its cache."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, or_
from sqlmodel import Session, col, select

from provenance import audit, web_sessions
from provenance.core.db import session_scope
from provenance.core.errors import Conflict, NotFound
from provenance.core.security import Scope, hash_api_key, new_api_key, new_id
from provenance.core.text import refuse_nul
from provenance.core.timeutil import iso, utcnow
from provenance.models import ApiClient

# --- API clients ---


def create_client(
    session: Session, name: str, scope: Scope, actor: str | None = None
) -> tuple[ApiClient, str]:
    """Returns the stored client and its key; the key itself is never stored."""
    refuse_nul(name, "name")
    key = new_api_key()
    client = ApiClient(
        id=new_id("cli"), name=name, scope=scope.value, key_hash=hash_api_key(key), created_at=utcnow()
    )
    session.add(client)
    audit.record(session, actor, "client.create", "client", client.id, {"name": name, "scope": scope.value})
    session.flush()
    return client, key


def get_client(session: Session, client_id: str) -> ApiClient:
    client = session.get(ApiClient, client_id)
    if client is None:
        raise NotFound("client_not_found", f"no client {client_id}")
    return client


def rotate_client(
    session: Session, client_id: str, grace_s: float, actor: str | None = None
) -> tuple[ApiClient, str]:
    """A new key for the client; the current one keeps working for `grace_s` seconds (0: not at all).

    Only one previous key is kept: rotating again within the grace period ends the older one.
    """
    client = get_client(session, client_id)
    if client.revoked_at is not None:
        raise Conflict("client_revoked", f"client {client_id} is revoked")
    key = new_api_key()
    now = utcnow()
    client.previous_key_hash = client.key_hash if grace_s > 0 else None
    client.previous_key_expires_at = now + timedelta(seconds=grace_s) if grace_s > 0 else None
    client.key_hash = hash_api_key(key)
    session.add(client)
    audit.record(
        session,
        actor,
        "client.rotate",
        "client",
        client.id,
        {
            "grace_s": grace_s,
            "previous_key_expires_at": (
                iso(client.previous_key_expires_at) if client.previous_key_expires_at else None
            ),
        },
    )
    session.flush()
    return client, key


def revoke_client(session: Session, client_id: str, actor: str | None = None) -> ApiClient:
    """Every key of the client stops working (within the cache TTL in other processes)."""
    client = get_client(session, client_id)
    if client.revoked_at is not None:
        raise Conflict("client_already_revoked", f"client {client_id} was revoked already")
    client.revoked_at = utcnow()
    session.add(client)
    audit.record(session, actor, "client.revoke", "client", client.id, {})
    session.flush()
    return client


def _key_valid_until(client: ApiClient, digest: str) -> datetime | None:
    """None for the current key (valid until rotated or revoked), else when the previous key ends."""
    if client.key_hash == digest:
        return None
    return client.previous_key_expires_at


def authenticate(session: Session, key: str) -> ApiClient | None:
    digest = hash_api_key(key)
    client = session.exec(
        select(ApiClient).where(
            or_(col(ApiClient.key_hash) == digest, col(ApiClient.previous_key_hash) == digest)
        )
    ).first()
    if client is None or client.revoked_at is not None:
        return None
    until = _key_valid_until(client, digest)
    if client.key_hash != digest and (until is None or until <= utcnow()):
        return None
    return client


class ClientCache:
    """Authenticated clients remembered for a few seconds: one key lookup per request is most of a
    request's database time, and a key revoked in the database stops working within `ttl` seconds."""

    def __init__(self, engine: Engine, ttl: float = 10.0) -> None:
        self.engine = engine
        self.ttl = ttl
        self._entries: dict[str, tuple[ApiClient, float]] = {}
        self._lock = threading.Lock()

    def cached(self, key: str) -> ApiClient | None:
        """The client if the key was authenticated within the TTL; never touches the database, so
        the event loop may call it (a miss goes to `authenticate` in a worker thread). Web session
        tokens are never cached: signing out must end a session at once, in every process."""
        hit = self._entries.get(hash_api_key(key))  # one dict read: atomic under the GIL
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        return None

    def authenticate(self, key: str) -> ApiClient | None:
        if web_sessions.is_token(key):
            return web_sessions.authenticate(self.engine, key)
        digest = hash_api_key(key)
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        with session_scope(self.engine) as session:
            client = authenticate(session, key)
        if client is not None:
            ttl = self.ttl
            until = _key_valid_until(client, digest)
            if until is not None:  # a previous key in its grace period: never cached past its end
                ttl = min(ttl, (until - utcnow()).total_seconds())
            with self._lock:
                if len(self._entries) > 10_000:
                    self._entries.clear()
                self._entries[digest] = (client, now + ttl)
        return client

    def rotate(self, client_id: str, grace_s: float, actor: str | None = None) -> tuple[ApiClient, str]:
        """`rotate_client` committed, then forgotten here: never cached again as it was before."""
        with session_scope(self.engine) as session:
            client, key = rotate_client(session, client_id, grace_s, actor=actor)
        self.forget(client.id)
        return client, key

    def revoke(self, client_id: str, actor: str | None = None) -> ApiClient:
        """`revoke_client` committed, then forgotten here (other processes: within `ttl`)."""
        with session_scope(self.engine) as session:
            client = revoke_client(session, client_id, actor=actor)
        self.forget(client.id)
        return client

    def forget(self, client_id: str) -> None:
        """Drop a client's cached keys at once (after a rotation or revocation in this process)."""
        with self._lock:
            for digest in [d for d, (c, _) in self._entries.items() if c.id == client_id]:
                del self._entries[digest]


def ensure_admin_key(engine: Engine, key_file: Path) -> str | None:
    """On a first start (no admin client yet) make one and write its key to `key_file` (mode 0600)."""
    with session_scope(engine) as session:
        if session.exec(select(ApiClient).where(ApiClient.scope == Scope.admin.value)).first():
            return None
        _, key = create_client(session, "admin (first start)", Scope.admin)
        key_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = key_file.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        tmp.touch(mode=0o600)
        tmp.write_text(key + "\n")
        tmp.replace(key_file)
        return key
