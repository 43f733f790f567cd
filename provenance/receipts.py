"""Receipts: what proves, without our server, that a signed fingerprint was logged and anchored."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from provenance.anchoring import current_epoch
from provenance.chain import ChainError
from provenance.chain.contract import ChainClient
from provenance.core.errors import NotFound
from provenance.ledger import log, merkle
from provenance.models import Anchor, Device, LogEntry, Registration
from provenance.signing import canonical_bytes, device_id_for, verify_signature

RECEIPT_SCHEMA = "provenance.receipt/v1"


def build_receipt(session: Session, registration: Registration, cache: log.TreeCache) -> dict[str, Any]:
    entry = session.exec(
        select(LogEntry).where(LogEntry.kind == "registration", LogEntry.ref_id == registration.id)
    ).first()
    device = session.get(Device, registration.device_id)
    if entry is None or device is None:
        raise NotFound("receipt_not_found", f"registration {registration.id} has no log entry")
    receipt: dict[str, Any] = {
        "schema": RECEIPT_SCHEMA,
        "registration_id": registration.id,
        "manifest": json.loads(registration.manifest),
        "signature": registration.signature,
        "device_public_key": device.public_key,
        "leaf": json.loads(entry.data),
        "leaf_hash": entry.leaf_hash,
        "leaf_index": entry.leaf_index,
        "tree_size": None,
        "inclusion_proof": None,
        "root": None,
        "anchor": {"status": "pending"},
    }
    if entry.leaf_index is None:
        return receipt
    anchor = session.exec(
        select(Anchor)
        .where(
            Anchor.status == "confirmed",
            Anchor.epoch == current_epoch(session),
            col(Anchor.tree_size) > entry.leaf_index,
        )
        .order_by(col(Anchor.tree_size))
    ).first()
    if anchor is None:
        return receipt
    tree = cache.tree(session, anchor.tree_size)
    receipt.update(
        tree_size=anchor.tree_size,
        inclusion_proof=[h.hex() for h in tree.inclusion_proof(entry.leaf_index)],
        root=anchor.root,
        anchor={
            "status": "anchored",
            "chain_id": anchor.chain_id,
            "contract": anchor.contract,
            "transaction": anchor.tx_hash,
            "block_number": anchor.block_number,
            "anchored_at": anchor.confirmed_at.isoformat() if anchor.confirmed_at else None,
        },
    )
    return receipt


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    reason: str = ""


def _offline_checks(receipt: dict[str, Any]) -> list[Check]:
    manifest, leaf = receipt["manifest"], receipt["leaf"]
    public_key = receipt["device_public_key"]
    checks = []
    try:
        raw_key = base64.b64decode(public_key, validate=True)
        key_ok = device_id_for(raw_key) == manifest.get("device_id")
    except ValueError:
        key_ok = False
    checks.append(Check("device_key", key_ok, "the public key is not the manifest's device"))
    checks.append(
        Check(
            "manifest_signature",
            verify_signature(manifest, receipt["signature"], public_key),
            "the signature does not verify over the canonical manifest",
        )
    )
    manifest_digest = hashlib.sha256(canonical_bytes(manifest)).hexdigest()
    bound = (
        leaf.get("manifest_sha256") == manifest_digest
        and leaf.get("signature") == receipt["signature"]
        and leaf.get("device_public_key") == public_key
        and leaf.get("registration_id") == receipt["registration_id"]
    )
    checks.append(Check("leaf_binding", bound, "the log leaf does not commit to this manifest and signature"))
    leaf_hash = merkle.leaf_hash(canonical_bytes(leaf))
    checks.append(
        Check("leaf_hash", leaf_hash.hex() == receipt["leaf_hash"], "leaf_hash is not the hash of the leaf")
    )
    if receipt["anchor"].get("status") != "anchored":
        checks.append(Check("anchored", False, "the receipt is still pending: not anchored yet"))
        return checks
    proof = [bytes.fromhex(h) for h in receipt["inclusion_proof"]]
    included = merkle.verify_inclusion(
        leaf_hash,
        int(receipt["leaf_index"]),
        int(receipt["tree_size"]),
        proof,
        bytes.fromhex(receipt["root"]),
    )
    checks.append(Check("inclusion_proof", included, "the inclusion proof does not lead to the root"))
    return checks


def _chain_checks(receipt: dict[str, Any], rpc_url: str) -> list[Check]:
    anchor = receipt["anchor"]
    root = bytes.fromhex(receipt["root"])
    client = ChainClient(rpc_url, None, contract_address=anchor["contract"])
    checks = [
        Check(
            "chain_id",
            client.chain_id == anchor["chain_id"],
            f"the RPC serves chain {client.chain_id}, the receipt names {anchor['chain_id']}",
        )
    ]
    if not client.is_registry():
        return [*checks, Check("contract", False, "no anchor registry at the receipt's contract address")]
    record = client.lookup(root)
    checks.append(
        Check(
            "root_on_chain",
            record is not None and record.tree_size == int(receipt["tree_size"]),
            "the contract holds no anchor of this root at this tree size",
        )
    )
    tx = client.anchor_tx_details(anchor["transaction"]) if anchor.get("transaction") else None
    tx_ok = (
        tx is not None
        and tx["root"].removeprefix("0x") == receipt["root"]
        and tx["block_number"] == anchor["block_number"]
        and tx["contract"].lower() == anchor["contract"].lower()
    )
    checks.append(Check("transaction", tx_ok, "the transaction did not anchor this root in the named block"))
    return checks


def rpc_for(receipt: dict[str, Any], explicit: str | None) -> str | None:
    """The chain RPC to check against: `--rpc`, then PROVENANCE_CHAIN_RPC, then the receipt's hint."""
    anchor = receipt.get("anchor") if isinstance(receipt, dict) else None
    hint = anchor.get("rpc_hint") if isinstance(anchor, dict) else None
    return explicit or os.environ.get("PROVENANCE_CHAIN_RPC") or (hint if isinstance(hint, str) else None)


def media_check(receipt: dict[str, Any], media_sha256: str) -> Check:
    """Whether a file is the one the device signed: its SHA-256 against the manifest's `content_sha256`."""
    manifest = receipt.get("manifest")
    signed = manifest.get("content_sha256") if isinstance(manifest, dict) else None
    return Check("media_sha256", signed == media_sha256, "the file's SHA-256 is not the signed manifest's")


def verify_receipt(receipt: dict[str, Any], rpc_url: str) -> list[Check]:
    """All checks, offline ones first; talks only to the chain's JSON-RPC endpoint."""
    try:
        checks = _offline_checks(receipt)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return [Check("receipt_format", False, f"the receipt is malformed: {exc}")]
    if not all(c.ok for c in checks):
        return checks
    try:
        return checks + _chain_checks(receipt, rpc_url)
    except ChainError as exc:
        return [*checks, Check("chain", False, exc.detail)]
    except (KeyError, TypeError, ValueError) as exc:
        return [*checks, Check("receipt_format", False, f"the receipt is malformed: {exc}")]
