"""Rate limits per API key, by scope, with fixed windows from the `limits` library.

The window counters live where every API process can see them: in the service's own database
(one upsert per request, atomic on both SQLite and PostgreSQL, so several API processes on one
PostgreSQL share one budget per key), in process memory for the single-process embedded default,
or in any store `limits` speaks (e.g. `redis://127.0.0.1:6379`, if its client is installed).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from provenance.core.config import Settings
from provenance.core.errors import DomainError

logger = logging.getLogger(__name__)

_UPSERT = text(
    """
    INSERT INTO rate_limit_windows (key, count, expires_at) VALUES (:key, :amount, :expires_at)
    ON CONFLICT (key) DO UPDATE SET
        count = CASE WHEN rate_limit_windows.expires_at <= :now
                     THEN :amount ELSE rate_limit_windows.count + :amount END,
        expires_at = CASE WHEN rate_limit_windows.expires_at <= :now
                          THEN :expires_at ELSE rate_limit_windows.expires_at END
    RETURNING count
    """
)


class DatabaseStorage(Storage):
    """`limits` storage in the `rate_limit_windows` table: one atomic upsert per hit."""

    STORAGE_SCHEME = None

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine
        # The upsert is atomic by itself: in autocommit it is one round trip, and the key's row is
        # locked only while the statement runs, not until a separate COMMIT comes back.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        with self._autocommit.connect() as conn:
            count = conn.execute(
                _UPSERT, {"key": key, "amount": amount, "expires_at": now + expiry, "now": now}
            ).scalar_one()
        return int(count)

    def _row(self, key: str) -> tuple[int, float] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                text("SELECT count, expires_at FROM rate_limit_windows WHERE key = :key"), {"key": key}
            ).first()
        if row is None or row[1] <= time.time():
            return None
        return int(row[0]), float(row[1])

    def get(self, key: str) -> int:
        row = self._row(key)
        return row[0] if row else 0

    def get_expiry(self, key: str) -> float:
        row = self._row(key)
        return row[1] if row else time.time()

    def check(self) -> bool:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True

    def reset(self) -> int | None:
        with self.engine.begin() as conn:
            return conn.execute(text("DELETE FROM rate_limit_windows")).rowcount

    def clear(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(text("DELETE FROM rate_limit_windows WHERE key = :key"), {"key": key})

    def expire(self) -> int:
        """Drop ended windows (called now and then, so the table stays the size of the active keys)."""
        with self.engine.begin() as conn:
            return conn.execute(
                text("DELETE FROM rate_limit_windows WHERE expires_at <= :now"), {"now": time.time()}
            ).rowcount


class RateLimited(DomainError):
    status = 429

    def __init__(self, retry_after: int, limit: str) -> None:
        super().__init__("rate_limited", f"rate limit {limit} for this API key exceeded; retry later")
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


def make_storage(settings: Settings, engine: Engine) -> Storage:
    """`auto`: the database when it is PostgreSQL (shared by processes), memory for SQLite (one process)."""
    choice = settings.rate_limit_storage
    if choice == "auto":
        choice = "database" if engine.dialect.name == "postgresql" else "memory"
    if choice == "memory":
        return MemoryStorage()
    if choice == "database":
        return DatabaseStorage(engine)
    storage = storage_from_string(choice)
    if not isinstance(storage, Storage):
        raise ValueError(f"rate_limit_storage {choice!r} names an asynchronous storage")
    return storage


@dataclass(frozen=True)
class _Scoped:
    text: str
    items: list[RateLimitItem]


class RateLimiter:
    """Counts each request of an API key against its scope's limits; refuses with `RateLimited`."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.storage = make_storage(settings, engine)
        self.strategy = FixedWindowRateLimiter(self.storage)
        self.default = _Scoped(settings.rate_limit_default, parse_many(settings.rate_limit_default))
        self.by_scope = {
            scope: _Scoped(rate, parse_many(rate)) for scope, rate in settings.rate_limits.items() if rate
        }
        self._hits = 0
        self._last_warning = -math.inf

    def limits_for(self, scope: str) -> _Scoped:
        return self.by_scope.get(scope, self.default)

    @property
    def in_memory(self) -> bool:
        """Counting costs no I/O, so the event loop may count without a worker thread."""
        return isinstance(self.storage, MemoryStorage)

    def hit(self, key_id: str, scope: str, cost: int = 1) -> None:
        """Count `cost` requests of `key_id` (a batch counts its items); raise `RateLimited` with the
        seconds to wait when over."""
        scoped = self.limits_for(scope)
        try:
            for item in scoped.items:
                if not self.strategy.hit(item, "api-key", key_id, cost=cost):
                    reset = self.strategy.get_window_stats(item, "api-key", key_id).reset_time
                    raise RateLimited(max(1, math.ceil(reset - time.time())), str(item))
            self._hits += 1
            if isinstance(self.storage, DatabaseStorage) and self._hits % 1000 == 0:
                self.storage.expire()
        except RateLimited:
            raise
        except Exception:
            # The counters' store is down (e.g. PostgreSQL restarting): serve rather than fail every
            # request; the limit is back as soon as the store is.
            now = time.monotonic()
            if now - self._last_warning > 10.0:
                self._last_warning = now
                logger.warning("rate-limit storage unavailable; requests pass unlimited", exc_info=True)
