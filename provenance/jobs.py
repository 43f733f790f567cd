"""The durable job queue that API and worker processes share beyond one machine (procrastinate on PostgreSQL).

The embedded default (`serve --role all`) runs jobs in threads of its one process and needs none of
this. With `--role api` the API defers long verifications and evaluations here; `--role worker`
processes, on any machine that reaches the database, take them. Procrastinate keeps the jobs in
PostgreSQL (no new service), retries failed ones, and each worker sends a heartbeat: a worker that
dies mid-job stops sending it, and a periodic task on a live worker puts that worker's jobs back
to `todo` (procrastinate's stalled-job recovery), so the job completes elsewhere.

Worker tasks get what they run (`WorkerTasks`: the verifier's and the evaluator's entry points),
not the whole service.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import procrastinate
import psycopg
from procrastinate import jobs as procrastinate_jobs
from procrastinate import retry as procrastinate_retry
from procrastinate.job_context import JobContext, JobResult
from procrastinate.schema import SchemaManager
from procrastinate.worker import Worker
from sqlalchemy import Engine

from provenance.core.locks import SCHEMA_LOCK, pg_conninfo, pg_lock
from provenance.core.outage import DATABASE, Backoff, is_database_outage

if TYPE_CHECKING:
    from provenance.core.config import Settings

logger = logging.getLogger(__name__)

QUEUE = "provenance"


@dataclass(frozen=True)
class WorkerTasks:
    """What a worker's jobs call: set by `run_worker` before the first job."""

    settings: Settings
    engine: Engine
    verify: Callable[[str, Path, bool], None]  # verification id, query file, final attempt
    evaluate: Callable[[], object]


_tasks: WorkerTasks | None = None


def ensure_schema(engine: Engine) -> None:
    """Create the queue's tables once (idempotent, safe with several processes starting at once)."""
    with pg_lock(engine, SCHEMA_LOCK), psycopg.connect(pg_conninfo(engine), autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
        if row is None or row[0] is None:
            conn.execute(SchemaManager.get_schema())
            logger.info("created the job queue schema")


def make_app(engine: Engine) -> procrastinate.App:
    """An app with our tasks (one per use: a task object belongs to the app it was registered on)."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=pg_conninfo(engine)))
    app.task(
        name="provenance.verify",
        queue=QUEUE,
        pass_context=True,
        retry=procrastinate.RetryStrategy(max_attempts=VERIFY_ATTEMPTS, wait=2),
    )(verify)
    app.task(
        name="provenance.evaluate", queue=QUEUE, retry=procrastinate.RetryStrategy(max_attempts=2, wait=5)
    )(evaluate)
    app.periodic(cron="* * * * * */2")(
        app.task(
            name="provenance.retry_stalled", queue=QUEUE, queueing_lock="retry_stalled", pass_context=True
        )(retry_stalled)
    )
    return app


class JobQueue:
    """What API processes (and worker threads) use to put jobs on the shared queue."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.app = make_app(engine)
        self._lock = threading.Lock()
        self._opened = False

    def _open(self) -> procrastinate.App:
        with self._lock:
            if not self._opened:
                self.app.open()
                self._opened = True
        return self.app

    def defer_verification(self, verification_id: str, path: Path) -> int:
        app = self._open()
        return app.configure_task("provenance.verify").defer(verification_id=verification_id, path=str(path))

    def defer_evaluation(self) -> int | None:
        """At most one evaluation waits in the queue at a time."""
        app = self._open()
        try:
            return app.configure_task("provenance.evaluate", queueing_lock="evaluation").defer()
        except procrastinate.exceptions.AlreadyEnqueued:
            return None

    def status(self, stalled_s: float) -> str:
        """A line for /health: live workers and the jobs waiting and running."""
        with psycopg.connect(pg_conninfo(self.engine), autocommit=True, connect_timeout=3) as conn:
            workers = conn.execute(
                "SELECT count(*) FROM procrastinate_workers "
                "WHERE last_heartbeat > now() - make_interval(secs => %s)",
                (stalled_s,),
            ).fetchone()
            counts: dict[str, int] = dict(
                conn.execute(
                    "SELECT status::text, count(*) FROM procrastinate_jobs "
                    "WHERE status IN ('todo', 'doing') AND task_name NOT LIKE %s GROUP BY status",
                    ("%retry_stalled%",),
                ).fetchall()
            )
        alive = workers[0] if workers else 0
        waiting, running = counts.get("todo", 0), counts.get("doing", 0)
        return f"queue: {alive} workers alive, {waiting} waiting, {running} running"

    def close(self) -> None:
        with self._lock:
            if self._opened:
                self.app.close()
                self._opened = False


def _running() -> WorkerTasks:
    if _tasks is None:
        raise RuntimeError("job run outside a worker process")
    return _tasks


VERIFY_ATTEMPTS = 3


def verify(context: procrastinate.JobContext, verification_id: str, path: str) -> None:
    """A verification too long to answer within the request."""
    job = context.job
    final = job.attempts + 1 >= VERIFY_ATTEMPTS
    logger.warning("job %s: verification %s started in pid %d", job.id, verification_id, os.getpid())
    _running().verify(verification_id, Path(path), final)


def evaluate() -> None:
    """One continuous-evaluation run (stored as done or failed by the evaluator itself)."""
    _running().evaluate()


async def retry_stalled(context: procrastinate.JobContext, timestamp: int) -> None:
    """Put the jobs of workers whose heartbeat stopped back to `todo`, so a live worker takes them."""
    settings = _running().settings
    assert context.app is not None
    manager = context.app.job_manager
    for job in await manager.get_stalled_jobs(seconds_since_heartbeat=settings.worker_stalled_s):
        if job.id == context.job.id:
            continue
        try:
            await manager.retry_job(job)
            logger.warning("job %s (%s) was stalled on a dead worker; retrying it", job.id, job.task_name)
        except Exception:  # another worker retried it first
            logger.info("job %s already retried", job.id)


def heartbeat_file(settings: Settings) -> Path:
    return settings.data_dir / "workers" / f"{socket.gethostname()}-{os.getpid()}.alive"


class ResilientWorker(Worker):
    """procrastinate's worker, kept running through database outages.

    Out of the box a failed side task (the listener cannot reconnect, a heartbeat fails) stops the
    whole worker, and a failed fetch or status update ends its run. Here each side task is
    supervised and restarted with backoff, a fetch during an outage is retried at the next poll, a
    finished job's status is kept until it can be written, and a worker whose row was pruned while
    it could not beat registers again. (procrastinate is pinned; these are its 3.10 hooks.)
    """

    def _start_side_tasks(self) -> list[asyncio.Task[Any]]:
        specs: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("update_heartbeats", self._update_heartbeat),
            ("deferrer", self._periodic_deferrer),
            ("poll_jobs_to_abort", self._poll_jobs_to_abort),
        ]
        if self.listen_notify:
            specs.append(
                (
                    "listener",
                    lambda: self.app.job_manager.listen_for_jobs(
                        on_notification=self._handle_notification, queues=self.queues
                    ),
                )
            )
        return [asyncio.create_task(self._supervised(name, run), name=name) for name, run in specs]

    async def _supervised(self, name: str, run: Callable[[], Awaitable[Any]]) -> None:
        backoff = Backoff()
        while True:
            started = time.monotonic()
            try:
                await run()
                return  # only the deferrer returns, when there is no periodic task
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_database_outage(exc):
                    DATABASE.failed(exc, f"worker {name}")
                else:
                    logger.exception("worker %s failed; restarting it", name)
            if time.monotonic() - started > 30:
                backoff.reset()
            await asyncio.sleep(backoff.next())

    async def _update_heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.update_heartbeat_interval)
            assert self.worker_id is not None
            row = await self.app.connector.execute_query_one_async(
                "WITH beat AS (UPDATE procrastinate_workers SET last_heartbeat = now() "
                "WHERE id = %(worker_id)s RETURNING id) SELECT count(*) AS n FROM beat",
                worker_id=self.worker_id,
            )
            DATABASE.ok()
            if not row["n"]:  # pruned as stalled while the database was away: join again
                self.worker_id = await self.app.job_manager.register_worker()
                logger.warning("worker was pruned during an outage; registered again as %s", self.worker_id)

    async def _fetch_and_process_jobs(self) -> None:
        try:
            # procrastinate leaves this unannotated; untyped_calls_exclude cannot match a super() call.
            await super()._fetch_and_process_jobs()  # type: ignore[no-untyped-call]
        except Exception as exc:
            if _worker_row_gone(exc):  # pruned as stalled during an outage, before the next beat
                self.worker_id = await self.app.job_manager.register_worker()
                logger.warning("worker was pruned during an outage; registered again as %s", self.worker_id)
                return
            if not is_database_outage(exc):
                raise
            DATABASE.failed(exc, "worker fetching jobs")  # the run loop polls again shortly

    async def _persist_job_status(
        self,
        job: procrastinate_jobs.Job,
        status: procrastinate_jobs.Status,
        retry_decision: procrastinate_retry.RetryDecision | None,
        context: JobContext,
        job_result: JobResult | None,
    ) -> None:
        """Write a finished job's status, waiting out an outage (else it would stay `doing` forever)."""
        backoff = Backoff()
        while True:
            try:
                await super()._persist_job_status(
                    job=job,
                    status=status,
                    retry_decision=retry_decision,
                    context=context,
                    job_result=job_result,
                )
                return
            except Exception as exc:
                if not is_database_outage(exc):
                    raise
                DATABASE.failed(exc, f"worker finishing job {job.id}")
            await asyncio.sleep(backoff.next())


def _worker_row_gone(exc: BaseException) -> bool:
    """A job fetched for a worker id that no longer exists (the foreign key to procrastinate_workers)."""
    cause = exc.__cause__
    return isinstance(cause, psycopg.errors.ForeignKeyViolation) and "worker_id" in str(cause)


async def _supervise_worker(tasks: WorkerTasks) -> None:
    """Run the queue worker until SIGTERM or SIGINT; whatever else ends it, start it again."""
    settings = tasks.settings
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    current: list[ResilientWorker] = []
    attempt: list[asyncio.Task[None]] = []

    def on_signal() -> None:
        stopping.set()
        if current:
            current[0].stop()
        elif attempt:
            attempt[0].cancel()  # still connecting: nothing to finish

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)

    async def run_once() -> None:
        app = make_app(tasks.engine)
        async with app.open_async():
            worker = ResilientWorker(
                app=app,
                queues=[QUEUE],
                name=f"{socket.gethostname()}-{os.getpid()}",
                concurrency=settings.worker_concurrency,
                update_heartbeat_interval=settings.worker_heartbeat_s,
                stalled_worker_timeout=settings.worker_stalled_s,
                delete_jobs="successful",
                fetch_job_polling_interval=1.0,
                install_signal_handlers=False,
            )
            if stopping.is_set():
                return
            current[:] = [worker]
            try:
                await worker.run()
            finally:
                current.clear()

    backoff = Backoff()
    while not stopping.is_set():
        started = time.monotonic()
        attempt[:] = [asyncio.create_task(run_once())]
        try:
            await attempt[0]
            if not stopping.is_set():
                logger.warning("the queue worker stopped without being asked to; starting it again")
        except asyncio.CancelledError:
            if stopping.is_set():
                break
            raise
        except Exception as exc:
            if is_database_outage(exc):
                DATABASE.failed(exc, "queue worker")
            else:
                logger.exception("the queue worker failed; starting it again")
        if time.monotonic() - started > 30:
            backoff.reset()
        with suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), backoff.next())


def run_worker(tasks: WorkerTasks) -> None:
    """Take jobs until SIGTERM or SIGINT; survives the database going away for any length of time."""
    global _tasks
    _tasks = tasks
    beat = heartbeat_file(tasks.settings)
    beat.parent.mkdir(parents=True, exist_ok=True)
    beat.touch()
    stop = threading.Event()

    def touch() -> None:
        while not stop.wait(2.0):
            beat.touch()

    threading.Thread(target=touch, name="worker-heartbeat-file", daemon=True).start()
    try:
        asyncio.run(_supervise_worker(tasks))
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        beat.unlink(missing_ok=True)


def worker_alive(data_dir: Path, max_age_s: float = 30.0) -> bool:
    """For container health checks: this host's worker touched its heartbeat file recently."""
    host = socket.gethostname()
    files = list((data_dir / "workers").glob(f"{host}-*.alive"))
    return any(time.time() - f.stat().st_mtime < max_age_s for f in files)
