"""Receipts for registrations, and the log's root and consistency proofs for auditors."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from provenance import registry
from provenance.api.deps import ReaderDep, SessionDep, service_of
from provenance.api.schemas import ConsistencyProof, LogRoot
from provenance.core.errors import DomainError
from provenance.ledger import log
from provenance.receipts import build_receipt

router = APIRouter(prefix="/v1", tags=["transparency log"])


def _cache(request: Request) -> log.TreeCache:
    cache: log.TreeCache = service_of(request).tree_cache
    return cache


@router.get("/registrations/{registration_id}/receipt")
def get_receipt(registration_id: str, request: Request, session: SessionDep, _: ReaderDep) -> dict[str, Any]:
    receipt = build_receipt(session, registry.get_registration(session, registration_id), _cache(request))
    rpc = service_of(request).chain_status().get("rpc_url")
    if receipt["anchor"]["status"] == "anchored" and isinstance(rpc, str):
        # A hint for `provenance receipt verify`: the chain this service anchors to. Any node of
        # the same chain does as well; the check trusts the chain, not this hint.
        receipt["anchor"]["rpc_hint"] = rpc
    return receipt


@router.get("/log/root", response_model=LogRoot)
def log_root(request: Request, session: SessionDep, _: ReaderDep) -> LogRoot:
    size = log.size(session)
    return LogRoot(tree_size=size, root=_cache(request).tree(session, size).root.hex())


@router.get("/log/consistency", response_model=ConsistencyProof)
def log_consistency(
    request: Request,
    session: SessionDep,
    _: ReaderDep,
    first: Annotated[int, Query(ge=1)],
    second: Annotated[int, Query(ge=1)],
) -> ConsistencyProof:
    size = log.size(session)
    if not first <= second <= size:
        raise DomainError("tree_size_invalid", f"need 1 <= first <= second <= {size}", 422)
    tree = _cache(request).tree(session, second)
    return ConsistencyProof(
        first=first,
        second=second,
        first_root=_cache(request).tree(session, first).root.hex(),
        second_root=tree.root.hex(),
        proof=[h.hex() for h in tree.consistency_proof(first)],
    )
