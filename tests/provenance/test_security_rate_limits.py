"""Rate limits per API key: a 429 problem with Retry-After, per-scope budgets, and one budget
shared by several API processes when the counters live in the database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from harness.accounts import make_key
from provenance.api.app import create_app
from provenance.core.config import Settings
from provenance.core.db import make_engine, migrate
from provenance.ratelimit import DatabaseStorage, RateLimited, RateLimiter
from provenance.service import Service, open_service
from tests.conftest import chainless_settings


def _settings(tmp_path: Path, database_url: str, storage: str, name: str = "var") -> Settings:
    return chainless_settings(
        tmp_path,
        database_url,
        data_dir=tmp_path / name,
        rate_limits={"newsroom": "3/minute", "camera": "5/minute"},
        rate_limit_default="1000/minute",
        rate_limit_storage=storage,
    )


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Service]:
    svc = open_service(_settings(tmp_path, f"sqlite:///{tmp_path / 'rl.db'}", "auto"))
    try:
        yield svc
    finally:
        svc.engine.dispose()


def test_over_the_budget_is_a_429_problem_with_retry_after(limited: Service) -> None:
    admin = {"Authorization": f"Bearer {limited.new_admin_key}"}
    with TestClient(create_app(limited), raise_server_exceptions=False) as http:
        newsroom = make_key(http, admin, "newsroom")
        other_newsroom = make_key(http, admin, "newsroom")
        camera = make_key(http, admin, "camera")
        for _ in range(3):
            assert http.get("/v1/log/root", headers=newsroom).status_code == 200
        refused = http.get("/v1/log/root", headers=newsroom)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        # The budget is per key and per scope: another key of the same scope, a camera key with
        # its own limit, and the admin (the default) are all still served.
        assert http.get("/v1/log/root", headers=other_newsroom).status_code == 200
        for _ in range(5):
            assert http.get("/v1/log/root", headers=camera).status_code == 200
        assert http.get("/v1/log/root", headers=camera).status_code == 429
        assert http.get("/v1/log/root", headers=admin).status_code == 200
        # Requests without a valid key are refused before they count against anyone.
        assert http.get("/v1/log/root", headers={"Authorization": "Bearer pvk_nope"}).status_code == 401
        assert http.get("/health").status_code == 200


def test_database_counters_are_shared_by_several_api_processes(tmp_path: Path, database_url: str) -> None:
    """Two services on one database (as two API processes would be) draw on one budget per key."""
    # On PostgreSQL the default ("auto") already puts the counters in the database.
    storage = "auto" if database_url.startswith("postgresql") else "database"
    first = open_service(_settings(tmp_path, database_url, storage, "a"))
    second = open_service(_settings(tmp_path, database_url, storage, "b"))
    try:
        app_a = create_app(first)
        assert isinstance(app_a.state.rate_limiter.storage, DatabaseStorage)
        admin = {"Authorization": f"Bearer {first.new_admin_key}"}
        a = TestClient(app_a, raise_server_exceptions=False)
        b = TestClient(create_app(second), raise_server_exceptions=False)
        newsroom = make_key(a, admin, "newsroom")
        assert a.get("/v1/log/root", headers=newsroom).status_code == 200
        assert b.get("/v1/log/root", headers=newsroom).status_code == 200
        assert a.get("/v1/log/root", headers=newsroom).status_code == 200
        refused = b.get("/v1/log/root", headers=newsroom)
        assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
        assert a.get("/v1/log/root", headers=newsroom).status_code == 429
    finally:
        first.engine.dispose()
        second.engine.dispose()


def test_windows_end_and_a_down_store_fails_open(tmp_path: Path) -> None:
    settings = _settings(tmp_path, f"sqlite:///{tmp_path / 'w.db'}", "database")
    settings = settings.model_copy(update={"rate_limits": {"newsroom": "2/second"}})
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    limiter = RateLimiter(settings, engine)
    limiter.hit("cli_a", "newsroom")
    limiter.hit("cli_a", "newsroom")
    with pytest.raises(RateLimited) as refused:
        limiter.hit("cli_a", "newsroom")
    assert refused.value.headers == {"Retry-After": "1"}
    time.sleep(1.1)
    limiter.hit("cli_a", "newsroom")  # a new window
    engine.dispose()

    # A store that cannot be reached (here: no table at all) must not turn every request into a 500.
    broken = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    unlimited = RateLimiter(settings, broken)
    for _ in range(5):
        unlimited.hit("cli_a", "newsroom")
    broken.dispose()
