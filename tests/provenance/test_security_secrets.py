"""Secrets only from the environment or from files private to the service's user."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.server import refused_start
from provenance.core.config import Settings
from provenance.core.secrets import InsecureSecret
from provenance.service import open_service


def _settings(tmp_path: Path, **extra: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path / "var",
        "database_url": f"sqlite:///{tmp_path / 'secrets.db'}",
        "chain_mode": "off",
        "demo": False,
        **extra,
    }
    return Settings.model_validate(values)


def _secret(path: Path, text: str, mode: int) -> Path:
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def test_admin_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    first = open_service(_settings(tmp_path))
    first.engine.dispose()
    key_file = tmp_path / "var" / "admin.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key_file.chmod(0o644)
    with pytest.raises(InsecureSecret) as refused:
        open_service(_settings(tmp_path))
    message = str(refused.value)
    assert "\n" not in message and "admin key file" in message and "0644" in message
    key_file.chmod(0o400)
    open_service(_settings(tmp_path)).engine.dispose()


def test_chain_private_key_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private = "0x" + "ab" * 32
    key_file = _secret(tmp_path / "chain.key", private, 0o600)
    monkeypatch.setenv("PROVENANCE_CHAIN_PRIVATE_KEY_FILE", str(key_file))
    service = open_service(_settings(tmp_path))
    try:
        assert service.settings.chain_private_key == private
    finally:
        service.engine.dispose()
    key_file.chmod(0o640)
    with pytest.raises(InsecureSecret, match=r"PROVENANCE_CHAIN_PRIVATE_KEY_FILE .* mode 0640"):
        open_service(_settings(tmp_path))


def test_database_url_from_a_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'from-file.db'}"
    service = open_service(
        _settings(tmp_path, database_url=None, database_url_file=_secret(tmp_path / "db.url", url, 0o600))
    )
    try:
        assert service.settings.resolved_database_url == url
        assert (tmp_path / "from-file.db").exists()
    finally:
        service.engine.dispose()


def test_c2pa_key_and_default_c2pa_keys_are_checked(tmp_path: Path) -> None:
    key = _secret(tmp_path / "c2pa.key", "-----BEGIN PRIVATE KEY-----", 0o604)
    with pytest.raises(InsecureSecret, match="PROVENANCE_C2PA_KEY"):
        open_service(_settings(tmp_path, c2pa_key=key))
    made = tmp_path / "var" / "c2pa"
    made.mkdir(parents=True)
    _secret(made / "signer.key", "-----BEGIN PRIVATE KEY-----", 0o660)
    with pytest.raises(InsecureSecret, match="C2PA key file"):
        open_service(_settings(tmp_path))


def test_missing_or_odd_secret_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InsecureSecret, match="cannot be read"):
        open_service(_settings(tmp_path, chain_private_key_file=tmp_path / "absent"))
    with pytest.raises(InsecureSecret, match="not a regular file"):
        open_service(_settings(tmp_path, chain_private_key_file=tmp_path))


def test_serve_refuses_with_one_line(tmp_path: Path) -> None:
    """The real command: exit code 2 and one line on stderr naming the file and the fix."""
    data = tmp_path / "var"
    data.mkdir()
    _secret(data / "admin.key", "pvk_x", 0o644)
    env = {
        **os.environ,
        "PROVENANCE_DATA_DIR": str(data),
        "PROVENANCE_CHAIN_MODE": "off",
        "PROVENANCE_DEMO": "0",
    }
    env.pop("PROVENANCE_DATABASE_URL", None)
    done = refused_start(env)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "admin.key" in lines[0] and "chmod 600" in lines[0], done.stderr
