"""The camera app's path through the command line, against a server started by the test."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
import pytest

from frames.samples import sample_clip
from harness.server import running_server
from provenance.c2pa import read_credentials

pytestmark = pytest.mark.slow


def test_cli_device_client_register_fetch(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "var"
    with running_server(data_dir, database_url) as server:
        key_file = data_dir / "admin.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        admin = key_file.read_text().strip()

        init = json.loads(server.cli("device", "init", "--out", str(tmp_path / "cam.key"), "--json").stdout)
        assert stat.S_IMODE((tmp_path / "cam.key").stat().st_mode) == 0o600
        enrolled = json.loads(
            server.cli(
                "device",
                "enroll",
                "--public-key-file",
                str(tmp_path / "cam.key.pub"),
                "--name",
                "phone",
                "--json",
                api_key=admin,
            ).stdout
        )
        assert enrolled["id"] == init["device_id"]

        camera_key = server.cli(
            "client", "create", "--name", "app", "--scope", "camera", api_key=admin
        ).stdout.strip()
        assert camera_key.startswith("pvk_")

        clip = sample_clip("carphone_pristine.mp4")
        local = json.loads(server.cli("fingerprint", str(clip), "--json").stdout)
        receipt = json.loads(
            server.cli(
                "register",
                str(clip),
                "--device-key",
                str(tmp_path / "cam.key"),
                "--upload",
                "--wait",
                "60",
                "--json",
                api_key=camera_key,
            ).stdout
        )
        assert receipt["device_id"] == init["device_id"]
        assert receipt["receipt"]["leaf"]["registration_id"] == receipt["id"]
        assert receipt["receipt"]["anchor"]["status"] == "anchored"
        assert receipt["fingerprint_digest"] == local["digest"]

        fetched = httpx.get(
            f"{server.url}/v1/registrations/{receipt['id']}",
            headers={"Authorization": f"Bearer {camera_key}"},
        ).json()
        assert fetched["manifest"]["fingerprint"]["digest"] == local["digest"]

        # The registered original gets Content Credentials signed by the service.
        signed = tmp_path / "signed.mp4"
        credentials = json.loads(
            server.cli("c2pa", "sign", str(clip), "--out", str(signed), "--json", api_key=camera_key).stdout
        )
        assert credentials["registration_id"] == receipt["id"]
        read = read_credentials(signed, (server.data_dir / "c2pa" / "root-ca.pem").read_bytes())
        assert read is not None and read.trusted and read.manifest_id == credentials["manifest_id"]

        # A newsroom verifies the clip and keeps the self-contained match report.
        newsroom_key = server.cli(
            "client", "create", "--name", "desk", "--scope", "newsroom", api_key=admin
        ).stdout
        report = tmp_path / "report.html"
        verified = json.loads(
            server.cli(
                "verify", str(clip), "--json", "--report", str(report), api_key=newsroom_key.strip()
            ).stdout
        )
        regs = httpx.get(
            f"{server.url}/v1/registrations/{verified['match']['registration_id']}",
            headers={"Authorization": f"Bearer {camera_key}"},
        ).json()
        print("MATCHED", regs, "REGISTERED", receipt["id"])
        assert verified["verdict"] == "authentic" and verified["match"]["registration_id"] == receipt["id"]
        html = report.read_text()
        assert "authentic" in html.lower() and receipt["id"] in html and 'src="data:image/' in html

        # Without --upload the signed manifest goes as a JSON body: registered, no media stored.
        bare = json.loads(
            server.cli(
                "register", str(clip), "--device-key", str(tmp_path / "cam.key"), "--json", api_key=camera_key
            ).stdout
        )
        assert bare["fingerprint_digest"] == local["digest"] and bare["media_uploaded"] is False
        assert bare["receipt"]["leaf"]["registration_id"] == bare["id"]

        # A refusal is one line on stderr and a non-zero exit; the wrong scope cannot enrol.
        refused = server.cli(
            "device",
            "enroll",
            "--public-key-file",
            str(tmp_path / "cam.key.pub"),
            "--name",
            "again",
            api_key=camera_key,
            check=False,
        )
        assert refused.returncode != 0
        assert refused.stderr.strip().startswith("error: scope_forbidden")
        assert len(refused.stderr.strip().splitlines()) == 1


def test_cli_fingerprint_bad_file(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "random.mp4"
    bad.write_bytes(b"\x13" * 5000)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "provenance"), "fingerprint", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: media_")
    assert len(result.stderr.strip().splitlines()) == 1
