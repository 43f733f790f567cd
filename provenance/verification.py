"""Verifying submitted clips: fingerprint, retrieve, align, compare, and attach the original's evidence."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from provenance import fingerprint as fp
from provenance.core.config import Settings
from provenance.core.db import session_scope
from provenance.core.errors import DomainError, NotFound
from provenance.core.security import new_id
from provenance.core.timeutil import iso, utcnow
from provenance.index import FrameIndex
from provenance.ledger import log, merkle
from provenance.models import Device, Registration, Verification
from provenance.receipts import build_receipt
from provenance.reports import write_verification_report
from provenance.signing import verify_signature
from provenance.verify.compare import Comparer, PdqGridComparer
from provenance.verify.verdict import verify_fingerprint

logger = logging.getLogger(__name__)

RESULT_SCHEMA = "provenance.verification/v1"


class Matcher:
    """The in-memory index of registered frames, rebuilt from the database at start and kept current."""

    def __init__(self, engine: Engine, comparer: Comparer | None = None) -> None:
        self.engine = engine
        self.index = FrameIndex()
        self.comparer: Comparer = comparer or PdqGridComparer()
        self._load = lru_cache(maxsize=4096)(self._load_uncached)

    def rebuild(self) -> int:
        with Session(self.engine) as session:
            rows = session.exec(
                select(Registration.id, Registration.fingerprint).order_by(col(Registration.received_at))
            ).all()
        for registration_id, data in rows:
            self.index.add(registration_id, fp.Fingerprint.decode(data))
        return len(rows)

    def add(self, registration_id: str, fingerprint: fp.Fingerprint) -> None:
        self.index.add(registration_id, fingerprint)

    def _load_uncached(self, registration_id: str) -> fp.Fingerprint:
        with Session(self.engine) as session:
            registration = session.get(Registration, registration_id)
        if registration is None:
            raise NotFound("registration_not_found", registration_id)
        return fp.Fingerprint.decode(registration.fingerprint)

    def outcome(self, query: fp.Fingerprint) -> dict[str, Any]:
        return verify_fingerprint(query, self.index, self._load, self.comparer).to_json()


def evidence(session: Session, registration_id: str, cache: log.TreeCache) -> dict[str, Any]:
    """The matched registration's checks: device, capture time, signature, anchoring."""
    registration = session.get(Registration, registration_id)
    assert registration is not None
    device = session.get(Device, registration.device_id)
    manifest = json.loads(registration.manifest)
    signature_valid = device is not None and verify_signature(
        manifest, registration.signature, device.public_key
    )
    receipt = build_receipt(session, registration, cache)
    anchor: dict[str, Any] = {"status": receipt["anchor"]["status"]}
    if receipt["anchor"]["status"] == "anchored":
        included = merkle.verify_inclusion(
            bytes.fromhex(receipt["leaf_hash"]),
            receipt["leaf_index"],
            receipt["tree_size"],
            [bytes.fromhex(h) for h in receipt["inclusion_proof"]],
            bytes.fromhex(receipt["root"]),
        )
        anchor = {
            "status": "anchored",
            "chain_id": receipt["anchor"]["chain_id"],
            "contract": receipt["anchor"]["contract"],
            "transaction": receipt["anchor"]["transaction"],
            "block": receipt["anchor"]["block_number"],
            "root": receipt["root"],
            "inclusion_proof": "valid" if included else "invalid",
        }
    return {
        "device_id": registration.device_id,
        "captured_at": iso(registration.captured_at),
        "signature_valid": signature_valid,
        "anchor": anchor,
        "receipt_url": f"/v1/registrations/{registration_id}/receipt",
    }


class Verifier:
    """Runs verifications, short ones inline and long ones on a small worker pool."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        matcher: Matcher,
        cache: log.TreeCache,
        read_credentials: Callable[[Path], dict[str, Any] | None] | None = None,
    ) -> None:
        self.read_credentials = read_credentials
        self.settings = settings
        self.engine = engine
        self.matcher = matcher
        self.cache = cache
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify")

    def submit(
        self,
        client_id: str,
        path: Path,
        filename: str,
        media_sha256: str,
    ) -> Verification:
        from provenance.media import probe

        info = probe(path, self.settings.limits)  # refuses bad media before anything is written
        verification = Verification(
            id=new_id("ver"),
            client_id=client_id,
            status="queued",
            filename=filename[:255],
            media_sha256=media_sha256,
            created_at=utcnow(),
        )
        with session_scope(self.engine) as session:
            session.add(verification)
        if info.duration <= self.settings.verify_sync_max_s:
            self._run(verification.id, path)
        else:
            job_path = path.with_name(f"{verification.id}{path.suffix}")
            path.replace(job_path)
            self.pool.submit(self._run, verification.id, job_path, True)
        return self.get(verification.id)

    def _run(self, verification_id: str, path: Path, owns_file: bool = False) -> None:
        self._set(verification_id, status="running")
        try:
            query = fp.compute_fingerprint(
                path, limits=self.settings.limits, sample_fps=self.settings.sample_fps
            )
            outcome = self.matcher.outcome(query)
            if outcome.get("match"):
                with Session(self.engine) as session:
                    outcome["match"].update(
                        evidence(session, outcome["match"]["registration_id"], self.cache)
                    )
            credentials = self.read_credentials(path) if self.read_credentials else None
            result = {
                "schema": RESULT_SCHEMA,
                "id": verification_id,
                **outcome,
                "c2pa": credentials,
                "report_url": f"/v1/verifications/{verification_id}/report",
            }
            self._set(verification_id, status="done", result=json.dumps(result), finished_at=utcnow())
            write_verification_report(self.settings, self.engine, verification_id, result, path)
        except DomainError as exc:
            self._set(
                verification_id,
                status="failed",
                error=json.dumps({"code": exc.code, "detail": exc.detail}),
                finished_at=utcnow(),
            )
            if not owns_file:
                raise
        except Exception:
            logger.exception("verification %s failed", verification_id)
            self._set(
                verification_id,
                status="failed",
                error=json.dumps({"code": "internal_error", "detail": "verification failed; logged"}),
                finished_at=utcnow(),
            )
            if not owns_file:
                raise
        finally:
            if owns_file:
                path.unlink(missing_ok=True)

    def _set(self, verification_id: str, **values: Any) -> None:
        with session_scope(self.engine) as session:
            verification = session.get(Verification, verification_id)
            assert verification is not None
            for key, value in values.items():
                setattr(verification, key, value)
            session.add(verification)

    def get(self, verification_id: str, client_id: str | None = None) -> Verification:
        with Session(self.engine) as session:
            verification = session.get(Verification, verification_id)
        if verification is None or (client_id is not None and verification.client_id != client_id):
            raise NotFound("verification_not_found", f"no verification {verification_id}")
        return verification

    def stop(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def public_view(verification: Verification) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": verification.id,
        "status": verification.status,
        "filename": verification.filename,
        "created_at": iso(verification.created_at),
    }
    if verification.result:
        body.update(json.loads(verification.result))
        body["status"] = verification.status
    if verification.error:
        body["error"] = json.loads(verification.error)
    return body
