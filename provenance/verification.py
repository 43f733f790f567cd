"""Verifying submitted clips: fingerprint, retrieve, align, compare, and attach the original's evidence."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy import Engine, delete
from sqlmodel import Session, col, func, select

from provenance import fingerprint as fp
from provenance.audio import AudioCollector, QueryAudio
from provenance.core.config import ComparerMode, Settings
from provenance.core.db import session_scope
from provenance.core.errors import DomainError, NotFound
from provenance.core.outage import DATABASE, Backoff, is_database_outage
from provenance.core.security import new_id
from provenance.core.storage import StorageFull, is_storage_full
from provenance.core.text import refuse_nul
from provenance.core.timeutil import iso, utcnow
from provenance.faces import FaceCollector, Faces
from provenance.ledger import log, merkle
from provenance.models import Device, LogEntry, Registration, Verification
from provenance.receipts import build_receipt
from provenance.reports import FrameStore, report_failed, stored_report, write_verification_report
from provenance.signing import verify_signature
from provenance.verify.compare import Comparer, PdqGridComparer
from provenance.verify.index import FrameIndex
from provenance.verify.learned import ClipFrames
from provenance.verify.policy import ComparerPolicy, fingerprint_clip
from provenance.verify.reframe import ClipPixels
from provenance.verify.verdict import NOTE_KINDS, QUERY_FACE_STEP, verify_fingerprint

logger = logging.getLogger(__name__)

RESULT_SCHEMA = "provenance.verification/v1"
# Threads beyond the sync slots for verification requests that only save, probe and queue a clip.
INTAKE_THREADS = 4

T = TypeVar("T")


class Matcher:
    """The in-memory index of registered frames, rebuilt from the database at start and kept current."""

    def __init__(
        self, engine: Engine, comparer: Comparer | None = None, comparer_mode: ComparerMode = "auto"
    ) -> None:
        self.engine = engine
        self.index = FrameIndex()
        self.with_faces = 0  # registered originals with a face channel (fingerprint version 3)
        self.with_audio = 0  # and with an audio channel (version 3 too)
        # The baseline: what version 1 registrations, and version 2 ones when the learned comparer
        # does not qualify (PROVENANCE_COMPARER, the weights' evaluation), are compared with.
        self.comparer: Comparer = comparer or PdqGridComparer()
        self.policy = ComparerPolicy(comparer_mode, baseline=self.comparer)
        self._load = lru_cache(maxsize=4096)(self._load_uncached)
        self._add_lock = threading.Lock()
        # Log entries below `_floor` are all in the index; `_seen` remembers recent highs so the
        # floor moves only past ids old enough that no transaction still holding a lower one is open.
        self._floor = 0
        self._seen: list[tuple[float, int]] = []
        # New registrations wait here for the feeder thread: hashing their frames into the index is
        # off the request path; anything that searches drains the queue first, so a registration
        # is findable as soon as its request has returned.
        self._pending: deque[tuple[str, fp.Fingerprint]] = deque()
        self._drain_lock = threading.Lock()
        self._wake = threading.Event()

    def rebuild(self) -> int:
        with Session(self.engine) as session:
            high = session.exec(select(func.max(LogEntry.id))).one() or 0
            rows = session.exec(
                select(Registration.id, Registration.fingerprint).order_by(col(Registration.received_at))
            ).all()
        for registration_id, data in rows:
            self.add(registration_id, fp.Fingerprint.decode(data))
        # Registrations whose transactions were still open at the rebuild are at most this far behind.
        self._floor = max(0, high - 1000)
        return len(rows)

    def add(self, registration_id: str, fingerprint: fp.Fingerprint) -> None:
        with self._add_lock:
            if registration_id not in self.index:
                self.index.add(registration_id, fingerprint)
                if fingerprint.faces is not None:
                    self.with_faces += 1
                if fingerprint.audio is not None:
                    self.with_audio += 1

    def feed(self, registration_id: str, fingerprint: fp.Fingerprint) -> None:
        """Queue a new registration for the index (cheap: the request does not wait for the hashing)."""
        self._pending.append((registration_id, fingerprint))
        self._wake.set()

    def drain(self) -> None:
        """Index every queued registration; returns when none is waiting or being added."""
        with self._drain_lock:
            while self._pending:
                self.add(*self._pending.popleft())

    def feed_forever(self, stop: threading.Event) -> None:
        """The feeder thread: drain whenever registrations arrive, until `stop` is set."""
        while not stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            try:
                self.drain()
            except Exception:  # one bad entry must not stop the feeder; searches drain again
                logger.exception("index feeder failed to add a registration")

    def catch_up(self, settle_s: float = 30.0) -> int:
        """Add registrations made through other processes: new log entries by id, never a full rebuild.

        Ids come from a sequence but commit out of order, so the scan starts at a floor that only
        passes an id once it has been seen for `settle_s` seconds; what is already indexed is skipped.
        """
        self.drain()
        with Session(self.engine) as session:
            rows = session.exec(
                select(LogEntry.id, LogEntry.ref_id)
                .where(LogEntry.kind == "registration", col(LogEntry.id) > self._floor)
                .order_by(col(LogEntry.id))
            ).all()
            missing = [ref for _, ref in rows if ref not in self.index]
            fingerprints = (
                session.exec(
                    select(Registration.id, Registration.fingerprint).where(col(Registration.id).in_(missing))
                ).all()
                if missing
                else []
            )
        for registration_id, data in fingerprints:
            self.add(registration_id, fp.Fingerprint.decode(data))
        now = time.monotonic()
        if rows:
            self._seen.append((now, max(i for i, _ in rows if i is not None)))
        while self._seen and now - self._seen[0][0] >= settle_s:
            self._floor = max(self._floor, self._seen.pop(0)[1])
        return len(fingerprints)

    def follow(self, stop: threading.Event, interval: float) -> None:
        """Keep catching up until `stop` is set (a thread in api and worker processes)."""
        backoff = Backoff(base_s=interval)
        delay = interval
        while not stop.wait(delay):
            try:
                self.catch_up()
                DATABASE.ok()
                backoff.reset()
                delay = interval
            except Exception as exc:  # the database may be restarting: poll again, backing off
                if is_database_outage(exc):
                    DATABASE.failed(exc, "matcher catch-up")
                else:
                    logger.warning("matcher could not catch up; retrying", exc_info=True)
                delay = backoff.next()

    def _load_uncached(self, registration_id: str) -> fp.Fingerprint:
        with Session(self.engine) as session:
            registration = session.get(Registration, registration_id)
        if registration is None:
            raise NotFound("registration_not_found", registration_id)
        return fp.Fingerprint.decode(registration.fingerprint)

    def outcome(
        self,
        query: fp.Fingerprint,
        clip: ClipFrames | None = None,
        faces: Faces | None = None,
        audio: QueryAudio | None = None,
        pixels: ClipPixels | None = None,
        reframes: bool = True,
    ) -> dict[str, Any]:
        """The verdict JSON plus `comparer`: name, version and a note when it fell back (None: no match).

        `pixels` (small copies of the clip's frames) let the reframe search look for a picture
        inside other content and for small rotations."""
        self.drain()
        outcome = verify_fingerprint(
            query,
            self.index,
            self._load,
            self.policy.factory(clip),
            query_faces=faces,
            query_audio=audio,
            pixels=pixels,
            reframes=reframes,
            baseline=self.comparer if isinstance(self.comparer, PdqGridComparer) else None,
        )
        return {**outcome.to_json(), "comparer": outcome.comparer.to_json() if outcome.comparer else None}

    def examine(self, path: Path, settings: Settings) -> Examined:
        """Decode a clip once: fingerprint it (keeping its frames when the learned comparer may use
        them, and stills for its report) and match it."""
        stills = FrameStore()
        pixels = ClipPixels() if settings.reframes else None
        self.drain()
        # The clip's faces, compared with an original's face channel at the aligned instants: only
        # worth their cost while some registered original has one (fingerprint version 3).
        faces = FaceCollector(fps=1 / QUERY_FACE_STEP) if self.with_faces else None
        # The clip's sound, decoded in the same pass, likewise only while some original has sound.
        sound = AudioCollector() if self.with_audio else None
        query, clip = fingerprint_clip(
            path,
            self.policy,
            limits=settings.limits,
            sample_fps=settings.sample_fps,
            sinks=[stills] if pixels is None else [stills, pixels],
            faces=faces,
            audio=sound,
        )
        outcome = self.outcome(
            query,
            clip,
            faces.faces() if faces else None,
            sound.query() if sound else None,
            pixels,
            settings.reframes,
        )
        return Examined(outcome, query, stills)

    def outcome_of_file(self, path: Path, settings: Settings) -> dict[str, Any]:
        return self.examine(path, settings).outcome


@dataclass(frozen=True)
class Examined:
    """A clip's outcome, with what its report is drawn from (so the report decodes nothing again)."""

    outcome: dict[str, Any]
    query: fp.Fingerprint
    stills: FrameStore


def evidence_and_receipt(
    session: Session, registration_id: str, cache: log.TreeCache
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The matched registration's checks (device, capture time, signature, anchoring), and the
    receipt they were read from (embedded in the report)."""
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
    }, receipt


def note_exact_copy(session: Session, outcome: dict[str, Any], media_sha256: str) -> None:
    """A clip whose bytes are the matched original's file is that file: say so, whatever the comparer saw.

    SHA-256 equality leaves no doubt, so the verdict is `authentic` with confidence 1, similarity 1,
    nothing tampered, and an `exact_copy` finding first; `match.exact_copy` says it too.
    """
    match = outcome.get("match")
    if not match:
        return
    registration = session.get(Registration, match["registration_id"])
    exact = registration is not None and registration.content_sha256 == media_sha256
    match["exact_copy"] = exact
    if not exact:
        return
    outcome["verdict"] = "authentic"
    outcome["confidence"] = 1.0
    match["similarity"] = 1.0
    match["tampered_ranges"] = []
    match["segments"] = [{**s, "tampered": False, "regions": []} for s in match.get("segments", [])]
    finding = {
        "kind": "exact_copy",
        "track": "video",
        "query_range": match["query_range"],
        "original_range": match["original_range"],
        "regions": [],
        "detail": f"the file is byte for byte the registered original (SHA-256 {media_sha256})",
    }
    notes = [f for f in outcome.get("findings", []) if f.get("kind") in NOTE_KINDS]
    outcome["findings"] = [finding, *notes]


def note_other_registrants(session: Session, outcome: dict[str, Any]) -> None:
    """`match.also_registered`: the same content (SHA-256) registered from other devices, each
    `earlier` or `later` than the matched registration's capture; the first registrant is evidence
    of priority."""
    match = outcome.get("match")
    if not match:
        return
    registration = session.get(Registration, match["registration_id"])
    if registration is None:
        return
    others = session.exec(
        select(Registration)
        .where(
            Registration.content_sha256 == registration.content_sha256,
            Registration.device_id != registration.device_id,
        )
        .order_by(col(Registration.captured_at))
    ).all()
    match["also_registered"] = [
        {
            "registration_id": other.id,
            "device_id": other.device_id,
            "captured_at": iso(other.captured_at),
            "order": "earlier" if other.captured_at < registration.captured_at else "later",
        }
        for other in others
    ]


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
        # Verification requests run on threads of their own, never the server's pool, so reads and
        # /health answer however many clips arrive: `verify_sync_concurrency` of them may verify
        # inline (a slot each); a few more threads only save, probe and queue the rest as jobs.
        slots = settings.verify_sync_concurrency
        self.sync_slots = threading.BoundedSemaphore(slots)
        self.requests = ThreadPoolExecutor(
            max_workers=slots + INTAKE_THREADS, thread_name_prefix="verify-request"
        )
        # Beyond one machine: long verifications go to the shared queue instead of `pool`.
        self.defer: Callable[[str, Path], object] | None = None

    def submit(
        self,
        client_id: str,
        path: Path,
        filename: str,
        media_sha256: str,
        bounded: bool = False,
    ) -> Verification:
        """Store a verification and run it: inline when the clip is short, else as a job.

        `bounded` (requests): a short clip runs inline only while a sync slot is free, else it is
        queued like a long one, so a burst costs 202s, not a server whose every thread is busy.
        """
        from provenance.media import probe

        refuse_nul(filename, "filename")  # PostgreSQL cannot store it; refused alike everywhere
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
        short = info.duration <= self.settings.verify_sync_max_s
        if short and (not bounded or self.sync_slots.acquire(blocking=False)):
            try:
                self._run(verification.id, path)
            except DomainError:
                # Refused within the request (media that passed the header checks but not decoding):
                # a failed request writes nothing, so the provisional row goes.
                with session_scope(self.engine) as session:
                    session.execute(delete(Verification).where(col(Verification.id) == verification.id))
                raise
            finally:
                if bounded:
                    self.sync_slots.release()
        elif self.defer is not None:
            # The workers read the clip from the shared data directory (a shared volume beyond one machine).
            jobs_dir = self.settings.data_dir / "jobs"
            jobs_dir.mkdir(parents=True, exist_ok=True)
            job_path = jobs_dir / f"{verification.id}{path.suffix}"
            shutil.move(path, job_path)
            try:
                self.defer(verification.id, job_path)
            except Exception as exc:
                job_path.unlink(missing_ok=True)
                with suppress(Exception):
                    self._set(verification.id, status="failed", error=json.dumps({"code": "queue_down"}))
                raise DomainError("queue_unavailable", "the job queue is unavailable; retry", 503) from exc
        else:
            job_path = path.with_name(f"{verification.id}{path.suffix}")
            path.replace(job_path)
            self.pool.submit(self._run, verification.id, job_path, True)
        return self.get(verification.id)

    async def submit_request(self, work: Callable[[], T]) -> T:
        """Run a request's verification work (`work` calls `submit(..., bounded=True)`) on the
        verifier's own threads; the event loop and the server's thread pool stay free."""
        return await asyncio.get_running_loop().run_in_executor(self.requests, work)

    def run_job(self, verification_id: str, path: Path, final: bool) -> None:
        """Run a queued verification; idempotent, so a job retried after its worker died is safe.

        Unexpected errors leave it `queued` and raise, so the queue retries; the `final` attempt
        records them as failed. The clip is deleted once the verification has an outcome.
        """
        if self.get(verification_id).status in ("done", "failed"):
            path.unlink(missing_ok=True)
            return
        if not path.exists():
            self._fail(verification_id, "job_media_missing", "the queued clip is gone")
            return
        if final:
            self._run(verification_id, path, owns_file=True)
            return
        with suppress(DomainError):  # recorded as failed: bad media does not get better on a retry
            self._run(verification_id, path, retryable=True)
        path.unlink(missing_ok=True)

    def _run(
        self, verification_id: str, path: Path, owns_file: bool = False, retryable: bool = False
    ) -> None:
        self._set(verification_id, status="running")
        try:
            examined = self.matcher.examine(path, self.settings)
            outcome = examined.outcome
            receipt: dict[str, Any] | None = None
            if outcome.get("match"):
                media_sha256 = self.get(verification_id).media_sha256
                with Session(self.engine) as session:
                    found, receipt = evidence_and_receipt(
                        session, outcome["match"]["registration_id"], self.cache
                    )
                    outcome["match"].update(found)
                    note_exact_copy(session, outcome, media_sha256)
                    note_other_registrants(session, outcome)
            credentials = self.read_credentials(path) if self.read_credentials else None
            result = {
                "schema": RESULT_SCHEMA,
                "id": verification_id,
                **outcome,
                "c2pa": credentials,
                "report_url": f"/v1/verifications/{verification_id}/report",
            }
            self._set(verification_id, status="done", result=json.dumps(result), finished_at=utcnow())
            write_verification_report(
                self.settings,
                self.engine,
                verification_id,
                result,
                examined.query,
                examined.stills,
                receipt=receipt,
            )
        except DomainError as exc:
            self._fail(verification_id, exc.code, exc.detail)
            if not owns_file:
                raise
        except Exception as exc:
            if is_storage_full(exc):
                # A full disk is the operator's to fix: refused like bad input (507, row removed).
                self._fail(verification_id, "storage_full", "the server's storage is full")
                if not owns_file:
                    raise StorageFull() from exc
                return
            logger.exception("verification %s failed", verification_id)
            if retryable:
                self._set(verification_id, status="queued")
                raise
            self._fail(verification_id, "internal_error", "verification failed; logged")
            if not owns_file:
                raise
        finally:
            if owns_file:
                path.unlink(missing_ok=True)

    def _fail(self, verification_id: str, code: str, detail: str) -> None:
        """The verification ends `failed`, with the problem code and detail its client reads."""
        self._set(
            verification_id,
            status="failed",
            error=json.dumps({"code": code, "detail": detail}),
            finished_at=utcnow(),
        )

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

    def recent(self, client_id: str, limit: int) -> list[dict[str, Any]]:
        """A client's own verifications, newest first, summarised."""
        with Session(self.engine) as session:
            rows = session.exec(
                select(Verification)
                .where(Verification.client_id == client_id)
                .order_by(col(Verification.created_at).desc(), col(Verification.id).desc())
                .limit(limit)
            ).all()
        return [summary(v) for v in rows]

    def report(self, verification: Verification) -> tuple[ReportState, Path | None]:
        """Where a verification's report stands, and its file once it is drawn."""
        path = stored_report(self.settings, verification.id)
        if path is not None:
            return "ready", path
        if verification.status in ("queued", "running"):
            return "verification_pending", None
        if verification.status == "failed":
            return "verification_failed", None
        if _just_finished(verification) and not report_failed(self.settings, verification.id):
            return "report_pending", None  # the hook is still drawing it
        return "report_unavailable", None

    def stop(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.requests.shutdown(wait=False, cancel_futures=True)


# A verification's report: drawn, or why not (the verification or the drawing still running, or failed).
ReportState = Literal[
    "ready", "verification_pending", "verification_failed", "report_pending", "report_unavailable"
]
# How long after a verification finished a missing report is "being drawn" rather than "unavailable".
REPORT_GRACE_S = 120.0


def _just_finished(verification: Verification) -> bool:
    finished = verification.finished_at
    if finished is None:
        return False
    if finished.tzinfo is None:
        finished = finished.replace(tzinfo=UTC)
    return (utcnow() - finished).total_seconds() < REPORT_GRACE_S


def summary(verification: Verification) -> dict[str, Any]:
    """One line of a client's history: enough to list it and link to its report."""
    result = json.loads(verification.result) if verification.result else {}
    match = result.get("match") or {}
    return {
        "id": verification.id,
        "status": verification.status,
        "filename": verification.filename,
        "created_at": iso(verification.created_at),
        "finished_at": iso(verification.finished_at) if verification.finished_at else None,
        "verdict": result.get("verdict"),
        "confidence": result.get("confidence"),
        "registration_id": match.get("registration_id"),
        "tampered_ranges": match.get("tampered_ranges", []),
        "error": json.loads(verification.error) if verification.error else None,
        "report_url": f"/v1/verifications/{verification.id}/report",
    }


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
