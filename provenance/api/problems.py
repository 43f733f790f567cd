"""RFC 9457 problem details: every refusal has a status, a stable `code` and a readable detail."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from provenance.core.errors import DomainError
from provenance.core.outage import is_database_outage
from provenance.core.storage import StorageFull, is_storage_full

log = logging.getLogger(__name__)

_HTTP_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
}


class Problem(BaseModel):
    """An RFC 9457 problem: clients branch on `code`, people read `detail`."""

    type: str = Field(description="/problems/{code}")
    title: str
    status: int
    detail: str
    code: str = Field(description="stable and documented; never renamed")


_DOCUMENTED = {
    400: "the request is malformed",
    401: "no API key, or an unknown or revoked one",
    403: "the key's scope does not allow this, or the device may not sign",
    404: "no such resource",
    409: "conflicts with what is stored (already enrolled, revoked, replayed)",
    413: "the request body or the media exceeds a size bound",
    415: "the body's media type is not accepted",
    422: "the request or the media is invalid",
    429: "rate limit for this API key exceeded; see Retry-After",
    503: "the database or the job queue is briefly unavailable; retry (see Retry-After)",
    507: "the server's storage is full (`storage_full`); nothing was stored; retry later",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
# Every operation may answer with these; documented once for the whole schema.
PROBLEM_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {
        "model": Problem,
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
        **({"headers": _RETRY_AFTER} if status in (429, 503, 507) else {}),
    }
    for status, description in _DOCUMENTED.items()
}


def problem(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {
        "type": f"/problems/{code}",
        "title": code.replace("_", " "),
        "status": status,
        "detail": detail,
        "code": code,
    }
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


def _storage_full(exc: BaseException) -> JSONResponse:
    """Disk full, file too large or quota exhausted anywhere in a request: 507, whatever wrote."""
    log.warning("storage full: %s", exc)
    error = StorageFull()
    return problem(error.status, error.code, error.detail, error.headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        headers.update(exc.headers or {})
        return problem(exc.status, exc.code, exc.detail, headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return problem(422, "request_invalid", f"{where}: {first.get('msg')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        # Keeps what the exception carries, e.g. the `Allow` of a 405.
        return problem(exc.status_code, code, str(exc.detail), dict(exc.headers or {}) or None)

    @app.exception_handler(OperationalError)
    async def _database_down(_: Request, exc: OperationalError) -> JSONResponse:
        if is_storage_full(exc):  # SQLite on a full disk: not a restart, retrying soon will not help
            return _storage_full(exc)
        # The database is restarting or unreachable: nothing was written; the client may retry.
        log.warning("database unavailable: %s", exc.orig)
        return problem(
            503, "database_unavailable", "the database is unavailable; retry", {"Retry-After": "1"}
        )

    @app.exception_handler(OSError)
    async def _os_error(_: Request, exc: OSError) -> JSONResponse:
        if is_storage_full(exc):
            return _storage_full(exc)
        log.error("unexpected error", exc_info=exc)
        return problem(500, "internal_error", "an unexpected error occurred; it has been logged")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        if is_database_outage(exc):  # raised where the handler above does not reach (a middleware)
            log.warning("database unavailable: %s", exc)
            return problem(
                503, "database_unavailable", "the database is unavailable; retry", {"Retry-After": "1"}
            )
        log.exception("unexpected error")
        return problem(500, "internal_error", "an unexpected error occurred; it has been logged")
