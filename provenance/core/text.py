"""Text the service stores: PostgreSQL cannot hold a NUL character in text, so one is refused up
front (422 `nul_character`) on every database alike, rather than failing at the insert with a 500."""

from __future__ import annotations

from provenance.core.errors import DomainError

NUL_CODE = "nul_character"


class NulCharacter(DomainError):
    status = 422

    def __init__(self, field: str) -> None:
        super().__init__(NUL_CODE, f"{field} contains a NUL character")


def refuse_nul(value: str | None, field: str) -> None:
    """Raise `NulCharacter` if `value` holds a NUL character (None and empty text pass)."""
    if value and "\x00" in value:
        raise NulCharacter(field)
