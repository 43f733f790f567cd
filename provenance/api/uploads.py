"""Uploaded media lands in a temporary file under the data directory, removed when the request ends."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from starlette.datastructures import UploadFile

from provenance import containers
from provenance.core.config import Settings

_HEAD_BYTES = 64


@contextmanager
def saved_upload(settings: Settings, media: UploadFile) -> Iterator[Path]:
    """The upload as a file named with the suffix of the container its bytes show, never the
    client's: a name like `x.m3u8` must not reach anything that picks a reader by suffix.

    Its size is already bounded by the request gate; the decoder refuses a container outside the
    allow-list (`media_unsupported_format`).
    """
    tmp_dir = settings.data_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    head = media.file.read(_HEAD_BYTES)
    media.file.seek(0)
    suffix = containers.suffix_for(head)
    tmp = tempfile.NamedTemporaryFile(dir=tmp_dir, suffix=suffix, delete=False)  # noqa: SIM115
    path = Path(tmp.name)
    try:
        with tmp:  # closing flushes: a full disk may raise there too
            shutil.copyfileobj(media.file, tmp)
    except BaseException:  # e.g. a full disk (507): the partial copy must not stay behind
        path.unlink(missing_ok=True)
        raise
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
