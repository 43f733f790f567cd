"""Content Credentials: signing registered originals, and the C2PA Soft Binding Resolution API.

The resolution endpoints sit at the paths the C2PA specification gives (/matches/..., /manifests/...,
/services/...), so Content Credentials tools can be pointed at this server.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel
from starlette.background import BackgroundTask

from provenance.api.deps import CameraDep, ReaderDep, SettingsDep, service_of
from provenance.api.uploads import saved_upload
from provenance.c2pa import SOFT_BINDING_ALG
from provenance.core.errors import DomainError
from provenance.credentials import Credentials, check_alg

router = APIRouter(tags=["content credentials"])

MaxResults = Annotated[int, Query(alias="maxResults", ge=1, le=100)]


class BindingQuery(BaseModel):
    alg: str
    value: str


def _credentials(request: Request) -> Credentials:
    credentials: Credentials = service_of(request).credentials
    return credentials


@router.post("/v1/c2pa/sign", response_class=FileResponse)
def sign(
    request: Request,
    settings: SettingsDep,
    _: CameraDep,
    media: Annotated[UploadFile, File(description="a registered original, byte for byte")],
) -> FileResponse:
    """The same file with a C2PA manifest signed by this service (soft binding + registration receipt)."""
    with saved_upload(settings, media) as src:
        dst = src.with_name(f"{src.stem}.signed{src.suffix}")
        try:
            label, registration = _credentials(request).sign(src, dst)
        except BaseException:
            dst.unlink(missing_ok=True)
            raise
    return FileResponse(
        dst,
        filename=f"signed{dst.suffix}",
        headers={"X-C2PA-Manifest-Id": label, "X-Registration-Id": registration.id},
        background=BackgroundTask(dst.unlink, missing_ok=True),
    )


@router.get("/matches/byBinding")
def matches_by_binding(
    request: Request, _: ReaderDep, alg: str, value: str, max_results: MaxResults = 10
) -> dict[str, Any]:
    return {"matches": _credentials(request).by_binding(alg, value, max_results)}


@router.post("/matches/byBinding")
def matches_by_large_binding(
    request: Request, _: ReaderDep, query: BindingQuery, max_results: MaxResults = 10
) -> dict[str, Any]:
    return {"matches": _credentials(request).by_binding(query.alg, query.value, max_results)}


@router.post("/matches/byContent")
async def matches_by_content(
    request: Request,
    settings: SettingsDep,
    _: ReaderDep,
    alg: str | None = None,
    max_results: MaxResults = 10,
) -> dict[str, Any]:
    """The asset is the request body (image/* or video/*); it is fingerprinted and matched."""
    check_alg(alg)
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if not kind.startswith(("image/", "video/", "application/octet-stream")):
        raise DomainError(
            "unsupported_media_type", "send the asset as the body, with an image/* or video/* type", 415
        )
    tmp_dir = settings.data_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=tmp_dir, delete=False) as tmp:
        path = Path(tmp.name)
        try:
            async for chunk in request.stream():
                tmp.write(chunk)
        except BaseException:
            # e.g. the body-size bound tripping mid-stream: the partial file must not stay behind.
            tmp.close()
            path.unlink(missing_ok=True)
            raise
    try:
        from starlette.concurrency import run_in_threadpool

        service = service_of(request)
        outcome = await run_in_threadpool(service.outcome_of_file, path)
    finally:
        path.unlink(missing_ok=True)
    return {"matches": _credentials(request).by_outcome(outcome, max_results)}


@router.get("/manifests/{manifest_id}", response_class=Response)
def get_manifest(request: Request, _: ReaderDep, manifest_id: str) -> Response:
    return Response(_credentials(request).store(manifest_id), media_type="application/c2pa")


@router.get("/services/supportedAlgorithms")
def supported_algorithms() -> dict[str, Any]:
    return {"watermarks": [], "fingerprints": [{"alg": SOFT_BINDING_ALG}]}
