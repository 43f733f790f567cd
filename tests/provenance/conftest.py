"""The service over HTTP as its clients use it: `stack` holds the test's service, its HTTP client,
the admin, and a camera client with an enrolled device; its methods are the camera app's signed
uploads and the verifications a newsroom or fact-checker submits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from harness.accounts import EnrolledDevice, make_key
from harness.manifests import signed_form
from provenance import fingerprint as fp
from provenance.core.config import DecodeLimits
from provenance.service import Service


@lru_cache(maxsize=8)
def fingerprint_of(path: Path) -> fp.Fingerprint:
    """The fingerprint a camera app computes of `path` (cached: tests claim the same clips often)."""
    return fp.compute_fingerprint(path, limits=DecodeLimits(), sample_fps=4.0)


@dataclass
class Stack:
    """The service under test as its clients reach it: `camera` is the headers of a camera client
    whose device is `device`; `key` makes a client of any other scope."""

    service: Service
    http: TestClient
    admin: dict[str, str]
    camera: dict[str, str]
    device: EnrolledDevice

    def key(self, scope: str) -> dict[str, str]:
        """The headers of a new client with `scope`."""
        return make_key(self.http, self.admin, scope)

    def upload(self, clip: Path, fpr: fp.Fingerprint | None = None) -> httpx.Response:
        """The camera app's signed upload of `clip`, claiming `fpr` (by default the clip's own
        fingerprint)."""
        content = clip.read_bytes()
        sha256 = hashlib.sha256(content).hexdigest()
        return self.http.post(
            "/v1/registrations",
            headers=self.camera,
            data=signed_form(fpr or fingerprint_of(clip), self.device.key, self.device.id, sha256),
            files={"media": (clip.name, content, "video/mp4")},
        )

    def register(self, clip: Path, fpr: fp.Fingerprint | None = None) -> str:
        """`upload`, accepted: the registration's id."""
        response = self.upload(clip, fpr)
        assert response.status_code == 201, response.text
        registration_id: str = response.json()["id"]
        return registration_id

    def verify(self, headers: dict[str, str], clip: Path) -> httpx.Response:
        """`clip` submitted for verification by the client of `headers`."""
        return self.http.post(
            "/v1/verifications", headers=headers, files={"media": (clip.name, clip.read_bytes(), "video/mp4")}
        )


@pytest.fixture
def stack(
    service: Service,
    http: TestClient,
    admin_headers: dict[str, str],
    camera_headers: dict[str, str],
    device: EnrolledDevice,
) -> Stack:
    return Stack(service, http, admin_headers, camera_headers, device)
