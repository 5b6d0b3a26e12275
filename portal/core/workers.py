"""Task workers that outlive a database outage and leave no task behind (`manage.py task_worker`).

django-tasks-db's `db_worker` claims a task by marking it `RUNNING`, then runs
it. Two faults lose work with it alone (docs/performance.md, "faults"):

- **A worker killed** (`kill -9`, out of memory, its machine lost) leaves its
  task `RUNNING` for ever: nothing runs it again.
- **A database error** outside a task (PostgreSQL restarted) ends the worker;
  one during a task ends it too, the task left `RUNNING`.

`ResilientWorker` is `db_worker`'s worker with three additions:

1. A thread writes the worker's heartbeat (`TaskWorker`) every
   `TASK_WORKER_HEARTBEAT_SECONDS`, also while a task runs.
2. The same thread puts back in the queue the tasks left `RUNNING` by a worker
   whose heartbeat is older than `TASK_WORKER_DEAD_AFTER_SECONDS`, or by an
   earlier life of a worker id that has started again since
   (`tasks_orphaned_requeue`). Any live worker does it; a conditional update
   lets only one succeed.
3. A database error ends neither the worker nor its task: the worker waits for
   the database (backing off up to 30 s), puts the interrupted task back in
   the queue and goes on.

Tasks therefore run **at least once**. Every task of the portal may run again:
message delivery locks its outbox row and sends only a pending one; the
reminder and relay tasks check the appointment's sequence; the periodic jobs
are idempotent; a reset request that ran to its commit and is run again
issues a second link that revokes the first, as if the member had asked
twice, within the same per-account limits.

A worker whose heartbeat went stale because the *database* was down is not
dead: a worker judges others only after it has itself had the database for
`TASK_WORKER_DEAD_AFTER_SECONDS`, time enough for every live worker to beat.
"""

import contextlib
import logging
import os
import socket
import threading
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    connections,
)
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

from .models import TaskWorker

logger = logging.getLogger(__name__)

# A worker's heartbeat row is deleted this long after its last beat.
HEARTBEATS_KEPT = timedelta(days=1)
# The longest wait between two tries to reach the database.
RECONNECT_MAX_SECONDS = 30.0


def heartbeat_write(*, worker_id: str, started_at: datetime, now: datetime | None = None) -> None:
    """Record that the worker `worker_id`, in its life begun at `started_at`, is alive."""
    TaskWorker.objects.update_or_create(
        worker_id=worker_id,
        defaults={
            "hostname": socket.gethostname()[:255],
            "pid": os.getpid(),
            "started_at": started_at,
            "last_seen_at": now or timezone.now(),
        },
    )


def tasks_orphaned_requeue(*, now: datetime | None = None) -> list[str]:
    """Put back to `READY` the tasks whose worker is dead; their ids.

    A `RUNNING` task is orphaned when the last worker that claimed it has no
    heartbeat, or one older than `TASK_WORKER_DEAD_AFTER_SECONDS`, or when
    that worker id has started a new life since it claimed the task. A task
    claimed less than that long ago is left alone (its worker may not have
    beaten yet). The update is conditional on the claim it judged: a task
    claimed again meanwhile, or finished, is not touched.
    """
    now = now or timezone.now()
    dead_after = timedelta(seconds=settings.TASK_WORKER_DEAD_AFTER_SECONDS)
    # The heartbeats of workers gone for a day serve nothing any more (a
    # worker id is random by default: each start leaves a row).
    TaskWorker.objects.filter(last_seen_at__lt=now - HEARTBEATS_KEPT).delete()
    running = list(
        DBTaskResult.objects.filter(
            status=TaskResultStatus.RUNNING, started_at__lt=now - dead_after
        ).values("id", "worker_ids", "started_at")[:1000]
    )
    if not running:
        return []
    claimed_by = {task["worker_ids"][-1] for task in running if task["worker_ids"]}
    workers = {w.worker_id: w for w in TaskWorker.objects.filter(worker_id__in=claimed_by)}
    requeued = []
    for task in running:
        worker = workers.get(task["worker_ids"][-1]) if task["worker_ids"] else None
        alive = (
            worker is not None
            and worker.last_seen_at >= now - dead_after
            and worker.started_at <= task["started_at"]
        )
        if alive:
            continue
        if _requeue(task["id"], task["started_at"]):
            requeued.append(str(task["id"]))
            logger.warning(
                "task %s requeued: its worker %s is gone",
                task["id"],
                task["worker_ids"][-1] if task["worker_ids"] else "(none)",
            )
    return requeued


def _requeue(task_id, started_at: datetime) -> bool:
    """Back to `READY` if still `RUNNING` under the claim that started at `started_at`."""
    return bool(
        DBTaskResult.objects.filter(
            id=task_id, status=TaskResultStatus.RUNNING, started_at=started_at
        ).update(status=TaskResultStatus.READY)
    )


class ResilientWorker(Worker):
    """`db_worker`'s worker, with a heartbeat, the orphan sweep and database outages survived."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.started_at = timezone.now()
        self._claim: tuple | None = None  # (task id, started_at) of the task running
        self._stop = threading.Event()
        self._database_since: float | None = None  # monotonic time the thread got the database

    # --- the heartbeat thread ---------------------------------------------------------------
    def beat(self) -> None:
        """One beat: write the heartbeat, then, once trusted to judge, sweep the orphans."""
        try:
            heartbeat_write(worker_id=self.worker_id, started_at=self.started_at)
            if self._database_since is None:
                self._database_since = time.monotonic()
            judged_for = time.monotonic() - self._database_since
            if judged_for >= settings.TASK_WORKER_DEAD_AFTER_SECONDS:
                tasks_orphaned_requeue()
        except DatabaseError as error:
            if self._database_since is not None:
                logger.warning("task worker heartbeat failed: %s", type(error).__name__)
            self._database_since = None

    def _beat_forever(self) -> None:
        while True:
            self.beat()
            connection.close()  # the thread's own connection: a fresh one next time
            if self._stop.wait(settings.TASK_WORKER_HEARTBEAT_SECONDS):
                return

    def heartbeat_start(self) -> threading.Thread:
        thread = threading.Thread(target=self._beat_forever, name="heartbeat", daemon=True)
        thread.start()
        return thread

    def heartbeat_stop(self, thread: threading.Thread) -> None:
        self._stop.set()
        thread.join(timeout=5)
        with contextlib.suppress(DatabaseError):  # else it goes stale on its own
            TaskWorker.objects.filter(worker_id=self.worker_id, started_at=self.started_at).delete()

    # --- the loop ---------------------------------------------------------------------------
    def run_task(self, db_task_result: DBTaskResult) -> None:
        self._claim = (db_task_result.id, db_task_result.started_at)
        super().run_task(db_task_result)
        # Not reached when recording the outcome failed (the database went
        # away): the claim stays, for `run` to put the task back in the queue.
        self._claim = None

    def run(self) -> None:
        thread = self.heartbeat_start()
        try:
            self._run_through_outages()
        finally:
            self.heartbeat_stop(thread)

    def _run_through_outages(self) -> None:
        delay = 1.0
        while self.running:
            began = time.monotonic()
            if self._claim_release():
                try:
                    super().run()
                    return  # stopped, --batch done or --max-tasks reached
                except (OperationalError, InterfaceError) as error:
                    if time.monotonic() - began > 60:
                        delay = 1.0  # a new outage, not the same one going on
                    logger.warning(
                        "task worker %s: database unreachable (%s); trying again in %.0f s",
                        self.worker_id,
                        type(error).__name__,
                        delay,
                    )
            connections.close_all()
            time.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    def _claim_release(self) -> bool:
        """Put back in the queue the task a database error interrupted; False
        while the database does not answer (nothing else is run meanwhile)."""
        if self._claim is None:
            return True
        try:
            close_old_connections()
            if _requeue(*self._claim):
                logger.warning("task %s requeued after a database error", self._claim[0])
        except (OperationalError, InterfaceError):
            return False
        self._claim = None
        return True
