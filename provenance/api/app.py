"""The FastAPI application: HTTP in, service calls out."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import Engine

from provenance import __version__
from provenance.api import problems
from provenance.api.limits import BodySizeLimit
from provenance.api.routes import admin, health, registrations
from provenance.core.config import Settings

DESCRIPTION = """Register originals at capture time, anchor them, verify clips against them.

Every endpoint but `/health` and `/docs` needs `Authorization: Bearer KEY`. Errors are RFC 9457
problem details with a stable `code`."""


def create_app(settings: Settings, engine: Engine) -> FastAPI:
    app = FastAPI(title="Provenance", version=__version__, description=DESCRIPTION)
    app.state.settings = settings
    app.state.engine = engine
    problems.install(app)
    # Multipart overhead on top of the media bound.
    app.add_middleware(BodySizeLimit, max_bytes=settings.limits.max_upload_bytes + 1024 * 1024)
    app.include_router(health.router)
    app.include_router(admin.router)
    app.include_router(registrations.router)
    return app
