"""Opening the service on a data directory: schema, first-start admin key, the app."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI
from sqlalchemy import Engine

from provenance import registry
from provenance.api.app import create_app
from provenance.core.config import Settings
from provenance.core.db import make_engine, migrate


@dataclass
class Service:
    settings: Settings
    engine: Engine
    app: FastAPI
    new_admin_key: str | None


def open_service(settings: Settings) -> Service:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    key = registry.ensure_admin_key(engine, settings.data_dir / "admin.key")
    return Service(settings=settings, engine=engine, app=create_app(settings, engine), new_admin_key=key)
