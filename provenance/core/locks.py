"""Cross-process locks on PostgreSQL: blocking advisory locks and elected leaders.

Every process of a scaled-out service shares the database, so the database arbitrates: migrations,
contract deployment and the queue's schema take a blocking advisory lock; singletons (the anchoring
batcher, the evaluation schedule) are elected with `LeaderLock`, a session advisory lock that the
server drops with the connection of a dead holder. On SQLite there is one process: both are no-ops.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from sqlalchemy import Engine

from provenance.core.outage import DATABASE, is_database_outage

logger = logging.getLogger(__name__)

SCHEMA_LOCK = 0x70726F71  # "proq": one process at a time creates the queue's schema
BATCHER_LOCK = 0x70726F61  # "proa": one anchoring batcher across all workers
SCHEDULE_LOCK = 0x70726F65  # "proe": one evaluation schedule across all workers
STARTUP_LOCK = 0x70726F73  # "pros": migrations and the first admin key, one process at a time
CONTRACT_LOCK = 0x70726F63  # "proc": deploying the registry contract, one process at a time


def pg_conninfo(engine: Engine) -> str:
    """A libpq URL (no SQLAlchemy driver suffix) for connections that live outside the pool."""
    url = engine.url.render_as_string(hide_password=False)
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url.removeprefix(prefix)
    return url


# Connections that live outside the pool notice a dead peer within seconds, never hang on it.
LIVE_CONNECTION: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


@contextmanager
def pg_lock(engine: Engine, key: int) -> Iterator[None]:
    """Hold a PostgreSQL advisory lock for the block (blocking); a no-op on SQLite (one process)."""
    if not is_postgres(engine):
        yield
        return
    with psycopg.connect(pg_conninfo(engine), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        try:
            yield
        finally:
            with suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


class LeaderLock:
    """Leadership held by one process at a time across all machines.

    A session advisory lock on a connection kept open for as long as this process leads: if the
    process dies, or the database restarts, the server drops the connection and the lock, and
    another process takes over at its next `held()`. On SQLite there is one process: always leader.
    """

    def __init__(self, engine: Engine, key: int) -> None:
        self.engine = engine
        self.key = key
        self._conn: psycopg.Connection[Any] | None = None

    def held(self) -> bool:
        if not is_postgres(self.engine):
            return True
        try:
            if self._conn is not None:
                self._conn.execute("SELECT 1")
                DATABASE.ok()
                return True
            conn = psycopg.connect(pg_conninfo(self.engine), autocommit=True, **LIVE_CONNECTION)
            try:
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
            except BaseException:
                conn.close()
                raise
            DATABASE.ok()
            if row and row[0]:
                self._conn = conn
                return True
            conn.close()
            return False
        except psycopg.Error as exc:  # the database went away: the server dropped the lock with it
            if is_database_outage(exc):
                DATABASE.failed(exc, f"leader lock {self.key:#x}")
            else:
                logger.warning("leader lock %#x: %s", self.key, exc)
            self.release()
            return False

    def release(self) -> None:
        if self._conn is not None:
            with suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
