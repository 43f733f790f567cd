"""The pieces of scale-out that need no extra processes: leader election across connections, a
matcher catching up with registrations written by another process, queued-job idempotency."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from frames.samples import sample_clip
from provenance.core.config import Settings
from provenance.core.db import make_engine, session_scope
from provenance.core.locks import LeaderLock
from provenance.core.timeutil import utcnow
from provenance.models import Verification
from provenance.service import Service, open_service
from tests.conftest import _pg_database
from tests.provenance.conftest import Stack

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from _pg_database()


def test_one_leader_at_a_time_and_takeover_when_it_goes(pg_url: str) -> None:
    first, second = make_engine(pg_url), make_engine(pg_url)
    a, b = LeaderLock(first, 42), LeaderLock(second, 42)
    try:
        assert a.held()
        assert not b.held()
        assert a.held()  # still leading: the connection is alive
        a.release()  # as when the process dies and PostgreSQL drops its connection
        assert b.held()
        assert not a.held()
    finally:
        a.release()
        b.release()
        first.dispose()
        second.dispose()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_api_process_learns_registrations_made_through_another(tmp_path: Path, stack: Stack) -> None:
    """`stack.service` (role all) registers; an api-role service on the same database catches up by
    polling."""
    other = open_service(
        Settings(
            data_dir=tmp_path / "other",
            database_url=stack.service.settings.database_url,
            role="api",
            chain_mode="off",
        )
    )
    try:
        other.matcher.rebuild()
        clip = sample_clip("bikes.mp4")
        registration_id = stack.register(clip)
        assert registration_id not in other.matcher.index
        assert other.matcher.catch_up() == 1
        assert registration_id in other.matcher.index
        assert other.matcher.catch_up() == 0  # nothing twice
        outcome = other.outcome_of_file(clip)
        assert outcome["match"]["registration_id"] == registration_id
    finally:
        other.stop()
        other.engine.dispose()


def test_a_retried_job_does_not_run_a_finished_verification_again(service: Service, tmp_path: Path) -> None:
    with session_scope(service.engine) as session:
        session.add(
            Verification(
                id="ver_done",
                client_id="cli_x",
                status="done",
                filename="a.mp4",
                media_sha256="0" * 64,
                result=json.dumps({"verdict": "unknown"}),
                created_at=utcnow(),
            )
        )
    clip = tmp_path / "queued.mp4"
    clip.write_bytes(b"not even a video")
    service.verifier.run_job("ver_done", clip, final=False)
    assert not clip.exists()  # the queued copy is cleaned up
    assert service.verifier.get("ver_done").result == json.dumps({"verdict": "unknown"})
