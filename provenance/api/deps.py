"""Annotated dependencies: the engine, settings and the authenticated client with its scope."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlmodel import Session

from provenance import registry
from provenance.core.config import Settings
from provenance.core.db import session_scope
from provenance.core.errors import AuthError, Forbidden
from provenance.core.security import Scope
from provenance.models import ApiClient
from provenance.ratelimit import RateLimiter

_bearer = HTTPBearer(auto_error=False)


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    with session_scope(engine) as session:
        yield session


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]


def require(*scopes: Scope) -> Callable[..., ApiClient]:
    """A dependency that admits clients holding one of `scopes` (admin is admitted everywhere)."""
    allowed = {s.value for s in scopes} | {Scope.admin.value}

    def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ApiClient:
        if credentials is None:
            raise AuthError("api_key_missing", "send an API key as 'Authorization: Bearer KEY'")
        clients: registry.ClientCache = request.app.state.service.clients
        client = clients.authenticate(credentials.credentials)
        if client is None:
            raise AuthError("api_key_invalid", "the API key is unknown or revoked")
        if client.scope not in allowed:
            raise Forbidden("scope_forbidden", f"this needs one of the scopes {sorted(allowed)}")
        limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
        if limiter is not None:
            limiter.hit(client.id, client.scope)
        return client

    return dependency


AdminDep = Annotated[ApiClient, Depends(require(Scope.admin))]
CameraDep = Annotated[ApiClient, Depends(require(Scope.camera))]
VerifierDep = Annotated[ApiClient, Depends(require(Scope.newsroom, Scope.factchecker))]
ReaderDep = Annotated[ApiClient, Depends(require(Scope.camera, Scope.newsroom, Scope.factchecker))]
