"""Prometheus metrics (`/metrics`): business counters, and gauges read from the database.

Counters are incremented where the event happens, after its transaction
commits (a rolled-back booking is not counted): a web worker for resets and
bookings, a task worker for delivered messages. Several processes: with
`PROMETHEUS_MULTIPROC_DIR` set, prometheus_client keeps each process's values
in files of that directory, and `/metrics` merges every file found under
`METRICS_COLLECT_DIR` (by default that same directory), so that whichever
web worker answers, it reports the totals of every process sharing it
(docs/operations.md, "Metrics"). Without it (tests, `make run`), the
process's own registry is reported.

The gauges are counted in the database at scrape time, so they are right
whatever the number of processes: messages of the last 24 hours by status,
SMS codes sent and used in the last 24 hours (the ratio that
`check_sms_usage` watches), the task queue's backlog, and the last run of
each periodic job. They are cached a few seconds per process.

No label holds a member's data: channels, outcomes and job names only.
"""

import glob
import hmac
import ipaddress
import logging
import os
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from portal.core.http import client_ip

logger = logging.getLogger(__name__)

PASSWORD_RESET_REQUESTS = Counter(
    "portal_password_reset_requests",
    "Password-reset requests (site and API): accepted, or refused by the per-IP limit.",
    ["outcome"],
)
PASSWORD_RESETS_COMPLETED = Counter(
    "portal_password_resets_completed",
    "New passwords set from a reset link.",
)
MESSAGES_SENT = Counter(
    "portal_messages_sent",
    "Emails and SMS delivered to the SMTP server or SMS gateway (or kept for the demo mailbox).",
    ["channel"],
)
MESSAGES_FAILED = Counter(
    "portal_messages_failed",
    "Emails and SMS given up (attempts exhausted or expired).",
    ["channel"],
)
APPOINTMENTS_BOOKED = Counter(
    "portal_appointments_booked",
    "Appointments booked by members, by channel (phone, on site, relay).",
    ["channel"],
)

# Every series exists from the start (at 0), so that rate() and alerts see it.
for _outcome in ("accepted", "throttled"):
    PASSWORD_RESET_REQUESTS.labels(outcome=_outcome)
for _channel in ("email", "sms"):
    MESSAGES_SENT.labels(channel=_channel)
    MESSAGES_FAILED.labels(channel=_channel)
for _channel in ("phone", "on_site", "relay"):
    APPOINTMENTS_BOOKED.labels(channel=_channel)


def _after_commit(increment) -> None:
    # Outside a transaction, on_commit runs at once.
    transaction.on_commit(increment, robust=True)


def password_reset_requested(*, outcome: str) -> None:
    _after_commit(PASSWORD_RESET_REQUESTS.labels(outcome=outcome).inc)


def password_reset_completed() -> None:
    _after_commit(PASSWORD_RESETS_COMPLETED.inc)


def message_sent(*, channel: str) -> None:
    _after_commit(MESSAGES_SENT.labels(channel=channel).inc)


def message_failed(*, channel: str) -> None:
    _after_commit(MESSAGES_FAILED.labels(channel=channel).inc)


def appointment_booked(*, channel: str) -> None:
    _after_commit(APPOINTMENTS_BOOKED.labels(channel=channel).inc)


# --- gauges read from the database ------------------------------------------------------------

DATABASE_GAUGES_TTL = 10.0  # seconds; Prometheus scrapes every 15 to 60 s
_database_gauges: dict = {"at": 0.0, "families": []}


def _database_families() -> list:
    from django_tasks_db.models import DBTaskResult, get_date_max

    from portal.core.scheduler import scheduler_status
    from portal.notifications.models import OutboundMessage
    from portal.notifications.selectors import sms_code_usage

    now = timezone.now()
    since = now - timedelta(hours=24)
    families = []

    messages = GaugeMetricFamily(
        "portal_messages_last_24h",
        "Emails and SMS created in the last 24 hours, by channel and status.",
        labels=["channel", "status"],
    )
    counts = {
        (channel, status): 0
        for channel in OutboundMessage.Channel.values
        for status in OutboundMessage.Status.values
    }
    rows = (
        OutboundMessage.objects.filter(created_at__gte=since)
        .order_by()
        .values("channel", "status")
        .annotate(n=Count("id"))
    )
    for row in rows:
        counts[(row["channel"], row["status"])] = row["n"]
    for (channel, status), value in sorted(counts.items()):
        messages.add_metric([channel, status], value)
    families.append(messages)

    usage = sms_code_usage(since=since, now=now)
    codes = GaugeMetricFamily(
        "portal_sms_codes_last_24h",
        "One-time codes sent by SMS in the last 24 hours: sent, used, still pending.",
        labels=["state"],
    )
    for state in ("sent", "used", "pending"):
        codes.add_metric([state], usage[state])
    families.append(codes)

    ready = DBTaskResult.objects.ready()
    oldest = ready.order_by("enqueued_at").values_list("enqueued_at", "run_after").first()
    families.append(
        GaugeMetricFamily(
            "portal_task_queue_ready",
            "Tasks waiting for a worker (due now).",
            value=ready.count(),
        )
    )
    waited = 0.0
    if oldest:
        enqueued_at, run_after = oldest
        due = enqueued_at if run_after == get_date_max() else max(enqueued_at, run_after)
        waited = max((now - due).total_seconds(), 0.0)
    families.append(
        GaugeMetricFamily(
            "portal_task_queue_oldest_wait_seconds",
            "How long the oldest due task has waited for a worker (0: none waiting).",
            value=waited,
        )
    )

    jobs = GaugeMetricFamily(
        "portal_periodic_job_last_queued_timestamp_seconds",
        "When the scheduler last queued each periodic job (Unix time; 0: never).",
        labels=["job"],
    )
    for job in scheduler_status():
        last = job["last_enqueued_at"]
        jobs.add_metric([job["name"]], last.timestamp() if last else 0)
    families.append(jobs)
    return families


class DatabaseCollector:
    """The gauges above, plus `portal_metrics_database_up` (0 when they could not be read)."""

    def collect(self):
        cached = _database_gauges
        if time.monotonic() - cached["at"] > DATABASE_GAUGES_TTL:
            try:
                cached["families"] = _database_families()
                cached["up"] = 1
            except Exception:
                logger.exception("metrics: the database gauges could not be read")
                cached["families"] = []
                cached["up"] = 0
            cached["at"] = time.monotonic()
        yield from cached["families"]
        yield GaugeMetricFamily(
            "portal_metrics_database_up",
            "1 when the database gauges were read, 0 when the database did not answer.",
            value=cached["up"],
        )


class _FilesCollector:
    """Every process's values under a directory, subdirectories included."""

    def __init__(self, directory: str):
        self.directory = directory

    def collect(self):
        files = glob.glob(os.path.join(self.directory, "**", "*.db"), recursive=True)
        return MultiProcessCollector.merge(files, accumulate=True)


def metrics_render() -> tuple[bytes, str]:
    """The exposition text of every metric, and its content type."""
    directory = settings.METRICS_COLLECT_DIR
    if directory:
        processes = CollectorRegistry()
        processes.register(_FilesCollector(directory))
    else:
        processes = REGISTRY
    database = CollectorRegistry()
    database.register(DatabaseCollector())
    return generate_latest(processes) + generate_latest(database), CONTENT_TYPE_LATEST


def metrics_access_allowed(request) -> bool:
    """`/metrics` is for the monitoring only: a client IP in `METRICS_ALLOWED_IPS`
    (addresses or networks) or the bearer token `METRICS_TOKEN`."""
    token = settings.METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    presented = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    if token and presented and hmac.compare_digest(presented.encode(), token.encode()):
        return True
    allowed = settings.METRICS_ALLOWED_IPS
    if not allowed:
        return False
    try:
        address = ipaddress.ip_address(client_ip(request))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network, strict=False) for network in allowed)
