"""The data directory on disk: private file modes, verified content-addressed copies, free space.

A full disk must cost a clean refusal (507 `storage_full`), never a truncated file that a later
request trusts; and what the service keeps (database, media, reports, chain state) is its alone.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

from provenance.core.errors import DomainError

# Errors that mean "no room": the disk, the file-size limit, the user's quota.
STORAGE_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
# Group and other get nothing under the data directory.
PRIVATE_UMASK = 0o077


class StorageFull(DomainError):
    """The data directory has no room for what the request must write; nothing was kept."""

    status = 507

    def __init__(self, detail: str = "the server's storage is full; nothing was stored") -> None:
        super().__init__("storage_full", detail)
        self.headers = {"Retry-After": "60"}


class StoredFileCorrupt(DomainError):
    """A copy did not read back with the hash it was written with (the disk lied or was full)."""

    status = 507

    def __init__(self, detail: str) -> None:
        super().__init__("storage_corrupt", detail)


def is_storage_full(exc: BaseException) -> bool:
    """An OSError (or a database error wrapping one) that says the disk, file size or quota is exhausted."""
    if isinstance(exc, OSError) and exc.errno in STORAGE_FULL_ERRNOS:
        return True
    # SQLite reports SQLITE_FULL as text, not an errno; SQLAlchemy wraps it in `orig`.
    text = str(getattr(exc, "orig", exc)).lower()
    return "database or disk is full" in text or "no space left on device" in text


def sha256_file(path: Path) -> str:
    """The lowercase hex SHA-256 of a file, read in chunks (media may be large)."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def store_verified(source: Path, dest: Path, sha256: str) -> bool:
    """Put a copy of `source` at `dest` whose SHA-256 is `sha256`; True when this call wrote it.

    The copy goes to a temporary file beside `dest`, is read back and hashed, and only then renamed
    over `dest` (atomic within one file system), so `dest` never holds a partial copy. An existing
    `dest` is adopted only when its own hash is right; a corrupt one is replaced. On any failure the
    temporary file is removed; a full disk raises `StorageFull`.
    """
    if dest.exists() and sha256_file(dest) == sha256:
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        written = sha256_file(tmp)
        if written != sha256:
            raise StoredFileCorrupt(f"the stored copy reads back as {written}, not {sha256}")
        os.replace(tmp, dest)
        return True
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in STORAGE_FULL_ERRNOS:
            raise StorageFull() from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def free_bytes(paths: list[Path]) -> int | None:
    """The least free space among the file systems holding `paths` (None when none exists yet)."""
    free = [shutil.disk_usage(p).free for p in paths if p.exists()]
    return min(free) if free else None


def restrict_umask() -> int:
    """Files and directories this process (and the children it starts, anvil) creates are private."""
    return os.umask(PRIVATE_UMASK)


def secure_tree(root: Path) -> int:
    """Take group and other access away from `root` and everything under it (a data directory made
    by an older version, or under a looser umask); symlinks are left alone. Returns paths changed."""
    if not root.exists():
        return 0
    changed = _tighten(root)
    for dirpath, dirnames, filenames in os.walk(root):
        # Key files are not tightened but refused by the secrets check: a key others could read
        # may have leaked, and must be replaced, not quietly hidden.
        for name in (*dirnames, *(f for f in filenames if not f.endswith(".key"))):
            changed += _tighten(Path(dirpath) / name)
    return changed


def _tighten(path: Path) -> int:
    try:
        st = path.lstat()
    except FileNotFoundError:  # removed meanwhile (a temporary file)
        return 0
    if stat.S_ISLNK(st.st_mode) or not st.st_mode & 0o077:
        return 0
    try:
        os.chmod(path, stat.S_IMODE(st.st_mode) & 0o700)
    except FileNotFoundError:
        return 0
    return 1


def disk_status(data_dir: Path, min_free_bytes: int) -> dict[str, Any]:
    """For /health: `low` when the data directory, or a file system mounted inside it for media,
    uploads or reports, has less room than `min_free_bytes` (writes will soon fail with 507)."""
    paths = [data_dir, *(data_dir / name for name in ("media", "tmp", "reports", "chain"))]
    try:
        free = free_bytes(paths)
    except OSError as exc:  # health reports failures rather than raising them
        return {"status": f"error: {exc.strerror or type(exc).__name__}"}
    if free is None:
        return {"status": "ok"}
    return {
        "status": "low" if free < min_free_bytes else "ok",
        "free_bytes": free,
        "min_free_bytes": min_free_bytes,
    }
