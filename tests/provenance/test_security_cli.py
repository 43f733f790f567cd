"""`provenance client rotate|revoke`, `provenance device rotate` and `provenance audit` against a
real server (uvicorn on a loopback port)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from harness.server import live_server
from provenance.api.app import create_app
from provenance.cli import app
from provenance.service import Service, open_service
from tests.conftest import chainless_settings


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, Service]]:
    service = open_service(chainless_settings(tmp_path, f"sqlite:///{tmp_path / 'cli.db'}"))
    try:
        with live_server(create_app(service)) as url:
            yield url, service
    finally:
        service.engine.dispose()


def _cli(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


def test_rotate_keys_and_read_the_audit_log(live: tuple[str, Service], tmp_path: Path) -> None:
    url, service = live
    admin = ["--server", url, "--api-key", str(service.new_admin_key)]
    camera = _cli("client", "create", "--name", "cam app", "--scope", "camera", *admin)
    rotated = _cli("client", "rotate", str(camera["id"]), "--grace", "0", *admin)
    old_key, new_key = str(camera["api_key"]), str(rotated["api_key"])
    assert httpx.get(f"{url}/v1/log/root", headers={"Authorization": f"Bearer {old_key}"}).status_code == 401
    assert httpx.get(f"{url}/v1/log/root", headers={"Authorization": f"Bearer {new_key}"}).status_code == 200

    old_file, new_file = tmp_path / "old.key", tmp_path / "new.key"
    old = _cli("device", "init", "--out", str(old_file))
    new = _cli("device", "init", "--out", str(new_file))
    _cli("device", "enroll", "--public-key-file", f"{old_file}.pub", "--name", "cam", *admin)
    successor = _cli(
        "device", "rotate", "--device-key", str(old_file), "--new-key", str(new_file),
        "--server", url, "--api-key", new_key,
    )  # fmt: skip
    assert successor["id"] == new["device_id"] and successor["predecessor_id"] == old["device_id"]
    refused = CliRunner().invoke(
        app, ["device", "rotate", "--device-key", str(old_file), "--new-key", str(new_file),
              "--server", url, "--api-key", new_key],
    )  # fmt: skip
    assert refused.exit_code == 1 and "device_already_revoked" in refused.output

    _cli("client", "revoke", str(camera["id"]), *admin)
    events = _cli("audit", "--limit", "10", *admin)["events"]
    assert isinstance(events, list)
    assert [e["action"] for e in events][:5] == [
        "client.revoke",
        "device.rotate",
        "device.enroll",
        "client.rotate",
        "client.create",
    ]
