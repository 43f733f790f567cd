"""A small HTTP client for the command line; turns problem details into one-line errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from provenance.core.config import get_settings

DEFAULT_SERVER = "http://127.0.0.1:8000"


class ClientError(Exception):
    """A refusal from the server or a failure to reach it, phrased for one line of output."""


def resolve_api_key(explicit: str | None) -> str | None:
    """--api-key, then PROVENANCE_API_KEY, then PROVENANCE_API_KEY_FILE, then the admin key a local
    first start wrote; key files must be private to their owner (mode 0600)."""
    from provenance.core.secrets import read_secret_file

    if explicit:
        return explicit
    if os.environ.get("PROVENANCE_API_KEY"):
        return os.environ["PROVENANCE_API_KEY"]
    if os.environ.get("PROVENANCE_API_KEY_FILE"):
        return read_secret_file(Path(os.environ["PROVENANCE_API_KEY_FILE"]), "PROVENANCE_API_KEY_FILE")
    key_file = get_settings().data_dir / "admin.key"
    if key_file.is_file():
        return read_secret_file(key_file, "admin key file")
    return None


def missing_key_hint() -> str:
    """Where a key was looked for, for the refusal of a request sent without one."""
    key_file = (get_settings().data_dir / "admin.key").resolve()
    return (
        "no API key was found: give --api-key, or set PROVENANCE_API_KEY or PROVENANCE_API_KEY_FILE; "
        f"the admin key that a local first start writes is expected at {key_file} (run from the "
        "directory that holds the server's data directory, or set PROVENANCE_DATA_DIR)"
    )


class Api:
    def __init__(self, server: str, api_key: str | None, timeout: float = 300.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.without_key = not api_key
        self.server = server.rstrip("/")
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.raw(method, path, **kwargs).json()

    def raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ClientError(f"cannot reach {self.server}: {exc}") from exc
        if response.status_code >= 400:
            try:
                body = response.json()
                message = f"{body.get('code', response.status_code)}: {body.get('detail', '')}"
                if response.status_code == 401 and self.without_key:
                    message += f"; {missing_key_hint()}"
                raise ClientError(message)
            except ValueError:
                raise ClientError(f"HTTP {response.status_code}: {response.text[:200]}") from None
        return response

    def post_files(self, path: str, data: dict[str, str], files: dict[str, Path]) -> Any:
        # Always multipart: URL-encoding a manifest with a 30 kB fingerprint is slow on both ends.
        handles: dict[str, Any] = {name: (p.name, p.open("rb")) for name, p in files.items()}
        fields: dict[str, Any] = {name: (None, value) for name, value in data.items()}
        try:
            return self.request("POST", path, files={**fields, **handles})
        finally:
            for _, fh in handles.values():
                fh.close()
