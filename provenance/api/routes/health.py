"""Liveness and the state of the parts behind the service; open to all."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import text

from provenance import __version__
from provenance.api.deps import EngineDep
from provenance.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health(request: Request, engine: EngineDep) -> Health:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        database = "ok"
    except Exception as exc:  # the point of the endpoint is to report any failure, not raise it
        database = f"error: {type(exc).__name__}"
    service = request.app.state.service
    chain = service.chain_status()
    worker = service.worker_status()
    evaluation = service.evaluator.status() if database == "ok" else {"status": "unknown"}
    healthy = database == "ok" and chain.get("status") in ("ok", "off") and evaluation["status"] != "degraded"
    return Health(
        status="ok" if healthy else "degraded",
        version=__version__,
        database=database,
        chain=chain,
        worker=worker,
        evaluation=evaluation,
    )
