"""AnchorRegistry on a real anvil: the committed artifact, authorisation, append-only, events, gas."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from provenance.chain import AnchorRejected, ChainUnavailable
from provenance.chain.anvil import AnvilProcess
from provenance.chain.contract import ChainClient, load_artifact
from tests.provenance import chain_fixtures
from tests.provenance.chain_fixtures import OUTSIDER, OWNER, SECOND

# The fixtures, by explicit import (tests/conftest.py is not ours to extend).
anvil = chain_fixtures.anvil
registry = chain_fixtures.registry

REPO = Path(__file__).resolve().parents[3]
GAS_BOUND = 100_000


def _root(tag: str) -> bytes:
    return Web3.keccak(text=tag)


# -- the committed artifact ---------------------------------------------------------------------


def test_committed_artifact_matches_a_fresh_compile(tmp_path: Path) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: cannot run contracts/compile.js (solcjs)")
    if not (REPO / "node_modules" / "solc").is_dir():
        pytest.fail("node_modules/solc is missing: run `make setup` (npm ci)")
    subprocess.run(
        ["node", str(REPO / "contracts" / "compile.js"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    fresh = json.loads((tmp_path / "AnchorRegistry.json").read_text())
    committed = json.loads((REPO / "contracts" / "build" / "AnchorRegistry.json").read_text())
    assert fresh["compiler"] == committed["compiler"]
    assert fresh["abi"] == committed["abi"], "ABI differs: rerun `node contracts/compile.js` and commit"
    assert fresh["bytecode"] == committed["bytecode"], "bytecode differs: rerun contracts/compile.js"
    assert fresh["deployedBytecode"] == committed["deployedBytecode"]


def test_artifact_has_the_documented_interface() -> None:
    abi = load_artifact().abi
    names = {item.get("name") for item in abi}
    assert {"anchor", "anchorOf", "latestTreeSize", "anchorCount", "addAnchorer", "removeAnchorer"} <= names
    (event,) = [i for i in abi if i.get("type") == "event" and i["name"] == "Anchored"]
    assert [(a["name"], a["type"], a["indexed"]) for a in event["inputs"]] == [
        ("root", "bytes32", True),
        ("treeSize", "uint256", False),
        ("index", "uint256", False),
        ("timestamp", "uint256", False),
    ]


# -- deployment and anchoring -------------------------------------------------------------------


def test_deploy_sets_owner_as_anchorer(registry: ChainClient) -> None:
    assert registry.owner() == OWNER.address
    assert registry.is_anchorer(OWNER.address)
    assert not registry.is_anchorer(SECOND.address)
    assert registry.latest_tree_size() == 0
    assert registry.anchor_count() == 0
    assert registry.has_code()
    assert registry.is_registry()
    assert registry.chain_id == 31337


def test_anchor_is_recorded_and_emitted(registry: ChainClient) -> None:
    first = registry.anchor(_root("a"), 3)
    second = registry.anchor(_root("b"), 10)

    assert (first.index, second.index) == (0, 1)
    assert second.tree_size == 10 and second.root == "0x" + _root("b").hex()
    assert second.contract == registry.contract_address and second.chain_id == 31337
    assert second.block_number > first.block_number
    block = registry.w3.eth.get_block(second.block_number)
    assert second.timestamp == block["timestamp"]
    assert second.block_hash == "0x" + bytes(block["hash"]).hex()
    first_tx = block["transactions"][0]
    assert isinstance(first_tx, bytes) and second.tx_hash == "0x" + first_tx.hex()

    record = registry.lookup(_root("b"))
    assert record is not None
    assert (record.tree_size, record.timestamp, record.index, record.block_number) == (
        10,
        second.timestamp,
        1,
        second.block_number,
    )
    assert registry.lookup(_root("never")) is None
    assert registry.latest_tree_size() == 10
    assert registry.anchor_count() == 2

    logs = registry.contract.events.Anchored().get_logs(from_block=0)
    assert [(bytes(e["args"]["root"]), e["args"]["treeSize"], e["args"]["index"]) for e in logs] == [
        (_root("a"), 3, 0),
        (_root("b"), 10, 1),
    ]
    assert logs[1]["args"]["timestamp"] == second.timestamp
    assert "0x" + bytes(logs[1]["transactionHash"]).hex() == second.tx_hash
    # The root is an indexed topic: a verifier finds its anchor without scanning.
    by_root = registry.contract.events.Anchored().get_logs(
        from_block=0, argument_filters={"root": _root("a")}
    )
    assert len(by_root) == 1 and by_root[0]["args"]["treeSize"] == 3


def test_gas_per_anchor_is_bounded(registry: ChainClient) -> None:
    used = [registry.anchor(_root(f"gas-{i}"), i + 1).gas_used for i in range(8)]
    print(f"gas per anchor: first {used[0]}, then {sorted(set(used[1:]))}")
    assert max(used) < GAS_BOUND
    # After the first anchor the counters slot is non-zero: one fresh slot per anchor.
    assert max(used[1:]) < 60_000


# -- authorisation ------------------------------------------------------------------------------


def test_only_anchorers_may_anchor_and_only_the_owner_manages_them(
    registry: ChainClient, anvil: AnvilProcess
) -> None:
    second = ChainClient(anvil.rpc_url, SECOND.private_key, contract_address=registry.contract_address)
    outsider = ChainClient(anvil.rpc_url, OUTSIDER.private_key, contract_address=registry.contract_address)

    with pytest.raises(AnchorRejected) as refused:
        second.anchor(_root("x"), 1)
    assert refused.value.reason == "NotAnchorer"
    assert refused.value.status == 409 and refused.value.code == "anchor_rejected"

    with pytest.raises(AnchorRejected) as not_owner:
        outsider.add_anchorer(OUTSIDER.address)
    assert not_owner.value.reason == "NotOwner"
    with pytest.raises(AnchorRejected):
        second.remove_anchorer(OWNER.address)

    registry.add_anchorer(SECOND.address)
    assert registry.is_anchorer(SECOND.address)
    assert second.anchor(_root("x"), 1).index == 0

    registry.remove_anchorer(SECOND.address)
    assert not registry.is_anchorer(SECOND.address)
    with pytest.raises(AnchorRejected) as removed:
        second.anchor(_root("y"), 2)
    assert removed.value.reason == "NotAnchorer"
    assert registry.anchor_count() == 1


def test_the_contract_itself_reverts_not_just_the_client(registry: ChainClient, anvil: AnvilProcess) -> None:
    """Send a forbidden anchor with a fixed gas limit (no estimation): it is mined and reverts."""
    w3 = registry.w3
    contract = registry.contract
    account = Account.from_key(OUTSIDER.private_key)
    tx = contract.functions.anchor(_root("z"), 5).build_transaction(
        {
            "from": account.address,
            "nonce": w3.eth.get_transaction_count(account.address),
            "gas": 100_000,
            "chainId": 31337,
        }
    )
    tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)
    assert receipt["status"] == 0
    assert registry.lookup(_root("z")) is None


# -- append-only ---------------------------------------------------------------------------------


def test_append_only(registry: ChainClient) -> None:
    registry.anchor(_root("r1"), 5)

    with pytest.raises(AnchorRejected) as again:
        registry.anchor(_root("r1"), 6)  # same root, even with a larger size
    assert again.value.reason == "AlreadyAnchored"

    with pytest.raises(AnchorRejected) as smaller:
        registry.anchor(_root("r2"), 4)
    assert smaller.value.reason == "TreeSizeNotIncreasing"
    with pytest.raises(AnchorRejected) as equal:
        registry.anchor(_root("r2"), 5)
    assert equal.value.reason == "TreeSizeNotIncreasing"
    assert "5" in equal.value.detail

    record = registry.lookup(_root("r1"))
    assert record is not None and record.tree_size == 5
    assert registry.lookup(_root("r2")) is None
    assert registry.latest_tree_size() == 5
    assert registry.anchor_count() == 1
    assert registry.anchor(_root("r2"), 6).index == 1  # the client's nonce survived the refusals


def test_bad_arguments_are_refused_locally(registry: ChainClient) -> None:
    with pytest.raises(ValueError):
        registry.anchor(b"short", 1)
    with pytest.raises(ValueError):
        registry.anchor(_root("big"), 2**64)
    with pytest.raises(ValueError):
        registry.anchor(_root("zero"), 0)


# -- nonces, confirmations, an unreachable node -----------------------------------------------------


def test_nonce_resyncs_when_the_key_is_used_elsewhere(registry: ChainClient, anvil: AnvilProcess) -> None:
    registry.anchor(_root("n1"), 1)  # the client now caches its next nonce
    other = ChainClient(anvil.rpc_url, OWNER.private_key, contract_address=registry.contract_address)
    other.anchor(_root("n2"), 2)  # ...which this just used
    assert registry.anchor(_root("n3"), 3).index == 2


def test_waits_for_confirmations(registry: ChainClient, anvil: AnvilProcess) -> None:
    client = ChainClient(
        anvil.rpc_url,
        OWNER.private_key,
        confirmations=2,
        receipt_timeout=20,
        contract_address=registry.contract_address,
    )
    stop = threading.Event()

    def miner() -> None:  # anvil mines only on demand: add blocks on top
        w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
        while not stop.wait(0.1):
            w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    thread = threading.Thread(target=miner, daemon=True)
    thread.start()
    try:
        tx = client.anchor(_root("c1"), 1)
    finally:
        stop.set()
        thread.join()
    assert client.w3.eth.block_number >= tx.block_number + 2


def test_unconfirmed_anchor_times_out_with_its_hash(registry: ChainClient, anvil: AnvilProcess) -> None:
    client = ChainClient(
        anvil.rpc_url,
        OWNER.private_key,
        confirmations=3,
        receipt_timeout=0.5,
        contract_address=registry.contract_address,
    )
    with pytest.raises(ChainUnavailable) as timed_out:
        client.anchor(_root("t1"), 1)
    assert timed_out.value.tx_hash is not None and timed_out.value.status == 503
    # It was mined all the same; retrying the same root is refused, so a retry cannot double-anchor.
    assert client.lookup(_root("t1")) is not None
    with pytest.raises(AnchorRejected) as again:
        registry.anchor(_root("t1"), 1)
    assert again.value.reason == "AlreadyAnchored"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_rpc_is_chain_unavailable() -> None:
    client = ChainClient(
        f"http://127.0.0.1:{_closed_port()}",
        OWNER.private_key,
        contract_address="0x5FbDB2315678afecb367f032d93F642f64180aa3",
    )
    started = time.monotonic()
    for call in (
        lambda: client.chain_id,
        client.latest_tree_size,
        lambda: client.lookup(_root("a")),
        client.has_code,
        lambda: client.anchor(_root("a"), 1),
    ):
        with pytest.raises(ChainUnavailable) as unavailable:
            call()
        assert unavailable.value.code == "chain_unavailable" and unavailable.value.status == 503
    assert not client.is_reachable()
    assert time.monotonic() - started < 10


def test_read_only_client_reads_but_cannot_send(registry: ChainClient, anvil: AnvilProcess) -> None:
    registry.anchor(_root("ro"), 1)
    reader = ChainClient(anvil.rpc_url, None, contract_address=registry.contract_address)
    assert reader.account is None
    assert reader.lookup(_root("ro")) is not None
    with pytest.raises(Exception) as refused:
        reader.anchor(_root("ro2"), 2)
    assert getattr(refused.value, "code", None) == "chain_read_only"


def test_artifact_path_can_be_overridden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from provenance.chain.contract import ARTIFACT_ENV, default_artifact_path

    monkeypatch.setenv(ARTIFACT_ENV, os.fspath(tmp_path / "x.json"))
    assert default_artifact_path() == tmp_path / "x.json"
    with pytest.raises(FileNotFoundError, match=r"compile\.js"):
        load_artifact(tmp_path / "missing.json")
