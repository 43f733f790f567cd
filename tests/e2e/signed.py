"""Signed capture manifests for real clips, made as a camera app would (fingerprint on the device),
and the requests that register and verify them on a running server."""

from __future__ import annotations

import hashlib
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx

from harness import manifests
from harness.topology import Camera
from provenance import fingerprint as fp
from provenance.core.config import DecodeLimits


@lru_cache(maxsize=8)
def fingerprint_of(path: Path) -> fp.Fingerprint:
    return fp.compute_fingerprint(path, limits=DecodeLimits())


def signed_form(camera: Camera, clip: Path) -> dict[str, str]:
    """The form fields of one registration of `clip` (a fresh nonce each call)."""
    return manifests.signed_form(
        fingerprint_of(clip), camera.key, camera.device_id, hashlib.sha256(clip.read_bytes()).hexdigest()
    )


def register_upload(
    url: str, camera: Camera, clip: Path, form: dict[str, str] | None = None
) -> httpx.Response:
    """POST the clip with its signed manifest (multipart), as `provenance register --upload` does."""
    with clip.open("rb") as fh:
        return httpx.post(
            f"{url}/v1/registrations",
            headers=camera.headers,
            data=form or signed_form(camera, clip),
            files={"media": (clip.name, fh, "video/mp4")},
            timeout=300,
        )


def wait_verification(
    url: str, headers: dict[str, str], location: str, timeout: float = 600, every: float = 0.3
) -> dict[str, Any]:
    """The verification at `location` (`/v1/verifications/ID`), polled every `every` seconds until
    it is done or failed."""
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = httpx.get(f"{url}{location}", headers=headers, timeout=30).json()
        if body["status"] in ("done", "failed"):
            return body
        assert time.monotonic() < deadline, f"{location} still {body['status']}"
        time.sleep(every)


def submit_clip(url: str, headers: dict[str, str], clip: Path) -> httpx.Response:
    with clip.open("rb") as fh:
        return httpx.post(
            f"{url}/v1/verifications",
            headers=headers,
            files={"media": (clip.name, fh, "video/mp4")},
            timeout=300,
        )
