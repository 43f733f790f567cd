"""Annotated dependencies: the service, engine, settings, session and the authenticated client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from provenance import web_sessions
from provenance.core.config import Settings
from provenance.core.db import session_scope
from provenance.core.errors import AuthError, Forbidden
from provenance.core.security import Scope
from provenance.models import ApiClient
from provenance.ratelimit import RateLimiter
from provenance.service import Service

_bearer = HTTPBearer(auto_error=False)


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def get_engine(request: Request) -> Engine:
    return service_of(request).engine


def get_settings(request: Request) -> Settings:
    return service_of(request).settings


def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    with session_scope(engine) as session:
        yield session


ServiceDep = Annotated[Service, Depends(service_of)]
EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]


def require(*scopes: Scope, count: bool = True) -> Callable[..., Awaitable[ApiClient]]:
    """A dependency that admits clients holding one of `scopes` (admin is admitted everywhere) and
    counts the request against the key's rate limit (`count=False`: the endpoint counts, e.g. a
    batch by its items).

    Asynchronous so that a cached key and in-memory counters cost no hop to a worker thread; a
    cache miss or counters in the database run in one.
    """
    allowed = {s.value for s in scopes} | {Scope.admin.value}

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ApiClient:
        if credentials is None:
            raise AuthError("api_key_missing", "send an API key as 'Authorization: Bearer KEY'")
        if not web_sessions.vouched(request.scope, credentials.credentials):
            raise AuthError("api_key_invalid", "a session token is a cookie of our pages, not an API key")
        clients = service_of(request).clients
        client = clients.cached(credentials.credentials)
        if client is None:
            client = await run_in_threadpool(clients.authenticate, credentials.credentials)
        if client is None:
            raise AuthError("api_key_invalid", "the API key is unknown or revoked, or the session ended")
        if client.scope not in allowed:
            raise Forbidden("scope_forbidden", f"this needs one of the scopes {sorted(allowed)}")
        if count:
            await count_hits(request, client, 1)
        return client

    return dependency


async def count_hits(request: Request, client: ApiClient, cost: int) -> None:
    """Count `cost` requests of `client` against its rate limit; raises `RateLimited` when over."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is None:
        return
    if limiter.in_memory:
        limiter.hit(client.id, client.scope, cost)
    else:
        await run_in_threadpool(limiter.hit, client.id, client.scope, cost)


AdminDep = Annotated[ApiClient, Depends(require(Scope.admin))]
CameraDep = Annotated[ApiClient, Depends(require(Scope.camera))]
VerifierDep = Annotated[ApiClient, Depends(require(Scope.newsroom, Scope.factchecker))]
ReaderDep = Annotated[ApiClient, Depends(require(Scope.camera, Scope.newsroom, Scope.factchecker))]
# A camera key whose requests the endpoint counts itself (a batch counts its items).
CameraUncountedDep = Annotated[ApiClient, Depends(require(Scope.camera, count=False))]
