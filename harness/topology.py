"""The docker-compose topology as local processes on loopback: anvil, a fresh PostgreSQL database,
API processes and worker processes, all started with the same `provenance serve --role ...` entry
points the containers use. Shared by the scale-out and chaos tests and `bench.load`, `bench.anchoring`."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import httpx
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness.accounts import admin_headers, enrol_device, make_key
from harness.manifests import signed_form
from harness.server import BIN, free_port, wait_healthy
from provenance import fingerprint as fp
from provenance.chain.anvil import AnvilProcess

PG_ADMIN_URL = os.environ.get("PROVENANCE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new PostgreSQL database, dropped afterwards (with any connections still open to it)."""
    name = f"prov_scale_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        for _ in range(30):  # PostgreSQL may be restarting when the test ends
            try:
                with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                break
            except psycopg.OperationalError:
                time.sleep(1)


@dataclass
class Proc:
    role: str
    name: str
    log: Path
    process: subprocess.Popen[bytes]
    url: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Topology:
    root: Path
    data_dir: Path
    env: dict[str, str]
    anvil: AnvilProcess
    database_url: str
    procs: list[Proc] = field(default_factory=list)
    _chain_port: int = 0

    @property
    def apis(self) -> list[Proc]:
        return [p for p in self.procs if p.role == "api" and p.process.poll() is None]

    @property
    def workers(self) -> list[Proc]:
        return [p for p in self.procs if p.role == "worker" and p.process.poll() is None]

    def start(self, role: str) -> Proc:
        env = dict(self.env)
        url = None
        if role == "api":
            port = free_port()
            env["PROVENANCE_PORT"] = str(port)
            url = f"http://127.0.0.1:{port}"
        name = f"{role}{sum(p.role == role for p in self.procs) + 1}"
        log = self.root / f"{name}.log"
        process = subprocess.Popen(
            [str(BIN / "provenance"), "serve", "--role", role],
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=self.root,
        )
        proc = Proc(role=role, name=name, log=log, process=process, url=url)
        self.procs.append(proc)
        return proc

    def wait_ready(self, timeout: float = 120) -> None:
        """Every API answers /health, and every worker is registered with the queue."""
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            if proc.role == "api":
                assert proc.url is not None
                wait_healthy(proc.name, proc.url, proc.process, proc.log_text, deadline - time.monotonic())
        wanted = len(self.workers)
        while self.alive_workers() < wanted:
            for proc in self.workers:
                assert proc.process.poll() is None, f"{proc.name} exited: {proc.log_text()}"
            assert time.monotonic() < deadline, "workers did not join the queue"
            time.sleep(0.2)

    def alive_workers(self) -> int:
        health = httpx.get(f"{self.apis[0].url}/health", timeout=5).json()
        worker: str = health["worker"]
        if not worker.startswith("queue: "):
            return 0
        return int(worker.split()[1])

    def kill(self, proc: Proc) -> None:
        proc.process.send_signal(signal.SIGKILL)
        proc.process.wait()

    def stop_chain(self) -> None:
        """Stop the chain node (SIGTERM: it dumps its state); `start_chain` brings it back as it was."""
        self._chain_port = self.anvil.port
        self.anvil.stop()

    def start_chain(self) -> None:
        """The chain node again, on the same port from the same state file."""
        self.anvil = AnvilProcess(self.anvil.state_file, port=self._chain_port).start()

    def admin_headers(self) -> dict[str, str]:
        return admin_headers(self.data_dir)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.process.poll() is None:
                proc.process.terminate()
        for proc in self.procs:
            try:
                proc.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.process.kill()
                proc.process.wait()


@contextmanager
def topology(
    root: Path, apis: int = 2, workers: int = 2, extra_env: dict[str, str] | None = None
) -> Iterator[Topology]:
    """All processes started at once, as compose starts them (they serialise their own first start)."""
    root.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        anvil = stack.enter_context(AnvilProcess(root / "chain" / "anvil-state.json"))
        database_url = stack.enter_context(fresh_database())
        data_dir = root / "var"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
        env.update(
            {
                "PROVENANCE_DATA_DIR": str(data_dir),
                "PROVENANCE_DATABASE_URL": database_url,
                "PROVENANCE_CHAIN_RPC": anvil.rpc_url,
                "PROVENANCE_DEMO": "false",
                # A local test chain anchored with anvil's dev key, on purpose.
                "PROVENANCE_DEVELOPMENT": "true",
                "PROVENANCE_ANCHOR_INTERVAL_S": "1",
                "PROVENANCE_WORKER_HEARTBEAT_S": "1",
                "PROVENANCE_WORKER_STALLED_S": "5",
                "PROVENANCE_MATCHER_POLL_S": "0.5",
            }
        )
        env.update(extra_env or {})
        topo = Topology(root=root, data_dir=data_dir, env=env, anvil=anvil, database_url=database_url)
        stack.callback(lambda: topo.anvil.stop())  # the node of the moment (the test may replace it)
        stack.callback(topo.stop)
        for _ in range(apis):
            topo.start("api")
        for _ in range(workers):
            topo.start("worker")
        topo.wait_ready()
        yield topo


@dataclass
class Camera:
    """An enrolled device key and a camera-scoped API key."""

    key: Ed25519PrivateKey
    device_id: str
    headers: dict[str, str]


def enrol_camera(api_url: str, admin: dict[str, str]) -> Camera:
    with httpx.Client(base_url=api_url) as http:
        device = enrol_device(http, admin, "cam")
        return Camera(key=device.key, device_id=device.id, headers=make_key(http, admin, "camera", "cam"))


def api_key(api_url: str, admin: dict[str, str], scope: str) -> dict[str, str]:
    with httpx.Client(base_url=api_url) as http:
        return make_key(http, admin, scope, scope)


def looped_clip(src: Path, dst: Path, times: int) -> Path:
    """`src` played `times` times in a row, remuxed without re-encoding (fast): a long clip to verify."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream_in = inp.streams.video[0]
        stream_out = out.add_stream_from_template(stream_in)
        packets = [(p, p.pts, p.dts if p.dts is not None else p.pts) for p in inp.demux(stream_in)]
        timed = [(p, pts, dts) for p, pts, dts in packets if pts is not None and dts is not None]
        span = max(pts + (p.duration or 0) for p, pts, _ in timed) - min(pts for _, pts, _ in timed)
        for i in range(times):
            for packet, pts, dts in timed:
                copy = av.Packet(bytes(packet))
                copy.pts = pts + i * span
                copy.dts = dts + i * span
                copy.duration = packet.duration
                copy.time_base = stream_in.time_base or Fraction(1, 1000)
                copy.is_keyframe = packet.is_keyframe
                copy.stream = stream_out
                out.mux(copy)
    return dst


# --- faults and load, shared by the scale and chaos tests ---


def _cluster() -> str:
    return sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]


def _pg_ctl(action: str) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", _cluster(), "main", action],
        check=True,
        timeout=180,
        capture_output=True,
    )


def restart_postgres() -> None:
    _pg_ctl("restart")


def stop_postgres() -> None:
    _pg_ctl("stop")


def start_postgres() -> None:
    _pg_ctl("start")
    for _ in range(120):  # pg_ctlcluster returns once the server accepts connections; make sure
        try:
            with psycopg.connect(PG_ADMIN_URL, connect_timeout=2):
                return
        except psycopg.OperationalError:
            time.sleep(0.5)


def registration_form(camera: Camera, fpr: fp.Fingerprint) -> dict[str, str]:
    return signed_form(fpr, camera.key, camera.device_id)


class Load:
    """Cameras registering through every API in a loop; records what was accepted (201)."""

    def __init__(self, urls: list[str], camera: Camera, fpr: fp.Fingerprint, threads: int = 4) -> None:
        self.urls, self.camera, self.fpr = urls, camera, fpr
        self.accepted: list[str] = []
        self.refused: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, n: int) -> None:
        with httpx.Client(timeout=30) as http:
            i = n
            while not self._stop.is_set():
                url = self.urls[i % len(self.urls)]
                i += 1
                try:
                    r = http.post(
                        f"{url}/v1/registrations",
                        headers=self.camera.headers,
                        data=registration_form(self.camera, self.fpr),
                    )
                except httpx.TransportError as exc:
                    self.refused.append(type(exc).__name__)
                    time.sleep(0.1)
                    continue
                if r.status_code == 201:
                    self.accepted.append(r.json()["id"])
                else:
                    self.refused.append(str(r.status_code))
                    time.sleep(0.1)

    def wait_accepted(self, more: int, stall_s: float = 180) -> None:
        """Until `more` further registrations are accepted; fails only after `stall_s` with none."""
        wanted = len(self.accepted) + more
        last, moved = len(self.accepted), time.monotonic()
        while len(self.accepted) < wanted:
            if len(self.accepted) != last:
                last, moved = len(self.accepted), time.monotonic()
            assert time.monotonic() - moved < stall_s, (
                f"no registration accepted for {stall_s} s: {self.refused[-5:]}"
            )
            time.sleep(0.2)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)


def anchored_count(database_url: str, ids: list[str]) -> int:
    """How many of `ids` the database calls anchored (read directly: no rate limit, one query)."""
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT count(*) FROM registrations WHERE id = ANY(%s) AND anchor_status = 'anchored'", (ids,)
        ).fetchone()
    return int(row[0]) if row else 0


def wait_all_anchored(database_url: str, ids: list[str], stall_s: float = 180) -> None:
    """Until every one of `ids` is anchored; fails only when the anchored count stops moving for
    `stall_s` (progress, not a wall-clock deadline: a slow machine only makes it slower)."""
    last, moved = -1, time.monotonic()
    while True:
        try:
            done = anchored_count(database_url, ids)
        except psycopg.OperationalError:  # the database is restarting: that is no progress
            done = last
        if done == len(ids):
            return
        if done != last:
            last, moved = done, time.monotonic()
        assert time.monotonic() - moved < stall_s, f"{len(ids) - done} registrations not anchored"
        time.sleep(0.5)


def assert_anchored_once(database_url: str, ids: list[str], chain_sizes: list[int]) -> None:
    """Every accepted registration is one leaf of the log (never two), inside an anchored tree, and
    no tree size was anchored twice on chain."""
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT ref_id, count(*), max(leaf_index) FROM log_entries "
            "WHERE kind = 'registration' AND ref_id = ANY(%s) GROUP BY ref_id",
            (ids,),
        ).fetchall()
    assert len(rows) == len(set(ids)), f"{len(set(ids)) - len(rows)} accepted registrations have no leaf"
    doubled = [ref for ref, n, _ in rows if n != 1]
    assert not doubled, f"registrations with more than one leaf: {doubled[:5]}"
    assert chain_sizes == sorted(set(chain_sizes)), f"a tree size anchored twice: {chain_sizes}"
    highest = max(leaf for _, _, leaf in rows)
    assert chain_sizes and chain_sizes[-1] > highest, "the last anchor does not cover every leaf"
