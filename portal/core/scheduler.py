"""The periodic scheduler (`manage.py scheduler`): a fixed list of jobs and their intervals.

django-tasks has no periodic tasks. The scheduler only decides *when*: it
queues each job as a task, and a task worker runs it, with the same retries,
logs and results as any other task. One `PeriodicJob` row per job remembers
when it was last queued; the row is locked while the scheduler decides, so a
restart, or a second scheduler started by mistake during a deployment, does
not queue a job again before its interval has passed. A job whose last run
still waits in the queue (no worker running) or still runs is not queued a
second time behind it.

Why no library (docs/operations.md, "Periodic jobs"): django-scheduled-tasks
needs Django 6.0 and Python 3.12, django-periodic-tasks Python 3.13;
APScheduler runs the jobs in its own process and keeps its state through
SQLAlchemy, next to the Django ORM; Celery beat needs Celery. This module is
about a hundred lines.
"""

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import DatabaseError, close_old_connections, transaction
from django.utils import timezone
from django_tasks import TaskResultStatus

from . import tasks
from .models import PeriodicJob

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    task: object  # a django_tasks Task taking no argument
    interval: timedelta


JOBS: tuple[Job, ...] = (
    Job("credentials_purge", tasks.credentials_purge, timedelta(hours=1)),
    Job("sessions_purge", tasks.sessions_purge, timedelta(hours=1)),
    Job("time_locks_purge", tasks.time_locks_purge, timedelta(days=1)),
    Job("task_results_prune", tasks.task_results_prune, timedelta(days=1)),
    Job("sms_usage_check", tasks.sms_usage_check, timedelta(days=1)),
)

TICK_SECONDS = 30.0


def scheduler_tick(*, now: datetime | None = None, jobs: tuple[Job, ...] = JOBS) -> list[str]:
    """Queue every job that is due; the names of those queued."""
    now = now or timezone.now()
    return [job.name for job in jobs if _job_queue_if_due(job, now)]


def _job_queue_if_due(job: Job, now: datetime) -> bool:
    with transaction.atomic():
        PeriodicJob.objects.get_or_create(name=job.name)
        # The lock serialises two schedulers; on SQLite the transaction
        # itself does (IMMEDIATE mode, see config/settings/base.py).
        row = PeriodicJob.objects.select_for_update().get(name=job.name)
        previous = _previous_task(row)
        last_run = _last_run(row, previous)
        if last_run is not None and now < last_run + job.interval:
            return False
        if previous is not None and _unfinished(previous, job, now):
            logger.warning("periodic job %s is due but its last run has not finished", job.name)
            return False
        result = job.task.enqueue()
        row.last_enqueued_at = now
        row.last_task_id = str(result.id)
        row.save(update_fields=["last_enqueued_at", "last_task_id"])
    logger.info("periodic job %s queued (every %s)", job.name, job.interval)
    return True


def _previous_task(row: PeriodicJob) -> dict | None:
    """Status and start of the task queued last time (None: none, or pruned since)."""
    from django_tasks_db.models import DBTaskResult

    if not row.last_task_id:
        return None
    return DBTaskResult.objects.filter(id=row.last_task_id).values("status", "started_at").first()


def _last_run(row: PeriodicJob, previous: dict | None) -> datetime | None:
    """When the job last ran (None: never). A worker that took the task late
    moves it later, so that after an outage the job runs once, not once for
    the outage and again at once."""
    if row.last_enqueued_at is None:
        return None
    started = previous["started_at"] if previous else None
    return max(row.last_enqueued_at, started or row.last_enqueued_at)


def _unfinished(previous: dict, job: Job, now: datetime) -> bool:
    """The last run still waits for a worker, or still runs. A task running for
    longer than a whole interval is taken as lost (its worker was killed)."""
    if previous["status"] == TaskResultStatus.READY:
        return True
    started = previous["started_at"]
    return (
        previous["status"] == TaskResultStatus.RUNNING
        and started is not None
        and started > now - job.interval
    )


def scheduler_run(
    *, stop: threading.Event, tick: float = TICK_SECONDS, jobs: tuple[Job, ...] = JOBS
) -> None:
    """Tick every `tick` seconds until `stop` is set. A database outage is logged
    and retried at the next tick: the scheduler outlives a PostgreSQL restart."""
    logger.info(
        "scheduler started: %s",
        ", ".join(f"{job.name} every {job.interval}" for job in jobs),
    )
    while not stop.is_set():
        close_old_connections()  # a fresh connection after a database restart
        try:
            scheduler_tick(jobs=jobs)
        except DatabaseError:
            logger.exception("scheduler tick failed; next try in %s s", tick)
        stop.wait(tick)
    close_old_connections()
    logger.info("scheduler stopped")


def scheduler_status(*, jobs: tuple[Job, ...] = JOBS) -> list[dict]:
    """Each job with its interval and when it was last queued (None: never)."""
    rows = {row.name: row for row in PeriodicJob.objects.filter(name__in=[j.name for j in jobs])}
    return [
        {
            "name": job.name,
            "interval": job.interval,
            "last_enqueued_at": rows[job.name].last_enqueued_at if job.name in rows else None,
        }
        for job in jobs
    ]
