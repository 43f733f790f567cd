"""Riding out a dependency that goes away: which errors mean "unavailable", backoff, one log line each way.

The database (PostgreSQL) restarts, the chain node restarts, a network blips: every loop of every
role keeps going, retrying with bounded, jittered backoff, and says in the log once per outage that
the dependency is unavailable and once that it is back (not once per loop and per retry).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
import psycopg_pool
import sqlalchemy.exc

logger = logging.getLogger("provenance.outage")

T = TypeVar("T")

# Errors that mean "the database cannot be reached now", not "this statement is wrong".
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg_pool.PoolTimeout,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    ConnectionError,
    TimeoutError,
)


def is_database_outage(exc: BaseException) -> bool:
    """True when `exc` (or what it wraps: procrastinate and SQLAlchemy wrap the driver's error) says
    the database is unreachable, restarting or shutting down; False for errors a retry cannot fix."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlalchemy.exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, _UNAVAILABLE):
            return True
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException) and isinstance(orig, _UNAVAILABLE):
            return True
        current = current.__cause__ or current.__context__
    return False


def describe(exc: BaseException) -> str:
    """The root cause in one line (procrastinate's and SQLAlchemy's wrappers say little themselves)."""
    root = exc
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    first = (str(root).strip().splitlines() or [""])[0]
    return f"{type(root).__name__}: {first}" if first else type(root).__name__


class Backoff:
    """Exponential backoff with jitter, capped: retries of many processes do not come in step."""

    def __init__(self, base_s: float = 0.25, cap_s: float = 5.0) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.attempts = 0

    def next(self) -> float:
        """Seconds to wait before the next attempt: half fixed, half random, at most `cap_s`."""
        ceiling = min(self.cap_s, self.base_s * (2.0 ** min(self.attempts, 16)))
        self.attempts += 1
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempts = 0


class Outage:
    """One dependency's availability as seen by this process, shared by all its loops.

    `failed` logs "unavailable" on the first failure of an outage only; `ok` logs "back" once when
    a success follows; the many loops of a process share one instance.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._lock = threading.Lock()
        self._since: float | None = None
        self.last_error: str | None = None

    @property
    def down(self) -> bool:
        return self._since is not None

    @property
    def down_for_s(self) -> float:
        since = self._since
        return 0.0 if since is None else time.monotonic() - since

    def failed(self, exc: BaseException, where: str) -> None:
        now = time.monotonic()
        with self._lock:
            self.last_error = describe(exc)
            if self._since is not None:
                return
            self._since = now
        logger.warning(
            "%s unavailable (%s, seen by %s); retrying with backoff", self.what, self.last_error, where
        )

    def ok(self) -> None:
        if self._since is None:
            return
        with self._lock:
            since, self._since = self._since, None
        if since is not None:
            logger.warning("%s is back after %.1f s", self.what, time.monotonic() - since)


DATABASE = Outage("database")
CHAIN = Outage("chain node")


class DatabaseUnavailable(RuntimeError):
    """The database stayed unreachable past the start-up bound."""


def wait_for_database(
    step: Callable[[], T], what: str, bound_s: float, stop: threading.Event | None = None
) -> T:
    """Run `step` until it succeeds, retrying while the database is unavailable, for at most `bound_s`.

    Start-up of every role goes through here, so a process started during an outage waits for the
    database instead of exiting on the first refused connection. Other errors propagate at once.
    """
    deadline = time.monotonic() + bound_s
    backoff = Backoff(cap_s=5.0)
    while True:
        try:
            result = step()
        except Exception as exc:
            if not is_database_outage(exc):
                raise
            DATABASE.failed(exc, what)
            delay = backoff.next()
            if time.monotonic() + delay > deadline:
                raise DatabaseUnavailable(
                    f"the database stayed unavailable for {bound_s:.0f} s during {what}: "
                    f"{DATABASE.last_error}"
                ) from exc
            if stop is not None:
                if stop.wait(delay):
                    raise
            else:
                time.sleep(delay)
            continue
        DATABASE.ok()
        return result
