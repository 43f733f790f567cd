"""NUL characters in a request's path or query are refused before routing (422 `nul_character`):
path ids and query values are used in database lookups, and PostgreSQL refuses NUL in text.

Names and filenames are checked where they are stored (`provenance.core.text.refuse_nul`); as a
last line, a NUL the database refuses anywhere else still answers 422, not 500 (the transaction
is rolled back, so nothing is written).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.types import ASGIApp, Receive, Scope, Send

from provenance.api.problems import problem
from provenance.core.text import NUL_CODE

log = logging.getLogger(__name__)


class RefuseNul:
    """Answers 422 `nul_character` to a request whose decoded path or query string holds a NUL."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            where = _nul_in(scope)
            if where is not None:
                response = problem(422, NUL_CODE, f"the request's {where} contains a NUL character")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _nul_in(scope: Scope) -> str | None:
    if "\x00" in scope.get("path", ""):
        return "path"
    query: bytes = scope.get("query_string", b"")
    if b"\x00" in query or b"%00" in query:
        return "query"
    return None


def install(app: FastAPI) -> None:
    """Add the middleware and the database's NUL refusal as a 422."""
    app.add_middleware(RefuseNul)

    @app.exception_handler(DataError)
    async def _data_error(_: Request, exc: DataError) -> JSONResponse:
        if "NUL" in str(exc.orig):
            return problem(422, NUL_CODE, "the request contains a NUL character")
        log.error("unexpected database error", exc_info=exc)
        return problem(500, "internal_error", "an unexpected error occurred; it has been logged")
