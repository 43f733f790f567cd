"""Start `provenance serve` as a real process on a free loopback port, and stop it; or serve an app
of this process from a thread (`live_server`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import httpx
import uvicorn

if TYPE_CHECKING:
    from fastapi import FastAPI

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def live_server(app: FastAPI, lifespan: Literal["on", "off"] = "on") -> Iterator[str]:
    """uvicorn serving `app` on a free loopback port, in a thread of this process (its lifespan
    starts the service unless `lifespan` is "off"); yields the base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan)
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("the server did not start")
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def refused_start(env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`provenance serve` run with `env` where it must refuse to start: its exit code and output.
    (One that starts anyway serves until the 120 s timeout fails the test.)"""
    return subprocess.run(
        [sys.executable, "-m", "provenance.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def wait_healthy(
    name: str, url: str, process: subprocess.Popen[bytes], log: Callable[[], str], timeout: float
) -> None:
    """Poll `url`/health until it answers 200. An AssertionError with `log()` when `process` exits
    first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"{name} exited: {log()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} did not answer /health within {timeout:.0f} s: {log()}")
        time.sleep(0.2)


@dataclass
class RunningServer:
    url: str
    data_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    def cli(
        self, *args: str, api_key: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if api_key:
            env["PROVENANCE_API_KEY"] = api_key
        result = subprocess.run(
            [str(BIN / "provenance"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=self.data_dir.parent,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"provenance {' '.join(args)} failed: {result.stderr}")
        return result


@contextmanager
def running_server(
    data_dir: Path,
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> Iterator[RunningServer]:
    """`preexec_fn` runs in the child before `provenance serve` (e.g. to set a resource limit)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
    env.update(
        {
            "PROVENANCE_DATA_DIR": str(data_dir),
            "PROVENANCE_PORT": str(port),
            "PROVENANCE_SERVER": f"http://127.0.0.1:{port}",
            "PROVENANCE_DEMO": "false",
        }
    )
    if database_url:
        env["PROVENANCE_DATABASE_URL"] = database_url
    env.update(extra_env or {})
    log = (data_dir.parent / f"server-{port}.log").open("wb")
    process = subprocess.Popen(
        [str(BIN / "provenance"), "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=preexec_fn,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy("server", url, process, (data_dir.parent / f"server-{port}.log").read_text, 120)
        yield RunningServer(url=url, data_dir=data_dir, env=env, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
