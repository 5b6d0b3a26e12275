import pytest
from django.contrib.auth.hashers import make_password
from django.utils import timezone

from portal.members.models import Cpam
from portal.staff import totp
from portal.staff.models import Staff
from tests.factories import CpamFactory

STAFF_PASSWORD = "Mot-De-Passe-Conseiller-1"


def make_staff(role: str, cpam=None, email=None) -> Staff:
    cpam = cpam or CpamFactory()
    return Staff.objects.create(
        email=email or f"{role}.{Staff.objects.count()}@caisse.example",
        role=role,
        cpam=cpam,
        password=make_password(STAFF_PASSWORD),
        totp_key=totp.new_key(),
        totp_confirmed_at=timezone.now(),
    )


def staff_login(client, staff: Staff):
    """Through the real login form: email + password + the TOTP code of the moment."""
    response = client.post(
        "/conseiller/connexion/",
        {
            "email": staff.email,
            "password": STAFF_PASSWORD,
            "code": totp.current_code(staff.totp_key),
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    return response


@pytest.fixture
def phone_advisor(db):
    return make_staff("phone_advisor")


@pytest.fixture
def front_desk(db):
    return make_staff("front_desk")


@pytest.fixture
def supervisor(db):
    return make_staff("supervisor")


@pytest.fixture
def other_cpam(db):
    return Cpam.objects.create(code="131", name="Bouches-du-Rhône")
