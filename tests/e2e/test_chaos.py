"""Chaos under load: two APIs and two workers ride out PostgreSQL restarted three times in a row (once
while a worker is starting, once for longer than a worker's stall timeout) and the chain node stopped
for 20 s, with no process restarted by the test: every accepted registration ends up anchored, none
twice, and /health went `degraded` with a reason and came back to `ok`. All faults are real.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from frames.samples import sample_clip
from harness.server import BIN, free_port
from harness.topology import (
    Load,
    Topology,
    assert_anchored_once,
    enrol_camera,
    restart_postgres,
    start_postgres,
    stop_postgres,
    topology,
    wait_all_anchored,
)
from provenance import fingerprint as fp
from provenance.chain.contract import ChainClient
from provenance.core.config import DecodeLimits

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


class HealthWatch:
    """Polls /health of every API in a thread and keeps what it saw: statuses and reasons."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.statuses: list[str] = []
        self.reasons: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self._stop.wait(0.5):
                for url in self.urls:
                    try:
                        body = http.get(f"{url}/health").json()
                    except (httpx.HTTPError, ValueError):
                        continue
                    self.statuses.append(body["status"])
                    self.reasons.update(
                        r.split(":")[0].split("(")[0].strip() for r in body.get("reasons", [])
                    )

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def wait_health_ok(topo: Topology, stall_s: float = 180) -> None:
    """Every API says `ok` again (after the backlog is anchored it must)."""
    deadline = time.monotonic() + stall_s
    for proc in topo.apis:
        while True:
            body = httpx.get(f"{proc.url}/health", timeout=10).json()
            if body["status"] == "ok":
                break
            assert time.monotonic() < deadline, f"{proc.name} stays degraded: {body}"
            time.sleep(0.5)


def anchor_sizes(topo: Topology) -> list[int]:
    contract = httpx.get(f"{topo.apis[0].url}/health", timeout=10).json()["chain"]["contract"]
    chain = ChainClient(topo.anvil.rpc_url, None, contract_address=contract)
    return [int(e["args"]["treeSize"]) for e in chain.contract.events.Anchored().get_logs(from_block=0)]


def test_restarts_of_the_database_and_the_chain_lose_nothing_and_every_role_resumes(tmp_path: Path) -> None:
    fpr = fp.compute_fingerprint(sample_clip("carphone_pristine.mp4"), limits=DecodeLimits())
    env = {
        "PROVENANCE_RATE_LIMIT_DEFAULT": "100000/second",
        # Degraded when a leaf waits this long: well past a batch on a busy machine, well inside an outage.
        "PROVENANCE_ANCHOR_LAG_MAX_S": "10",
    }
    with topology(tmp_path / "topo", apis=2, workers=1, extra_env=env) as topo:
        urls = [p.url for p in topo.apis if p.url]
        camera = enrol_camera(urls[0], topo.admin_headers())
        with HealthWatch(urls) as health:
            with Load(urls, camera, fpr) as load:
                load.wait_accepted(30)

                # 1. A restart under load.
                restart_postgres()
                load.wait_accepted(30)

                # 2. The database goes away while a second worker is starting: it waits, then joins.
                stop_postgres()
                starting = topo.start("worker")
                time.sleep(8)
                assert starting.process.poll() is None, (
                    f"a worker started during an outage exited: {starting.log_text()}"
                )
                start_postgres()
                load.wait_accepted(30)

                # 3. A long outage: longer than a worker's stall timeout (5 s here), so heartbeats lapse.
                stop_postgres()
                time.sleep(25)
                start_postgres()
                load.wait_accepted(30)

                # The chain node away for 20 s: the outbox keeps what waits.
                topo.stop_chain()
                time.sleep(20)
                topo.start_chain()
                load.wait_accepted(30)
            accepted = list(load.accepted)
            # Every accepted registration is anchored (waiting on progress, not on a deadline).
            wait_all_anchored(topo.database_url, accepted)
            wait_health_ok(topo)
            time.sleep(1)  # one more look by the watch
        assert_anchored_once(topo.database_url, accepted, anchor_sizes(topo))

        # No process was restarted, and none died: each rode out every fault by itself.
        for proc in topo.procs:
            assert proc.process.poll() is None, f"{proc.name} exited: {proc.log_text()[-3000:]}"
        for proc in topo.workers:
            text = proc.log_text()
            assert "database unavailable" in text and "database is back" in text, proc.name
        # /health went degraded, saying why, and came back.
        assert "degraded" in health.statuses and health.statuses[-1] == "ok"
        assert "database unavailable" in health.reasons, health.reasons
        assert any(r.startswith("chain") for r in health.reasons), health.reasons
        print(
            f"accepted {len(accepted)}, refused {len(load.refused)} ({sorted(set(load.refused))}); "
            f"health reasons seen: {sorted(health.reasons)}"
        )


@pytest.mark.parametrize("role", ["api", "worker"])
def test_a_role_started_without_a_database_waits_its_bound_then_exits_with_one_line(
    tmp_path: Path, role: str
) -> None:
    """Nothing listens on the database's port: `serve` retries for PROVENANCE_DATABASE_WAIT_S, then
    exits non-zero with the reason on one line (no traceback)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
    env.update(
        {
            "PROVENANCE_DATA_DIR": str(tmp_path / "data"),
            "PROVENANCE_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere",
            "PROVENANCE_CHAIN_RPC": f"http://127.0.0.1:{free_port()}",
            "PROVENANCE_PORT": str(free_port()),
            "PROVENANCE_DATABASE_WAIT_S": "4",
            "PROVENANCE_DEVELOPMENT": "true",  # no chain key: anvil's dev key, on purpose
        }
    )
    started = time.monotonic()
    done = subprocess.run(
        [str(BIN / "provenance"), "serve", "--role", role],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    took = time.monotonic() - started
    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    reason = [line for line in done.stderr.splitlines() if line.strip()][-1]
    assert "database stayed unavailable for 4 s" in reason, done.stderr
    assert took >= 3, f"gave up after {took:.1f} s, before its bound"
