"""The web interface's session (issue #17, item 10): the cookie holds a random session id, never the
API key; the id is stored hashed in the database with an expiry, so every API process shares it and
signing out ends it everywhere; `Secure` when the request came over HTTPS."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from harness.accounts import make_key
from provenance.api.app import create_app
from provenance.api.web import SESSION_COOKIE
from provenance.core.config import Settings
from provenance.core.timeutil import utcnow
from provenance.service import Service, open_service
from tests.conftest import chainless_settings

ORIGIN = {"Origin": "http://testserver"}


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return chainless_settings(tmp_path, database_url)


def _key(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def sign_in(http: TestClient, key: str, origin: str = "http://testserver") -> str:
    """Sign in through the form; returns the cookie's value."""
    response = http.post(
        "/ui/sign-in",
        data={"api_key": key, "next": "/ui/"},
        headers={"Origin": origin},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    token = response.cookies[SESSION_COOKIE]
    assert token
    return token


def as_cookie(http: TestClient, path: str, token: str) -> int:
    """A same-origin page request carrying only the given session cookie."""
    http.cookies.clear()
    return http.get(path, headers={"Cookie": f"{SESSION_COOKIE}={token}"}, follow_redirects=False).status_code


def test_cookie_is_a_session_id_and_sign_out_revokes_it(
    http: TestClient, service: Service, admin_headers: dict[str, str]
) -> None:
    from provenance.models import WebSession

    key = _key(make_key(http, admin_headers, "newsroom"))
    token = sign_in(http, key)
    assert token != key and key not in token, "the cookie must not be the API key"
    with Session(service.engine) as session:
        [stored] = session.exec(select(WebSession)).all()
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest(), "stored hashed, not as is"
    assert token not in stored.model_dump_json()
    assert stored.expires_at > utcnow() + timedelta(hours=7)

    assert as_cookie(http, "/v1/verifications", token) == 200
    assert as_cookie(http, "/ui/", token) == 200
    http.cookies.set(SESSION_COOKIE, token)
    out = http.post("/ui/sign-out", headers=ORIGIN, follow_redirects=False)
    assert out.status_code == 303

    # The cookie, replayed after sign-out (e.g. copied before), is worth nothing now.
    assert as_cookie(http, "/v1/verifications", token) == 401
    assert as_cookie(http, "/ui/", token) == 303
    with Session(service.engine) as session:
        assert session.exec(select(WebSession)).all() == []
    # And an old-style cookie holding the key itself is no session either.
    assert as_cookie(http, "/v1/verifications", key) == 401


def test_session_ends_with_expiry_key_rotation_and_client_revocation(
    http: TestClient, service: Service, admin_headers: dict[str, str]
) -> None:
    created = http.post("/v1/clients", json={"name": "desk", "scope": "newsroom"}, headers=admin_headers)
    client_id, key = created.json()["id"], created.json()["api_key"]
    from provenance.models import WebSession

    token = sign_in(http, key)
    with Session(service.engine) as session:
        row = session.exec(select(WebSession)).one()
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.add(row)
        session.commit()
    assert as_cookie(http, "/v1/verifications", token) == 401, "expired"

    token = sign_in(http, key)
    rotated = http.post(f"/v1/clients/{client_id}/rotate", json={"grace_seconds": 0}, headers=admin_headers)
    assert as_cookie(http, "/v1/verifications", token) == 401, "the key it was opened with is rotated out"

    token = sign_in(http, rotated.json()["api_key"])
    assert as_cookie(http, "/v1/verifications", token) == 200
    assert http.post(f"/v1/clients/{client_id}/revoke", headers=admin_headers).status_code == 200
    assert as_cookie(http, "/v1/verifications", token) == 401, "the client is revoked"


@pytest.fixture
def second(settings: Settings, service: Service) -> Iterator[TestClient]:
    """A second API process on the same database (its own engine, caches and memory)."""
    other = open_service(settings)
    try:
        with TestClient(create_app(other), raise_server_exceptions=False) as client:
            yield client
    finally:
        other.engine.dispose()


def test_sessions_are_shared_by_every_api_process(
    http: TestClient, second: TestClient, admin_headers: dict[str, str]
) -> None:
    key = _key(make_key(http, admin_headers, "factchecker"))
    token = sign_in(http, key)
    assert as_cookie(second, "/v1/verifications", token) == 200, "signed in through one, known to the other"
    second.cookies.set(SESSION_COOKIE, token)
    assert second.post("/ui/sign-out", headers=ORIGIN, follow_redirects=False).status_code == 303
    assert as_cookie(http, "/v1/verifications", token) == 401, "signed out through one, ended in both"


def test_secure_cookie_over_https_only(service: Service, admin_headers: dict[str, str]) -> None:
    with TestClient(create_app(service), base_url="https://testserver") as https:
        key = _key(make_key(https, admin_headers, "newsroom"))
        response = https.post(
            "/ui/sign-in",
            data={"api_key": key},
            headers={"Origin": "https://testserver"},
            follow_redirects=False,
        )
        assert response.status_code == 303
        assert "secure" in response.headers["set-cookie"].lower()
        https.cookies.set(SESSION_COOKIE, response.cookies[SESSION_COOKIE])
        out = https.post("/ui/sign-out", headers={"Origin": "https://testserver"}, follow_redirects=False)
        assert "secure" in out.headers["set-cookie"].lower()
    with TestClient(create_app(service)) as plain:
        # X-Forwarded-Proto from a client is not believed by the app itself: only uvicorn's
        # trusted-proxy handling (FORWARDED_ALLOW_IPS) may turn a request's scheme into https.
        response = plain.post(
            "/ui/sign-in",
            data={"api_key": key},
            headers={"Origin": "http://testserver", "X-Forwarded-Proto": "https"},
            follow_redirects=False,
        )
        assert response.status_code == 303
        assert "secure" not in response.headers["set-cookie"].lower()
