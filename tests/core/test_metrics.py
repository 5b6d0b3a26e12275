"""/metrics: restricted to the monitoring, business counters counted once committed,
gauges read from the database, and every process's values merged."""

import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import time_machine
from django.db import transaction
from prometheus_client import REGISTRY

from portal.appointments.models import Motive
from portal.core import metrics
from portal.notifications.models import OutboundMessage
from portal.notifications.services import email_send, sms_send
from tests.appointments.conftest import NOW, ensure_motives, make_advisor
from tests.appointments.test_services import book, free
from tests.factories import AccountFactory, CpamFactory, MemberFactory
from tests.www.test_reset import ask, choose, link_path, reset_messages

ROOT = Path(__file__).resolve().parent.parent.parent


def value(name, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture(autouse=True)
def _fresh_database_gauges():
    metrics._database_gauges["at"] = 0.0
    yield
    metrics._database_gauges["at"] = 0.0


@pytest.fixture
def monitoring(settings):
    settings.METRICS_ALLOWED_IPS = ["127.0.0.1"]
    return settings


# --- who may read it -------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_are_refused_to_everyone_by_default(client):
    response = client.get("/metrics")
    assert response.status_code == 403
    assert b"portal_" not in response.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("allowed", "remote", "status"),
    [
        (["127.0.0.1"], "127.0.0.1", 200),
        (["10.20.0.0/16"], "10.20.3.4", 200),
        (["10.20.0.0/16", "::1"], "::1", 200),
        (["10.20.0.0/16"], "10.21.0.1", 403),
        (["127.0.0.1"], "198.51.100.7", 403),
    ],
)
def test_metrics_allowed_ips_and_networks(client, settings, allowed, remote, status):
    settings.METRICS_ALLOWED_IPS = allowed
    assert client.get("/metrics", REMOTE_ADDR=remote).status_code == status


@pytest.mark.django_db
def test_a_forwarded_address_counts_only_from_a_trusted_proxy(client, settings):
    settings.METRICS_ALLOWED_IPS = ["10.20.0.5"]
    spoofed = client.get("/metrics", REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="10.20.0.5")
    assert spoofed.status_code == 403
    settings.TRUSTED_PROXIES = ["192.0.2.10"]
    proxied = client.get("/metrics", REMOTE_ADDR="192.0.2.10", HTTP_X_FORWARDED_FOR="10.20.0.5")
    assert proxied.status_code == 200
    # Through the proxy, the proxy's own address is not the client's.
    settings.METRICS_ALLOWED_IPS = ["192.0.2.10"]
    outsider = client.get("/metrics", REMOTE_ADDR="192.0.2.10", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert outsider.status_code == 403


@pytest.mark.django_db
def test_metrics_bearer_token(client, settings):
    settings.METRICS_TOKEN = "s3cret-scrape-token-0123456789"
    remote = {"REMOTE_ADDR": "198.51.100.7"}
    ok = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}", **remote)
    assert ok.status_code == 200
    for header in ("Bearer wrong", "Bearer ", f"Basic {settings.METRICS_TOKEN}", ""):
        assert client.get("/metrics", HTTP_AUTHORIZATION=header, **remote).status_code == 403
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ", **remote).status_code == 403


# --- what it says ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_exposition(client, monitoring):
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert response["Cache-Control"] == "no-store"
    text = response.content.decode()
    for line in (
        'portal_password_reset_requests_total{outcome="accepted"}',
        'portal_messages_sent_total{channel="sms"}',
        "django_http_requests_total_by_view_transport_method_total",
        'portal_messages_last_24h{channel="email",status="pending"} 0.0',
        'portal_sms_codes_last_24h{state="used"} 0.0',
        "portal_task_queue_ready 0.0",
        "portal_task_queue_oldest_wait_seconds 0.0",
        'portal_periodic_job_last_queued_timestamp_seconds{job="credentials_purge"} 0.0',
        "portal_metrics_database_up 1.0",
    ):
        assert line in text, line
    assert 'view="healthz"' in text  # by route name, never by path (paths hold tokens)


@pytest.mark.django_db
def test_database_gauges(client, monitoring, member):
    with mock.patch("portal.notifications.services._enqueue"):
        email_send(to="a@example.org", template="password_changed", context={"member": member})
        sms_send(to="+33612345678", template="mobile_change_code", context={"code": "123456"})
    text = client.get("/metrics").content.decode()
    assert 'portal_messages_last_24h{channel="email",status="pending"} 1.0' in text
    assert 'portal_messages_last_24h{channel="sms",status="pending"} 1.0' in text
    assert "123456" not in text


@pytest.mark.django_db
def test_the_task_queue_backlog(client, monitoring, member):
    email_send(to="a@example.org", template="password_changed", context={"member": member})
    text = client.get("/metrics").content.decode()
    assert "portal_task_queue_ready 1.0" in text


@pytest.mark.django_db
def test_an_unreachable_database_leaves_the_process_metrics(client, monitoring):
    with mock.patch.object(metrics, "_database_families", side_effect=RuntimeError("down")):
        response = client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert "portal_metrics_database_up 0.0" in text
    assert "portal_password_reset_requests_total" in text


# --- the business counters -------------------------------------------------------------------


@pytest.mark.django_db
def test_reset_requests_and_completions_are_counted(
    client, run_tasks, settings, django_capture_on_commit_callbacks
):
    account = AccountFactory(email="titulaire@example.org")
    accepted = value("portal_password_reset_requests_total", outcome="accepted")
    throttled = value("portal_password_reset_requests_total", outcome="throttled")
    completed = value("portal_password_resets_completed_total")
    sent = value("portal_messages_sent_total", channel="email")

    with django_capture_on_commit_callbacks(execute=True):
        assert ask(client, account.nir).status_code == 302
        run_tasks()
    assert value("portal_password_reset_requests_total", outcome="accepted") == accepted + 1
    assert value("portal_messages_sent_total", channel="email") == sent + 1

    with django_capture_on_commit_callbacks(execute=True):
        client.get(link_path(reset_messages()[0]))
        assert choose(client).status_code == 302
    assert value("portal_password_resets_completed_total") == completed + 1

    settings.PASSWORD_RESET_LIMIT_PER_IP = 0
    with django_capture_on_commit_callbacks(execute=True):
        ask(client, account.nir)
    assert value("portal_password_reset_requests_total", outcome="throttled") == throttled + 1


@pytest.mark.django_db
def test_a_rolled_back_change_is_not_counted(django_capture_on_commit_callbacks):
    before = value("portal_password_resets_completed_total")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                metrics.password_reset_completed()
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
    assert callbacks == []
    assert value("portal_password_resets_completed_total") == before


@pytest.mark.django_db
def test_sms_sent_and_failed_are_counted(
    run_tasks, settings, member, django_capture_on_commit_callbacks
):
    sent = value("portal_messages_sent_total", channel="sms")
    failed = value("portal_messages_failed_total", channel="email")
    sms_send(
        to="+33612345678", template="mobile_change_code", context={"code": "123456"}, member=member
    )
    with django_capture_on_commit_callbacks(execute=True):
        run_tasks()
    assert value("portal_messages_sent_total", channel="sms") == sent + 1

    settings.NOTIFICATION_MAX_ATTEMPTS = 1
    email_send(to="a@example.org", template="password_changed", context={"member": member})
    with (
        mock.patch("portal.notifications.services._send", side_effect=OSError("refused")),
        django_capture_on_commit_callbacks(execute=True),
    ):
        run_tasks()
    assert OutboundMessage.objects.filter(status="failed").count() == 1
    assert value("portal_messages_failed_total", channel="email") == failed + 1


@pytest.mark.django_db
def test_bookings_are_counted_by_channel(django_capture_on_commit_callbacks):
    ensure_motives()
    motive = Motive.objects.get(code="arret-travail-ij")
    cpam = CpamFactory()
    make_advisor(cpam)
    account = AccountFactory(member=MemberFactory(cpam=cpam))
    before = value("portal_appointments_booked_total", channel="on_site")
    with time_machine.travel(NOW, tick=False), django_capture_on_commit_callbacks(execute=True):
        slot = free(cpam, motive, channel="on_site")[0]
        book(account, slot, motive, channel="on_site")
    assert value("portal_appointments_booked_total", channel="on_site") == before + 1


# --- several processes -----------------------------------------------------------------------

WRITER = """
import sys
from portal.core import metrics
for _ in range(int(sys.argv[1])):
    metrics.PASSWORD_RESETS_COMPLETED.inc()
    metrics.MESSAGES_SENT.labels(channel="sms").inc()
"""


def test_metrics_of_every_process_are_merged(client, settings, tmp_path, db):
    """Two processes (say a web worker and a task worker, each with its own
    directory under the shared one) write; any web worker reports the sum."""
    for name, count in (("web", 2), ("worker", 3)):
        directory = tmp_path / name
        directory.mkdir()
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
        subprocess.run([sys.executable, "-c", WRITER, str(count)], cwd=ROOT, env=env, check=True)
    settings.METRICS_COLLECT_DIR = str(tmp_path)
    settings.METRICS_ALLOWED_IPS = ["127.0.0.1"]
    text = client.get("/metrics").content.decode()
    assert "portal_password_resets_completed_total 5.0" in text
    assert 'portal_messages_sent_total{channel="sms"} 5.0' in text
    assert "portal_metrics_database_up 1.0" in text  # the database gauges come too
