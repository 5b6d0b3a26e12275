from unittest import mock

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.utils import translation

from tests.factories import AccountFactory, MemberFactory
from tests.smtp import smtp_server, smtp_settings  # noqa: F401 (fixtures)


@pytest.fixture(autouse=True)
def _clear_cache():
    """Throttle counters live in the cache: each test starts from zero."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _french():
    """Each test starts in the default language, whatever the previous request chose."""
    translation.activate("fr")
    yield
    translation.deactivate()


@pytest.fixture
def member(db):
    return MemberFactory()


@pytest.fixture
def account(db):
    return AccountFactory()


@pytest.fixture
def run_tasks(db):
    """Run the queued tasks the way the worker does (`db_worker --batch`).

    The worker calls `close_old_connections()`, which inside the test's
    transaction drops the connection on PostgreSQL (SQLite's in-memory test
    database ignores it); Django's test client disconnects it for the same reason.
    """

    def run():
        with mock.patch("django_tasks_db.management.commands.db_worker.close_old_connections"):
            call_command(
                "db_worker", "--batch", "--no-startup-delay", "--interval", "0", verbosity=0
            )

    return run


@pytest.fixture
def outbox(db):
    from portal.notifications.models import OutboundMessage

    def messages(**filters):
        return list(OutboundMessage.objects.filter(**filters).order_by("id"))

    return messages
