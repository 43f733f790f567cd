"""Anchoring the transparency log: one contract call per batch, durable across crashes and chain loss.

The outbox is the `anchors` table: a row is written `pending` (root, tree size) before the
transaction is sent, and confirmed after its receipt. After a crash a pending row is settled by
asking the chain whether that root is there. When the chain has lost its state (the contract's
code is gone), or was rolled back to an older state (the contract is there but lacks the newest
root the database holds confirmed), the registry is redeployed, the epoch bumped, and the
current root re-anchored; the status endpoint says so.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from sqlalchemy import Engine, update
from sqlmodel import Session, col, func, select

from provenance.chain import AnchorRejected, ChainError, ChainUnavailable
from provenance.chain.anvil import DEV_ACCOUNTS, AnvilProcess
from provenance.chain.contract import ChainClient
from provenance.core.config import Settings
from provenance.core.db import session_scope
from provenance.core.locks import BATCHER_LOCK, CONTRACT_LOCK, LeaderLock, pg_lock
from provenance.core.outage import CHAIN, DATABASE, Backoff, is_database_outage
from provenance.core.timeutil import iso, utcnow
from provenance.ledger import log
from provenance.models import Anchor, LogEntry, Registration, ServiceState

logger = logging.getLogger(__name__)


def get_state(session: Session, key: str) -> str | None:
    row = session.get(ServiceState, key)
    return row.value if row else None


def set_state(session: Session, key: str, value: str) -> None:
    row = session.get(ServiceState, key) or ServiceState(key=key, value=value)
    row.value = value
    session.add(row)


def current_epoch(session: Session) -> int:
    return int(get_state(session, "chain_epoch") or 0)


@dataclass
class ChainRuntime:
    """The chain the service anchors to: an embedded anvil it owns, or an endpoint it was given."""

    settings: Settings
    engine: Engine
    anvil: AnvilProcess | None = None
    client: ChainClient | None = None
    status: dict[str, Any] = field(default_factory=lambda: {"status": "starting"})

    def start(self) -> None:
        s = self.settings
        if s.chain_mode == "off" and not s.chain_rpc:
            self.status = {"status": "off"}
            return
        rpc = s.chain_rpc
        if rpc is None:
            chain_dir = s.data_dir / "chain"
            chain_dir.mkdir(parents=True, exist_ok=True)
            self.anvil = AnvilProcess(
                chain_dir / "anvil-state.json",
                log_file=chain_dir / "anvil.log",
                port_file=chain_dir / "anvil.port",  # the same RPC URL after a restart
            )
            self.anvil.start()
            rpc = self.anvil.rpc_url
        key = s.chain_private_key or DEV_ACCOUNTS[0].private_key
        self.client = ChainClient(rpc, key, confirmations=s.chain_confirmations)
        self.status = {"status": "connecting", "rpc_url": rpc}
        try:
            self.ensure_contract()
        except ChainError as exc:
            self.status = {"status": "unavailable", "rpc_url": rpc, "detail": exc.detail}
        except Exception as exc:  # started during a database outage: `check()` attaches once it is back
            if not is_database_outage(exc):
                raise
            self.status = {"status": "connecting", "rpc_url": rpc, "detail": "waiting for the database"}

    def stop(self) -> None:
        if self.anvil is not None:
            self.anvil.stop()

    def ensure_contract(self) -> None:
        """Attach to the recorded registry, deploy one on a first start, or notice a chain that forgot it.

        Under a cross-process lock: several processes starting at once, or noticing one chain loss,
        deploy one registry between them.
        """

        with pg_lock(self.engine, CONTRACT_LOCK):
            self._ensure_contract()

    def _ensure_contract(self) -> None:
        assert self.client is not None
        client = self.client
        with session_scope(self.engine) as session:
            recorded = get_state(session, "contract_address") or self.settings.chain_contract
        # Chain calls stay outside transactions: no database connection waits on the network.
        rollback: str | None = None
        present = bool(recorded) and client.has_code(recorded)
        if recorded and present:
            client.attach(recorded)
            rollback = self._rolled_back(client)  # there, but is it the chain we anchored to?
        if rollback is not None or not present:
            address = client.deploy()
            with session_scope(self.engine) as session:
                set_state(session, "contract_address", address)
                if recorded:
                    why = rollback or f"the chain lost the registry at {recorded}"
                    self._record_chain_loss(session, why, address, loud=rollback is not None)
            logger.info("deployed AnchorRegistry at %s", address)
        incident = self._incident()
        self.status = {
            "status": "ok",
            "rpc_url": client.rpc_url,
            "chain_id": client.chain_id,
            "contract": client.contract_address,
            **({"incident": incident} if incident else {}),
        }

    def _rolled_back(self, client: ChainClient) -> str | None:
        """Why the attached registry is behind the database, or None when it holds our newest anchor.

        A chain restarted from an older state (an orphaned node once wrote one over the state
        file) still has the contract, but not the newest roots: receipts naming them fail
        `root_on_chain` while the database calls them anchored. The registry is append-only, so
        the newest confirmed anchor being there vouches for the older ones.
        """
        with session_scope(self.engine) as session:
            newest = last_anchor(session, current_epoch(session))
            if newest is None:
                return None
            root, tree_size, confirmed_at = newest.root, newest.tree_size, newest.confirmed_at
        record = client.lookup(bytes.fromhex(root))
        if record is not None and record.tree_size == tree_size:
            return None
        when = iso(confirmed_at) if confirmed_at else "earlier"
        return (
            f"the chain was rolled back: the registry at {client.contract_address} lacks the newest "
            f"anchor the database holds confirmed (root {root}, tree size {tree_size}, confirmed {when}; "
            f"the chain's newest tree size is {client.latest_tree_size()})"
        )

    def _record_chain_loss(self, session: Session, why: str, new: str, *, loud: bool = False) -> None:
        """The existing anchors no longer prove anything: a new epoch on a new registry re-anchors the log."""
        epoch = current_epoch(session) + 1
        set_state(session, "chain_epoch", str(epoch))
        session.execute(update(Anchor).where(col(Anchor.epoch) < epoch).values(status="lost"))
        session.execute(update(Registration).values(anchor_status="pending"))
        incident = {
            "at": iso(utcnow()),
            "detail": f"{why}; redeployed at {new} and re-anchoring the whole log",
            "epoch": epoch,
        }
        set_state(session, "chain_incident", json.dumps(incident))
        (logger.error if loud else logger.warning)("CHAIN INCIDENT: %s", incident["detail"])

    def _incident(self) -> dict[str, Any] | None:
        with session_scope(self.engine) as session:
            raw = get_state(session, "chain_incident")
        return json.loads(raw) if raw else None

    def _moved_elsewhere(self) -> bool:
        """Whether the database names another registry than ours: another process redeployed it
        (after a rollback the old registry still has code, so `has_code` alone would not tell)."""
        assert self.client is not None
        with session_scope(self.engine) as session:
            recorded = get_state(session, "contract_address")
        return recorded is not None and recorded.lower() != self.client.contract_address.lower()

    def check(self) -> bool:
        """Whether the chain answers and still holds our registry (re-deploying when it does not)."""
        if self.client is None:
            return False
        try:
            if not self.client.is_reachable():
                self.status = {**self.status, "status": "unavailable"}
                return False
            if (
                not self.client.attached
                or not self.client.has_code()
                or self.status.get("status") != "ok"
                or self._moved_elsewhere()
            ):
                self.ensure_contract()
            return True
        except ChainError as exc:
            self.status = {**self.status, "status": "unavailable", "detail": exc.detail}
            return False


def pending_leaves(session: Session) -> int:
    return session.exec(
        select(func.count()).select_from(LogEntry).where(col(LogEntry.leaf_index).is_(None))
    ).one()


def anchoring_lag_s(session: Session) -> float:
    """Seconds the oldest leaf no confirmed anchor covers yet has waited (0 when none waits)."""
    last = last_anchor(session, current_epoch(session))
    covered = last.tree_size if last is not None else 0
    first = session.exec(select(LogEntry.created_at).where(LogEntry.leaf_index == covered)).first()
    unindexed = session.exec(
        select(func.min(LogEntry.created_at)).where(col(LogEntry.leaf_index).is_(None))
    ).one()
    waiting = [t if t.tzinfo else t.replace(tzinfo=UTC) for t in (first, unindexed) if t is not None]
    return max(0.0, (utcnow() - min(waiting)).total_seconds()) if waiting else 0.0


def last_anchor(session: Session, epoch: int) -> Anchor | None:
    return session.exec(
        select(Anchor)
        .where(Anchor.epoch == epoch, Anchor.status == "confirmed")
        .order_by(col(Anchor.tree_size).desc())
    ).first()


def _confirm(
    session: Session, anchor: Anchor, tx_hash: str | None, block_number: int | None, chain: ChainClient
) -> None:
    anchor.status = "confirmed"
    anchor.tx_hash = tx_hash
    anchor.block_number = block_number
    anchor.chain_id = chain.chain_id
    anchor.contract = chain.contract_address
    anchor.confirmed_at = utcnow()
    session.add(anchor)
    covered = select(LogEntry.ref_id).where(
        LogEntry.kind == "registration", col(LogEntry.leaf_index) < anchor.tree_size
    )
    session.execute(
        update(Registration)
        .where(col(Registration.id).in_(covered), col(Registration.anchor_status) != "anchored")
        .values(anchor_status="anchored")
    )


def _settle_pending(engine: Engine, chain: ChainClient, epoch: int) -> None:
    """A pending row is a batch whose fate a crash or an outage hid: ask the chain (outside any
    transaction, so no database connection waits on the network)."""
    with session_scope(engine) as session:
        pending = [
            (a.id, a.root, a.tree_size, a.epoch)
            for a in session.exec(select(Anchor).where(Anchor.status == "pending")).all()
        ]
    for anchor_id, root, tree_size, anchor_epoch in pending:
        record = chain.lookup(bytes.fromhex(root)) if anchor_epoch == epoch else None
        found = record is not None and record.tree_size == tree_size
        tx_hash = chain.find_anchor_tx(bytes.fromhex(root)) if found else None
        with session_scope(engine) as session:
            anchor = session.get(Anchor, anchor_id)
            assert anchor is not None
            if found and record is not None:
                _confirm(session, anchor, tx_hash, record.block_number, chain)
            else:
                anchor.status = "abandoned"
                session.add(anchor)


@dataclass
class AnchorResult:
    tree_size: int
    anchored: bool
    tx_hash: str | None = None


def anchor_once(engine: Engine, runtime: ChainRuntime, cache: log.TreeCache) -> AnchorResult:
    """Index waiting leaves and, if the log grew past the last anchor, anchor its root."""
    with session_scope(engine) as session:
        size = log.assign_indexes(session)
    chain = runtime.client
    if chain is None or not runtime.check():
        return AnchorResult(size, anchored=False)
    with session_scope(engine) as session:
        epoch = current_epoch(session)
    _settle_pending(engine, chain, epoch)
    with session_scope(engine) as session:
        last = last_anchor(session, epoch)
        if size == 0 or (last is not None and last.tree_size >= size):
            return AnchorResult(size, anchored=False)
        root = cache.tree(session, size).root
        anchor = Anchor(epoch=epoch, tree_size=size, root=root.hex(), status="pending", created_at=utcnow())
        session.add(anchor)
    try:
        tx = chain.anchor(root, size)
        tx_hash: str | None = tx.tx_hash
        block: int | None = tx.block_number
    except AnchorRejected as exc:
        record = chain.lookup(root)
        if record is None:
            raise
        logger.info("root already anchored (%s); recording it", exc.detail)
        tx_hash, block = chain.find_anchor_tx(root), record.block_number
    with session_scope(engine) as session:
        stored = session.get(Anchor, anchor.id)
        assert stored is not None
        _confirm(session, stored, tx_hash, block, chain)
    return AnchorResult(size, anchored=True, tx_hash=tx_hash)


class Batcher:
    """Anchors every `anchor_interval_s` seconds, or sooner once `anchor_max_leaves` leaves wait.

    With several worker processes each runs a Batcher, and only the one holding the batcher's
    leader lock anchors; when it dies another takes over within a poll.
    """

    def __init__(
        self, engine: Engine, runtime: ChainRuntime, cache: log.TreeCache, settings: Settings
    ) -> None:
        self.engine = engine
        self.runtime = runtime
        self.cache = cache
        self.interval = settings.anchor_interval_s
        self.max_leaves = settings.anchor_max_leaves
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.status = "idle"
        self.last_error: str | None = None

        self.leader = LeaderLock(engine, BATCHER_LOCK)
        self._led = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="anchor-batcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self.leader.release()

    def _run(self) -> None:
        """The batch loop; it never ends before `stop()`: an outage of the database or the chain
        is waited out with backoff (the outbox keeps what waits) and leadership is re-taken after."""
        last = time.monotonic()
        backoff = Backoff()
        while not self._stop.wait(0.2):
            if not self.leader.held():  # also False while the database is away: poll again soon
                self.status = "standby" if not DATABASE.down else "waiting for the database"
                self._led = False
                self._stop.wait(1.0)
                continue
            if not self._led and self.engine.dialect.name == "postgresql":
                logger.warning("process %d now leads anchoring", os.getpid())
            self._led = True
            try:
                with session_scope(self.engine) as session:
                    waiting = pending_leaves(session)
                    unanchored = waiting or self._unanchored(session)
                due = time.monotonic() - last >= self.interval
                if waiting >= self.max_leaves or (unanchored and due):
                    self.status = "anchoring"
                    anchor_once(self.engine, self.runtime, self.cache)
                    last = time.monotonic()
                    self._note_chain()
                self.status = "idle"
                self.last_error = None
                backoff.reset()
            except Exception as exc:  # the loop must survive any one failed batch; the outbox retries it
                self.last_error = f"{type(exc).__name__}: {exc}"
                last = time.monotonic()
                if is_database_outage(exc):
                    DATABASE.failed(exc, "anchoring batcher")
                    self.status = "waiting for the database"
                    self.leader.release()  # its connection is most likely gone too; take it anew
                elif isinstance(exc, ChainUnavailable):  # the node went away mid-batch: the outbox settles it
                    CHAIN.failed(exc, "anchoring batcher")
                    self.status = "waiting for the chain"
                else:
                    logger.exception("anchoring batch failed")
                    self.status = "retrying"
                self._stop.wait(backoff.next())

    def _note_chain(self) -> None:
        """Log the chain node going away and coming back once each, not once per batch."""
        status = self.runtime.status
        if status.get("status") == "ok":
            CHAIN.ok()
        elif status.get("status") == "unavailable":
            CHAIN.failed(
                ChainError("chain_unavailable", str(status.get("detail") or "no answer")), "anchoring batcher"
            )

    def _unanchored(self, session: Session) -> int:
        size = log.size(session)
        last = last_anchor(session, current_epoch(session))
        return size - (last.tree_size if last else 0)
