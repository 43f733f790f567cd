"""Opening the service on a data directory: schema, first-start admin key, chain, batcher, the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine

from provenance import fingerprint as fp
from provenance import registry
from provenance.anchoring import Batcher, ChainRuntime
from provenance.api.app import create_app
from provenance.core.config import Settings
from provenance.core.db import make_engine, migrate
from provenance.credentials import Credentials
from provenance.evaluation import Evaluator
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
    clients: registry.ClientCache
    credentials: Credentials
    tree_cache: TreeCache = field(default_factory=TreeCache)
    app: FastAPI = field(init=False)
    evaluator: Evaluator = field(init=False)

    def start(self) -> None:
        self.matcher.rebuild()
        self.chain.start()
        self.batcher.start()
        self.evaluator.start()

    def stop(self) -> None:
        self.evaluator.stop()
        self.verifier.stop()
        self.batcher.stop()
        self.chain.stop()

    def outcome_of_file(self, path: Path) -> dict[str, Any]:
        """Match a file against the registered originals (no stored verification)."""
        query = fp.compute_fingerprint(path, limits=self.settings.limits, sample_fps=self.settings.sample_fps)
        return self.matcher.outcome(query)

    def registered(self, registration: Registration) -> Registration:
        """Make a new registration findable by verification at once."""
        self.matcher.add(registration.id, fp.Fingerprint.decode(registration.fingerprint))
        return registration

    def chain_status(self) -> dict[str, object]:
        return dict(self.chain.status)

    def worker_status(self) -> str:
        return self.batcher.status


def open_service(settings: Settings) -> Service:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    key = registry.ensure_admin_key(engine, settings.data_dir / "admin.key")
    cache = TreeCache()
    chain = ChainRuntime(settings, engine)
    matcher = Matcher(engine)
    credentials = Credentials(settings, engine, cache)
    service = Service(
        settings=settings,
        engine=engine,
        new_admin_key=key,
        chain=chain,
        batcher=Batcher(engine, chain, cache, settings),
        matcher=matcher,
        verifier=Verifier(settings, engine, matcher, cache, credentials.read),
        clients=registry.ClientCache(engine),
        credentials=credentials,
        tree_cache=cache,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.stop()

    service.evaluator = Evaluator(service)
    service.app = create_app(settings, engine, service, lifespan)
    return service
