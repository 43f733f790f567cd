"""The embedded anvil node: known dev accounts, state that survives a restart (or a crash), clean stops."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from provenance.chain import ChainError, ChainUnavailable
from provenance.chain.anvil import (
    ANVIL_WRAPPER,
    DEV_ACCOUNTS,
    DEV_CHAIN_ID,
    AnvilProcess,
    _live_group_members,
    _wait_group,
    rpc_answers,
)
from provenance.chain.contract import ChainClient
from tests.provenance.chain_fixtures import OWNER, require_anvil


@pytest.fixture(autouse=True)
def _needs_anvil() -> None:
    require_anvil()


def _root(tag: str) -> bytes:
    return Web3.keccak(text=tag)


def test_dev_chain_has_the_documented_id_and_accounts() -> None:
    with AnvilProcess(chain_id=DEV_CHAIN_ID) as node:
        assert rpc_answers(node.rpc_url) == DEV_CHAIN_ID
        w3 = Web3(Web3.HTTPProvider(node.rpc_url))
        accounts = w3.eth.accounts
        for i, dev in enumerate(DEV_ACCOUNTS):
            assert Account.from_key(dev.private_key).address == dev.address
            assert accounts[i] == dev.address
            assert w3.eth.get_balance(Web3.to_checksum_address(dev.address)) > 0


def test_other_chain_id_and_port() -> None:
    with AnvilProcess(chain_id=4242) as node:
        assert rpc_answers(node.rpc_url) == 4242
        assert node.rpc_url == f"http://127.0.0.1:{node.port}"
        assert "running" not in repr(node) and node.rpc_url in repr(node)


def test_state_survives_stop_and_restart(tmp_path: Path) -> None:
    state = tmp_path / "chain" / "state.json"
    roots = [_root(f"persist-{i}") for i in range(20)]

    node = AnvilProcess(state, state_interval=60)
    with node:
        client = ChainClient(node.rpc_url, OWNER.private_key)
        address = client.deploy()
        for i, root in enumerate(roots):
            client.anchor(root, i + 1)
        url, pgid = node.rpc_url, node.pid
    assert pgid is not None
    # stop() returned only after the wrapper and the platform binary were both gone.
    assert _live_group_members(pgid) == []
    assert rpc_answers(url, timeout=0.3) is None
    assert state.is_file() and state.stat().st_size > 0
    assert not node.running

    with AnvilProcess(state) as again:
        client = ChainClient(again.rpc_url, OWNER.private_key, contract_address=address)
        assert client.has_code() and client.is_registry()
        assert client.anchor_count() == 20
        assert client.latest_tree_size() == 20
        record = client.lookup(roots[7])
        assert record is not None and (record.tree_size, record.index) == (8, 7)
        assert len(client.contract.events.Anchored().get_logs(from_block=0)) == 20
        assert client.anchor(_root("after restart"), 21).index == 20  # the nonce came back too


def test_a_fresh_state_file_means_the_contract_is_gone(tmp_path: Path) -> None:
    with AnvilProcess(tmp_path / "a.json") as node:
        client = ChainClient(node.rpc_url, OWNER.private_key)
        address = client.deploy()
        client.anchor(_root("lost"), 1)
    with AnvilProcess(tmp_path / "b.json") as fresh:
        client = ChainClient(fresh.rpc_url, OWNER.private_key, contract_address=address)
        assert client.is_reachable()
        assert not client.has_code()  # same deployer and nonce: the same address, but empty
        with pytest.raises(ChainError) as missing:
            client.lookup(_root("lost"))
        assert missing.value.code == "contract_missing"


def test_periodic_dump_survives_a_crash(tmp_path: Path) -> None:
    """With --state-interval the state is on disk even if anvil never gets to dump at exit."""
    state = tmp_path / "state.json"
    node = AnvilProcess(state, state_interval=1)
    node.start()
    try:
        client = ChainClient(node.rpc_url, OWNER.private_key)
        address = client.deploy()
        client.anchor(_root("crash"), 1)
        # Wait for a periodic dump that holds the anchoring transaction (its input has the root).
        deadline = time.monotonic() + 10
        while _root("crash").hex() not in (state.read_text() if state.exists() else ""):
            assert time.monotonic() < deadline, "no periodic state dump within 10 s"
            time.sleep(0.1)
        time.sleep(0.2)  # let that write finish
        pgid = node.pid
        assert pgid is not None
        os.killpg(pgid, signal.SIGKILL)  # a crash: no dump at exit
        _wait_group(pgid, 5)
    finally:
        node.stop()
    with AnvilProcess(state) as again:
        client = ChainClient(again.rpc_url, None, contract_address=address)
        assert client.lookup(_root("crash")) is not None


def test_truncated_state_falls_back_to_the_last_clean_stop(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with AnvilProcess(state) as node:
        client = ChainClient(node.rpc_url, OWNER.private_key)
        address = client.deploy()
        client.anchor(_root("kept"), 1)
    backup = tmp_path / "state.json.bak"
    assert backup.read_bytes() == state.read_bytes()

    good = state.read_bytes()
    state.write_bytes(good[: len(good) // 2])  # as if killed in the middle of a dump
    with AnvilProcess(state) as again:
        client = ChainClient(again.rpc_url, None, contract_address=address)
        assert client.lookup(_root("kept")) is not None
    assert [p.name for p in tmp_path.glob("state.json.corrupt-*")]


def test_stop_is_idempotent_and_restart_works(tmp_path: Path) -> None:
    node = AnvilProcess()
    node.stop()  # never started
    node.start()
    first_url = node.rpc_url
    assert node.start() is node  # already running: no second process
    assert node.rpc_url == first_url
    node.stop()
    node.stop()
    with pytest.raises(RuntimeError):
        _ = node.rpc_url
    with node:
        assert rpc_answers(node.rpc_url) == DEV_CHAIN_ID


def test_a_node_left_running_is_stopped_at_interpreter_exit(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    script = (
        "from provenance.chain.anvil import AnvilProcess\n"
        f"node = AnvilProcess({str(state)!r}, state_interval=None).start()\n"
        "print(node.pid, flush=True)\n"
    )
    repo = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=repo, capture_output=True, text=True, timeout=60, check=True
    )
    pgid = int(done.stdout.split()[0])
    assert _live_group_members(pgid) == []
    assert state.is_file()  # dumped at exit: it got its SIGTERM


def test_unloadable_state_fails_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "state.json"
    bad.write_text("{not json")
    with pytest.raises(ChainUnavailable) as failed:
        AnvilProcess(bad, startup_timeout=20).start()
    assert "state" in failed.value.detail and failed.value.status == 503


def test_missing_binary_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(ChainUnavailable, match="npm ci"):
        AnvilProcess(binary=tmp_path / "no-anvil").start()


def test_a_remembered_port_keeps_the_rpc_url_across_restarts(tmp_path: Path) -> None:
    """`make run`'s chain: the same RPC URL after a restart; another port only if that one is taken."""
    port_file = tmp_path / "anvil.port"
    with AnvilProcess(port_file=port_file) as node:
        first = node.rpc_url
    assert port_file.read_text().strip() == first.rsplit(":", 1)[1]
    with AnvilProcess(port_file=port_file) as node:
        assert node.rpc_url == first
        with AnvilProcess(port_file=port_file) as other:  # taken: a free port, remembered instead
            moved = other.rpc_url
            assert moved != first and rpc_answers(moved) == DEV_CHAIN_ID
    assert port_file.read_text().strip() == moved.rsplit(":", 1)[1]


def test_fixed_port_in_use_fails_clearly() -> None:
    with AnvilProcess() as node, pytest.raises(ChainUnavailable, match=r"(?i)in use"):
        AnvilProcess(port=node.port).start()


def _spawn_starter(state: Path, *, die_with_parent: bool) -> tuple[subprocess.Popen[str], int, str]:
    """A Python process that starts a node on `state`, anchors root "newest", then idles.

    Returns the process, the node's pid and the registry address. `state_interval=None`: the
    anchor reaches the state file only if the node dumps at exit (SIGTERM), not periodically.
    """
    extra = "" if die_with_parent else ", die_with_parent=False"
    script = (
        "import time\n"
        "from web3 import Web3\n"
        "from provenance.chain.anvil import DEV_ACCOUNTS, AnvilProcess\n"
        "from provenance.chain.contract import ChainClient\n"
        f"node = AnvilProcess({str(state)!r}, state_interval=None{extra})\n"
        "node.start()\n"
        "client = ChainClient(node.rpc_url, DEV_ACCOUNTS[0].private_key)\n"
        "address = client.deploy()\n"
        "client.anchor(Web3.keccak(text='newest'), 1)\n"
        "print(node.pid, address, flush=True)\n"
        "time.sleep(600)\n"
    )
    repo = Path(__file__).resolve().parents[3]
    starter = subprocess.Popen(
        [sys.executable, "-c", script], cwd=repo, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert starter.stdout is not None
    line = starter.stdout.readline()
    assert line, "the starter printed nothing"
    pid, address = line.split()
    return starter, int(pid), address


def _lock_free(lock: Path, seconds: float) -> bool:
    """Whether the state file's lock can be taken within `seconds` (a node may still be exiting
    when its process has been reported gone on a loaded machine)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with lock.open("a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                time.sleep(0.2)
                continue
            fcntl.flock(fh, fcntl.LOCK_UN)
            return True
    return False


def test_node_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """A SIGKILLed server leaves no node behind to write an older state over the file later."""
    state = tmp_path / "state.json"
    starter, pid, address = _spawn_starter(state, die_with_parent=True)
    try:
        starter.send_signal(signal.SIGKILL)
        starter.wait()
        assert _wait_group(pid, 20), f"anvil pid {pid} outlived the process that started it"
        assert _lock_free(state.with_name(state.name + ".lock"), 20), "the lock stayed held"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    # It was told with SIGTERM, so it dumped its state on the way out: nothing lost.
    with AnvilProcess(state) as again:
        client = ChainClient(again.rpc_url, None, contract_address=address)
        assert client.lookup(_root("newest")) is not None


def test_a_second_node_on_one_state_file_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with AnvilProcess(state) as node:
        with pytest.raises(ChainUnavailable, match="in use by anvil pid") as refused:
            AnvilProcess(state).start()
        assert len(refused.value.detail.splitlines()) == 1
        assert rpc_answers(node.rpc_url) == DEV_CHAIN_ID  # the first one is untouched
    with AnvilProcess(state) as after:  # once it stopped, the file is free again
        assert rpc_answers(after.rpc_url) == DEV_CHAIN_ID


def test_an_orphan_is_stopped_and_its_newest_state_loaded(tmp_path: Path) -> None:
    """An orphan (its starter died, no parent-death signal) holds the lock; a new start stops it
    cleanly, so it dumps its newest state, and loads that instead of racing it for the file."""
    state = tmp_path / "state.json"
    starter, pid, address = _spawn_starter(state, die_with_parent=False)
    try:
        starter.send_signal(signal.SIGKILL)
        starter.wait()
        time.sleep(0.5)
        assert _live_group_members(pid), "the orphan should still run"
        assert not state.exists()  # no periodic dumps: its anchor lives only in its memory
        with AnvilProcess(state) as node:
            assert not _live_group_members(pid)
            client = ChainClient(node.rpc_url, None, contract_address=address)
            assert client.lookup(_root("newest")) is not None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def test_a_node_that_holds_no_lock_on_the_state_file_is_refused(tmp_path: Path) -> None:
    """Such as one left behind by an older version (started through the Node wrapper, no lock)."""
    state = tmp_path / "state.json"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    legacy = subprocess.Popen(
        [str(ANVIL_WRAPPER), "--port", str(port), "--state", "state.json"],
        cwd=tmp_path,  # a relative path, as `./var` gave before
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while rpc_answers(f"http://127.0.0.1:{port}") is None:
            assert time.monotonic() < deadline, "the legacy node did not start"
            time.sleep(0.1)
        with pytest.raises(ChainUnavailable, match="also run anvil"):
            AnvilProcess(state).start()
    finally:
        os.killpg(legacy.pid, signal.SIGTERM)
        legacy.wait(timeout=20)
        _wait_group(legacy.pid, 20)
