"""Match reports: the HTML a fact-checker reads and forwards, kept under `DATA_DIR/reports/{id}/`.

`render_report` draws one report from a verification result (see `render`); `write_report` puts
it where the service serves it from, atomically (a report is either all there or not at all);
`write_verification_report` is the verifier's hook: it looks the original up and never raises,
because a report that cannot be drawn must not fail the verification it describes. The report
page then says the report is unavailable.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from provenance.core.config import Settings
from provenance.fingerprint import Fingerprint
from provenance.models import Registration, Verification
from provenance.reports.frames import FrameStore
from provenance.reports.render import NAV_MARKER, render_report, report_csp

__all__ = [
    "NAV_MARKER",
    "FrameStore",
    "render_report",
    "report_csp",
    "report_dir",
    "report_failed",
    "stored_report",
    "write_report",
    "write_verification_report",
]

logger = logging.getLogger(__name__)

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
REPORT_FILE = "index.html"


def report_dir(settings: Settings, verification_id: str) -> Path:
    """Where the report of `verification_id` lives (ids are checked: they become a path)."""
    if not _ID.match(verification_id):
        raise ValueError(f"not a verification id: {verification_id!r}")
    return settings.data_dir / "reports" / verification_id


def stored_report(settings: Settings, verification_id: str) -> Path | None:
    """The report's HTML if it was written, else None."""
    try:
        path = report_dir(settings, verification_id) / REPORT_FILE
    except ValueError:
        return None
    return path if path.is_file() else None


def write_report(
    settings: Settings,
    verification_id: str,
    result: dict[str, Any],
    query: Fingerprint,
    query_frames: FrameStore,
    original_registration: Registration | None,
    *,
    filename: str | None = None,
    receipt: dict[str, Any] | None = None,
) -> Path:
    """Render the report into `DATA_DIR/reports/{id}/` and return its HTML's path.

    Rendered into a scratch directory and renamed into place, so readers never see half a report.
    """
    final = report_dir(settings, verification_id)
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = final.with_name(f".{verification_id}.{secrets.token_hex(4)}.tmp")
    original_path: Path | None = None
    original_fingerprint: Fingerprint | None = None
    if original_registration is not None:
        original_fingerprint = Fingerprint.decode(original_registration.fingerprint)
        if original_registration.media_path and Path(original_registration.media_path).is_file():
            original_path = Path(original_registration.media_path)
    try:
        render_report(
            result,
            query,
            query_frames,
            original_path,
            original_fingerprint,
            scratch,
            settings.limits,
            filename=filename,
            receipt=receipt,
        )
        stale = final.with_name(f".{verification_id}.{secrets.token_hex(4)}.old")
        if final.exists():
            final.rename(stale)
        scratch.rename(final)
        shutil.rmtree(stale, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final / REPORT_FILE


def write_verification_report(
    settings: Settings,
    engine: Engine,
    verification_id: str,
    result: dict[str, Any],
    query: Fingerprint,
    query_frames: FrameStore,
    receipt: dict[str, Any] | None = None,
) -> Path | None:
    """The verifier's hook: write the report of a stored result from what the verification decoded
    (its fingerprint and stills), with the matched original's `receipt` embedded; log failures,
    never raise them."""
    try:
        with Session(engine) as session:
            verification = session.get(Verification, verification_id)
            match = result.get("match")
            registration = session.get(Registration, match["registration_id"]) if match else None
        filename = verification.filename if verification is not None else None
        return write_report(
            settings,
            verification_id,
            result,
            query,
            query_frames,
            registration,
            filename=filename,
            receipt=receipt,
        )
    except Exception as exc:
        logger.exception("the report of verification %s could not be written", verification_id)
        _mark_failed(settings, verification_id, exc)
        return None


def _failure_marker(settings: Settings, verification_id: str) -> Path:
    directory = report_dir(settings, verification_id)
    return directory.with_name(f"{directory.name}.failed")


def _mark_failed(settings: Settings, verification_id: str, exc: Exception) -> None:
    """Remember the failure, so the page says "unavailable" at once instead of waiting for it."""
    try:
        marker = _failure_marker(settings, verification_id)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"error": type(exc).__name__}), encoding="utf-8")
    except (OSError, ValueError):
        logger.exception("cannot record the failed report of %s", verification_id)


def report_failed(settings: Settings, verification_id: str) -> bool:
    """Whether drawing this verification's report failed (and no later attempt succeeded)."""
    try:
        marker = _failure_marker(settings, verification_id)
    except ValueError:
        return False
    return marker.is_file() and stored_report(settings, verification_id) is None
