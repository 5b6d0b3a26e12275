from datetime import date

import pytest
import time_machine

from portal.members.models import Beneficiary
from tests.factories import AccountFactory, MemberFactory

from .helpers import NIR_A, NIR_B, NIR_CHILD, TODAY


@pytest.fixture
def today():
    """Payments are checked against today (Europe/Paris): frozen at noon on TODAY."""
    with time_machine.travel(f"{TODAY.isoformat()} 12:00:00+01:00", tick=False):
        yield TODAY


@pytest.fixture
def paul(db, today):
    """A member with an active account (notifications on) and a child beneficiary."""
    member = MemberFactory(nir=NIR_A, first_names="Paul", last_name="Martin", sex="1")
    AccountFactory(member=member, email="paul@example.org")
    Beneficiary.objects.create(
        member=member,
        nir=NIR_CHILD,
        first_names="Léa",
        last_name="Martin",
        birth_date=date(2015, 3, 8),
    )
    return member


@pytest.fixture
def camille(db, today):
    member = MemberFactory(nir=NIR_B, first_names="Camille", last_name="Bernard", sex="2")
    AccountFactory(member=member, email="camille@example.org")
    return member
