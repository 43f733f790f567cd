"""The chain side of anchoring: a local anvil node (`anvil`) and the AnchorRegistry client (`contract`).

The errors live here, not in the submodules, so that code which only handles them (the API's
problem mapping, the health check) does not have to import web3.
"""

from __future__ import annotations

from provenance.core.errors import DomainError

__all__ = ["AnchorRejected", "ChainError", "ChainUnavailable"]


class ChainError(DomainError):
    """Anything the chain refused or could not do."""

    status = 502


class ChainUnavailable(ChainError):
    """The RPC endpoint cannot be reached, or did not answer (or confirm a transaction) in time.

    Retrying later is the right response; nothing on chain changed because of the failed call,
    except possibly a transaction that was sent and is still pending (see `tx_hash`).
    """

    status = 503

    def __init__(self, detail: str, *, tx_hash: str | None = None) -> None:
        super().__init__("chain_unavailable", detail)
        self.tx_hash = tx_hash


class AnchorRejected(ChainError):
    """The contract refused a call: `reason` is the custom error name (e.g. `AlreadyAnchored`)."""

    status = 409

    def __init__(self, reason: str, detail: str, *, tx_hash: str | None = None) -> None:
        super().__init__("anchor_rejected", detail)
        self.reason = reason
        self.tx_hash = tx_hash
