"""The FastAPI application: HTTP in, service calls out."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine

from provenance import __version__
from provenance.api import problems
from provenance.api.limits import BodySizeLimit
from provenance.api.routes import admin, c2pa, evaluations, health, ledger, registrations, verifications, web
from provenance.core.config import Settings
from provenance.ratelimit import RateLimiter

DESCRIPTION = """Register originals at capture time, anchor them, verify clips against them.

Every endpoint but `/health` and `/docs` needs `Authorization: Bearer KEY`. Errors are RFC 9457
problem details with a stable `code`."""


def create_app(
    settings: Settings,
    engine: Engine,
    service: Any,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    app = FastAPI(
        title="Provenance",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        responses=problems.PROBLEM_RESPONSES,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.service = service
    app.state.rate_limiter = RateLimiter(settings, engine)
    problems.install(app)
    # Multipart overhead on top of the media bound.
    batch_bytes = settings.registration_batch_max * settings.registration_batch_item_bytes
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.limits.max_upload_bytes + 1024 * 1024,
        by_path={"/v1/registrations/batch": batch_bytes},
    )
    app.include_router(health.router)
    app.include_router(admin.router)
    app.include_router(registrations.router)
    app.include_router(ledger.router)
    app.include_router(verifications.router)
    app.include_router(c2pa.router)
    app.include_router(evaluations.router)
    web.install(app)
    return app
