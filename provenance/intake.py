"""Registrations without media, committed in groups by one writer thread.

Under load, dozens of requests each checking out the database connection, writing three rows and
committing spend most of their time handing the connection (and the GIL) to one another. Here
the requests wait on a future instead while one thread takes everything queued so far and checks
and stores it with `registry.register_many`: each manifest is still checked on its own (device,
signature, capture time, nonce) and refused on its own, and no request is answered before the
transaction holding its rows has committed, so every accepted registration is durable and a
transparency-log leaf when its response goes out.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass

from sqlalchemy import Engine

from provenance import registry
from provenance.core.config import Settings
from provenance.core.errors import DomainError

logger = logging.getLogger(__name__)

Outcome = registry.Accepted | DomainError


@dataclass(frozen=True)
class _Waiting:
    submission: registry.Submission
    future: asyncio.Future[Outcome]
    loop: asyncio.AbstractEventLoop


@dataclass(frozen=True)
class _Failed:
    """The group's transaction failed for a reason not of the manifest's making (e.g. no database)."""

    error: Exception


def _settle(future: asyncio.Future[Outcome], outcome: Outcome | _Failed) -> None:
    if future.done():  # the request was cancelled (client gone); its outcome stands in the database
        return
    if isinstance(outcome, _Failed):
        future.set_exception(outcome.error)
    else:
        future.set_result(outcome)  # a refusal is a result here: batch items report theirs


class Intake:
    """Queue signed manifests for the writer thread; `on_accepted` runs for each stored one before
    its request is answered (the service feeds the verification index there)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        on_accepted: Callable[[registry.Accepted], object],
        max_group: int = 256,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.on_accepted = on_accepted
        self.max_group = max_group
        self._queue: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    async def submit(self, submission: registry.Submission) -> registry.Accepted:
        """Check and store one manifest; raises its refusal."""
        (outcome,) = await self.submit_many([submission])
        if isinstance(outcome, DomainError):
            raise outcome
        return outcome

    async def submit_many(self, submissions: Sequence[registry.Submission]) -> list[Outcome]:
        """Check and store several; per manifest, in order, an `Accepted` or its refusal."""
        self._ensure_started()
        loop = asyncio.get_running_loop()
        waiting = [_Waiting(s, loop.create_future(), loop) for s in submissions]
        for item in waiting:
            self._queue.put(item)
        return list(await asyncio.gather(*(w.future for w in waiting)))

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="registration-intake", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        """Let the writer finish what is queued, then end it."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            stopping = False
            while len(group) < self.max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                group.append(item)
            self._commit(group)
            if stopping:
                return

    def _commit(self, group: list[_Waiting]) -> None:
        outcomes: Sequence[Outcome | _Failed]
        try:
            outcomes = registry.register_many(self.engine, self.settings, [w.submission for w in group])
        except Exception as exc:  # e.g. the database is down: every request of the group gets it (503)
            outcomes = [_Failed(exc)] * len(group)
        for waiting, outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, registry.Accepted) and not outcome.replayed:  # a replay is indexed
                try:
                    self.on_accepted(outcome)
                except Exception:  # stored and durable; the index's next rebuild (at start) has it
                    logger.exception("could not feed registration %s to the index", outcome.registration.id)
            # RuntimeError: that request's event loop is closed (a test client went away).
            with suppress(RuntimeError):
                waiting.loop.call_soon_threadsafe(_settle, waiting.future, outcome)
