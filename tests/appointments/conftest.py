"""An office with advisors, for the agenda tests.

Times are pinned with time-machine: `NOW` is Monday 2 November 2026, 10:00
in Paris, so the first bookable day (one working day of notice) is Tuesday 3
November and the horizon (42 days) ends on Monday 14 December.
"""

from datetime import datetime, time
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest
import time_machine

from portal.appointments.models import Advisor, Motive, OpeningRange, Site
from portal.members.models import Cpam
from tests.console.conftest import make_staff
from tests.factories import AccountFactory, CpamFactory, MemberFactory

UTC = dt_timezone.utc  # datetime.UTC needs Python 3.11

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 11, 2, 10, 0, tzinfo=PARIS)


def paris(year, month, day, hour=0, minute=0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=PARIS)


def make_site(cpam, name="Accueil Paris 11e") -> Site:
    return Site.objects.create(
        cpam=cpam, name=name, address="21 rue Georges Auric", postal_code="75019", city="Paris"
    )


def make_advisor(
    cpam=None,
    site=None,
    motives=None,
    ranges=((time(9, 0), time(12, 0)),),
    weekdays=range(5),
    phone=True,
    on_site=True,
    role="phone_advisor",
) -> Advisor:
    """An advisor with the same ranges every weekday in `weekdays`."""
    cpam = cpam or CpamFactory()
    site = site or Site.objects.filter(cpam=cpam).first() or make_site(cpam)
    advisor = Advisor.objects.create(
        staff=make_staff(role, cpam=cpam), site=site, phone=phone, on_site=on_site
    )
    advisor.motives.set(motives if motives is not None else Motive.objects.all())
    for weekday in weekdays:
        for start, end in ranges:
            OpeningRange.objects.create(
                advisor=advisor, weekday=weekday, start_time=start, end_time=end
            )
    return advisor


@pytest.fixture
def now():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def cpam(db) -> Cpam:
    return CpamFactory()


def ensure_motives() -> None:
    """The fund's motives come from a data migration, which a transactional test's flush
    empties for the tests after it."""
    if not Motive.objects.exists():
        from importlib import import_module

        from django.apps import apps

        import_module("portal.appointments.migrations.0002_motives").create(apps, None)


@pytest.fixture
def motive(db) -> Motive:
    """Arrêt de travail / IJ: 20 minutes, phone or on site."""
    ensure_motives()
    return Motive.objects.get(code="arret-travail-ij")


@pytest.fixture
def advisor(cpam) -> Advisor:
    return make_advisor(cpam)


@pytest.fixture
def member_account(cpam):
    return AccountFactory(member=MemberFactory(cpam=cpam))


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)
