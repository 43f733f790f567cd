"""The embedded chain node's life is tied to the server's, and a chain rolled back under us is caught.

Security issue #17 (3): an anvil orphaned by a SIGKILLed server later wrote an older state over
the state file; after the next start receipts failed `root_on_chain` while the database and
/health said all was anchored. These run the real `provenance serve` with its embedded anvil.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.server import RunningServer, running_server
from tests.e2e.test_anchoring import FAST, Camera, chain_rpc

pytestmark = pytest.mark.slow


def _nodes_on(state: Path) -> list[int]:
    """Live processes with `--state <state>` on their command line (anvil, or a wrapper around it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # a zombie has finished writing
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        named = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == b"--state"]
        if any((cwd / os.fsdecode(n)).resolve() == state.resolve() for n in named):
            found.append(int(entry.name))
    return found


def _verify_cli(server: RunningServer, receipt: dict[str, Any], rpc: str, path: Path) -> tuple[int, str]:
    path.write_text(json.dumps(receipt))
    done = server.cli("receipt", "verify", str(path), "--rpc", rpc, check=False)
    return done.returncode, done.stderr.strip()


def test_sigkilled_server_leaves_no_chain_node_behind(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    state = data_dir / "chain" / "anvil-state.json"
    with running_server(data_dir, extra_env=FAST) as server:
        camera = Camera(server)
        ids = camera.register(3)
        camera.wait_anchored(ids)
        nodes = _nodes_on(state)
        assert nodes, "the embedded anvil should name its state file"
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()
        deadline = time.monotonic() + 20
        while left := [pid for pid in nodes if pid in _nodes_on(state)]:
            assert time.monotonic() < deadline, f"anvil outlived the SIGKILLed server: pids {left}"
            time.sleep(0.1)
    # It dumped its state on the way out (SIGTERM from the parent-death signal): nothing lost.
    with running_server(data_dir, extra_env=FAST) as server:
        camera.server = server
        health = httpx.get(f"{server.url}/health").json()
        assert health["status"] == "ok" and "incident" not in health["chain"], health
        rpc = chain_rpc(server)
        for i, receipt in enumerate(camera.wait_anchored(ids)):
            code, err = _verify_cli(server, receipt, rpc, tmp_path / f"r{i}.json")
            assert code == 0, err


def test_a_chain_rolled_back_to_an_older_state_is_caught_and_re_anchored(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    state = data_dir / "chain" / "anvil-state.json"
    with running_server(data_dir, extra_env=FAST) as server:
        camera = Camera(server)
        older = camera.register(2)
        camera.wait_anchored(older)
    old_state = tmp_path / "old-state.json"
    shutil.copyfile(state, old_state)  # the state an orphan would have kept in its memory
    with running_server(data_dir, extra_env=FAST) as server:
        camera.server = server
        newer = camera.register(3)
        before = camera.wait_anchored(older + newer)
    # The orphan's older state lands on the file after the newest anchors were made.
    shutil.copyfile(old_state, state)
    with running_server(data_dir, extra_env=FAST) as server:
        camera.server = server
        rpc = chain_rpc(server)
        # What the incident was: receipts of the newest anchors no longer verify on this chain.
        code, err = _verify_cli(server, before[-1], rpc, tmp_path / "stale.json")
        assert code != 0 and "root_on_chain" in err, err
        health = httpx.get(f"{server.url}/health").json()
        incident = health["chain"].get("incident")
        assert incident is not None and "rolled back" in incident["detail"], health
        assert str(before[-1]["tree_size"]) in incident["detail"]
        for i, receipt in enumerate(camera.wait_anchored(older + newer)):
            code, err = _verify_cli(server, receipt, rpc, tmp_path / f"r{i}.json")
            assert code == 0, err
            assert receipt["anchor"]["contract"] != before[0]["anchor"]["contract"]
