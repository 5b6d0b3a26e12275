from django.db import models


class PeriodicJob(models.Model):
    """When the scheduler last queued one of its periodic jobs (`portal.core.scheduler`).

    One row per job, locked while the scheduler decides, so that a restart or
    a second scheduler started by mistake does not queue a job again before
    its interval has passed.
    """

    name = models.CharField(max_length=100, unique=True)
    last_enqueued_at = models.DateTimeField(null=True, blank=True)
    # The task result of the last run, to avoid piling up runs while no worker takes them.
    last_task_id = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return f"periodic job {self.name}"


class TaskWorker(models.Model):
    """A running task worker's heartbeat (`manage.py task_worker`, `portal.core.workers`).

    Each worker writes its row every few seconds from a thread of its own,
    also while a task runs. A task left `RUNNING` by a worker whose row has
    gone stale (killed, its machine lost), or by an earlier life of a worker
    id that started again since, is put back in the queue by the live ones.
    """

    worker_id = models.CharField(max_length=64, primary_key=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    # This life of the worker id: a task it claimed before that is orphaned.
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"task worker {self.worker_id}"
