"""Liveness and the state of the parts behind the service; open to all."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import text

from provenance import __version__
from provenance.api.deps import service_of
from provenance.api.schemas import Health
from provenance.core.storage import disk_status

router = APIRouter(tags=["health"])


# /health runs on threads of its own, not the server's pool: it answers while heavy work runs.
_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="health")


@router.get("/health", response_model=Health)
async def health(request: Request) -> Health:
    return await asyncio.get_running_loop().run_in_executor(_THREADS, _health, request)


def _health(request: Request) -> Health:
    service = service_of(request)
    engine = service.engine
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        database = "ok"
    except Exception as exc:  # the point of the endpoint is to report any failure, not raise it
        database = f"error: {type(exc).__name__}"
    chain = service.chain_status()
    worker = service.worker_status()
    evaluation = service.evaluator.status() if database == "ok" else {"status": "unknown"}
    anchoring = _anchoring(service) if database == "ok" else {"status": "unknown"}
    settings = service.settings
    disk = disk_status(settings.data_dir, settings.min_free_disk_bytes)
    healthy = database == "ok" and chain.get("status") in ("ok", "off") and evaluation["status"] != "degraded"
    healthy = healthy and disk["status"] == "ok"
    healthy = healthy and anchoring["status"] in ("ok", "off")
    return Health(
        status="ok" if healthy else "degraded",
        version=__version__,
        database=database,
        chain=chain,
        worker=worker,
        evaluation=evaluation,
        anchoring=anchoring,
        reasons=_reasons(database, chain, anchoring, evaluation, disk),
        disk=disk,
    )


def _anchoring(service: Any) -> dict[str, Any]:
    try:
        status: dict[str, Any] = service.anchoring_status()
        return status
    except Exception as exc:  # the database went away between the checks
        return {"status": "unknown", "detail": type(exc).__name__}


def _reasons(
    database: str,
    chain: dict[str, Any],
    anchoring: dict[str, Any],
    evaluation: dict[str, Any],
    disk: dict[str, Any] | None = None,
) -> list[str]:
    """Why the status is `degraded`: one short line per part that makes it so (none when ok)."""
    if database != "ok":
        return [f"database unavailable ({database})"]
    reasons = []
    if chain.get("status") not in ("ok", "off"):
        detail = chain.get("detail")
        reasons.append(f"chain {chain.get('status')}" + (f": {detail}" if detail else ""))
    if anchoring.get("status") == "behind":
        reasons.append(
            f"registrations wait for anchoring: the oldest for {anchoring['oldest_waiting_s']} s "
            f"(bound {anchoring['bound_s']} s)"
        )
    elif anchoring.get("status") not in ("ok", "off"):
        reasons.append(f"anchoring {anchoring.get('status')}")
    if evaluation.get("status") == "degraded":
        reasons.append("evaluation degraded: a metric is below its floor")
    if disk and disk.get("status", "ok") != "ok":
        reasons.append(f"disk {disk.get('status')}")
    return reasons
