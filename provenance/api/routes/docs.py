"""`/docs`: Swagger UI served from our own origin, so it renders on a machine without internet.

The assets (Swagger UI 5, which reads OpenAPI 3.1) come from the pinned `fastapi-offline` package;
nothing on the page loads from a CDN.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from provenance.core.errors import NotFound

router = APIRouter(include_in_schema=False)

ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
# The only files `/docs/assets/{name}` serves.
ASSETS = {name: ASSETS_DIR / name for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")}


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} API",
        swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
        swagger_favicon_url=f"{root}/docs/assets/favicon.png",
        # No badge that would call the public validator.
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get("/docs/assets/{name}")
def asset(name: str) -> FileResponse:
    path = ASSETS.get(name)
    if path is None:
        raise NotFound("static_not_found", f"no docs asset {name}")
    return FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})
