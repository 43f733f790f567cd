"""Continuous evaluation for operators: history, a plot of it, and runs on demand."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from provenance.api.deps import AdminDep, service_of
from provenance.evaluation import Evaluator

router = APIRouter(prefix="/v1", tags=["evaluation"])


def _evaluator(request: Request) -> Evaluator:
    evaluator: Evaluator = service_of(request).evaluator
    return evaluator


@router.get("/evaluations")
def list_evaluations(
    request: Request, _: AdminDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    evaluator = _evaluator(request)
    return {"status": evaluator.status(), "runs": evaluator.history(limit)}


@router.post("/evaluations", status_code=status.HTTP_202_ACCEPTED)
def start_evaluation(request: Request, _: AdminDep) -> dict[str, str]:
    """Starts a run in the background; poll GET /v1/evaluations."""
    _evaluator(request).start_run()
    return {"status": "started"}


@router.get("/evaluations/plot.png", response_class=Response)
def evaluation_plot(request: Request, _: AdminDep) -> Response:
    return Response(_evaluator(request).plot_png(), media_type="image/png")
