"""Issue #17, item 6: a burst of synchronous verifications must not take the whole server.

A real server with one sync slot gets as many short clips at once as the red team sent (45): each
is answered 201 (verified within the request) or 202 with a Location to poll, and meanwhile
/health and a GET of a registration keep answering. Timings are asserted only as generous bounds.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from frames.samples import sample_clip
from harness.accounts import admin_headers
from harness.server import running_server
from harness.topology import api_key, enrol_camera
from tests.e2e.signed import fingerprint_of, signed_form, submit_clip, wait_verification

pytestmark = pytest.mark.slow

BURST = 45
SLOTS = 1
# Generous: a read that waited behind the burst would take the burst's whole length (minutes).
READ_BOUND_S = 15.0


def test_burst_of_verifications_is_queued_while_reads_answer(tmp_path: Path) -> None:
    clip = sample_clip("bikes.mp4")  # 10 s: short enough to be verified within the request
    env = {"PROVENANCE_CHAIN_MODE": "off", "PROVENANCE_VERIFY_SYNC_CONCURRENCY": str(SLOTS)}
    with running_server(tmp_path / "var", extra_env=env) as server:
        admin = admin_headers(server.data_dir)
        camera = enrol_camera(server.url, admin)
        newsroom = api_key(server.url, admin, "newsroom")
        fingerprint_of(clip)
        r = httpx.post(
            f"{server.url}/v1/registrations", headers=camera.headers, data=signed_form(camera, clip)
        )
        assert r.status_code == 201, r.text
        registration = f"/v1/registrations/{r.json()['id']}"

        reads: list[tuple[str, int, float]] = []
        burst_over = threading.Event()

        def read_while_busy() -> None:
            while not burst_over.is_set():
                for path, headers in (("/health", {}), (registration, camera.headers)):
                    start = time.monotonic()
                    try:
                        code = httpx.get(f"{server.url}{path}", headers=headers, timeout=60).status_code
                    except httpx.TimeoutException:
                        code = 0
                    reads.append((path, code, time.monotonic() - start))
                time.sleep(0.2)

        reader = threading.Thread(target=read_while_busy)
        reader.start()
        try:
            with ThreadPoolExecutor(max_workers=BURST) as pool:
                answers = list(pool.map(lambda _: submit_clip(server.url, newsroom, clip), range(BURST)))
        finally:
            burst_over.set()
            reader.join()

        codes = [a.status_code for a in answers]
        assert set(codes) <= {201, 202}, [a.text for a in answers if a.status_code not in (201, 202)]
        queued = [a for a in answers if a.status_code == 202]
        # One slot: while one clip is verified inline the others are queued; a few may find the
        # slot free again before the last request arrives, never most of them.
        assert len(queued) >= BURST - 10, codes
        assert all(a.headers["Location"] == f"/v1/verifications/{a.json()['id']}" for a in queued)
        assert all(a.json()["verdict"] == "authentic" for a in answers if a.status_code == 201)

        assert reads, "no read was made during the burst"
        slow = [(p, c, round(t, 1)) for p, c, t in reads if c != 200 or t > READ_BOUND_S]
        assert not slow, slow
        assert {p for p, _, _ in reads} == {"/health", registration}

        # The queued clips are verified in the background: a sample of them completes.
        for answer in queued[:3]:
            body = wait_verification(server.url, newsroom, answer.headers["Location"], every=1.0)
            assert body["status"] == "done" and body["verdict"] == "authentic", body
