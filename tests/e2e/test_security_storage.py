"""Issue #17, items 8 and 13: a full disk, a corrupt copy in the media store, private file modes.

Disk full is real: small tmpfs mounts (the tests run as root) hold the server's `media` and `tmp`
directories. Where mounting is impossible, the server process runs under RLIMIT_FSIZE instead
(writes past the limit fail with EFBIG, which the service treats like ENOSPC); that fallback
cannot lower free space, so the /health and media-store parts of the check are skipped there.
"""

from __future__ import annotations

import hashlib
import os
import resource
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from frames.samples import sample_clip
from harness.accounts import admin_headers
from harness.server import running_server
from harness.topology import api_key, enrol_camera
from tests.e2e.signed import fingerprint_of, register_upload, signed_form, submit_clip

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


def _mount_tmpfs(directory: Path, size: int) -> bool:
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], capture_output=True
    )
    return done.returncode == 0


@contextmanager
def small_disks(*directories: Path, size: int = 4 * MiB) -> Iterator[bool]:
    """Each directory on its own tmpfs of `size` bytes; yields False (nothing mounted) when impossible."""
    mounted: list[Path] = []
    try:
        for directory in directories:
            if not _mount_tmpfs(directory, size):
                break
            mounted.append(directory)
        yield len(mounted) == len(directories)
    finally:
        for directory in reversed(mounted):
            subprocess.run(["umount", "-l", str(directory)], check=False, capture_output=True)


def fill(directory: Path, leave: int) -> Path:
    """A ballast file that leaves about `leave` bytes free on the directory's file system."""
    ballast = directory / "ballast"
    free = os.statvfs(directory).f_bavail * os.statvfs(directory).f_frsize
    with ballast.open("wb") as fh:
        fh.write(b"\0" * max(0, free - leave))
    return ballast


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != "ballast") if directory.exists() else []


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_full_disk_is_507_leaves_nothing_and_degrades_health(tmp_path: Path) -> None:
    clip = sample_clip("bigbuckbunny.mp4")  # 1 MB: more than the room left
    fingerprint_of(clip)
    data_dir = tmp_path / "var"
    media, tmp = data_dir / "media", data_dir / "tmp"
    env = {"PROVENANCE_CHAIN_MODE": "off", "PROVENANCE_MIN_FREE_DISK_BYTES": str(2 * MiB)}
    with small_disks(media, tmp) as mounted:
        if not mounted:
            _full_disk_by_rlimit(tmp_path, clip, env)
            return
        tmp_ballast = fill(tmp, leave=256 * 1024)
        media_ballast = fill(media, leave=256 * 1024)
        with running_server(data_dir, extra_env=env) as server:
            admin = admin_headers(data_dir)
            camera = enrol_camera(server.url, admin)
            newsroom = api_key(server.url, admin, "newsroom")

            health = httpx.get(f"{server.url}/health", timeout=30).json()
            assert health["status"] == "degraded" and health["disk"]["status"] == "low", health
            assert health["disk"]["free_bytes"] < 2 * MiB

            # No room for the upload itself: 507, and no partial temporary file stays behind.
            form = signed_form(camera, clip)
            r = register_upload(server.url, camera, clip, form)
            assert r.status_code == 507 and r.json()["code"] == "storage_full", r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            r = submit_clip(server.url, newsroom, clip)
            assert r.status_code == 507 and r.json()["code"] == "storage_full", r.text
            assert leftovers(tmp) == []

            # Room for the upload but not for the media store's copy: 507, no partial copy, no row.
            tmp_ballast.unlink()
            r = register_upload(server.url, camera, clip, form)
            assert r.status_code == 507 and r.json()["code"] == "storage_full", r.text
            assert leftovers(media) == [] and leftovers(tmp) == []

            # Space again: the very same signed manifest is accepted (the refusal wrote nothing),
            # and what the store keeps is the whole file.
            media_ballast.unlink()
            health = httpx.get(f"{server.url}/health", timeout=30).json()
            assert health["disk"]["status"] == "ok", health
            r = register_upload(server.url, camera, clip, form)
            assert r.status_code == 201, r.text
            stored = [p for p in media.iterdir()]
            assert len(stored) == 1 and sha256(stored[0]) == sha256(clip), stored
            assert leftovers(tmp) == []


def _full_disk_by_rlimit(tmp_path: Path, clip: Path, env: dict[str, str]) -> None:
    """No tmpfs: every file the server writes is capped below the clip's size (EFBIG)."""
    limit = clip.stat().st_size // 2

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    data_dir = tmp_path / "var"
    with running_server(data_dir, extra_env=env, preexec_fn=cap) as server:
        admin = admin_headers(data_dir)
        camera = enrol_camera(server.url, admin)
        r = register_upload(server.url, camera, clip)
        assert r.status_code == 507 and r.json()["code"] == "storage_full", r.text
        assert leftovers(data_dir / "tmp") == [] and leftovers(data_dir / "media") == []


def test_corrupt_copy_in_media_store_is_not_adopted(tmp_path: Path) -> None:
    """A truncated file left under the content's name (by an older version on a full disk) is
    replaced by a checked copy, never taken as the original of a new registration."""
    clip = sample_clip("carphone_pristine.mp4")
    fingerprint_of(clip)
    data_dir = tmp_path / "var"
    media = data_dir / "media"
    media.mkdir(parents=True)
    digest = sha256(clip)
    planted = media / f"{digest}.mp4"
    planted.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    with running_server(data_dir, extra_env={"PROVENANCE_CHAIN_MODE": "off"}) as server:
        admin = admin_headers(data_dir)
        camera = enrol_camera(server.url, admin)
        r = register_upload(server.url, camera, clip)
        assert r.status_code == 201, r.text
        stored = sorted(media.iterdir())
        assert [p.name for p in stored] == [planted.name], stored
        assert sha256(planted) == digest


def test_data_dir_is_private(tmp_path: Path) -> None:
    """Database, admin key, media, reports and the chain state written by anvil: nothing under the
    data directory is open to group or others, including what an older version left world-readable."""
    data_dir = tmp_path / "var"
    (data_dir / "reports").mkdir(parents=True)
    data_dir.chmod(0o755)
    old = data_dir / "reports" / "left-by-an-older-version.html"
    old.write_text("<p>old</p>")
    old.chmod(0o644)
    clip = sample_clip("carphone_pristine.mp4")
    fingerprint_of(clip)
    # The child's umask is the test's (typically 022): the server must not depend on it.
    with running_server(data_dir) as server:
        admin = admin_headers(data_dir)
        camera = enrol_camera(server.url, admin)
        r = register_upload(server.url, camera, clip)
        assert r.status_code == 201, r.text
        newsroom = api_key(server.url, admin, "newsroom")
        r = submit_clip(server.url, newsroom, clip)
        assert r.status_code in (201, 202), r.text
        report_dir = data_dir / "reports" / r.json()["id"]
        deadline = time.monotonic() + 300
        while not (report_dir.is_dir() and any(report_dir.iterdir())):  # written as the verification ends
            assert time.monotonic() < deadline, "no report was written"
            time.sleep(0.5)
        _assert_private(data_dir)
    # anvil writes its state as it stops.
    kinds = {p.relative_to(data_dir).parts[0] for p in data_dir.rglob("*")}
    assert {"provenance.db", "admin.key", "media", "reports", "chain"} <= kinds, kinds
    assert any((data_dir / "chain").iterdir())
    _assert_private(data_dir)


def _assert_private(data_dir: Path) -> None:
    loose = [
        f"{p.relative_to(data_dir)} {stat.filemode(p.lstat().st_mode)}"
        for p in [data_dir, *data_dir.rglob("*")]
        if not p.is_symlink() and p.lstat().st_mode & 0o077
    ]
    assert not loose, loose
