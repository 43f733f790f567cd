"""API keys and enrolled devices, made through the admin API as an operator makes them: the tests of
the service over HTTP, the topology and the benchmarks all start with some.

`http` is any httpx client pointed at the service: a FastAPI `TestClient`, or
`httpx.Client(base_url=URL)` for a running server."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from provenance.signing import device_id_for, raw_public_key


def admin_headers(data_dir: Path) -> dict[str, str]:
    """The headers of the admin key the service wrote to `data_dir/admin.key` on its first start."""
    return {"Authorization": f"Bearer {(data_dir / 'admin.key').read_text().strip()}"}


@dataclass
class EnrolledDevice:
    """A device's private key (it stays with the caller) and the id the service knows it by."""

    key: Ed25519PrivateKey
    id: str


def enrol_device(http: httpx.Client, admin: dict[str, str], name: str = "test camera") -> EnrolledDevice:
    """A fresh Ed25519 device key, enrolled under `name` with the admin's headers."""
    key = Ed25519PrivateKey.generate()
    raw = raw_public_key(key.public_key())
    response = http.post(
        "/v1/devices",
        json={"name": name, "public_key": base64.b64encode(raw).decode()},
        headers=admin,
    )
    assert response.status_code == 201, response.text
    assert response.json()["id"] == device_id_for(raw)
    return EnrolledDevice(key=key, id=device_id_for(raw))


def make_key(
    http: httpx.Client, admin: dict[str, str], scope: str, name: str | None = None
) -> dict[str, str]:
    """The headers of a new API client with `scope` (named "`scope` client" unless `name`)."""
    response = http.post(
        "/v1/clients", json={"name": name or f"{scope} client", "scope": scope}, headers=admin
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['api_key']}"}
