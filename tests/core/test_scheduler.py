"""`manage.py scheduler`: each periodic job queued once per interval, across restarts,
never piled up behind a run that has not finished, and run by the task worker."""

import io
import logging
import threading
from datetime import datetime, timedelta
from unittest import mock

import pytest
import time_machine
from django.core.management import call_command
from django.db import OperationalError, connection, connections
from django_tasks_db.models import DBTaskResult

from portal.core import scheduler
from portal.core.models import PeriodicJob
from portal.core.scheduler import JOBS, scheduler_run, scheduler_tick

pytestmark = pytest.mark.django_db

T0 = datetime.fromisoformat("2026-11-02T03:00:00+01:00")
ALL = [job.name for job in JOBS]
HOURLY = [job.name for job in JOBS if job.interval == timedelta(hours=1)]


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def queued_paths() -> list[str]:
    return sorted(DBTaskResult.objects.values_list("task_path", flat=True))


def test_the_jobs_and_their_intervals():
    assert {job.name: job.interval for job in JOBS} == {
        "credentials_purge": timedelta(hours=1),
        "sessions_purge": timedelta(hours=1),
        "time_locks_purge": timedelta(days=1),
        "task_results_prune": timedelta(days=1),
        "sms_usage_check": timedelta(days=1),
    }


def test_the_first_pass_queues_every_job_as_a_task(clock):
    assert scheduler_tick() == ALL
    assert queued_paths() == sorted(f"portal.core.tasks.{name}" for name in ALL)
    assert set(PeriodicJob.objects.values_list("name", flat=True)) == set(ALL)


def test_a_job_is_not_queued_again_before_its_interval(clock, run_tasks):
    scheduler_tick()
    run_tasks()
    assert scheduler_tick() == []
    clock.shift(timedelta(minutes=59))
    assert scheduler_tick() == []
    clock.shift(timedelta(minutes=1))
    assert scheduler_tick() == HOURLY
    run_tasks()
    clock.shift(timedelta(hours=23))
    assert scheduler_tick() == ALL
    assert DBTaskResult.objects.count() == len(ALL) * 2 + len(HOURLY)


def test_a_restart_does_not_run_everything_again(clock, run_tasks):
    """The scheduler keeps no state in memory: a new process finds the last
    runs in the database and queues nothing that is not due."""
    assert scheduler_tick() == ALL
    run_tasks()
    clock.shift(timedelta(minutes=5))
    assert call_command("scheduler", "--once", stdout=io.StringIO()) is None
    assert DBTaskResult.objects.count() == len(ALL)


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_at_once_queue_each_job_once():
    """Two schedulers (a deployment overlapping the old one) pass at the same
    instant: the row lock lets one queue, the other finds it done (PostgreSQL)."""
    if connection.vendor != "postgresql":
        pytest.skip(
            "needs PostgreSQL's concurrent transactions (run by .ci/run and make test-postgres)"
        )
    PeriodicJob.objects.bulk_create(PeriodicJob(name=name) for name in ALL)
    barrier = threading.Barrier(4)
    results, errors = [], []

    def run():
        try:
            barrier.wait()
            results.extend(scheduler_tick(now=T0))
        except Exception as exc:  # noqa: BLE001 (reported by the assertion below)
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == sorted(ALL)
    assert DBTaskResult.objects.count() == len(ALL)


def test_a_run_still_waiting_for_a_worker_is_not_doubled(clock, caplog):
    scheduler_tick()  # no worker runs them
    clock.shift(timedelta(hours=3))
    with caplog.at_level(logging.WARNING, logger="portal.core.scheduler"):
        assert scheduler_tick() == []
    assert "credentials_purge is due but its last run has not finished" in caplog.text
    assert DBTaskResult.objects.count() == len(ALL)


def test_after_an_outage_the_job_counts_from_when_the_worker_ran_it(clock, run_tasks):
    scheduler_tick()
    clock.shift(timedelta(hours=5))  # the workers were down for five hours
    run_tasks()  # they come back and run the waiting tasks now
    assert scheduler_tick() == []  # not a second run right behind the late one
    clock.shift(timedelta(hours=1))
    assert scheduler_tick() == HOURLY


def test_a_run_stuck_longer_than_its_interval_is_taken_as_lost(clock):
    scheduler_tick()
    DBTaskResult.objects.update(status="RUNNING", started_at=T0)  # a worker killed mid-task
    clock.shift(timedelta(minutes=61))
    assert scheduler_tick() == HOURLY


def test_a_still_running_job_is_not_doubled(clock):
    scheduler_tick()
    clock.shift(timedelta(minutes=61))
    DBTaskResult.objects.update(status="RUNNING", started_at=T0 + timedelta(minutes=30))
    assert scheduler_tick() == []


def test_a_pruned_task_result_does_not_block_the_job(clock, run_tasks):
    scheduler_tick()
    run_tasks()
    DBTaskResult.objects.all().delete()
    clock.shift(timedelta(minutes=61))
    assert scheduler_tick() == HOURLY


def test_the_worker_runs_the_queued_jobs(clock, run_tasks):
    scheduler_tick()
    run_tasks()
    results = dict(DBTaskResult.objects.values_list("task_path", "status"))
    assert set(results.values()) == {"SUCCESSFUL"}, results
    purge = DBTaskResult.objects.get(task_path="portal.core.tasks.credentials_purge")
    assert purge.return_value == {
        "account_tokens": 0,
        "api_tokens": 0,
        "one_time_codes": 0,
        "staff_enrolments": 0,
    }
    check = DBTaskResult.objects.get(task_path="portal.core.tasks.sms_usage_check")
    assert check.return_value["outcome"] == "too_few_codes"


# --- the command and its loop ----------------------------------------------------------------


def test_the_command_once_and_list(clock):
    out = io.StringIO()
    call_command("scheduler", "--once", stdout=out)
    assert out.getvalue() == f"queued: {', '.join(ALL)}\n"
    out = io.StringIO()
    call_command("scheduler", "--once", stdout=out)
    assert out.getvalue() == "queued: nothing due\n"
    out = io.StringIO()
    call_command("scheduler", "--list", stdout=out)
    assert "credentials_purge: every 1:00:00, last queued 2026-11-02T03:00:00+01:00" in (
        out.getvalue()
    )
    assert "sms_usage_check: every 1 day, 0:00:00" in out.getvalue()


def test_the_loop_survives_a_database_outage_and_stops_when_asked(caplog):
    stop = threading.Event()
    calls = []

    def tick(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise OperationalError("connection refused")
        stop.set()
        return []

    with (
        mock.patch.object(scheduler, "scheduler_tick", side_effect=tick),
        mock.patch.object(scheduler, "close_old_connections") as close,
        caplog.at_level(logging.INFO, logger="portal.core.scheduler"),
    ):
        scheduler_run(stop=stop, tick=0.01)
    assert len(calls) == 2
    assert close.call_count == 3  # before each pass, and when leaving
    assert "scheduler tick failed; next try in 0.01 s" in caplog.text
    assert "scheduler stopped" in caplog.text
