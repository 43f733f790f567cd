"""Opening the service on a data directory: schema, first-start admin key, chain, batcher, jobs."""

from __future__ import annotations

import threading
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from provenance import clients, registry
from provenance import fingerprint as fp
from provenance.anchoring import Batcher, ChainRuntime, anchoring_lag_s
from provenance.core.config import Settings
from provenance.core.db import make_engine, migrate, session_scope
from provenance.core.errors import DomainError
from provenance.core.locks import STARTUP_LOCK, pg_lock
from provenance.core.outage import wait_for_database
from provenance.core.secrets import resolve_secrets
from provenance.credentials import Credentials
from provenance.evaluation import Evaluator
from provenance.intake import Intake
from provenance.jobs import JobQueue, ensure_schema
from provenance.ledger.log import TreeCache
from provenance.models import Registration
from provenance.verification import Matcher, Verifier


@dataclass
class Service:
    settings: Settings
    engine: Engine
    new_admin_key: str | None
    chain: ChainRuntime
    batcher: Batcher
    matcher: Matcher
    verifier: Verifier
    clients: clients.ClientCache
    credentials: Credentials
    tree_cache: TreeCache = field(default_factory=TreeCache)
    # The shared job queue, in api and worker roles only (the embedded default runs jobs in threads).
    queue: JobQueue | None = None
    intake: Intake = field(init=False)
    evaluator: Evaluator = field(init=False)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _started: bool = False

    def start(self) -> None:
        # Idempotent: `serve` starts the service before uvicorn (so a database that never comes back
        # ends the process with a one-line reason), and the app's lifespan starts it again.
        if self._started:
            return
        self._started = True
        role = self.settings.role
        # Started during an outage: wait for the database (bounded) instead of failing the start.
        wait_for_database(
            self.matcher.rebuild, "start-up (index)", self.settings.database_wait_s, self._stopping
        )
        threading.Thread(
            target=self.matcher.feed_forever, args=(self._stopping,), name="index-feed", daemon=True
        ).start()
        # Version 2 fingerprints are checked with detector.comparer, which imports torch: seconds that
        # would otherwise stall the first registration (and every request behind the import lock).
        threading.Thread(target=_warm_imports, name="warm-imports", daemon=True).start()
        if role != "all":
            # Registrations made through other API processes reach this matcher by polling.
            threading.Thread(
                target=self.matcher.follow,
                args=(self._stopping, self.settings.matcher_poll_s),
                name="matcher-follow",
                daemon=True,
            ).start()
        self.chain.start()
        if role != "api":
            self.batcher.start()
        else:
            # No batcher here to notice the chain's state: keep /health's view of it current.
            threading.Thread(target=self._watch_chain, name="chain-watch", daemon=True).start()
        self.evaluator.start()

    def _watch_chain(self) -> None:
        while not self._stopping.wait(5.0):
            with suppress(Exception):  # the database or the chain may be restarting; look again later
                self.chain.check()

    def stop(self) -> None:
        self._stopping.set()
        self.intake.stop()
        self.evaluator.stop()
        self.verifier.stop()
        self.batcher.stop()
        self.chain.stop()
        if self.queue is not None:
            self.queue.close()

    def outcome_of_file(self, path: Path) -> dict[str, Any]:
        """Match a file against the registered originals (no stored verification)."""
        return self.matcher.outcome_of_file(path, self.settings)

    def registered(
        self, registration: Registration, fingerprint: fp.Fingerprint | None = None
    ) -> Registration:
        """Make a new registration findable by verification at once (the feeder indexes it; every
        search drains what is still queued first)."""
        self.matcher.feed(registration.id, fingerprint or fp.Fingerprint.decode(registration.fingerprint))
        return registration

    def register(
        self,
        submission: registry.Submission,
        upload: Path | None = None,
        upload_suffix: str = ".bin",
    ) -> registry.Accepted:
        """One signed manifest, with the media when uploaded (its Content Credentials are kept);
        `replayed` when it is an identical retry of one stored before (then nothing is new)."""
        if upload is None:
            accepted = registry.register_one(self.engine, self.settings, submission)
        else:
            accepted = registry.register_one(
                self.engine,
                self.settings,
                submission,
                registry.Upload(path=upload, suffix=upload_suffix),
                self.credentials.read(upload),
            )
        if not accepted.replayed:  # a replay is in the index already
            self.registered(accepted.registration, accepted.fingerprint)
        return accepted

    async def register_json(self, submission: registry.Submission) -> registry.Accepted:
        """One signed manifest without media, through the group-committing intake; raises its refusal."""
        return await self.intake.submit(submission)

    async def register_batch(
        self, submissions: list[registry.Submission]
    ) -> list[registry.Accepted | DomainError]:
        """Signed manifests synced together: each checked on its own; per item the stored
        registration (or, for an identical retry, the one stored before) or its refusal."""
        return await self.intake.submit_many(submissions)

    def chain_status(self) -> dict[str, object]:
        return dict(self.chain.status)

    def anchoring_status(self) -> dict[str, object]:
        """For /health: `behind` when a leaf has waited for its anchor longer than the bound."""
        if self.chain.status.get("status") == "off":
            return {"status": "off"}
        bound = self.settings.anchor_lag_max_s or 3 * self.settings.anchor_interval_s
        with session_scope(self.engine) as session:
            waited = anchoring_lag_s(session)
        status = "behind" if waited > bound else "ok"
        return {"status": status, "oldest_waiting_s": round(waited, 1), "bound_s": bound}

    def worker_status(self) -> str:
        if self.settings.role == "api" and self.queue is not None:
            try:
                return self.queue.status(self.settings.worker_stalled_s)
            except Exception as exc:  # health reports failures rather than raising them
                return f"queue unavailable: {type(exc).__name__}"
        return self.batcher.status


def _warm_imports() -> None:
    with suppress(Exception):  # only a head start: the check imports it itself when it must
        import detector.comparer  # noqa: F401


# The database password compose falls back to when POSTGRES_PASSWORD is not set.
DEVELOPMENT_DATABASE_PASSWORD = "provenance"


def development_secrets(settings: Settings) -> list[str]:
    """The well-known development secrets these settings would run on (empty: none)."""
    from sqlalchemy.engine import make_url

    from provenance.chain.anvil import DEV_ACCOUNTS

    weak = []
    if settings.chain_mode != "off":
        key = (settings.chain_private_key or DEV_ACCOUNTS[0].private_key).lower().removeprefix("0x")
        if key in {a.private_key.lower().removeprefix("0x") for a in DEV_ACCOUNTS}:
            weak.append("the chain's well-known development key")
    url = settings.resolved_database_url
    if url.startswith("postgresql") and make_url(url).password == DEVELOPMENT_DATABASE_PASSWORD:
        weak.append(f"the development database password {DEVELOPMENT_DATABASE_PASSWORD!r}")
    return weak


def open_service(settings: Settings) -> Service:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Key files readable by others are refused before anything starts (InsecureSecret, a ValueError).
    settings = resolve_secrets(settings)
    engine = make_engine(settings.resolved_database_url)
    if settings.role != "all":
        if engine.dialect.name != "postgresql":
            raise ValueError(f"--role {settings.role} needs PROVENANCE_DATABASE_URL to name PostgreSQL")
        if settings.chain_rpc is None and settings.chain_mode != "off":
            raise ValueError(f"--role {settings.role} needs PROVENANCE_CHAIN_RPC (it starts no chain)")
        weak = development_secrets(settings)
        if weak and not settings.development:
            raise ValueError(
                f"--role {settings.role} refuses to start on {' and '.join(weak)}: set "
                "PROVENANCE_CHAIN_PRIVATE_KEY_FILE (or PROVENANCE_CHAIN_PRIVATE_KEY) and the database "
                "password (POSTGRES_PASSWORD in compose, or PROVENANCE_DATABASE_URL_FILE), or state "
                "development mode with PROVENANCE_DEVELOPMENT=true"
            )

    # Several processes may start at once on one database: one migrates and makes the admin key.
    def first_start() -> str | None:
        with pg_lock(engine, STARTUP_LOCK):
            migrate(engine)
            return clients.ensure_admin_key(engine, settings.data_dir / "admin.key")

    # Started while the database is away (restarting, not up yet): wait for it, bounded.
    key = wait_for_database(first_start, "start-up (migrations)", settings.database_wait_s)
    queue: JobQueue | None = None
    if settings.role != "all":
        wait_for_database(lambda: ensure_schema(engine), "start-up (job queue)", settings.database_wait_s)
        queue = JobQueue(engine)
    cache = TreeCache()
    chain = ChainRuntime(settings, engine)
    matcher = Matcher(engine, comparer_mode=settings.comparer)
    credentials = Credentials(settings, engine, cache)
    service = Service(
        settings=settings,
        engine=engine,
        new_admin_key=key,
        chain=chain,
        batcher=Batcher(engine, chain, cache, settings),
        matcher=matcher,
        verifier=Verifier(settings, engine, matcher, cache, credentials.read),
        clients=clients.ClientCache(engine),
        credentials=credentials,
        tree_cache=cache,
        queue=queue,
    )
    if queue is not None and settings.role == "api":
        service.verifier.defer = queue.defer_verification

    service.evaluator = Evaluator(service)
    service.intake = Intake(engine, settings, lambda a: service.registered(a.registration, a.fingerprint))
    return service
