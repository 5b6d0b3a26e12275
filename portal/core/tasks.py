"""The scheduler's periodic jobs as tasks: the scheduler queues them, a task worker runs them.

Each returns what it did (stored as the task's result, and logged).
"""

import logging

from django_tasks import task

from . import jobs

logger = logging.getLogger(__name__)


def _done(name: str, result: dict) -> dict:
    logger.info("periodic job %s: %s", name, result)
    return result


@task()
def credentials_purge() -> dict:
    return _done("credentials_purge", jobs.credentials_purge())


@task()
def sessions_purge() -> dict:
    return _done("sessions_purge", jobs.sessions_purge())


@task()
def task_results_prune() -> dict:
    return _done("task_results_prune", jobs.task_results_prune())


@task()
def time_locks_purge() -> dict:
    return _done("time_locks_purge", jobs.time_locks_purge())


@task()
def sms_usage_check() -> dict:
    return _done("sms_usage_check", jobs.sms_usage_check())
