"""The transparency log in the database: leaves appended with the facts they record, indexed in order.

Every accepted registration, device enrolment, rotation and revocation, and every audited admin
action appends a leaf in its own transaction. The batcher alone assigns leaf indexes (under a
lock), so the order is total and gap-free, and the Merkle tree of the first N leaves never
changes once N is anchored.
"""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, func, select

from provenance.core.timeutil import iso, utcnow
from provenance.ledger.merkle import MerkleTree, leaf_hash
from provenance.models import AuditEvent, Device, LogEntry, Registration
from provenance.signing import canonical_bytes

LEAF_SCHEMA = "provenance.leaf/v1"
_PG_LOCK_KEY = 0x70726F76  # "prov": one advisory lock for the whole log


def append(session: Session, kind: str, ref_id: str, leaf: dict[str, Any]) -> LogEntry:
    entry = LogEntry(**entry_values(kind, ref_id, leaf, utcnow()))
    session.add(entry)
    return entry


def entry_values(kind: str, ref_id: str, leaf: dict[str, Any], at: datetime) -> dict[str, Any]:
    """A leaf's row as column values, for inserting many with one statement (the registration path)."""
    data = canonical_bytes({"schema": LEAF_SCHEMA, "kind": kind, **leaf})
    return {
        "kind": kind,
        "ref_id": ref_id,
        "data": data.decode(),
        "leaf_hash": leaf_hash(data).hex(),
        "leaf_index": None,
        "created_at": at,
    }


def registration_leaf(registration: Registration, device_public_key: str) -> dict[str, Any]:
    """What the log commits to: the signed manifest (by digest), its signature and the signer's key."""
    return {
        "registration_id": registration.id,
        "manifest_sha256": hashlib.sha256(registration.manifest.encode()).hexdigest(),
        "signature": registration.signature,
        "device_id": registration.device_id,
        "device_public_key": device_public_key,
        "received_at": iso(registration.received_at),
    }


def device_leaf(device: Device, event: str) -> dict[str, Any]:
    at = device.revoked_at if event == "revoked" and device.revoked_at else device.enrolled_at
    return {
        "device_id": device.id,
        "public_key": device.public_key,
        "name": device.name,
        "event": event,
        "at": iso(at),
    }


def audit_leaf(event: AuditEvent) -> dict[str, Any]:
    """An admin action: who did what to which client or device, and when."""
    return {
        "audit_id": event.id,
        "actor_id": event.actor_id,
        "action": event.action,
        "target_kind": event.target_kind,
        "target_id": event.target_id,
        "details": json.loads(event.details),
        "at": iso(event.at),
    }


def lock_log(session: Session) -> None:
    """Serialise index assignment across processes (PostgreSQL); SQLite serialises writers itself."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


def size(session: Session) -> int:
    return session.exec(
        select(func.count()).select_from(LogEntry).where(col(LogEntry.leaf_index).is_not(None))
    ).one()


def assign_indexes(session: Session, limit: int | None = None) -> int:
    """Give the waiting entries the next indexes, oldest first; returns the new tree size."""
    lock_log(session)
    current = size(session)
    query = select(LogEntry).where(col(LogEntry.leaf_index).is_(None)).order_by(col(LogEntry.id))
    if limit is not None:
        query = query.limit(limit)
    for offset, entry in enumerate(session.exec(query).all()):
        entry.leaf_index = current + offset
        session.add(entry)
    session.flush()
    return size(session)


class TreeCache:
    """Leaf hashes in memory, extended as the log grows, so proofs need no full reload."""

    def __init__(self) -> None:
        self._hashes: list[bytes] = []
        self._trees: dict[int, MerkleTree] = {}
        self._lock = threading.Lock()

    def _extend(self, session: Session, tree_size: int) -> None:
        if len(self._hashes) >= tree_size:
            return
        rows = session.exec(
            select(LogEntry.leaf_hash)
            .where(col(LogEntry.leaf_index) >= len(self._hashes), col(LogEntry.leaf_index) < tree_size)
            .order_by(col(LogEntry.leaf_index))
        ).all()
        self._hashes.extend(bytes.fromhex(h) for h in rows)
        if len(self._hashes) < tree_size:
            raise RuntimeError(f"log has {len(self._hashes)} indexed leaves, wanted {tree_size}")

    def tree(self, session: Session, tree_size: int) -> MerkleTree:
        with self._lock:
            self._extend(session, tree_size)
            tree = self._trees.get(tree_size)
            if tree is None:
                tree = MerkleTree(self._hashes[:tree_size])
                if len(self._trees) > 8:
                    self._trees.pop(next(iter(self._trees)))
                self._trees[tree_size] = tree
            return tree
