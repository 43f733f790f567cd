"""The command line's own words (provenance/cli.py): client ids, where the admin key is expected,
receipts fetched and checked (`receipt get`, `receipt verify --media`), and verification output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from frames.samples import sample_clip
from provenance.cli import app, print_verification
from provenance.service import Service
from tests.provenance.test_security_cli import _cli, live  # noqa: F401  (the fixture)

CLIP = sample_clip("carphone_pristine.mp4")


def test_client_create_key_hint_and_receipts(
    live: tuple[str, Service],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, service = live
    admin = ["--server", url, "--api-key", str(service.new_admin_key)]
    created = CliRunner().invoke(app, ["client", "create", "--name", "desk", "--scope", "newsroom", *admin])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert key.startswith("pvk_") and "\n" not in key, "the key alone on stdout"
    assert re.match(r"client \S+ \(newsroom\); its API key, shown once:", created.stderr), created.stderr

    # No key anywhere: the refusal says where the admin key was looked for.
    for name in ("PROVENANCE_API_KEY", "PROVENANCE_API_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PROVENANCE_DATA_DIR", str(tmp_path / "elsewhere"))
    refused = CliRunner().invoke(
        app, ["client", "create", "--name", "x", "--scope", "camera", "--server", url]
    )
    assert refused.exit_code == 1
    assert f"expected at {(tmp_path / 'elsewhere' / 'admin.key').resolve()}" in refused.output

    # Register with the CLI, fetch the receipt, check it against the media.
    device_key = tmp_path / "device.key"
    _cli("device", "init", "--out", str(device_key))
    _cli("device", "enroll", "--public-key-file", f"{device_key}.pub", "--name", "cam", *admin)
    camera = str(_cli("client", "create", "--name", "cam", "--scope", "camera", *admin)["api_key"])
    registered = _cli(
        "register", str(CLIP), "--device-key", str(device_key), "--server", url, "--api-key", camera
    )
    registration_id = str(registered["id"])
    receipt_file = tmp_path / "receipt.json"
    got = CliRunner().invoke(
        app,
        ["receipt", "get", registration_id, "--out", str(receipt_file), "--server", url, "--api-key", camera],
    )
    assert got.exit_code == 0, got.output
    assert f"provenance receipt verify {receipt_file}" in got.stderr
    receipt = json.loads(receipt_file.read_text())
    assert receipt["registration_id"] == registration_id
    printed = CliRunner().invoke(
        app, ["receipt", "get", registration_id, "--server", url, "--api-key", camera]
    )
    assert json.loads(printed.stdout) == receipt

    monkeypatch.delenv("PROVENANCE_CHAIN_RPC", raising=False)
    no_rpc = CliRunner().invoke(app, ["receipt", "verify", str(receipt_file)])
    assert no_rpc.exit_code == 2 and "chain_rpc_missing" in no_rpc.output
    monkeypatch.setenv("PROVENANCE_CHAIN_RPC", "http://127.0.0.1:9")  # chain off here: nothing anchored
    checked = CliRunner().invoke(
        app, ["receipt", "verify", str(receipt_file), "--media", str(CLIP), "--json"]
    )
    checks = {c["name"]: c["ok"] for c in json.loads(checked.stdout)["checks"]}
    assert checks["media_sha256"] is True and checks["manifest_signature"] is True
    assert checks["anchored"] is False and checked.exit_code == 1
    other = sample_clip("bikes.mp4")
    wrong = CliRunner().invoke(app, ["receipt", "verify", str(receipt_file), "--media", str(other)])
    assert wrong.exit_code == 1 and "media_sha256" in wrong.output


def test_verification_output_names_regions_and_reads_photos(capsys: pytest.CaptureFixture[str]) -> None:
    photo = {
        "verdict": "tampered",
        "confidence": 0.93,
        "match": {
            "registration_id": "reg_photo",
            "device_id": "dev_1",
            "captured_at": "2026-01-02T03:04:05Z",
            "query_range": [0.0, 0.0],
            "original_range": [0.0, 0.0],
            "similarity": 0.4,
            "segments": [
                {"query_start": 0.0, "query_end": 0.0, "tampered": True, "regions": [[0.6, 0.1, 0.3, 0.3]]}
            ],
            "tampered_ranges": [[0.0, 0.0]],
            "signature_valid": True,
            "anchor": {"status": "anchored"},
        },
    }
    print_verification(photo)
    text = capsys.readouterr().out
    assert "0.00-0.00 s" not in text and "0.00–0.00" not in text, text
    assert "tampered: the picture, at top right (x 60–90 %, y 10–40 % of the picture)" in text, text
    assert "anchor anchored" not in text and "original anchored on chain" in text
    assert "confidence: 93 %" in text and "similarity 40 %" in text
    print_verification({"verdict": "unknown", "confidence": 0.99, "match": None, "nearest": None})
    assert "100 %" not in capsys.readouterr().out
