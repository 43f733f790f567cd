"""Registrations and the clients that submit them (issue #17, items 11 and 12).

Item 11: every registration records the submitting API client, and a device may be bound to one
camera client (at enrolment, by the admin endpoint, or `provenance device enroll --client`); a
bound device's captures are refused from any other client with 403 `device_client_mismatch`.

Item 12: the same client sending the same signed manifest again (its 201 was lost) gets the
registration stored the first time (200, same body shape), single or in a batch; another client, or
other bytes under the same nonce, still get 409 `nonce_replayed`.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlmodel import Session, select
from typer.testing import CliRunner

from harness.accounts import EnrolledDevice
from provenance.cli import app as cli
from provenance.core.config import Settings
from provenance.models import AuditEvent, Registration, UsedNonce
from provenance.service import Service
from provenance.signing import device_id_for, raw_public_key, sign_manifest
from tests.conftest import chainless_settings
from tests.provenance.test_registrations_api import CARPHONE, assert_refused, counts, post, signed
from tests.provenance.test_security_cli import live  # noqa: F401  (the live-server fixture)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return chainless_settings(tmp_path, database_url)


def new_client(
    http: TestClient, admin_headers: dict[str, str], scope: str = "camera"
) -> tuple[str, dict[str, str]]:
    response = http.post("/v1/clients", json={"name": f"{scope} app", "scope": scope}, headers=admin_headers)
    assert response.status_code == 201, response.text
    return response.json()["id"], {"Authorization": f"Bearer {response.json()['api_key']}"}


def enroll(http: TestClient, admin_headers: dict[str, str], client_id: str | None = None) -> Any:
    key = Ed25519PrivateKey.generate()
    raw = raw_public_key(key.public_key())
    body: dict[str, Any] = {"name": "bound camera", "public_key": base64.b64encode(raw).decode()}
    if client_id is not None:
        body["client_id"] = client_id
    response = http.post("/v1/devices", json=body, headers=admin_headers)
    return response, EnrolledDevice(key=key, id=device_id_for(raw))


def stored(service: Service, registration_id: str) -> Registration:
    with Session(service.engine) as session:
        registration = session.get(Registration, registration_id)
        assert registration is not None
        return registration


def batch(http: TestClient, headers: dict[str, str], items: list[tuple[dict[str, Any], str]]) -> Any:
    body = {"items": [{"manifest": m, "signature": s} for m, s in items]}
    return http.post("/v1/registrations/batch", json=body, headers=headers)


# --- item 11: devices bound to camera clients ---


def test_registration_records_its_client(
    http: TestClient, service: Service, device: EnrolledDevice, admin_headers: dict[str, str]
) -> None:
    client_id, headers = new_client(http, admin_headers)
    single = post(http, headers, *signed(device, CARPHONE.read_bytes()))
    assert single.status_code == 201, single.text
    assert stored(service, single.json()["id"]).client_id == client_id
    batched = batch(http, headers, [signed(device, CARPHONE.read_bytes())])
    [item] = batched.json()["items"]
    assert stored(service, item["registration"]["id"]).client_id == client_id


def test_bound_device_refuses_other_clients(
    http: TestClient, service: Service, admin_headers: dict[str, str]
) -> None:
    owner_id, owner = new_client(http, admin_headers)
    _, other = new_client(http, admin_headers)
    enrolled, device = enroll(http, admin_headers, owner_id)
    assert enrolled.status_code == 201, enrolled.text
    assert enrolled.json()["client_id"] == owner_id

    manifest, signature = signed(device, CARPHONE.read_bytes())
    assert_refused(post(http, other, manifest, signature), 403, "device_client_mismatch")
    refused = batch(http, other, [(manifest, signature)]).json()["items"][0]
    assert not refused["accepted"] and refused["problem"]["code"] == "device_client_mismatch"
    assert counts(service) == (0, 0), "refused: nothing written, the nonce still free"

    accepted = post(http, owner, manifest, signature)
    assert accepted.status_code == 201, accepted.text
    assert stored(service, accepted.json()["id"]).client_id == owner_id


def test_admin_binds_and_unbinds_a_device(
    http: TestClient, service: Service, device: EnrolledDevice, admin_headers: dict[str, str]
) -> None:
    owner_id, owner = new_client(http, admin_headers)
    _, other = new_client(http, admin_headers)
    assert post(http, other, *signed(device, CARPHONE.read_bytes())).status_code == 201, "unbound: any camera"

    bound = http.post(f"/v1/devices/{device.id}/bind", json={"client_id": owner_id}, headers=admin_headers)
    assert bound.status_code == 200, bound.text
    assert bound.json()["client_id"] == owner_id
    assert http.get(f"/v1/devices/{device.id}", headers=admin_headers).json()["client_id"] == owner_id
    assert_refused(post(http, other, *signed(device, CARPHONE.read_bytes())), 403, "device_client_mismatch")
    assert post(http, owner, *signed(device, CARPHONE.read_bytes())).status_code == 201
    assert_refused(
        http.post(f"/v1/devices/{device.id}/bind", json={"client_id": owner_id}, headers=other),
        403,
        "scope_forbidden",
    )

    unbound = http.post(f"/v1/devices/{device.id}/bind", json={"client_id": None}, headers=admin_headers)
    assert unbound.status_code == 200 and unbound.json()["client_id"] is None
    assert post(http, other, *signed(device, CARPHONE.read_bytes())).status_code == 201
    with Session(service.engine) as session:
        actions = [e.action for e in session.exec(select(AuditEvent)).all()]
    assert actions.count("device.bind") == 2, "each binding is an audited admin action"


def test_binding_needs_a_live_client_that_may_register(
    http: TestClient, admin_headers: dict[str, str]
) -> None:
    newsroom_id, _ = new_client(http, admin_headers, "newsroom")
    response, _ = enroll(http, admin_headers, newsroom_id)
    assert_refused(response, 422, "client_scope_invalid")
    response, _ = enroll(http, admin_headers, "cli_" + "0" * 24)
    assert_refused(response, 404, "client_not_found")
    camera_id, _ = new_client(http, admin_headers)
    assert http.post(f"/v1/clients/{camera_id}/revoke", headers=admin_headers).status_code == 200
    response, _ = enroll(http, admin_headers, camera_id)
    assert_refused(response, 409, "client_revoked")


def test_cli_enrolls_a_device_bound_to_a_client(live: tuple[str, Service], tmp_path: Path) -> None:  # noqa: F811
    server, service = live
    admin_key = service.new_admin_key
    assert admin_key is not None
    common = ["--server", server, "--api-key", admin_key, "--json"]
    runner = CliRunner()
    made = runner.invoke(cli, ["client", "create", "--name", "cam app", "--scope", "camera", *common])
    assert made.exit_code == 0, made.output
    client_id = json.loads(made.stdout)["id"]
    key = Ed25519PrivateKey.generate()
    public_file = tmp_path / "camera.key.pub"
    public_file.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    enrolled = runner.invoke(
        cli,
        [
            "device",
            "enroll",
            "--public-key-file",
            str(public_file),
            "--name",
            "cam",
            "--client",
            client_id,
            *common,
        ],
    )
    assert enrolled.exit_code == 0, enrolled.output
    device = json.loads(enrolled.stdout)
    assert device["client_id"] == client_id
    unbound = runner.invoke(cli, ["device", "bind", device["id"], "--unbind", *common])
    assert unbound.exit_code == 0, unbound.output
    assert json.loads(unbound.stdout)["client_id"] is None
    rebound = runner.invoke(cli, ["device", "bind", device["id"], "--client", client_id, *common])
    assert rebound.exit_code == 0 and json.loads(rebound.stdout)["client_id"] == client_id


# --- item 12: an identical retry recovers the registration ---


def test_identical_retry_returns_the_stored_registration(
    http: TestClient, service: Service, device: EnrolledDevice, admin_headers: dict[str, str]
) -> None:
    _, camera = new_client(http, admin_headers)
    _, other = new_client(http, admin_headers)
    manifest, signature = signed(device, CARPHONE.read_bytes())
    first = post(http, camera, manifest, signature)
    assert first.status_code == 201, first.text

    # The 201 was lost: the same client sends the same bytes again, as a form or as JSON.
    again = post(http, camera, manifest, signature)
    assert again.status_code == 200, again.text
    assert again.json() == first.json(), "the same registration, in the same body shape"
    as_json = http.post(
        "/v1/registrations", json={"manifest": manifest, "signature": signature}, headers=camera
    )
    assert as_json.status_code == 200 and as_json.json()["id"] == first.json()["id"]
    assert counts(service) == (1, 1), "nothing new written"

    # Another client with the same bytes, or the same client with other bytes under that nonce: 409.
    assert_refused(post(http, other, manifest, signature), 409, "nonce_replayed")
    changed, _ = signed(device, CARPHONE.read_bytes())
    changed["nonce"] = manifest["nonce"]
    assert_refused(post(http, camera, changed, sign_manifest(changed, device.key)), 409, "nonce_replayed")
    assert_refused(post(http, camera, manifest, sign_manifest(changed, device.key)), 422, "signature_invalid")
    assert counts(service) == (1, 1)
    with Session(service.engine) as session:
        [nonce] = session.exec(select(UsedNonce)).all()
    assert nonce.registration_id == first.json()["id"]


def test_identical_retry_with_media(
    http: TestClient, service: Service, device: EnrolledDevice, admin_headers: dict[str, str]
) -> None:
    _, camera = new_client(http, admin_headers)
    content = CARPHONE.read_bytes()
    manifest, signature = signed(device, content)
    first = post(http, camera, manifest, signature, media=("clip.mp4", content))
    assert first.status_code == 201, first.text
    again = post(http, camera, manifest, signature, media=("clip.mp4", content))
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert counts(service) == (1, 1)


def test_identical_retry_in_a_batch(
    http: TestClient, service: Service, device: EnrolledDevice, admin_headers: dict[str, str]
) -> None:
    _, camera = new_client(http, admin_headers)
    _, other = new_client(http, admin_headers)
    items = [signed(device, CARPHONE.read_bytes()) for _ in range(2)]
    first = batch(http, camera, items).json()
    assert first["accepted"] == 2 and not any(i["replayed"] for i in first["items"])

    # The whole batch again (its response was lost), plus one new capture and one sent twice.
    fresh = signed(device, CARPHONE.read_bytes())
    again = batch(http, camera, [*items, fresh, fresh]).json()
    assert again["accepted"] == 4 and again["refused"] == 0, again
    assert [i["replayed"] for i in again["items"]] == [True, True, False, True]
    ids = [i["registration"]["id"] for i in again["items"]]
    assert ids[:2] == [i["registration"]["id"] for i in first["items"]]
    assert ids[2] == ids[3]
    assert counts(service) == (3, 3)

    refused = batch(http, other, items).json()
    assert refused["refused"] == 2
    assert {i["problem"]["code"] for i in refused["items"]} == {"nonce_replayed"}
