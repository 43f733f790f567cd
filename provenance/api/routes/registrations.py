"""Camera apps register originals; any reader fetches them."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request, Response, status
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from provenance import registry
from provenance.api.deps import CameraDep, CameraUncountedDep, ReaderDep, SessionDep, count_hits, service_of
from provenance.api.schemas import (
    RegistrationBatch,
    RegistrationBatchItem,
    RegistrationBatchResult,
    RegistrationPublic,
    RegistrationRefusal,
    RegistrationSummary,
)
from provenance.api.uploads import saved_upload
from provenance.core.errors import DomainError

router = APIRouter(prefix="/v1", tags=["registrations"])

_FORM_FIELDS: dict[str, Any] = {
    "manifest": {"type": "string", "description": "the capture manifest as JSON"},
    "signature": {"type": "string", "description": "base64 Ed25519 signature over the RFC 8785 bytes"},
}
# The body is read by hand (JSON or a form, one endpoint), so the schema is spelled out here.
_REGISTRATION_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/RegistrationSubmission"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["manifest", "signature"],
                    "properties": {
                        **_FORM_FIELDS,
                        "media": {
                            "type": "string",
                            "format": "binary",
                            "description": "optional: the media itself",
                        },
                    },
                }
            },
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["manifest", "signature"],
                    "properties": _FORM_FIELDS,
                }
            },
        },
    }
}


def _invalid(detail: str) -> DomainError:
    return DomainError("request_invalid", detail, 422)


def _json_submission(body: bytes) -> registry.Submission:
    """`{"manifest": {...} or "...", "signature": "..."}`, parsed once: the manifest object goes to the
    checks as it is, with no JSON text to re-parse and no form encoding to undo."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _invalid(f"body: not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise _invalid("body: must be a JSON object")
    unknown = sorted(set(parsed) - {"manifest", "signature"})
    if unknown:
        raise _invalid(f"body.{unknown[0]}: extra fields are not permitted")
    manifest, signature = parsed.get("manifest"), parsed.get("signature")
    if not isinstance(manifest, dict | str):
        raise _invalid("body.manifest: an object or its JSON text is required")
    if not isinstance(signature, str):
        raise _invalid("body.signature: a string is required")
    return registry.Submission(manifest, signature)


def _form_submission(form: FormData) -> tuple[registry.Submission, UploadFile | None]:
    fields: dict[str, str] = {}
    for name in ("manifest", "signature"):
        value = form.get(name)
        if not isinstance(value, str):
            raise _invalid(f"body.{name}: {'Field required' if value is None else 'must be text'}")
        fields[name] = value
    media = form.get("media")
    if media is not None and not isinstance(media, UploadFile):
        raise _invalid("body.media: must be a file")
    return registry.Submission(fields["manifest"], fields["signature"]), media


def _created(accepted: registry.Accepted) -> Response:
    """201 with the new registration; 200 with the stored one for an identical retry."""
    body = RegistrationPublic.of(accepted.registration).model_dump_json()
    code = status.HTTP_200_OK if accepted.replayed else status.HTTP_201_CREATED
    return Response(body, status_code=code, media_type="application/json")


@router.post(
    "/registrations",
    status_code=status.HTTP_201_CREATED,
    response_model=RegistrationPublic,
    openapi_extra=_REGISTRATION_BODY,
    responses={
        200: {
            "model": RegistrationPublic,
            "description": "an identical retry by the same client: the registration stored before",
        }
    },
)
async def create_registration(request: Request, client: CameraDep) -> Response:
    """One signed capture manifest: as JSON when no media goes with it (the cheapest), or as a form
    with the manifest's JSON text, the signature and optionally the media itself.

    The same client sending the same signed manifest again (its 201 was lost) gets 200 with the
    registration stored the first time; anyone else reusing the nonce gets 409 `nonce_replayed`."""
    service = service_of(request)
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind == "application/json":
        submission = replace(_json_submission(await request.body()), client_id=client.id)
        return _created(await service.register_json(submission))
    if kind not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise DomainError(
            "unsupported_media_type", "send application/json, or a multipart/form-data form with media", 415
        )
    async with request.form(max_files=1, max_fields=8) as form:
        submission, media = _form_submission(form)
        submission = replace(submission, client_id=client.id)
        if media is None:
            return _created(await service.register_json(submission))
        return _created(await run_in_threadpool(_register_upload, service, submission, media))


def _register_upload(service: Any, submission: registry.Submission, media: UploadFile) -> registry.Accepted:
    with saved_upload(service.settings, media) as path:
        accepted: registry.Accepted = service.register(submission, path, path.suffix)
        return accepted


@router.post("/registrations/batch", response_model=RegistrationBatchResult)
async def create_registration_batch(
    request: Request, batch: RegistrationBatch, client: CameraUncountedDep
) -> RegistrationBatchResult:
    """Captures made offline, synced at once: up to `registration_batch_max` signed manifests, each
    checked on its own (accepted ones are stored and become log leaves; refused ones carry the
    problem code a single registration would get; an identical retry of one stored before is
    accepted with `replayed` and the stored registration). Every item counts against the rate limit."""
    service = service_of(request)
    most = service.settings.registration_batch_max
    if len(batch.items) > most:
        raise DomainError("batch_too_large", f"{len(batch.items)} items; a batch holds at most {most}", 413)
    await count_hits(request, client, len(batch.items))
    submissions = [registry.Submission(item.manifest, item.signature, client.id) for item in batch.items]
    outcomes = await service.register_batch(submissions)
    items = [
        RegistrationBatchItem(
            index=i,
            accepted=False,
            problem=RegistrationRefusal(code=outcome.code, status=outcome.status, detail=outcome.detail),
        )
        if isinstance(outcome, DomainError)
        else RegistrationBatchItem(
            index=i,
            accepted=True,
            replayed=outcome.replayed,
            registration=RegistrationSummary.of(outcome.registration),
        )
        for i, outcome in enumerate(outcomes)
    ]
    accepted = sum(item.accepted for item in items)
    return RegistrationBatchResult(accepted=accepted, refused=len(items) - accepted, items=items)


@router.get("/registrations/{registration_id}", response_model=RegistrationPublic)
def get_registration(registration_id: str, session: SessionDep, _: ReaderDep) -> RegistrationPublic:
    return RegistrationPublic.of(registry.get_registration(session, registration_id))
