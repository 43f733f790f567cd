"""Newsrooms and fact-checkers submit clips; short ones are answered at once, long ones polled."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Request, Response, UploadFile, status

from provenance.api.deps import VerifierDep, service_of
from provenance.api.uploads import saved_upload
from provenance.core.storage import sha256_file
from provenance.models import Verification
from provenance.verification import Verifier, public_view

router = APIRouter(prefix="/v1", tags=["verifications"])


def _verifier(request: Request) -> Verifier:
    verifier: Verifier = service_of(request).verifier
    return verifier


@router.post("/verifications", status_code=status.HTTP_201_CREATED)
async def create_verification(
    request: Request,
    response: Response,
    client: VerifierDep,
    media: Annotated[UploadFile, File(description="the clip or photo to verify")],
) -> dict[str, Any]:
    """Verify a clip. 201 with the result when it is short and a sync slot is free; 202 with a job
    to poll (Location) when it is long or the server is busy with other verifications."""
    settings = service_of(request).settings
    verifier = _verifier(request)

    def work() -> Verification:
        with saved_upload(settings, media) as path:
            digest = sha256_file(path)
            return verifier.submit(client.id, path, media.filename or "upload", digest, bounded=True)

    verification = await verifier.submit_request(work)
    if verification.status in ("queued", "running"):
        response.status_code = status.HTTP_202_ACCEPTED
        response.headers["Location"] = f"/v1/verifications/{verification.id}"
    return public_view(verification)


@router.get("/verifications/{verification_id}")
def get_verification(verification_id: str, request: Request, client: VerifierDep) -> dict[str, Any]:
    owner = None if client.scope == "admin" else client.id
    return public_view(_verifier(request).get(verification_id, owner))
