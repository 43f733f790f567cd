"""Camera apps register originals; any reader fetches them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile, status

from provenance import registry
from provenance.api.deps import CameraDep, EngineDep, ReaderDep, SessionDep, SettingsDep
from provenance.api.schemas import RegistrationPublic
from provenance.api.uploads import saved_upload

router = APIRouter(prefix="/v1", tags=["registrations"])


@router.post("/registrations", status_code=status.HTTP_201_CREATED, response_model=RegistrationPublic)
def create_registration(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    _: CameraDep,
    manifest: Annotated[str, Form(description="the capture manifest as JSON")],
    signature: Annotated[str, Form(description="base64 Ed25519 signature over the RFC 8785 bytes")],
    media: Annotated[UploadFile | None, File(description="optional: the media itself")] = None,
) -> RegistrationPublic:
    service = request.app.state.service
    if media is None:
        return RegistrationPublic.of(
            service.registered(registry.register(engine, settings, manifest, signature))
        )
    with saved_upload(settings, media) as path:
        upload = registry.Upload(path=path, suffix=path.suffix)
        credentials = service.credentials.read(path)
        registration = registry.register(engine, settings, manifest, signature, upload, credentials)
        return RegistrationPublic.of(service.registered(registration))


@router.get("/registrations/{registration_id}", response_model=RegistrationPublic)
def get_registration(registration_id: str, session: SessionDep, _: ReaderDep) -> RegistrationPublic:
    return RegistrationPublic.of(registry.get_registration(session, registration_id))
