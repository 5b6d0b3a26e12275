import pytest
from django.core.cache import cache
from django.core.management import call_command

from tests.factories import AccountFactory, MemberFactory


@pytest.fixture(autouse=True)
def _clear_cache():
    """Throttle counters live in the cache: each test starts from zero."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def member(db):
    return MemberFactory()


@pytest.fixture
def account(db):
    return AccountFactory()


@pytest.fixture
def run_tasks(db):
    """Run the queued tasks the way the worker does (`db_worker --batch`)."""

    def run():
        call_command("db_worker", "--batch", "--no-startup-delay", "--interval", "0", verbosity=0)

    return run


@pytest.fixture
def outbox(db):
    from portal.notifications.models import OutboundMessage

    def messages(**filters):
        return list(OutboundMessage.objects.filter(**filters).order_by("id"))

    return messages
