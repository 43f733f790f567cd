"""The docker-compose topology as local processes on loopback: anvil, a fresh PostgreSQL database,
API processes and worker processes, all started with the same `provenance serve --role ...` entry
points the containers use. Shared by the scale-out test and `bench.load`."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
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

from provenance.chain.anvil import AnvilProcess
from provenance.signing import device_id_for, raw_public_key
from tests.e2e.server import BIN, free_port

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
            if proc.role != "api":
                continue
            while True:
                if proc.process.poll() is not None:
                    raise AssertionError(f"{proc.name} exited: {proc.log_text()}")
                try:
                    if httpx.get(f"{proc.url}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"{proc.name} not healthy: {proc.log_text()}"
                time.sleep(0.2)
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

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {(self.data_dir / 'admin.key').read_text().strip()}"}

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
                "PROVENANCE_ANCHOR_INTERVAL_S": "1",
                "PROVENANCE_WORKER_HEARTBEAT_S": "1",
                "PROVENANCE_WORKER_STALLED_S": "5",
                "PROVENANCE_MATCHER_POLL_S": "0.5",
            }
        )
        env.update(extra_env or {})
        topo = Topology(root=root, data_dir=data_dir, env=env, anvil=anvil, database_url=database_url)
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
    key = Ed25519PrivateKey.generate()
    raw = raw_public_key(key.public_key())
    r = httpx.post(
        f"{api_url}/v1/devices",
        headers=admin,
        json={"name": "cam", "public_key": base64.b64encode(raw).decode()},
    )
    assert r.status_code == 201, r.text
    r = httpx.post(f"{api_url}/v1/clients", headers=admin, json={"name": "cam", "scope": "camera"})
    assert r.status_code == 201, r.text
    return Camera(
        key=key, device_id=device_id_for(raw), headers={"Authorization": f"Bearer {r.json()['api_key']}"}
    )


def api_key(api_url: str, admin: dict[str, str], scope: str) -> dict[str, str]:
    r = httpx.post(f"{api_url}/v1/clients", headers=admin, json={"name": scope, "scope": scope})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['api_key']}"}


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
