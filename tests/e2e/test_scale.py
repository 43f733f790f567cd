"""Beyond one machine, on loopback: two API processes, two workers, anvil and the real PostgreSQL.

Registrations made through one API are found when verifying through the other; a long verification
survives SIGKILL of the worker running it (the other worker completes it); PostgreSQL restarted
under load: the service recovers by itself and loses nothing it accepted. All faults are real.
"""

from __future__ import annotations

import hashlib
import time
from functools import lru_cache
from pathlib import Path

import httpx
import pytest

from frames.samples import sample_clip
from harness.topology import (
    Camera,
    Load,
    Proc,
    Topology,
    api_key,
    enrol_camera,
    looped_clip,
    registration_form,
    restart_postgres,
    topology,
    wait_all_anchored,
)
from provenance import fingerprint as fp
from provenance.chain.contract import ChainClient
from provenance.core.config import DecodeLimits
from tests.e2e.signed import wait_verification

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@lru_cache(maxsize=4)
def fingerprint_of(path: Path) -> fp.Fingerprint:
    return fp.compute_fingerprint(path, limits=DecodeLimits())


def register(url: str, camera: Camera, fpr: fp.Fingerprint) -> str:
    r = httpx.post(f"{url}/v1/registrations", headers=camera.headers, data=registration_form(camera, fpr))
    assert r.status_code == 201, r.text
    registration_id: str = r.json()["id"]
    return registration_id


def submit(url: str, headers: dict[str, str], clip: Path) -> httpx.Response:
    with clip.open("rb") as fh:
        return httpx.post(
            f"{url}/v1/verifications", headers=headers, files={"media": (clip.name, fh)}, timeout=120
        )


def worker_running(topo: Topology, vid: str, timeout: float = 180) -> int:
    """The pid of the worker that has started the job for verification `vid` (from its log)."""
    deadline = time.monotonic() + timeout
    marker = f"verification {vid} started in pid "
    while time.monotonic() < deadline:
        for proc in topo.workers:
            text = proc.log_text()
            if marker in text:
                return int(text.split(marker, 1)[1].split()[0])
        time.sleep(0.05)
    raise AssertionError(f"no worker started {vid}")


def anchoring_leader(topo: Topology, timeout: float = 120) -> Proc:
    """The live worker that most recently logged taking the batcher's leader lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leaders = [w for w in topo.workers if f"process {w.pid} now leads anchoring" in w.log_text()]
        if leaders:
            return leaders[-1]
        time.sleep(0.2)
    raise AssertionError("no worker leads anchoring")


def wait_anchored(topo: Topology, url: str, headers: dict[str, str], ids: list[str]) -> None:
    """Every one of `ids` anchored: waits on progress (the anchored count moving), then checks the
    receipts of the first and the last through the API."""
    wait_all_anchored(topo.database_url, ids)
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        for rid in {ids[0], ids[-1]}:
            r = http.get(f"/v1/registrations/{rid}/receipt")
            assert r.status_code == 200, f"accepted registration {rid} lost: {r.text}"
            assert r.json()["anchor"]["status"] == "anchored", r.json()


def test_two_apis_two_workers_survive_worker_kill_and_database_restart(tmp_path: Path) -> None:
    short_clip = sample_clip("carphone_pristine.mp4")
    long_clip = looped_clip(sample_clip("bikes.mp4"), tmp_path / "long.mp4", 12)  # 120 s: a job
    env = {"PROVENANCE_VERIFY_SYNC_MAX_S": "30"}
    with topology(tmp_path / "topo", apis=2, workers=2, extra_env=env) as topo:
        api1, api2 = topo.apis
        assert api1.url and api2.url
        admin = topo.admin_headers()
        camera = enrol_camera(api1.url, admin)
        newsroom = api_key(api2.url, admin, "newsroom")

        # Registered through one API, found when verifying through the other (its matcher polls).
        short_id = register(api1.url, camera, fingerprint_of(short_clip))
        long_id = register(api1.url, camera, fingerprint_of(long_clip))
        deadline = time.monotonic() + 180
        while True:
            r = submit(api2.url, newsroom, short_clip)
            assert r.status_code == 201, r.text
            if r.json()["verdict"] == "authentic":
                assert r.json()["match"]["registration_id"] == short_id
                break
            assert time.monotonic() < deadline, "api2 never learned of api1's registration"
            time.sleep(0.5)

        # A long verification is a queued job; SIGKILL the worker running it: the other completes it.
        r = submit(api2.url, newsroom, long_clip)
        assert r.status_code == 202, r.text
        vid = r.json()["id"]
        pid = worker_running(topo, vid)
        [victim] = [w for w in topo.workers if w.pid == pid]
        [survivor] = [w for w in topo.workers if w.pid != pid]
        assert httpx.get(f"{api1.url}/v1/verifications/{vid}", headers=newsroom).json()["status"] != "done"
        topo.kill(victim)
        result = wait_verification(api1.url, newsroom, f"/v1/verifications/{vid}")
        assert result["status"] == "done", result
        assert result["verdict"] == "authentic" and result["match"]["registration_id"] == long_id
        assert f"verification {vid} started" in survivor.log_text()
        topo.start("worker")  # back to two workers, as an orchestrator would restart it

        # SIGKILL the worker leading anchoring: another takes the lead and anchors what waits.
        topo.kill(anchoring_leader(topo))
        waiting = [register(api2.url, camera, fingerprint_of(short_clip)) for _ in range(5)]
        wait_anchored(topo, api1.url, camera.headers, waiting)
        topo.start("worker")

        # PostgreSQL restarted under load: nothing accepted is lost, and the service recovers by itself.
        with Load([api1.url, api2.url], camera, fingerprint_of(short_clip)) as load:
            time.sleep(3)
            before = len(load.accepted)
            restart_postgres()
            load.wait_accepted(40)  # recovery: fails only when nothing is accepted for minutes
        assert before > 0 and load.accepted
        for proc in topo.apis:
            assert httpx.get(f"{proc.url}/health", timeout=10).status_code == 200
        wait_anchored(topo, api2.url, camera.headers, [short_id, long_id, *load.accepted])
        # Jobs still run after the restart (the workers reconnected by themselves).
        r = submit(api1.url, newsroom, long_clip)
        assert r.status_code == 202, r.text
        after = wait_verification(api2.url, newsroom, f"/v1/verifications/{r.json()['id']}")
        assert after["status"] == "done" and after["match"]["registration_id"] == long_id

        # Several batchers, one anchoring at a time: no tree size anchored twice.
        contract = httpx.get(f"{api1.url}/health").json()["chain"]["contract"]
        chain = ChainClient(topo.anvil.rpc_url, None, contract_address=contract)
        sizes = [int(e["args"]["treeSize"]) for e in chain.contract.events.Anchored().get_logs(from_block=0)]
        assert sizes == sorted(set(sizes)), sizes
        print(
            f"accepted {len(load.accepted)} registrations under the restart, refused {len(load.refused)} "
            f"({sorted(set(load.refused))}); {len(sizes)} anchors; digest "
            f"{hashlib.sha256(','.join(load.accepted).encode()).hexdigest()[:12]}"
        )
