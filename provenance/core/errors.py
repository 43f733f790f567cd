"""Domain errors with a stable code; the API maps them to RFC 9457 problem details."""

from __future__ import annotations


class DomainError(Exception):
    """A refusal the caller can act on. `code` is stable and documented; `detail` is for people."""

    status: int = 400
    # Extra response headers the refusal needs (e.g. Retry-After on 429).
    headers: dict[str, str] | None = None

    def __init__(self, code: str, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        if status is not None:
            self.status = status


class MediaError(DomainError):
    """Media that cannot be decoded, or that exceeds a decode bound."""

    status = 422


class MediaTooLarge(MediaError):
    status = 413


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class AuthError(DomainError):
    status = 401


class Forbidden(DomainError):
    status = 403
