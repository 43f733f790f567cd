"""The audit log of admin actions: a table to read, and a transparency-log leaf for each entry.

Entries are written in the same transaction as the action they record, so an action and its
audit entry exist together or not at all, and the leaf makes any later edit of the table visible.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from provenance.core.errors import DomainError
from provenance.core.security import new_id
from provenance.core.timeutil import parse_iso, utcnow
from provenance.ledger import log
from provenance.models import AuditEvent, LogEntry

__all__ = ["SYSTEM", "AuditEvent", "details_of", "leaf_of", "parse_before", "recent", "record"]

SYSTEM = "system"


def record(
    session: Session,
    actor_id: str | None,
    action: str,
    target_kind: str,
    target_id: str,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one audit entry and its log leaf to the session (committed with the action itself)."""
    event = AuditEvent(
        id=new_id("aud"),
        at=utcnow(),
        actor_id=actor_id or SYSTEM,
        action=action,
        target_kind=target_kind,
        target_id=target_id,
        details=json.dumps(details or {}, sort_keys=True),
    )
    session.add(event)
    log.append(session, "audit", event.id, log.audit_leaf(event))
    return event


def recent(session: Session, limit: int = 100, before: datetime | None = None) -> list[AuditEvent]:
    """Newest first; `before` pages back through older entries."""
    query = select(AuditEvent).order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc())
    if before is not None:
        query = query.where(col(AuditEvent.at) < before)
    return list(session.exec(query.limit(limit)).all())


def parse_before(text: str | None) -> datetime | None:
    """A paging bound: ISO 8601 with an offset (a bare number is not a time, whatever pydantic says)."""
    if text is None:
        return None
    try:
        return parse_iso(text)
    except ValueError as exc:
        raise DomainError(
            "audit_before_invalid", "before must be an ISO 8601 time with an offset", 422
        ) from exc


def details_of(event: AuditEvent) -> dict[str, Any]:
    details: dict[str, Any] = json.loads(event.details)
    return details


def leaf_of(session: Session, event_id: str) -> LogEntry | None:
    return session.exec(select(LogEntry).where(LogEntry.kind == "audit", LogEntry.ref_id == event_id)).first()
