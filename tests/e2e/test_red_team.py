"""The red team's attacks (issue 17), replayed against a real `provenance serve` over loopback sockets.

Each test failed before its fix: FFmpeg fetched a playlist's URLs, a nested JSON body killed the
process, a large body or header stalled the event loop, slow connections were never closed.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.accounts import admin_headers, make_key
from harness.server import RunningServer, running_server
from tests.provenance.hostile_media import hls_local_file, hls_playlist, sdp_session

pytestmark = pytest.mark.slow

# Generous: these bound hangs, they do not measure speed.
PROMPT_S = 20.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("red-team")
    env = {
        "PROVENANCE_CHAIN_MODE": "off",
        "PROVENANCE_HTTP_HEADER_TIMEOUT_S": "2",
        "PROVENANCE_HTTP_BODY_IDLE_S": "2",
    }
    with running_server(root / "var", extra_env=env) as running:
        yield running


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> dict[str, str]:
    return admin_headers(server.data_dir)


@pytest.fixture(scope="module")
def newsroom(server: RunningServer, admin: dict[str, str]) -> dict[str, str]:
    with httpx.Client(base_url=server.url) as http:
        return make_key(http, admin, "newsroom", "nr")


def _alive(server: RunningServer) -> None:
    assert server.process.poll() is None, "the server process died"
    assert httpx.get(f"{server.url}/health", timeout=PROMPT_S).status_code == 200


class Listener:
    """A real TCP listener that records every connection made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.connections: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            conn.settimeout(1)
            try:
                self.connections.append(conn.recv(4096))
            except OSError:
                self.connections.append(b"")
            conn.close()

    def close(self) -> None:
        time.sleep(1.0)  # a fetch started by the request would have connected by now
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.mark.parametrize("path", ["/v1/verifications", "/matches/byContent"])
def test_playlist_upload_fetches_nothing(
    server: RunningServer, newsroom: dict[str, str], tmp_path: Path, path: str
) -> None:
    listener = Listener()
    try:
        data = hls_playlist(tmp_path / "x.m3u8", f"http://127.0.0.1:{listener.port}/segment.ts").read_bytes()
        if path == "/matches/byContent":
            response = httpx.post(
                f"{server.url}{path}",
                content=data,
                headers={**newsroom, "Content-Type": "video/mp4"},
                timeout=PROMPT_S,
            )
        else:
            response = httpx.post(
                f"{server.url}{path}", files={"media": ("x.m3u8", data)}, headers=newsroom, timeout=PROMPT_S
            )
    finally:
        listener.close()
    assert response.status_code == 415, response.text
    assert response.json()["code"] == "media_unsupported_format"
    assert listener.connections == []


def test_playlist_naming_a_local_file_is_refused(
    server: RunningServer, newsroom: dict[str, str], tmp_path: Path
) -> None:
    data = hls_local_file(tmp_path / "local.m3u8").read_bytes()
    response = httpx.post(
        f"{server.url}/v1/verifications", files={"media": ("local.m3u8", data)}, headers=newsroom
    )
    assert response.status_code == 415 and response.json()["code"] == "media_unsupported_format"


def test_sdp_upload_binds_no_port(server: RunningServer, newsroom: dict[str, str], tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("0.0.0.0", 0))
        port = probe.getsockname()[1]
    data = sdp_session(tmp_path / "x.sdp", port).read_bytes()
    # Named like a video: the content, not the name, is what the demuxer probe would go by.
    response = httpx.post(
        f"{server.url}/v1/verifications", files={"media": ("clip.mp4", data)}, headers=newsroom
    )
    assert response.status_code == 415 and response.json()["code"] == "media_unsupported_format"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("0.0.0.0", port))  # raises EADDRINUSE if the server bound it


def test_deeply_nested_json_does_not_kill_the_server(server: RunningServer, admin: dict[str, str]) -> None:
    body = "[" * 100_000 + "]" * 100_000
    anonymous = httpx.post(
        f"{server.url}/v1/clients", content=body, headers={"Content-Type": "application/json"}
    )
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "api_key_missing"
    shallow_enough_to_fit = "[" * 20_000 + "]" * 20_000
    signed_in = httpx.post(
        f"{server.url}/v1/clients",
        content=shallow_enough_to_fit,
        headers={**admin, "Content-Type": "application/json"},
    )
    assert signed_in.status_code == 400 and signed_in.json()["code"] == "json_too_deep"
    _alive(server)


def _raw(server: RunningServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=PROMPT_S)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_large_unauthenticated_body_is_refused_before_it_is_read(server: RunningServer) -> None:
    """100 MB announced: the answer comes after the headers alone, and the loop stays free."""
    with _raw(server) as sock:
        sock.sendall(
            b"POST /v1/clients HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 104857600\r\n\r\n" + b"[" * 65536
        )
        head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 401"), head[:200]
    _alive(server)


def test_large_authenticated_json_body_is_refused_by_its_length(
    server: RunningServer, admin: dict[str, str]
) -> None:
    with _raw(server) as sock:
        sock.sendall(
            b"POST /v1/clients HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: {admin['Authorization']}\r\n".encode()
            + b"Content-Length: 104857600\r\n\r\n"
        )
        head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]


def test_huge_header_is_refused_while_health_answers(server: RunningServer) -> None:
    answer: list[bytes] = []

    def attack() -> None:
        with _raw(server) as sock:
            try:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
                for _ in range(1024):  # 64 MB, as the red team sent
                    sock.sendall(b"a" * 65536)
            except (BrokenPipeError, ConnectionResetError):
                pass
            answer.append(_read_all(sock))

    thread = threading.Thread(target=attack)
    thread.start()
    _alive(server)
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert answer and (answer[0].startswith(b"HTTP/1.1 431") or answer[0] == b""), answer[0][:200]
    _alive(server)


def test_slow_headers_are_timed_out(server: RunningServer) -> None:
    with _raw(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


def test_silent_connection_is_timed_out(server: RunningServer) -> None:
    with _raw(server) as sock:
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


def test_stalled_body_is_timed_out(server: RunningServer, admin: dict[str, str]) -> None:
    with _raw(server) as sock:
        sock.sendall(
            b"POST /v1/clients HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: {admin['Authorization']}\r\n".encode()
            + b"Content-Length: 1000\r\n\r\n{"
        )
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    _alive(server)


def test_method_not_allowed_says_what_is(server: RunningServer, admin: dict[str, str]) -> None:
    response = httpx.delete(f"{server.url}/v1/clients", headers=admin)
    assert response.status_code == 405
    assert "POST" in response.headers.get("allow", ""), response.headers


def test_grace_seconds_must_be_a_number(server: RunningServer, admin: dict[str, str]) -> None:
    created = httpx.post(f"{server.url}/v1/clients", json={"name": "cam", "scope": "camera"}, headers=admin)
    client_id = created.json()["id"]
    for bad in (False, "5"):
        response = httpx.post(
            f"{server.url}/v1/clients/{client_id}/rotate",
            content=json.dumps({"grace_seconds": bad}),
            headers={**admin, "Content-Type": "application/json"},
        )
        assert response.status_code == 422 and response.json()["code"] == "request_invalid", response.text
