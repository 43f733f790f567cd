"""The FastAPI application: HTTP in, service calls out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from provenance import __version__
from provenance.api import nul, problems
from provenance.api.limits import MEDIA_PATHS, BodyBounds, RequestGate
from provenance.api.routes import (
    admin,
    c2pa,
    docs,
    evaluations,
    health,
    ledger,
    registrations,
    verifications,
    web,
)
from provenance.ratelimit import RateLimiter
from provenance.service import Service

DESCRIPTION = """Register originals at capture time, anchor them, verify clips against them.

Every endpoint but `/health` and `/docs` needs `Authorization: Bearer KEY`. Errors are RFC 9457
problem details with a stable `code`."""


def create_app(service: Service) -> FastAPI:
    """The HTTP face of `service`; its lifespan starts and stops the service's loops."""
    settings, engine = service.settings, service.engine

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="Provenance",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        responses=problems.PROBLEM_RESPONSES,
        # Our own /docs (routes/docs.py) serves Swagger UI's assets locally; no CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service  # read through `deps.service_of`, typed
    app.state.rate_limiter = RateLimiter(settings, engine)
    problems.install(app)
    nul.install(app)
    batch_bytes = settings.registration_batch_max * settings.registration_batch_item_bytes
    bounds = BodyBounds(
        # Multipart overhead on top of the media bound.
        media=settings.limits.max_upload_bytes + 1024 * 1024,
        json=settings.max_json_bytes,
        manifest=settings.registration_batch_item_bytes,
        media_paths=MEDIA_PATHS,
        by_path={"/v1/registrations/batch": batch_bytes},
    )

    async def check_key(key: str) -> tuple[str, str] | None:
        clients = service.clients
        if clients.cached(key) is None and await run_in_threadpool(clients.authenticate, key) is None:
            return ("api_key_invalid", "the API key is unknown or revoked")
        return None

    app.add_middleware(RequestGate, bounds=bounds, check_key=check_key)
    app.include_router(health.router)
    app.include_router(docs.router)
    app.include_router(admin.router)
    app.include_router(registrations.router)
    app.include_router(ledger.router)
    app.include_router(verifications.router)
    app.include_router(c2pa.router)
    app.include_router(evaluations.router)
    web.install(app)
    return app
