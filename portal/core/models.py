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
