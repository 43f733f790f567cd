"""Shared fixtures: the service on SQLite and on the real PostgreSQL, API keys, enrolled devices
(made as `harness.accounts` makes them)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from harness.accounts import EnrolledDevice, enrol_device, make_key
from provenance.api.app import create_app
from provenance.core.config import DecodeLimits, Settings
from provenance.service import Service, open_service

PG_ADMIN_URL = os.environ.get("PROVENANCE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    name = f"prov_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
    else:
        yield from _pg_database()


def service_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    """The tests' settings: the data directory `tmp_path/var`, uploads of up to 20 MiB decoded for
    30 s at most, and any `overrides`."""
    defaults: dict[str, Any] = {
        "data_dir": tmp_path / "var",
        "database_url": database_url,
        "limits": DecodeLimits(max_upload_bytes=20 * 1024 * 1024, max_decode_seconds=30),
    }
    return Settings(**(defaults | overrides))


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return service_settings(tmp_path, database_url)


def chainless_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    """The shared settings without the chain or the demo: for tests of keys, intake and input."""
    return service_settings(tmp_path, database_url, **({"chain_mode": "off", "demo": False} | overrides))


@pytest.fixture
def service(settings: Settings) -> Iterator[Service]:
    svc = open_service(settings)
    try:
        yield svc
    finally:
        svc.engine.dispose()


@pytest.fixture
def http(service: Service) -> Iterator[TestClient]:
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def admin_headers(service: Service) -> dict[str, str]:
    assert service.new_admin_key is not None
    return {"Authorization": f"Bearer {service.new_admin_key}"}


@pytest.fixture
def camera_headers(http: TestClient, admin_headers: dict[str, str]) -> dict[str, str]:
    return make_key(http, admin_headers, "camera")


@pytest.fixture
def device(http: TestClient, admin_headers: dict[str, str]) -> EnrolledDevice:
    return enrol_device(http, admin_headers)
