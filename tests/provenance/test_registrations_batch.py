"""JSON registration bodies and POST /v1/registrations/batch: every item checked on its own, the
accepted ones stored and logged, the refused ones with the problem code a single request gets."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from harness.accounts import EnrolledDevice
from provenance.core.config import Settings
from provenance.models import LogEntry, Registration
from provenance.registry import canonical_manifest
from provenance.service import Service
from provenance.signing import sign_manifest
from tests.conftest import chainless_settings
from tests.provenance.test_registrations_api import CARPHONE, assert_refused, counts, signed

BATCH_MAX = 4
CAMERA_PER_MINUTE = 10


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Small bounds, so that the size and rate limits are reached with a few manifests."""
    return chainless_settings(
        tmp_path,
        database_url,
        registration_batch_max=BATCH_MAX,
        registration_batch_item_bytes=64 * 1024,
        rate_limits={"camera": f"{CAMERA_PER_MINUTE}/minute"},
    )


def item(device: EnrolledDevice, **kwargs: Any) -> dict[str, Any]:
    manifest, signature = signed(device, CARPHONE.read_bytes(), **kwargs)
    return {"manifest": manifest, "signature": signature}


def batch(http: TestClient, headers: dict[str, str], items: list[dict[str, Any]]) -> Any:
    return http.post("/v1/registrations/batch", json={"items": items}, headers=headers)


def logged(service: Service, registration_id: str) -> bool:
    with Session(service.engine) as session:
        return (
            session.exec(
                select(LogEntry).where(
                    LogEntry.kind == "registration", col(LogEntry.ref_id) == registration_id
                )
            ).first()
            is not None
        )


def test_json_body_registers_like_the_form(
    http: TestClient, service: Service, device: EnrolledDevice, camera_headers: dict[str, str]
) -> None:
    body = item(device)
    created = http.post("/v1/registrations", json=body, headers=camera_headers)
    assert created.status_code == 201, created.text
    assert created.json()["manifest"] == body["manifest"]
    # The manifest as JSON text inside the JSON body is accepted too.
    text = item(device)
    text["manifest"] = json.dumps(text["manifest"])
    assert http.post("/v1/registrations", json=text, headers=camera_headers).status_code == 201
    with Session(service.engine) as session:
        stored = session.get(Registration, created.json()["id"])
    assert stored is not None
    assert stored.manifest.encode() == rfc8785.dumps(body["manifest"])
    assert logged(service, stored.id)

    # The same checks as the form: a replay (other bytes under a used nonce; the identical retry
    # gets the stored registration), a forgery, and bodies that are not a submission.
    retried = http.post("/v1/registrations", json=body, headers=camera_headers)
    assert retried.status_code == 200 and retried.json()["id"] == created.json()["id"]
    assert_refused(
        http.post("/v1/registrations", json=same_nonce(device, body), headers=camera_headers),
        409,
        "nonce_replayed",
    )
    forged = item(device)
    forged["signature"] = sign_manifest(forged["manifest"], Ed25519PrivateKey.generate())
    assert_refused(
        http.post("/v1/registrations", json=forged, headers=camera_headers), 422, "signature_invalid"
    )
    for bad in (b"{not json", b"[]", b'{"manifest": 1, "signature": "x"}', b'{"manifest": {}, "extra": 1}'):
        response = http.post(
            "/v1/registrations", content=bad, headers={**camera_headers, "Content-Type": "application/json"}
        )
        assert_refused(response, 422, "request_invalid")
    response = http.post(
        "/v1/registrations", content=b"x", headers={**camera_headers, "Content-Type": "text/plain"}
    )
    assert_refused(response, 415, "unsupported_media_type")
    assert counts(service) == (2, 2)


def test_mixed_batch_accepts_the_valid_and_refuses_the_rest(
    http: TestClient, service: Service, device: EnrolledDevice, camera_headers: dict[str, str]
) -> None:
    good, future = item(device), item(device, captured_offset=timedelta(hours=1))
    forged = item(device)
    forged["signature"] = sign_manifest(forged["manifest"], Ed25519PrivateKey.generate())
    stranger = EnrolledDevice(key=Ed25519PrivateKey.generate(), id="dev_" + "0" * 32)
    response = batch(http, camera_headers, [good, forged, item(stranger), future])
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["accepted"], result["refused"]) == (1, 3)
    assert [i["index"] for i in result["items"]] == [0, 1, 2, 3]
    assert result["items"][0]["accepted"] is True
    assert [(i["problem"]["code"], i["problem"]["status"]) for i in result["items"][1:]] == [
        ("signature_invalid", 422),
        ("device_unknown", 403),
        ("capture_time_in_future", 422),
    ]
    registration_id = result["items"][0]["registration"]["id"]
    assert logged(service, registration_id)
    fetched = http.get(f"/v1/registrations/{registration_id}", headers=camera_headers)
    assert fetched.json()["manifest"] == good["manifest"]
    assert counts(service) == (1, 1)

    # A manifest that does not parse is refused on its own too.
    broken = {"manifest": "{not json", "signature": "x"}
    response = batch(http, camera_headers, [broken, item(device)])
    assert [i["accepted"] for i in response.json()["items"]] == [False, True]
    assert response.json()["items"][0]["problem"]["code"] == "manifest_invalid"
    assert counts(service) == (2, 2)


def same_nonce(device: EnrolledDevice, earlier: dict[str, Any]) -> dict[str, Any]:
    """Another capture, signed by the same device under an earlier item's nonce."""
    changed = item(device)
    changed["manifest"]["nonce"] = earlier["manifest"]["nonce"]
    changed["signature"] = sign_manifest(changed["manifest"], device.key)
    return changed


def test_a_nonce_replayed_within_a_batch_is_accepted_once(
    http: TestClient, service: Service, device: EnrolledDevice, camera_headers: dict[str, str]
) -> None:
    first, other = item(device), item(device)
    response = batch(http, camera_headers, [first, same_nonce(device, first), other, first])
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [i["accepted"] for i in items] == [True, False, True, True]
    assert items[1]["problem"]["code"] == "nonce_replayed" and items[1]["problem"]["status"] == 409
    # The identical item again is the same registration, not a second one.
    assert items[3]["replayed"] and items[3]["registration"]["id"] == items[0]["registration"]["id"]
    # Replayed from an earlier batch under other bytes: refused as well, nothing written.
    again = batch(http, camera_headers, [same_nonce(device, other)]).json()
    assert again["items"][0]["problem"]["code"] == "nonce_replayed"
    assert counts(service) == (2, 2)


def test_batch_size_limits_are_413(
    http: TestClient, service: Service, device: EnrolledDevice, camera_headers: dict[str, str]
) -> None:
    assert_refused(
        batch(http, camera_headers, [item(device) for _ in range(BATCH_MAX + 1)]), 413, "batch_too_large"
    )
    padded = item(device)
    padded["manifest"] = json.dumps(padded["manifest"]) + " " * (BATCH_MAX * 64 * 1024)
    assert_refused(batch(http, camera_headers, [padded]), 413, "request_too_large")
    assert_refused(batch(http, camera_headers, []), 422, "request_invalid")
    assert counts(service) == (0, 0)


def test_the_rate_limit_counts_items(
    http: TestClient, service: Service, device: EnrolledDevice, camera_headers: dict[str, str]
) -> None:
    assert batch(http, camera_headers, [item(device) for _ in range(BATCH_MAX)]).status_code == 200
    assert batch(http, camera_headers, [item(device) for _ in range(BATCH_MAX)]).status_code == 200
    # 8 of 10 used: a batch of 3 is over the budget, and so is any request after it.
    refused = batch(http, camera_headers, [item(device) for _ in range(3)])
    assert_refused(refused, 429, "rate_limited")
    assert int(refused.headers["Retry-After"]) >= 1
    assert_refused(
        http.post("/v1/registrations", json=item(device), headers=camera_headers), 429, "rate_limited"
    )
    assert counts(service) == (2 * BATCH_MAX, 2 * BATCH_MAX)


def test_canonical_manifest_is_rfc8785(device: EnrolledDevice) -> None:
    manifest = item(device)["manifest"]
    manifest["app"] = {"fingerprint": '{"data":"', "note": "é\u2028\n"}
    assert canonical_manifest(manifest) == rfc8785.dumps(manifest)
    odd = {**manifest, "fingerprint": {**manifest["fingerprint"], "data": 'a"b\\'}}
    assert canonical_manifest(odd) == rfc8785.dumps(odd)
