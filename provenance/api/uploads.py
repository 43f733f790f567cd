"""Uploaded media lands in a temporary file under the data directory, removed when the request ends."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from starlette.datastructures import UploadFile

from provenance.core.config import Settings

_SUFFIX = re.compile(r"^\.[a-z0-9]{1,5}$")


def upload_suffix(filename: str | None) -> str:
    suffix = Path(filename or "").suffix.lower()
    return suffix if _SUFFIX.match(suffix) else ".bin"


@contextmanager
def saved_upload(settings: Settings, media: UploadFile) -> Iterator[Path]:
    """The upload as a file (its size is already bounded by the body-size middleware)."""
    tmp_dir = settings.data_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=tmp_dir, suffix=upload_suffix(media.filename), delete=False) as tmp:
        shutil.copyfileobj(media.file, tmp)
    path = Path(tmp.name)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
