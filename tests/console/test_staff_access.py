"""Staff log in with email + password + TOTP, mandatory from the first login.

The enrolment link printed by `create_staff` is followed like a new advisor
would: the test plays the authenticator app with the key the page displays.
"""

import html
import io
import re
from base64 import b32decode

import pytest
import time_machine
from django.contrib.auth.hashers import check_password
from django.core.management import CommandError, call_command
from django_otp.oath import TOTP

from portal.audit.models import AuditEntry
from portal.staff import totp
from portal.staff.models import Staff, StaffEnrolment
from tests.console.conftest import STAFF_PASSWORD, make_staff
from tests.factories import CpamFactory

LOGIN = "/conseiller/connexion/"
T0 = "2026-03-02 10:00:00+01:00"
CHOSEN = "Conseil-Phrase-Secrete-42"


def login(client, email, password=STAFF_PASSWORD, code=""):
    return client.post(LOGIN, {"email": email, "password": password, "code": code})


def logged_in(client) -> bool:
    return client.get("/conseiller/").status_code == 200


def create_staff(email="nouvelle.conseillere@caisse.example", role="phone_advisor"):
    out = io.StringIO()
    call_command("create_staff", "--email", email, "--role", role, "--cpam", "751", stdout=out)
    return out.getvalue()


def enrolment_path(output: str) -> str:
    found = re.search(r"https://compte\.example\.test(/conseiller/enrolement/\S+)", output)
    return found.group(1)


def app_code(manual_key: str, shift: int = 0) -> str:
    """What an authenticator app shows for the key typed by hand (base32, grouped by 4)."""
    raw = manual_key.replace(" ", "")
    key = b32decode(raw + "=" * (-len(raw) % 8))
    token = TOTP(key, step=30, digits=6)
    token.drift = shift
    return f"{token.token():06d}"


def shown_key(page: str) -> str:
    return html.unescape(re.search(r'<code class="totp-key">([A-Z2-7 ]+)</code>', page).group(1))


def enrol(client, code, password=CHOSEN, password2=None):
    return client.post(
        "/conseiller/enrolement/",
        {"password": password, "password2": password2 or password, "code": code},
    )


# --- login ----------------------------------------------------------------------


@pytest.mark.django_db
def test_login_without_a_code_is_refused(client):
    staff = make_staff("phone_advisor")
    response = login(client, staff.email)
    assert response.status_code == 400
    assert not logged_in(client)


@pytest.mark.django_db
def test_login_with_a_wrong_code_is_refused(client):
    staff = make_staff("phone_advisor")
    with time_machine.travel(T0, tick=False):
        right = totp.current_code(staff.totp_secret)
        wrong = f"{(int(right) + 1) % 10**6:06d}"
        response = login(client, staff.email, code=wrong)
        assert response.status_code == 400
        assert "Adresse, mot de passe ou code incorrect." in response.content.decode()
        assert not logged_in(client)
        # The right code with a wrong password gives the same answer.
        response = login(client, staff.email, password="Pas-Le-Bon-Mot-9", code=right)
        assert response.status_code == 400
        assert "Adresse, mot de passe ou code incorrect." in response.content.decode()
        assert not logged_in(client)
    assert AuditEntry.objects.filter(action="staff.login.failed").count() == 2


@pytest.mark.django_db
def test_a_code_opens_one_session_only(client):
    staff = make_staff("phone_advisor")
    with time_machine.travel(T0, tick=False) as clock:
        code = totp.current_code(staff.totp_secret)
        assert login(client, staff.email, code=code)["Location"] == "/conseiller/"
        assert logged_in(client)
        client.post("/conseiller/deconnexion/")
        assert not logged_in(client)
        # Same code, same 30-second step: refused, and from another browser too.
        assert login(client, staff.email, code=code).status_code == 400
        other = client.__class__()
        assert login(other, staff.email, code=code).status_code == 400
        clock.shift(20)  # still inside the step the code belongs to
        assert login(other, staff.email, code=code).status_code == 400
        assert not logged_in(client) and not logged_in(other)
        clock.shift(30)  # the next code is accepted
        assert (
            login(other, staff.email, code=totp.current_code(staff.totp_secret)).status_code == 302
        )
        assert logged_in(other)


@pytest.mark.django_db
def test_the_previous_code_is_refused_once_a_later_one_was_used(client):
    staff = make_staff("phone_advisor")
    with time_machine.travel(T0, tick=False) as clock:
        earlier = totp.current_code(staff.totp_secret)
        clock.shift(30)
        assert (
            login(client, staff.email, code=totp.current_code(staff.totp_secret)).status_code == 302
        )
        client.post("/conseiller/deconnexion/")
        # Within the clock tolerance, but older than the one already used.
        assert login(client, staff.email, code=earlier).status_code == 400


@pytest.mark.django_db
def test_staff_not_enrolled_cannot_log_in(client):
    CpamFactory()
    create_staff("pas.enrole@caisse.example")
    staff = Staff.objects.get(email="pas.enrole@caisse.example")
    with time_machine.travel(T0, tick=False):
        code = totp.current_code(staff.totp_secret)
        assert login(client, staff.email, password="", code=code).status_code == 400
        assert login(client, staff.email, password=CHOSEN, code=code).status_code == 400
        assert not logged_in(client)
    # A password alone, TOTP never confirmed, is not enough either.
    half = make_staff("phone_advisor")
    Staff.objects.filter(pk=half.pk).update(totp_confirmed_at=None)
    with time_machine.travel(T0, tick=False):
        assert (
            login(client, half.email, code=totp.current_code(half.totp_secret)).status_code == 400
        )
        assert not logged_in(client)


@pytest.mark.django_db
def test_a_deactivated_staff_loses_the_console_at_once(client):
    staff = make_staff("phone_advisor")
    with time_machine.travel(T0, tick=False):
        login(client, staff.email, code=totp.current_code(staff.totp_secret))
        assert logged_in(client)
        Staff.objects.filter(pk=staff.pk).update(is_active=False)
        assert client.get("/conseiller/")["Location"] == LOGIN


# --- create_staff and enrolment ----------------------------------------------------


@pytest.mark.django_db
def test_create_staff_prints_a_one_time_link_and_enrolment_works(client):
    CpamFactory()
    with time_machine.travel(T0, tick=False) as clock:
        output = create_staff()
        assert "One-time enrolment link (valid 72 h)" in output
        path = enrolment_path(output)
        staff = Staff.objects.get(email="nouvelle.conseillere@caisse.example")
        assert staff.role == "phone_advisor" and staff.cpam.code == "751"
        assert not staff.enrolled
        # The link is stored only as its hash.
        token = path.rsplit("/", 1)[1]
        assert not StaffEnrolment.objects.filter(token_hash__contains=token).exists()

        followed = client.get(path)
        assert followed.status_code == 302 and followed["Location"] == "/conseiller/enrolement/"
        assert followed["Referrer-Policy"] == "same-origin"
        response = client.get("/conseiller/enrolement/")
        page = response.content.decode()
        assert response.status_code == 200
        assert response["Referrer-Policy"] == "same-origin"
        assert "no-store" in response["Cache-Control"]
        assert re.search(r'<div class="totp-qr"><svg[^>]*>.*</svg>', page, re.S)
        assert "<img" not in page.split('class="totp-qr"')[1].split("</figure>")[0]
        key = shown_key(page)
        assert re.fullmatch(r"([A-Z2-7]{4} )+[A-Z2-7]{1,4}", key)
        assert staff.email in page

        # A weak password is refused, whatever the code.
        weak = enrol(client, app_code(key), password="court")
        assert weak.status_code == 400
        assert "Au moins 12 caractères." in weak.content.decode()
        # A code that is not the app's is refused.
        wrong = enrol(client, f"{(int(app_code(key)) + 1) % 10**6:06d}")
        assert wrong.status_code == 400
        assert "Ce code ne correspond pas" in wrong.content.decode()
        staff.refresh_from_db()
        assert not staff.enrolled and staff.password == ""
        assert shown_key(wrong.content.decode()) == key  # the same key, still to be confirmed

        done = enrol(client, app_code(key))
        assert done.status_code == 302 and done["Location"] == LOGIN
        staff.refresh_from_db()
        assert staff.enrolled
        # The code that confirmed the app cannot open a session…
        assert login(client, staff.email, password=CHOSEN, code=app_code(key)).status_code == 400
        clock.shift(30)
        # …the next one does.
        assert login(client, staff.email, password=CHOSEN, code=app_code(key)).status_code == 302
        assert logged_in(client)

        # The link cannot be used again, even from another browser.
        again = client.__class__()
        again.get(path)
        reused = again.get("/conseiller/enrolement/")
        assert reused.status_code == 400
        assert "Ce lien n’est pas valide ou a déjà servi." in reused.content.decode()
        assert enrol(again, app_code(key), password="Autre-Phrase-Secrete-8").status_code == 400
    staff.refresh_from_db()
    assert check_password(CHOSEN, staff.password)
    assert AuditEntry.objects.filter(action="staff.enrolled", actor=staff.actor).count() == 1


@pytest.mark.django_db
def test_enrolment_link_expires_after_72_hours(client):
    CpamFactory()
    with time_machine.travel(T0, tick=False) as clock:
        path = enrolment_path(create_staff())
        clock.shift(72 * 3600 - 1)
        client.get(path)
        assert client.get("/conseiller/enrolement/").status_code == 200
        clock.shift(2)
        response = client.get("/conseiller/enrolement/")
        assert response.status_code == 400
        assert "Ce lien a expiré (72 heures)." in response.content.decode()
        key = totp.manual_key(Staff.objects.get().totp_secret)
        assert enrol(client, app_code(key)).status_code == 400
    assert not Staff.objects.get().enrolled


@pytest.mark.django_db
def test_a_mangled_enrolment_link_is_not_valid(client):
    client.get("/conseiller/enrolement/nimportequoi")
    response = client.get("/conseiller/enrolement/")
    assert response.status_code == 400
    assert "Ce lien n’est pas valide" in response.content.decode()


@pytest.mark.django_db
def test_create_staff_refuses_an_unknown_cpam_and_a_taken_email():
    CpamFactory()
    with pytest.raises(CommandError, match="unknown CPAM"):
        call_command(
            "create_staff", "--email", "a@caisse.example", "--role", "front_desk", "--cpam", "999"
        )
    create_staff("a@caisse.example")
    with pytest.raises(CommandError, match="already exists"):
        create_staff("A@caisse.example")
    with pytest.raises(CommandError):
        create_staff("b@caisse.example", role="root")
    assert Staff.objects.count() == 1
