"""Anchoring end to end against a real anvil: receipts verify offline, and survive outages and restarts."""

from __future__ import annotations

import base64
import copy
import json
import os
import signal
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx
import pytest

from frames.samples import sample_clip
from harness.accounts import admin_headers
from harness.manifests import signed_form
from harness.server import RunningServer, free_port, running_server
from harness.topology import enrol_camera
from provenance import fingerprint as fp
from provenance.chain.anvil import AnvilProcess
from provenance.chain.contract import ChainClient
from provenance.core.config import DecodeLimits
from provenance.receipts import verify_receipt

pytestmark = pytest.mark.slow

FAST = {
    "PROVENANCE_ANCHOR_INTERVAL_S": "0.5",
    # One camera key registers hundreds back to back, faster than the default 100/second; the
    # rate limit is tested on its own (test_security_rate_limits.py).
    "PROVENANCE_RATE_LIMIT_DEFAULT": "100000/second",
}


@lru_cache(maxsize=1)
def carphone_fingerprint() -> fp.Fingerprint:
    return fp.compute_fingerprint(sample_clip("carphone_pristine.mp4"), limits=DecodeLimits())


class Camera:
    """An enrolled device and a camera-scoped key on a running server."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        admin = admin_headers(server.data_dir)
        camera = enrol_camera(server.url, admin)
        self.key, self.device_id, self.headers = camera.key, camera.device_id, camera.headers

    def register(self, n: int = 1) -> list[str]:
        fpr = carphone_fingerprint()
        ids = []
        with httpx.Client(base_url=self.server.url, headers=self.headers, timeout=60) as http:
            for _ in range(n):
                # a random content hash: a distinct capture each time
                r = http.post("/v1/registrations", data=signed_form(fpr, self.key, self.device_id))
                assert r.status_code == 201, r.text
                ids.append(r.json()["id"])
        return ids

    def receipt(self, registration_id: str) -> dict[str, Any]:
        r = httpx.get(f"{self.server.url}/v1/registrations/{registration_id}/receipt", headers=self.headers)
        assert r.status_code == 200, r.text
        receipt: dict[str, Any] = r.json()
        return receipt

    def wait_anchored(self, ids: list[str], timeout: float = 120) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            receipts = [self.receipt(i) for i in ids]
            if all(r["anchor"]["status"] == "anchored" for r in receipts):
                return receipts
            assert time.monotonic() < deadline, f"not anchored within {timeout} s"
            time.sleep(0.5)


def chain_rpc(server: RunningServer) -> str:
    rpc: str = httpx.get(f"{server.url}/health").json()["chain"]["rpc_url"]
    return rpc


def test_receipt_verifies_offline_and_any_change_breaks_it(tmp_path: Path) -> None:
    with running_server(tmp_path / "var", extra_env=FAST) as server:
        camera = Camera(server)
        [registration] = camera.register()
        [receipt] = camera.wait_anchored([registration])
        rpc = chain_rpc(server)
        path = tmp_path / "receipt.json"
        path.write_text(json.dumps(receipt))
        ok = server.cli("receipt", "verify", str(path), "--rpc", rpc, check=False)
        assert ok.returncode == 0, ok.stderr

        for mutate in (
            lambda r: r["manifest"].update(captured_at="2020-01-01T00:00:00.000Z"),
            lambda r: r["manifest"]["fingerprint"].update(digest="0" * 64),
            lambda r: r.update(signature=base64.b64encode(b"\0" * 64).decode()),
            lambda r: r.update(device_public_key=base64.b64encode(b"\1" * 32).decode()),
            lambda r: r["leaf"].update(received_at="2020-01-01T00:00:00.000Z"),
            lambda r: r.update(leaf_hash="0" * 64),
            lambda r: r.update(leaf_index=r["leaf_index"] + 1),
            lambda r: r.update(tree_size=r["tree_size"] + 1),
            lambda r: r.update(root="1" * 64),
            lambda r: r.update(inclusion_proof=["2" * 64, *r["inclusion_proof"]]),
            lambda r: r["anchor"].update(chain_id=1),
            lambda r: r["anchor"].update(contract="0x" + "3" * 40),
            lambda r: r["anchor"].update(transaction="0x" + "4" * 64),
            lambda r: r["anchor"].update(block_number=r["anchor"]["block_number"] + 1),
        ):
            changed = copy.deepcopy(receipt)
            mutate(changed)
            path.write_text(json.dumps(changed))
            bad = server.cli("receipt", "verify", str(path), "--rpc", rpc, check=False)
            assert bad.returncode != 0, f"a changed receipt verified: {changed}"
            assert len(bad.stderr.strip().splitlines()) == 1 and bad.stderr.startswith("error: ")


def test_outage_then_kill_then_lost_chain(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "chain" / "state.json"
    state.parent.mkdir()
    anvil = AnvilProcess(state, port=port, state_interval=1).start()
    env = {**FAST, "PROVENANCE_CHAIN_RPC": anvil.rpc_url}
    data_dir = tmp_path / "var"
    try:
        with running_server(data_dir, extra_env=env) as server:
            camera = Camera(server)
            camera.wait_anchored(camera.register())
            # Outage: 200 registrations while the chain is down stay pending, then all anchor.
            anvil.stop()
            ids = camera.register(200)
            assert all(camera.receipt(i)["anchor"]["status"] == "pending" for i in ids[:5])
            assert httpx.get(f"{server.url}/health").json()["chain"]["status"] == "unavailable"
            anvil = AnvilProcess(state, port=port, state_interval=1).start()
            receipts = camera.wait_anchored(ids)
            for receipt in receipts:
                assert all(c.ok for c in verify_receipt(receipt, anvil.rpc_url)), receipt["registration_id"]
            # SIGKILL in the middle of anchoring: nothing lost, nothing anchored twice.
            more = camera.register(50)
            deadline = time.monotonic() + 10
            while (
                httpx.get(f"{server.url}/health").json()["worker"] != "anchoring"
                and time.monotonic() < deadline
            ):
                time.sleep(0.01)
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait()
        with running_server(data_dir, extra_env=env) as server:
            camera.server = server
            for receipt in camera.wait_anchored(ids + more):
                assert all(c.ok for c in verify_receipt(receipt, anvil.rpc_url))
            contract = receipts[0]["anchor"]["contract"]
            client = ChainClient(anvil.rpc_url, None, contract_address=contract)
            events = client.contract.events.Anchored().get_logs(from_block=0)
            sizes = [int(e["args"]["treeSize"]) for e in events]
            assert sizes == sorted(set(sizes)), "a tree size was anchored twice"
            assert len({e["args"]["root"] for e in events}) == len(events)
        # The chain loses its state: detected, redeployed, re-anchored; old receipts are re-issued.
        anvil.stop()
        state.unlink()
        for backup in state.parent.glob("state.json*"):
            backup.unlink()
        anvil = AnvilProcess(state, port=port, state_interval=1).start()
        with running_server(data_dir, extra_env=env) as server:
            camera.server = server
            health = httpx.get(f"{server.url}/health").json()
            assert "incident" in health["chain"], health
            assert "lost" in health["chain"]["incident"]["detail"]
            old_tx = {r["anchor"]["transaction"] for r in receipts}
            for receipt in camera.wait_anchored(ids[:20]):
                assert receipt["anchor"]["transaction"] not in old_tx
                assert all(c.ok for c in verify_receipt(receipt, anvil.rpc_url))
    finally:
        anvil.stop()
