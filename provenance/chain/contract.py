"""Client of the AnchorRegistry contract over JSON-RPC (web3 8, HTTP).

It signs locally (the key never goes to the node), keeps its own nonce so that anchors sent
back to back do not wait on the node's pending pool, estimates gas (which also surfaces a
revert, decoded to the contract's custom error, before anything is sent), and waits for the
receipt and the configured number of confirmations within a bounded time.

Every failure to reach the node becomes `ChainUnavailable` (503); a refusal by the contract
becomes `AnchorRejected` (409) with the custom error's name as `reason`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests
from eth_abi.abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import (
    BadFunctionCallOutput,
    ContractLogicError,
    ProviderConnectionError,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
)
from web3.logs import DISCARD
from web3.middleware import ExtraDataToPOAMiddleware
from web3.providers.rpc.utils import ExceptionRetryConfiguration

from provenance.chain import AnchorRejected, ChainError, ChainUnavailable

# py_ecc, imported by web3, raises the recursion limit to 100,000: deep enough for hostile nested
# input to overflow the C stack and kill the process instead of raising RecursionError.
_SANE_RECURSION_LIMIT = 1000
if sys.getrecursionlimit() > _SANE_RECURSION_LIMIT:
    sys.setrecursionlimit(_SANE_RECURSION_LIMIT)

__all__ = [
    "ARTIFACT_ENV",
    "AnchorRecord",
    "AnchorTx",
    "Artifact",
    "ChainClient",
    "default_artifact_path",
    "load_artifact",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACT_ENV = "PROVENANCE_CONTRACT_ARTIFACT"
_ARTIFACT_RELPATH = Path("contracts") / "build" / "AnchorRegistry.json"
_MAX_UINT64 = 2**64 - 1
_T = TypeVar("_T")


# -- artifact -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Artifact:
    """The compiled contract as committed by `contracts/compile.js`."""

    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    compiler: str
    path: Path


def default_artifact_path() -> Path:
    """Where the artifact is read from, without copying it into the package.

    `$PROVENANCE_CONTRACT_ARTIFACT` if set; else the repository's `contracts/build/` next to
    this package (a checkout or an editable install); else `contracts/build/` under the
    working directory (an installed package run from the repository).
    """
    env = os.environ.get(ARTIFACT_ENV)
    if env:
        return Path(env)
    for base in (REPO_ROOT, Path.cwd()):
        candidate = base / _ARTIFACT_RELPATH
        if candidate.is_file():
            return candidate
    return REPO_ROOT / _ARTIFACT_RELPATH


@functools.lru_cache(maxsize=8)
def _load_artifact_cached(path: Path) -> Artifact:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"contract artifact {path} not found; run `node contracts/compile.js` or set {ARTIFACT_ENV}"
        ) from None
    return Artifact(
        abi=data["abi"],
        bytecode=data["bytecode"],
        deployed_bytecode=data["deployedBytecode"],
        compiler=data["compiler"],
        path=path,
    )


def load_artifact(path: str | os.PathLike[str] | None = None) -> Artifact:
    """The AnchorRegistry ABI and bytecode (see `default_artifact_path`)."""
    return _load_artifact_cached(Path(path).resolve() if path is not None else default_artifact_path())


def _error_selectors(abi: list[dict[str, Any]]) -> dict[bytes, tuple[str, list[str]]]:
    """Custom-error selector -> (name, argument types), to name a revert."""
    table = {}
    for item in abi:
        if item.get("type") == "error":
            types = [arg["type"] for arg in item.get("inputs", [])]
            selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
            table[selector] = (item["name"], types)
    return table


# -- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnchorTx:
    """Where and how a root was anchored: what a receipt cites."""

    tx_hash: str
    block_number: int
    block_hash: str
    chain_id: int
    contract: str
    gas_used: int
    root: str
    tree_size: int
    index: int
    timestamp: int


@dataclass(frozen=True)
class AnchorRecord:
    """The contract's record of a root (read back, not taken from our own database)."""

    root: str
    tree_size: int
    timestamp: int
    index: int
    block_number: int


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _check_root(root: bytes) -> bytes:
    if not isinstance(root, bytes | bytearray) or len(root) != 32:
        raise ValueError("root must be 32 bytes")
    return bytes(root)


# -- client ---------------------------------------------------------------------------------


class ChainClient:
    """AnchorRegistry over one RPC endpoint, signing with one key (or read-only without one).

    Thread-safe: transactions are sent one at a time under a lock, so the local nonce
    stays in step with what was sent.
    """

    def __init__(
        self,
        rpc_url: str,
        private_key: str | bytes | None,
        confirmations: int = 0,
        receipt_timeout: float = 30.0,
        *,
        contract_address: str | None = None,
        request_timeout: float = 10.0,
        poll_interval: float = 0.1,
        artifact: Artifact | None = None,
    ) -> None:
        if confirmations < 0:
            raise ValueError("confirmations must be >= 0")
        self.rpc_url = rpc_url
        self.confirmations = confirmations
        self.receipt_timeout = receipt_timeout
        self.poll_interval = poll_interval
        self.artifact = artifact or load_artifact()
        provider = Web3.HTTPProvider(
            rpc_url,
            request_kwargs={"timeout": request_timeout},
            # web3's default retries a dead endpoint for ~2 s; fail faster, the caller retries.
            exception_retry_configuration=ExceptionRetryConfiguration(
                errors=(ConnectionError, requests.ConnectionError, requests.Timeout),
                retries=2,
                backoff_factor=0.1,
            ),
        )
        self._w3 = Web3(provider)
        # Proof-of-authority networks put signer data in extraData; harmless elsewhere.
        self._w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
        self._account: LocalAccount | None = (
            Account.from_key(private_key) if private_key is not None else None
        )
        self._errors = _error_selectors(self.artifact.abi)
        self._lock = threading.RLock()
        self._nonce: int | None = None
        self._chain_id: int | None = None
        self._address: str | None = None
        if contract_address is not None:
            self.attach(contract_address)

    # -- plumbing ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _rpc(self, what: str) -> Iterator[None]:
        """Turns transport failures into ChainUnavailable."""
        try:
            yield
        except (requests.RequestException, ProviderConnectionError, ConnectionError, TimeoutError) as e:
            raise ChainUnavailable(
                f"{what}: the chain RPC at {self.rpc_url} is unreachable ({type(e).__name__})"
            ) from e
        except BadFunctionCallOutput as e:  # an eth_call answered by an address without code
            raise ChainError(
                "contract_missing", f"{what}: no AnchorRegistry at {self._address} on this chain"
            ) from e

    def _call(self, what: str, fn: Callable[[], _T]) -> _T:
        with self._rpc(what):
            return fn()

    def _rejection(self, error: ContractLogicError, what: str, tx_hash: str | None = None) -> AnchorRejected:
        """Names a revert by its custom error (e.g. AlreadyAnchored) from the revert data."""
        data = error.data if isinstance(error.data, str) else None
        raw = HexBytes(data) if data and data.startswith("0x") else b""
        if len(raw) >= 4 and raw[:4] in self._errors:
            name, types = self._errors[raw[:4]]
            try:
                args = abi_decode(types, raw[4:])
                shown = ", ".join(_hex(a) if isinstance(a, bytes) else str(a) for a in args)
            except Exception:  # malformed revert data still has a name
                shown = "?"
            return AnchorRejected(name, f"{what} rejected by the contract: {name}({shown})", tx_hash=tx_hash)
        return AnchorRejected("reverted", f"{what} reverted: {error.message or error}", tx_hash=tx_hash)

    @property
    def w3(self) -> Web3:
        return self._w3

    @property
    def account(self) -> str | None:
        """The signing address, or None for a read-only client."""
        return self._account.address if self._account is not None else None

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = self._call("chain id", lambda: int(self._w3.eth.chain_id))
        return self._chain_id

    @property
    def attached(self) -> bool:
        """Whether a registry address is set (by `deploy`, `attach` or the constructor)."""
        return self._address is not None

    @property
    def contract_address(self) -> str:
        if self._address is None:
            raise ChainError(
                "contract_not_configured", "no AnchorRegistry address: deploy() or attach() first", 500
            )
        return self._address

    @property
    def contract(self) -> Any:
        """The web3 contract object (for events and calls not wrapped here)."""
        return self._w3.eth.contract(
            address=to_checksum_address(self.contract_address), abi=self.artifact.abi
        )

    def attach(self, address: str) -> None:
        """Uses the registry at `address` (it is not checked here; see `has_code`/`is_registry`)."""
        self._address = to_checksum_address(address)

    def is_reachable(self) -> bool:
        try:
            return self.chain_id > 0
        except ChainUnavailable:
            return False

    # -- transactions --------------------------------------------------------------------------

    def _fee_fields(self) -> dict[str, int]:
        block = self._w3.eth.get_block("latest")
        base_fee = block.get("baseFeePerGas")
        if base_fee is None:  # pre-London chain: legacy pricing
            return {"gasPrice": int(self._w3.eth.gas_price)}
        try:
            tip = int(self._w3.eth.max_priority_fee)
        except Web3RPCError:
            tip = 10**9
        return {"maxFeePerGas": 2 * int(base_fee) + tip, "maxPriorityFeePerGas": tip}

    def _send(
        self,
        what: str,
        build: Callable[[dict[str, Any]], dict[str, Any]],
        estimate: Callable[[dict[str, Any]], int],
    ) -> Any:
        """Estimates, signs, sends and waits; returns the receipt. Resyncs the nonce on any error."""
        if self._account is None:
            raise ChainError("chain_read_only", f"{what}: this chain client has no signing key", 500)
        account = self._account
        with self._lock, self._rpc(what):
            base: dict[str, Any] = {"from": account.address, "chainId": self.chain_id}
            try:
                gas = estimate(base)
            except ContractLogicError as e:
                raise self._rejection(e, what) from e
            except Web3RPCError as e:  # e.g. insufficient funds for gas
                raise ChainError("chain_error", f"{what}: the node refused to estimate gas: {e}") from e
            for attempt in (1, 2):
                try:
                    if self._nonce is None:
                        self._nonce = int(self._w3.eth.get_transaction_count(account.address, "pending"))
                    tx = build(
                        {**base, **self._fee_fields(), "nonce": self._nonce, "gas": gas * 6 // 5 + 10_000}
                    )
                    signed = account.sign_transaction(tx)
                    tx_hash = _hex(signed.hash)
                    try:
                        self._w3.eth.send_raw_transaction(signed.raw_transaction)
                    except Web3RPCError as e:
                        if "already known" not in str(e).lower():  # a retried send that got through
                            raise
                    self._nonce += 1
                    break
                except Web3RPCError as e:
                    self._nonce = None
                    if attempt == 1 and "nonce" in str(e).lower():
                        continue  # someone else used the key: resync and try once more
                    raise ChainError("chain_error", f"{what}: the node refused the transaction: {e}") from e
                except BaseException:
                    self._nonce = None
                    raise
            receipt = self._await_receipt(what, tx_hash)
            if receipt["status"] != 1:
                raise AnchorRejected("reverted", f"{what}: transaction {tx_hash} reverted", tx_hash=tx_hash)
            return receipt

    def _await_receipt(self, what: str, tx_hash: str) -> Any:
        """The receipt once mined and `confirmations` blocks deep, re-checked against reorgs."""
        deadline = time.monotonic() + self.receipt_timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeExhausted(f"{tx_hash} not confirmed")
                receipt = self._w3.eth.wait_for_transaction_receipt(
                    HexBytes(tx_hash), timeout=remaining, poll_latency=self.poll_interval
                )
                if self.confirmations == 0:
                    return receipt
                target = receipt["blockNumber"] + self.confirmations
                while self._w3.eth.block_number < target:
                    if time.monotonic() >= deadline:
                        raise TimeExhausted(f"{tx_hash} not confirmed")
                    time.sleep(self.poll_interval)
                try:
                    again = self._w3.eth.get_transaction_receipt(HexBytes(tx_hash))
                except TransactionNotFound:
                    continue  # reorged out: wait for it to be mined again
                if again["blockHash"] == receipt["blockHash"]:
                    return again
        except TimeExhausted as e:
            self._nonce = None  # the transaction may still be pending; ask the node next time
            raise ChainUnavailable(
                f"{what}: transaction {tx_hash} not confirmed within {self.receipt_timeout:.0f}s",
                tx_hash=tx_hash,
            ) from e

    def deploy(self) -> str:
        """Deploys a new AnchorRegistry owned by (and anchorable by) this key; returns its address."""
        factory = self._w3.eth.contract(abi=self.artifact.abi, bytecode=self.artifact.bytecode)
        receipt = self._send(
            "deploy",
            lambda tx: factory.constructor().build_transaction(tx),
            lambda tx: int(factory.constructor().estimate_gas(tx)),
        )
        self.attach(receipt["contractAddress"])
        return self.contract_address

    def anchor(self, root: bytes, tree_size: int) -> AnchorTx:
        """Anchors `root` as the head of a `tree_size`-leaf log.

        Raises AnchorRejected (`AlreadyAnchored`, `TreeSizeNotIncreasing`, `NotAnchorer`)
        before sending when the contract would refuse.
        """
        root = _check_root(root)
        if not 1 <= tree_size <= _MAX_UINT64:
            raise ValueError("tree_size must be between 1 and 2**64 - 1")
        fn = self.contract.functions.anchor(root, tree_size)
        receipt = self._send(
            "anchor", lambda tx: fn.build_transaction(tx), lambda tx: int(fn.estimate_gas(tx))
        )
        events = self.contract.events.Anchored().process_receipt(receipt, errors=DISCARD)
        if not events:
            raise ChainError("chain_error", "anchor: the receipt carries no Anchored event")
        args = events[0]["args"]
        return AnchorTx(
            tx_hash=_hex(receipt["transactionHash"]),
            block_number=int(receipt["blockNumber"]),
            block_hash=_hex(receipt["blockHash"]),
            chain_id=self.chain_id,
            contract=self.contract_address,
            gas_used=int(receipt["gasUsed"]),
            root=_hex(args["root"]),
            tree_size=int(args["treeSize"]),
            index=int(args["index"]),
            timestamp=int(args["timestamp"]),
        )

    def add_anchorer(self, address: str) -> str:
        """Owner only: lets `address` anchor. Returns the transaction hash."""
        fn = self.contract.functions.addAnchorer(to_checksum_address(address))
        receipt = self._send(
            "addAnchorer", lambda tx: fn.build_transaction(tx), lambda tx: int(fn.estimate_gas(tx))
        )
        return _hex(receipt["transactionHash"])

    def remove_anchorer(self, address: str) -> str:
        """Owner only: stops `address` from anchoring. Returns the transaction hash."""
        fn = self.contract.functions.removeAnchorer(to_checksum_address(address))
        receipt = self._send(
            "removeAnchorer", lambda tx: fn.build_transaction(tx), lambda tx: int(fn.estimate_gas(tx))
        )
        return _hex(receipt["transactionHash"])

    # -- reads ---------------------------------------------------------------------------------

    def lookup(self, root: bytes) -> AnchorRecord | None:
        """The on-chain anchor of `root`, or None if it was never anchored."""
        root = _check_root(root)
        tree_size, timestamp, index, block_number, exists = self._call(
            "lookup", lambda: self.contract.functions.anchorOf(root).call()
        )
        if not exists:
            return None
        return AnchorRecord(
            root=_hex(root),
            tree_size=int(tree_size),
            timestamp=int(timestamp),
            index=int(index),
            block_number=int(block_number),
        )

    def latest_tree_size(self) -> int:
        return int(self._call("latestTreeSize", lambda: self.contract.functions.latestTreeSize().call()))

    def anchor_count(self) -> int:
        return int(self._call("anchorCount", lambda: self.contract.functions.anchorCount().call()))

    def is_anchorer(self, address: str) -> bool:
        fn = self.contract.functions.isAnchorer(to_checksum_address(address))
        return bool(self._call("isAnchorer", fn.call))

    def owner(self) -> str:
        return str(self._call("owner", lambda: self.contract.functions.owner().call()))

    def has_code(self, address: str | None = None) -> bool:
        """Whether any contract lives at `address` (default: the registry).

        False on a reachable chain means the chain lost its state (a fresh dev chain) or
        the address is wrong; an unreachable chain raises ChainUnavailable instead.
        """
        target = to_checksum_address(address or self.contract_address)
        return len(self._call("getCode", lambda: self._w3.eth.get_code(target))) > 0

    def is_registry(self, address: str | None = None) -> bool:
        """Whether the code at `address` is exactly the committed AnchorRegistry runtime bytecode."""
        target = to_checksum_address(address or self.contract_address)
        code = self._call("getCode", lambda: self._w3.eth.get_code(target))
        return bytes(code) == bytes(HexBytes(self.artifact.deployed_bytecode))

    # -- evidence for receipts ------------------------------------------------------------------

    def find_anchor_tx(self, root: bytes) -> str | None:
        """The hash of the transaction that anchored `root` (found through its Anchored event)."""
        record = self.lookup(root)
        if record is None:
            return None
        logs = self._call(
            "getLogs",
            lambda: self.contract.events.Anchored().get_logs(
                argument_filters={"root": _check_root(root)},
                from_block=record.block_number,
                to_block=record.block_number,
            ),
        )
        return _hex(logs[0]["transactionHash"]) if logs else None

    def anchor_tx_details(self, tx_hash: str) -> dict[str, Any] | None:
        """What a transaction anchored, read from its receipt: root, tree size, block, contract."""

        def read() -> Any:
            try:
                return self._w3.eth.get_transaction_receipt(HexBytes(tx_hash))
            except TransactionNotFound:
                return None

        receipt = self._call("getTransactionReceipt", read)
        if receipt is None or receipt["status"] != 1:
            return None
        events = self.contract.events.Anchored().process_receipt(receipt, errors=DISCARD)
        if not events:
            return None
        return {
            "root": _hex(events[0]["args"]["root"]),
            "tree_size": int(events[0]["args"]["treeSize"]),
            "block_number": int(receipt["blockNumber"]),
            "contract": str(events[0]["address"]),
        }
