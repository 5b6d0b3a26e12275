"""The task worker of `manage.py task_worker` (portal/core/workers.py): heartbeat,
requeue of the tasks of dead workers, database outages survived.

The real faults (a worker killed with SIGKILL mid-task, PostgreSQL restarted)
are injected into the running stack by `make faults` (loadtest/faults.py);
here each rule is checked on its own.
"""

import logging
from datetime import datetime, timedelta
from unittest import mock

import pytest
import time_machine
from django.core.management import call_command
from django.db import OperationalError
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from portal.core import tasks, workers
from portal.core.models import TaskWorker
from portal.core.workers import ResilientWorker, heartbeat_write, tasks_orphaned_requeue

pytestmark = pytest.mark.django_db

T0 = datetime.fromisoformat("2026-11-02T03:00:00+01:00")
DEAD = timedelta(seconds=60)  # TASK_WORKER_DEAD_AFTER_SECONDS


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def claimed(worker_id: str, *, at: datetime) -> DBTaskResult:
    """A task claimed by `worker_id` at `at`, the way db_worker claims one."""
    result = tasks.sessions_purge.enqueue()
    row = DBTaskResult.objects.get(id=result.id)
    with time_machine.travel(at, tick=False):
        row.claim(worker_id)
    return row


def status(row: DBTaskResult) -> str:
    return DBTaskResult.objects.values_list("status", flat=True).get(id=row.id)


def make_worker(**overrides) -> ResilientWorker:
    options = {
        "queue_names": ["default"],
        "interval": 0,
        "batch": False,
        "backend_name": "default",
        "startup_delay": False,
        "max_tasks": None,
        "worker_id": "test-worker",
        "excluded_queue_names": [],
    }
    return ResilientWorker(**(options | overrides))


# --- which tasks are orphaned ---------------------------------------------------------------


def test_a_task_of_a_worker_that_stopped_beating_is_queued_again(clock, caplog):
    heartbeat_write(worker_id="w1", started_at=T0 - timedelta(hours=1), now=T0 - DEAD * 2)
    row = claimed("w1", at=T0 - DEAD * 2)
    with caplog.at_level(logging.WARNING, logger="portal.core.workers"):
        assert tasks_orphaned_requeue() == [str(row.id)]
    assert status(row) == TaskResultStatus.READY
    assert f"task {row.id} requeued: its worker w1 is gone" in caplog.text
    # Nothing left to do: a second sweep finds nothing.
    assert tasks_orphaned_requeue() == []


def test_a_task_of_a_live_worker_is_left_running(clock):
    heartbeat_write(
        worker_id="w1", started_at=T0 - timedelta(hours=1), now=T0 - DEAD + timedelta(seconds=5)
    )
    row = claimed("w1", at=T0 - timedelta(minutes=30))  # a long task
    assert tasks_orphaned_requeue() == []
    assert status(row) == TaskResultStatus.RUNNING


def test_a_task_of_a_worker_with_no_heartbeat_at_all_is_queued_again(clock):
    row = claimed("plain-db-worker", at=T0 - DEAD * 2)
    assert tasks_orphaned_requeue() == [str(row.id)]
    assert status(row) == TaskResultStatus.READY


def test_a_worker_id_that_started_again_orphans_the_task_of_its_earlier_life(clock):
    row = claimed("prod-local-1", at=T0 - timedelta(minutes=5))
    # killed, then started again under the same id: it beats, but from a later life
    heartbeat_write(worker_id="prod-local-1", started_at=T0 - timedelta(minutes=2), now=T0)
    assert tasks_orphaned_requeue() == [str(row.id)]
    assert status(row) == TaskResultStatus.READY


def test_a_task_claimed_less_than_the_dead_delay_ago_is_left_alone(clock):
    row = claimed("new-worker", at=T0 - DEAD + timedelta(seconds=1))  # no beat yet
    assert tasks_orphaned_requeue() == []
    assert status(row) == TaskResultStatus.RUNNING


def test_the_requeue_is_conditional_on_the_claim_it_judged(clock):
    row = claimed("w1", at=T0 - DEAD * 2)
    assert workers._requeue(row.id, row.started_at + timedelta(seconds=1)) is False
    assert status(row) == TaskResultStatus.RUNNING
    DBTaskResult.objects.filter(id=row.id).update(status=TaskResultStatus.SUCCESSFUL)
    assert workers._requeue(row.id, row.started_at) is False
    assert status(row) == TaskResultStatus.SUCCESSFUL


def test_finished_and_waiting_tasks_are_never_touched(clock):
    done = claimed("gone", at=T0 - DEAD * 2)
    DBTaskResult.objects.filter(id=done.id).update(status=TaskResultStatus.SUCCESSFUL)
    waiting = tasks.sessions_purge.enqueue()
    assert tasks_orphaned_requeue() == []
    assert status(done) == TaskResultStatus.SUCCESSFUL
    assert DBTaskResult.objects.get(id=waiting.id).status == TaskResultStatus.READY


def test_the_heartbeats_of_workers_gone_for_a_day_are_deleted(clock):
    heartbeat_write(
        worker_id="old", started_at=T0 - timedelta(days=3), now=T0 - timedelta(days=1, seconds=1)
    )
    heartbeat_write(
        worker_id="recent", started_at=T0 - timedelta(days=3), now=T0 - timedelta(hours=23)
    )
    tasks_orphaned_requeue()
    assert list(TaskWorker.objects.values_list("worker_id", flat=True)) == ["recent"]


# --- the heartbeat --------------------------------------------------------------------------


def test_a_beat_writes_the_heartbeat_and_judges_others_only_after_the_dead_delay(clock):
    worker = make_worker(worker_id="w-beat")
    orphan = claimed("gone", at=T0 - DEAD * 2)
    with mock.patch.object(workers.time, "monotonic", return_value=1000.0):
        worker.beat()
    row = TaskWorker.objects.get(worker_id="w-beat")
    assert (row.started_at, row.last_seen_at) == (worker.started_at, T0)
    # Just (re)connected: the others may not have had the database to beat yet.
    assert status(orphan) == TaskResultStatus.RUNNING
    with mock.patch.object(workers.time, "monotonic", return_value=1000.0 + 59):
        worker.beat()
    assert status(orphan) == TaskResultStatus.RUNNING
    with mock.patch.object(workers.time, "monotonic", return_value=1000.0 + 60):
        worker.beat()
    assert status(orphan) == TaskResultStatus.READY


def test_a_failed_beat_restarts_the_judging_delay(clock):
    worker = make_worker(worker_id="w-beat")
    with mock.patch.object(workers.time, "monotonic", return_value=1000.0):
        worker.beat()
    with mock.patch.object(workers, "heartbeat_write", side_effect=OperationalError("down")):
        worker.beat()
    orphan = claimed("gone", at=T0 - DEAD * 2)
    with mock.patch.object(workers.time, "monotonic", return_value=1000.0 + 120):
        worker.beat()  # the database is back: the delay counts from now
    assert status(orphan) == TaskResultStatus.RUNNING


# --- the loop -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_database_outage_between_tasks_does_not_end_the_worker(caplog):
    tasks.sessions_purge.enqueue()
    ready = DBTaskResult.objects.ready
    calls = []

    def ready_or_down(*args, **kwargs):
        calls.append(1)
        if len(calls) <= 2:
            raise OperationalError("connection refused")
        return ready(*args, **kwargs)

    worker = make_worker(max_tasks=1)
    with (
        mock.patch.object(DBTaskResult.objects, "ready", side_effect=ready_or_down),
        mock.patch.object(workers.time, "sleep") as sleep,
        caplog.at_level(logging.WARNING, logger="portal.core.workers"),
    ):
        worker.run()
    assert DBTaskResult.objects.get().status == TaskResultStatus.SUCCESSFUL
    assert [c.args[0] for c in sleep.call_args_list] == [1.0, 2.0]  # backing off
    assert "task worker test-worker: database unreachable (OperationalError)" in caplog.text
    # A clean stop removes the heartbeat.
    assert not TaskWorker.objects.filter(worker_id="test-worker").exists()


@pytest.mark.django_db(transaction=True)
def test_a_task_cut_by_a_database_outage_is_queued_again_and_run_once_more(caplog):
    task = tasks.sessions_purge.enqueue()
    real_successful = DBTaskResult.set_successful
    down = {"left": 1}

    def successful_or_down(self, value):
        if down["left"]:
            raise OperationalError("server closed the connection unexpectedly")
        return real_successful(self, value)

    def failed_while_down(self, exc):
        if down["left"]:
            down["left"] -= 1
            raise OperationalError("server closed the connection unexpectedly")

    worker = make_worker(max_tasks=2)
    with (
        mock.patch.object(DBTaskResult, "set_successful", successful_or_down),
        mock.patch.object(DBTaskResult, "set_failed", failed_while_down),
        mock.patch.object(workers.time, "sleep"),
        caplog.at_level(logging.WARNING, logger="portal.core.workers"),
    ):
        worker.run()
    row = DBTaskResult.objects.get(id=task.id)
    assert row.status == TaskResultStatus.SUCCESSFUL
    assert row.worker_ids == ["test-worker", "test-worker"]  # claimed twice, by the same worker
    assert f"task {task.id} requeued after a database error" in caplog.text


@pytest.mark.django_db(transaction=True)  # its heartbeat thread has a connection of its own
def test_the_command_runs_the_queue_like_db_worker():
    task = tasks.sessions_purge.enqueue()
    with mock.patch("django_tasks_db.management.commands.db_worker.close_old_connections"):
        call_command("task_worker", "--batch", "--no-startup-delay", "--interval", "0", verbosity=0)
    row = DBTaskResult.objects.get(id=task.id)
    assert row.status == TaskResultStatus.SUCCESSFUL
    assert row.worker_ids[0].count("-") >= 2  # host-pid-random


def test_the_running_tasks_are_found_through_their_own_index():
    from django.db import connection

    with connection.cursor() as cursor:
        indexes = connection.introspection.get_constraints(
            cursor, "django_tasks_database_dbtaskresult"
        )
    running = indexes["core_tasks_running_started"]
    assert running["index"] and running["columns"] == ["started_at"]
