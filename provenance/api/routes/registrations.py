"""Camera apps register originals; any reader fetches them."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile, status

from provenance import registry
from provenance.api.deps import CameraDep, EngineDep, ReaderDep, SessionDep, SettingsDep
from provenance.api.schemas import RegistrationPublic

router = APIRouter(prefix="/v1", tags=["registrations"])

_SUFFIX = re.compile(r"^\.[a-z0-9]{1,5}$")


def upload_suffix(filename: str | None) -> str:
    suffix = Path(filename or "").suffix.lower()
    return suffix if _SUFFIX.match(suffix) else ".bin"


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
    tmp_dir = settings.data_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    suffix = upload_suffix(media.filename)
    with tempfile.NamedTemporaryFile(dir=tmp_dir, suffix=suffix) as tmp:
        shutil.copyfileobj(media.file, tmp)
        tmp.flush()
        upload = registry.Upload(path=Path(tmp.name), suffix=suffix)
        registration = registry.register(engine, settings, manifest, signature, upload)
        return RegistrationPublic.of(service.registered(registration))


@router.get("/registrations/{registration_id}", response_model=RegistrationPublic)
def get_registration(registration_id: str, session: SessionDep, _: ReaderDep) -> RegistrationPublic:
    return RegistrationPublic.of(registry.get_registration(session, registration_id))
