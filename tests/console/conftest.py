import re
from datetime import date

import pytest
import time_machine
from django.contrib.auth.hashers import make_password
from django.test import Client
from django.utils import timezone

from portal.accounts.models import Account
from portal.members.models import Cpam
from portal.members.nir import key_for
from portal.notifications.models import OutboundMessage
from portal.recovery.models import ConsoleBlock
from portal.staff import totp
from portal.staff.models import Staff
from tests.factories import AccountFactory, CpamFactory, MemberFactory

STAFF_PASSWORD = "Mot-De-Passe-Conseiller-1"


def make_staff(role: str, cpam=None, email=None) -> Staff:
    cpam = cpam or CpamFactory()
    staff = Staff(
        email=email or f"{role}.{Staff.objects.count()}@caisse.example",
        role=role,
        cpam=cpam,
        password=make_password(STAFF_PASSWORD),
        totp_confirmed_at=timezone.now(),
    )
    staff.totp_secret_set(totp.new_key())
    staff.save(force_insert=True)
    return staff


def staff_login(client, staff: Staff):
    """Through the real login form: email + password + the TOTP code of the moment."""
    response = client.post(
        "/conseiller/connexion/",
        {
            "email": staff.email,
            "password": STAFF_PASSWORD,
            "code": totp.current_code(staff.totp_secret),
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


# --- a member with distinctive facts, so that a leak of any of them shows in a page scan --------

MEMBER_NIR13 = "2791113055987"
MEMBER_MOBILE = "+33645871242"
MEMBER_FACTS = {
    "first_names": "Marie-Hélène Louise",
    "last_name": "Quenardel",
    "birth_date": date(1979, 11, 23),
    "postal_code": "13008",
    "iban": "FR7630004000031234567890143",
    "email": "mh.quenardel@example.net",
    "mobile_phone": MEMBER_MOBILE,
}
# What the caller answers when they are who they say.
RIGHT_ANSWERS = {
    "birth_date": "1979-11-23",
    "postal_code": "13008",
    "first_name": "Marie-Hélène",
    "iban_last4": "0143",
}
WRONG_ANSWERS = {**RIGHT_ANSWERS, "postal_code": "13009"}
NEW_PASSWORD = "Nouvelle-Phrase-Secrete-7"


def make_member_account(
    cpam, *, nir13: str = MEMBER_NIR13, mobile: str = MEMBER_MOBILE, **overrides
) -> Account:
    """The member (fixed NIR) and their active online account, in `cpam`."""
    member = MemberFactory(nir=nir13 + key_for(nir13), cpam=cpam, **{**MEMBER_FACTS, **overrides})
    return AccountFactory(member=member, email=member.email, mobile_phone=mobile)


def member_path(member) -> str:
    return f"/conseiller/assure/{member.pk}/"


def search(client, member):
    """Find the member by exact NIR, as the console asks."""
    return client.post("/conseiller/recherche/", {"nir": member.nir})


def identity_check(client, member, answers=None):
    return client.post(member_path(member) + "verification/", answers or RIGHT_ANSWERS)


def open_with_check(client, member, answers=None):
    """Search, then run the identity check; returns the member page path."""
    response = search(client, member)
    assert response.status_code == 302 and response["Location"] == member_path(member)
    assert identity_check(client, member, answers).status_code == 302
    return member_path(member)


def sms_codes(member) -> list[str]:
    """The 8-digit codes sent by SMS to this member, oldest first (what the phone received)."""
    messages = OutboundMessage.objects.filter(channel="sms", member=member).order_by("id")
    return [re.search(r"\b(\d{8})\b", m.body_text).group(1) for m in messages]


def page_messages(client, path) -> str:
    """The page at `path`, with its one-shot messages (after a redirect)."""
    return client.get(path).content.decode()


def without_csrf(html: str) -> str:
    """Random tokens could contain any short digit run by chance: drop them before scanning."""
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", html)


@pytest.fixture
def member_account(db):
    return make_member_account(CpamFactory())


@pytest.fixture
def frozen():
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False) as clock:
        yield clock


def block_member(member) -> ConsoleBlock:
    """Three failed checks by an advisor of the member's CPAM, through the console."""
    advisor = make_staff("phone_advisor", cpam=member.cpam)
    client = Client()
    staff_login(client, advisor)
    search(client, member)
    for _ in range(3):
        identity_check(client, member, WRONG_ANSWERS)
    return ConsoleBlock.objects.get(member=member, lifted_at__isnull=True)
