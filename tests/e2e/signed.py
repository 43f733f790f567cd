"""Signed capture manifests for real clips, made as a camera app would (fingerprint on the device)."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

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


def submit_clip(url: str, headers: dict[str, str], clip: Path) -> httpx.Response:
    with clip.open("rb") as fh:
        return httpx.post(
            f"{url}/v1/verifications",
            headers=headers,
            files={"media": (clip.name, fh, "video/mp4")},
            timeout=300,
        )
