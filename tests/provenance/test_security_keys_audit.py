"""Key rotation (API keys and device keys) and the audit log of admin actions, over HTTP.

Runs on SQLite and on the real PostgreSQL (the `database_url` fixture), without a chain.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from harness.accounts import EnrolledDevice, enrol_device
from provenance.core.config import Settings
from provenance.core.timeutil import iso, utcnow
from provenance.devices import rotation_statement
from provenance.ledger.merkle import leaf_hash
from provenance.models import AuditEvent, Device, LogEntry
from provenance.service import Service
from provenance.signing import device_id_for, raw_public_key, sign_manifest, verify_signature
from provenance.verification import evidence_and_receipt
from tests.conftest import chainless_settings
from tests.provenance.test_registrations_api import post, signed


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """The shared fixtures' settings without the chain: these tests are about keys, not anchoring."""
    return chainless_settings(tmp_path, database_url)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def log_root_status(http: TestClient, key: str) -> int:
    return http.get("/v1/log/root", headers=bearer(key)).status_code


def test_api_key_rotation_grace_period_and_revocation(
    http: TestClient, admin_headers: dict[str, str]
) -> None:
    created = http.post("/v1/clients", json={"name": "desk", "scope": "newsroom"}, headers=admin_headers)
    client_id, first = created.json()["id"], created.json()["api_key"]
    assert log_root_status(http, first) == 200

    # Rotation with a grace period: old and new keys both work until it ends.
    rotated = http.post(
        f"/v1/clients/{client_id}/rotate", json={"grace_seconds": 3600}, headers=admin_headers
    )
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["api_key"]
    assert second != first and rotated.json()["previous_key_expires_at"] is not None
    assert log_root_status(http, first) == 200
    assert log_root_status(http, second) == 200

    # A short grace period ends by itself (the key cache never outlives it).
    third = http.post(
        f"/v1/clients/{client_id}/rotate", json={"grace_seconds": 1}, headers=admin_headers
    ).json()["api_key"]
    assert log_root_status(http, first) == 401  # only one previous key is kept
    assert log_root_status(http, second) == 200
    time.sleep(1.3)
    assert log_root_status(http, second) == 401
    assert log_root_status(http, third) == 200

    # Grace 0: the old key stops at once, even though it was cached a moment ago.
    fourth = http.post(
        f"/v1/clients/{client_id}/rotate", json={"grace_seconds": 0}, headers=admin_headers
    ).json()["api_key"]
    assert log_root_status(http, third) == 401
    assert log_root_status(http, fourth) == 200

    revoked = http.post(f"/v1/clients/{client_id}/revoke", headers=admin_headers)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    refused = http.get("/v1/log/root", headers=bearer(fourth))
    assert refused.status_code == 401 and refused.json()["code"] == "api_key_invalid"
    again = http.post(f"/v1/clients/{client_id}/rotate", json={}, headers=admin_headers)
    assert again.status_code == 409 and again.json()["code"] == "client_revoked"
    missing = http.post("/v1/clients/cli_nope/rotate", json={}, headers=admin_headers)
    assert missing.status_code == 404 and missing.json()["code"] == "client_not_found"
    # Only admins rotate API keys.
    other = http.post("/v1/clients", json={"name": "cam", "scope": "camera"}, headers=admin_headers).json()
    forbidden = http.post(f"/v1/clients/{other['id']}/rotate", json={}, headers=bearer(other["api_key"]))
    assert forbidden.status_code == 403


def _rotate(http: TestClient, headers: dict[str, str], device_id: str, body: dict[str, Any]) -> Any:
    return http.post(f"/v1/devices/{device_id}/rotate", json=body, headers=headers)


def test_device_key_rotation(
    http: TestClient, service: Service, device: EnrolledDevice, camera_headers: dict[str, str]
) -> None:
    content = b"an original captured before the rotation"
    manifest, signature = signed(device, content)
    before = post(http, camera_headers, manifest, signature)
    assert before.status_code == 201, before.text

    successor_key = Ed25519PrivateKey.generate()
    new_public = base64.b64encode(raw_public_key(successor_key.public_key())).decode()
    effective_at = iso(utcnow())
    statement = rotation_statement(device.id, new_public, effective_at)

    # Signed by the wrong key (the successor itself): refused, nothing written.
    with Session(service.engine) as session:
        devices = session.exec(select(func.count()).select_from(Device)).one()
    forged = _rotate(
        http,
        camera_headers,
        device.id,
        {
            "new_public_key": new_public,
            "effective_at": effective_at,
            "signature": sign_manifest(statement, successor_key),
        },
    )
    assert forged.status_code == 422 and forged.json()["code"] == "rotation_signature_invalid"
    with Session(service.engine) as session:
        assert session.exec(select(func.count()).select_from(Device)).one() == devices

    good = {
        "new_public_key": new_public,
        "effective_at": effective_at,
        "signature": sign_manifest(statement, device.key),
    }
    rotated = _rotate(http, camera_headers, device.id, good)
    assert rotated.status_code == 201, rotated.text
    successor_id = device_id_for(raw_public_key(successor_key.public_key()))
    assert rotated.json()["id"] == successor_id
    assert rotated.json()["predecessor_id"] == device.id
    replay = _rotate(http, camera_headers, device.id, good)
    assert replay.status_code == 409 and replay.json()["code"] == "device_already_revoked"

    # The old key is revoked from effective_at; the successor signs from now on.
    old_manifest, old_signature = signed(device, b"captured after the rotation")
    refused = post(http, camera_headers, old_manifest, old_signature)
    assert refused.status_code == 403 and refused.json()["code"] == "device_revoked"
    successor = EnrolledDevice(key=successor_key, id=successor_id)
    new_manifest, new_signature = signed(successor, b"captured after the rotation")
    assert post(http, camera_headers, new_manifest, new_signature).status_code == 201

    with Session(service.engine) as session:
        # What the old key signed before the rotation still verifies (the verify flow's own check).
        found, _ = evidence_and_receipt(session, before.json()["id"], service.tree_cache)
        assert found["signature_valid"] is True
        # The hand-over is a transparency-log leaf that anyone can check against the old key.
        entry = session.exec(
            select(LogEntry).where(LogEntry.kind == "device", LogEntry.ref_id == successor_id)
        ).one()
        leaf = json.loads(entry.data)
        assert leaf["event"] == "rotated_in" and leaf["predecessor_id"] == device.id
        assert verify_signature(
            leaf["rotation_statement"], leaf["rotation_signature"], leaf_public(session, device.id)
        )


def leaf_public(session: Session, device_id: str) -> str:
    stored = session.get(Device, device_id)
    assert stored is not None
    return stored.public_key


def test_device_rotation_refusals(
    http: TestClient, device: EnrolledDevice, camera_headers: dict[str, str], admin_headers: dict[str, str]
) -> None:
    successor_key = Ed25519PrivateKey.generate()
    new_public = base64.b64encode(raw_public_key(successor_key.public_key())).decode()
    past = iso(utcnow().replace(year=2020))
    body = {
        "new_public_key": new_public,
        "effective_at": past,
        "signature": sign_manifest(rotation_statement(device.id, new_public, past), device.key),
    }
    response = _rotate(http, camera_headers, device.id, body)
    assert response.status_code == 422 and response.json()["code"] == "rotation_time_in_past"
    body["effective_at"] = "yesterday"
    assert _rotate(http, camera_headers, device.id, body).json()["code"] == "rotation_time_invalid"
    assert _rotate(http, camera_headers, "dev_nope", body).status_code == 404
    newsroom = http.post("/v1/clients", json={"name": "n", "scope": "newsroom"}, headers=admin_headers).json()
    assert _rotate(http, bearer(newsroom["api_key"]), device.id, body).status_code == 403


def test_audit_log_records_admin_actions_as_log_leaves(
    http: TestClient, service: Service, admin_headers: dict[str, str]
) -> None:
    admin_id = service.clients.authenticate(admin_headers["Authorization"].split()[1])
    assert admin_id is not None
    created = http.post(
        "/v1/clients", json={"name": "desk", "scope": "newsroom"}, headers=admin_headers
    ).json()
    http.post(f"/v1/clients/{created['id']}/rotate", json={"grace_seconds": 60}, headers=admin_headers)
    http.post(f"/v1/clients/{created['id']}/revoke", headers=admin_headers)
    device = enrol_device(http, admin_headers, "cam")
    http.post(f"/v1/devices/{device.id}/revoke", headers=admin_headers)
    # Refused admin actions leave no entry.
    with Session(service.engine) as session:
        entries = session.exec(select(func.count()).select_from(AuditEvent)).one()
    assert http.post("/v1/devices/dev_nope/revoke", headers=admin_headers).status_code == 404
    assert http.post(f"/v1/clients/{created['id']}/revoke", headers=admin_headers).status_code == 409
    with Session(service.engine) as session:
        assert session.exec(select(func.count()).select_from(AuditEvent)).one() == entries

    page = http.get("/v1/audit", params={"limit": 5}, headers=admin_headers)
    assert page.status_code == 200, page.text
    events = page.json()["events"]
    assert [e["action"] for e in events] == [
        "device.revoke",
        "device.enroll",
        "client.revoke",
        "client.rotate",
        "client.create",
    ]
    assert all(e["actor_id"] == admin_id.id for e in events)
    assert events[0]["target_id"] == device.id and events[-1]["target_id"] == created["id"]
    assert events[-1]["details"] == {"name": "desk", "scope": "newsroom"}
    # The first start's admin key is audited too, by the system.
    everything = http.get("/v1/audit", headers=admin_headers).json()["events"]
    assert everything[-1]["action"] == "client.create" and everything[-1]["actor_id"] == "system"
    older = http.get("/v1/audit", params={"before": events[-1]["at"]}, headers=admin_headers).json()
    assert [e["id"] for e in older["events"]] == [e["id"] for e in everything[5:]]

    # Each entry is a leaf of the transparency log, hashed as RFC 6962 leaves are.
    with Session(service.engine) as session:
        for event in events:
            entry = session.exec(
                select(LogEntry).where(LogEntry.kind == "audit", LogEntry.ref_id == event["id"])
            ).one()
            body = json.loads(entry.data)
            assert (body["kind"], body["audit_id"], body["action"]) == ("audit", event["id"], event["action"])
            assert entry.leaf_hash == leaf_hash(entry.data.encode()).hex() == event["leaf_hash"]
            assert hashlib.sha256(b"\x00" + entry.data.encode()).hexdigest() == entry.leaf_hash

    newsroom = http.post("/v1/clients", json={"name": "n", "scope": "newsroom"}, headers=admin_headers).json()
    assert http.get("/v1/audit", headers=bearer(newsroom["api_key"])).status_code == 403
