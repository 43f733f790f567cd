"""Secrets come from the environment or from files only the service's user can read.

Every key file the service reads is checked at start: one that group or others may read (or
that is not a regular file) is refused with a one-line reason, before anything else happens.
`PROVENANCE_*_FILE` settings name files holding a secret (a Docker or Kubernetes secret mount);
the secret is read from there instead of the environment.
"""

from __future__ import annotations

import stat
from pathlib import Path

from provenance.core.config import Settings

C2PA_DEFAULT_KEYS = ("root-ca.key", "signer.key")


class InsecureSecret(ValueError):
    """A key file the service must not trust; the message is one line, fit for a start-up refusal."""


def check_key_file(path: Path, what: str) -> None:
    """Refuse `path` unless it is a regular file with no group or other permissions (e.g. 0600, 0400)."""
    try:
        info = path.stat()
    except OSError as exc:
        raise InsecureSecret(f"{what} {path} cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise InsecureSecret(f"{what} {path} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise InsecureSecret(
            f"{what} {path} has mode {mode:04o}: group or others may read it; run chmod 600 {path}"
        )


def read_secret_file(path: Path, what: str) -> str:
    check_key_file(path, what)
    value = path.read_text().strip()
    if not value:
        raise InsecureSecret(f"{what} {path} is empty")
    return value


def resolve_secrets(settings: Settings) -> Settings:
    """Check every key file the service will read, and fill secrets from their `*_FILE` settings."""
    update: dict[str, object] = {}
    if settings.chain_private_key_file is not None:
        update["chain_private_key"] = read_secret_file(
            settings.chain_private_key_file, "PROVENANCE_CHAIN_PRIVATE_KEY_FILE"
        )
    if settings.database_url_file is not None:
        update["database_url"] = read_secret_file(settings.database_url_file, "PROVENANCE_DATABASE_URL_FILE")
    admin_key = settings.data_dir / "admin.key"
    if admin_key.exists():
        check_key_file(admin_key, "admin key file")
    if settings.c2pa_key is not None:
        check_key_file(settings.c2pa_key, "PROVENANCE_C2PA_KEY")
    for name in C2PA_DEFAULT_KEYS:
        default = settings.data_dir / "c2pa" / name
        if default.exists():
            check_key_file(default, "C2PA key file")
    return settings.model_copy(update=update) if update else settings
