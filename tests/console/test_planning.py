"""The day's planning (`/conseiller/planning/`): contents, order, click-to-call, days, zones."""

import re
from datetime import time

import pytest
import time_machine
from django.test import Client

from portal.appointments import services
from portal.appointments.models import Appointment
from portal.members.models import Cpam
from portal.staff import perms
from tests.console.conftest import make_member_account, without_csrf
from tests.console.test_planning_helpers import (
    NOW,
    book,
    logged_in,
    make_advisor,
    make_staff,
    mask,
    paris,
)
from tests.factories import AccountFactory, CpamFactory, MemberFactory

PLANNING = "/conseiller/planning/"
TUESDAY = "2026-11-03"


@pytest.fixture
def now():
    with time_machine.travel(NOW, tick=False) as clock:
        yield clock


@pytest.fixture
def cpam(db):
    return CpamFactory()


@pytest.fixture
def day(now, cpam):
    """Tuesday 3 November: an advisor's day with three appointments booked out of order, a
    colleague's appointment, and an appointment of the advisor on another day."""
    advisor = make_advisor(cpam)
    colleague = make_advisor(cpam)
    marie = make_member_account(cpam)  # mobile +33 6 45 87 12 42
    paul = AccountFactory(
        member=MemberFactory(cpam=cpam, first_names="Paul", last_name="Lambert"),
        mobile_phone="+33699887766",
    )
    lina = AccountFactory(member=MemberFactory(cpam=cpam, first_names="Lina", last_name="Ferrand"))
    late = book(
        paul,
        advisor,
        paris(2026, 11, 3, 11, 0),
        motive_code="css",
        channel="on_site",
        message="Je viendrai avec mon avis d’imposition.",
    )
    early = book(
        marie,
        advisor,
        paris(2026, 11, 3, 9, 20),
        message="Mon dernier paiement n’est pas arrivé.",
    )
    middle = book(lina, advisor, paris(2026, 11, 3, 10, 0), motive_code="at-mp")
    other_advisor = book(
        AccountFactory(member=MemberFactory(cpam=cpam, last_name="Collegue")),
        colleague,
        paris(2026, 11, 3, 9, 0),
    )
    other_day = book(
        AccountFactory(member=MemberFactory(cpam=cpam, last_name="Mercredi")),
        advisor,
        paris(2026, 11, 4, 9, 0),
    )
    return {
        "advisor": advisor,
        "colleague": colleague,
        "early": early,
        "middle": middle,
        "late": late,
        "other_advisor": other_advisor,
        "other_day": other_day,
        "marie": marie,
    }


def test_the_advisor_sees_their_day_in_order(day):
    client = logged_in(day["advisor"].staff)
    response = client.get(PLANNING, {"jour": TUESDAY})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Mon planning" in html
    assert "Mardi 3 novembre 2026" in html
    # In time order, whatever the booking order.
    positions = [html.index(t) for t in ("09:20", "10:00", "11:00")]
    assert positions == sorted(positions)
    assert html.index("Mon dernier paiement") < html.index("Ferrand") < html.index("Lambert")
    # Motive, channel (with the site on site), member with masked NIR, message, status.
    assert "Arrêt de travail (nouvelle demande ou en cours) / indemnités journalières" in html
    assert "Demande de Complémentaire santé solidaire (CSS)" in html
    assert "Sur place, Accueil Paris 11e" in html
    assert "Téléphone" in html
    member = day["early"].member
    assert "Marie-Hélène Louise Quenardel" in html
    assert mask(member.nir) in html
    assert member.nir[:9] not in html  # never the full NIR
    assert "Je viendrai avec mon avis d’imposition." in html
    assert html.count("Confirmé") == 3
    # Each time opens the appointment.
    for key in ("early", "middle", "late"):
        assert f"/conseiller/rendez-vous/{day[key].public_id}/" in html
    # Not a colleague's appointment, nor another day's.
    assert "Collegue" not in html
    assert "Mercredi" not in html


def test_phone_appointments_have_a_click_to_call_link_to_the_account_number(day):
    client = logged_in(day["advisor"].staff)
    html = client.get(PLANNING, {"jour": TUESDAY}).content.decode()
    number = services.account_phone(day["early"].member)
    assert number.as_e164 == "+33645871242"
    assert 'href="tel:+33645871242"' in html
    assert "06 45 87 12 42" in html
    assert "Appeler Quenardel au" in html
    # Lina's account has the factory's mobile; Paul comes on site: no number to call.
    assert 'href="tel:+33612345678"' in html
    assert "tel:+33699887766" not in html
    assert len(re.findall(r'href="tel:', html)) == 2


def test_a_phone_appointment_without_a_mobile_says_so(now, cpam):
    advisor = make_advisor(cpam)
    account = AccountFactory(member=MemberFactory(cpam=cpam))
    appointment = book(account, advisor, paris(2026, 11, 3, 9, 0))
    account.mobile_phone = ""
    account.save()
    assert services.account_phone(appointment.member) is None
    html = logged_in(advisor.staff).get(PLANNING, {"jour": TUESDAY}).content.decode()
    assert "tel:" not in html
    assert "Aucun mobile dans le compte en ligne" in html


def test_a_cancelled_appointment_keeps_its_line_with_its_status_and_no_number(day):
    services.appointment_cancel(account=day["marie"], appointment=day["early"])
    html = logged_in(day["advisor"].staff).get(PLANNING, {"jour": TUESDAY}).content.decode()
    assert "Annulé par l’assuré" in html
    assert "tel:+33645871242" not in html


def test_the_supervisor_sees_every_advisor_of_the_cpam_grouped(day, cpam):
    idle = make_advisor(cpam)
    stranger = make_advisor(Cpam.objects.create(code="131", name="Bouches-du-Rhône"))
    supervisor = make_staff("supervisor", cpam=cpam)
    html = logged_in(supervisor).get(PLANNING, {"jour": TUESDAY}).content.decode()
    assert "Planning des conseillers" in html
    for advisor in (day["advisor"], day["colleague"], idle):
        assert f'id="conseiller-{advisor.pk}"' in html
        assert f"/conseiller/planning/conseillers/{advisor.pk}/" in html
    assert f'id="conseiller-{stranger.pk}"' not in html
    assert "Aucun rendez-vous ce jour-là." in html  # the idle advisor
    assert "Gérer les disponibilités des conseillers" in html
    # Each appointment under its advisor's heading.
    advisor_at = html.index(f'id="conseiller-{day["advisor"].pk}"')
    colleague_at = html.index(f'id="conseiller-{day["colleague"].pk}"')
    own_section = html[advisor_at:colleague_at] if advisor_at < colleague_at else html[advisor_at:]
    colleague_section = (
        html[colleague_at:advisor_at] if colleague_at < advisor_at else html[colleague_at:]
    )
    assert "Quenardel" in own_section and "Collegue" not in own_section
    assert "Collegue" in colleague_section and "Quenardel" not in colleague_section


def test_an_advisor_has_no_availability_link(day):
    html = logged_in(day["advisor"].staff).get(PLANNING, {"jour": TUESDAY}).content.decode()
    assert "/conseiller/planning/conseillers/" not in html


def test_today_by_default_with_previous_and_next_days(day):
    client = logged_in(day["advisor"].staff)
    html = client.get(PLANNING).content.decode()
    assert "Lundi 2 novembre 2026 (aujourd’hui)" in html
    assert "Aucun rendez-vous ce jour-là." in html
    assert 'href="?jour=2026-11-01"' in html
    assert 'href="?jour=2026-11-03"' in html
    html = client.get(PLANNING, {"jour": "04/11/2026"}).content.decode()
    assert "Mercredi 4 novembre 2026" in html
    assert "Mercredi" in html and "09:00" in html
    assert 'href="?jour=2026-11-03"' in html and 'href="?jour=2026-11-05"' in html


def test_times_are_in_the_office_zone(db):
    """La Réunion is UTC+4: a 09:00 appointment there is at 06:00 in Paris."""
    with time_machine.travel(NOW, tick=False):
        reunion = Cpam.objects.create(code="974", name="La Réunion")
        assert reunion.time_zone == "Indian/Reunion"
        advisor = make_advisor(reunion)
        account = AccountFactory(member=MemberFactory(cpam=reunion))
        book(account, advisor, paris(2026, 11, 3, 6, 0))
        client = logged_in(advisor.staff)
        html = client.get(PLANNING, {"jour": TUESDAY}).content.decode()
    assert "09:00" in html
    assert "06:00" not in html


@pytest.mark.parametrize(
    "garbage",
    [
        "hier",
        "2026-02-30",
        "2026-13-01",
        "0001-01-01",
        "9999-12-31",
        "1999-12-31",
        "２０２６-１１-０３",  # fullwidth digits
        "2026-11-03\x00",
        "2026-11-03' OR 1=1",
        "9" * 5000,
    ],
)
def test_a_bad_day_is_a_clear_message_never_a_500(day, garbage):
    response = logged_in(day["advisor"].staff).get(PLANNING, {"jour": garbage})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Saisissez une date" in html
    assert "Lundi 2 novembre 2026" in html  # today's planning, still usable


def test_the_first_and_last_days_have_no_link_beyond(day):
    client = logged_in(day["advisor"].staff)
    html = client.get(PLANNING, {"jour": "2000-01-01"}).content.decode()
    assert "?jour=1999-12-31" not in html
    html = client.get(PLANNING, {"jour": "2099-12-31"}).content.decode()
    assert "?jour=2100-01-01" not in html


def test_an_empty_day_parameter_is_today(day):
    response = logged_in(day["advisor"].staff).get(PLANNING, {"jour": ""})
    assert response.status_code == 200
    assert "Lundi 2 novembre 2026" in response.content.decode()


def test_no_member_data_beyond_the_minimum(day):
    html = without_csrf(
        logged_in(day["advisor"].staff).get(PLANNING, {"jour": TUESDAY}).content.decode()
    )
    member = day["early"].member
    for secret in (member.iban, "0143", "13008", "23/11/1979", "1979", member.email):
        assert secret not in html, secret


@pytest.mark.parametrize(
    ("role", "with_agenda"),
    [
        ("phone_advisor", True),
        ("front_desk", True),
        ("phone_advisor", False),
        ("front_desk", False),
        ("supervisor", False),
    ],
)
def test_the_console_navigation_has_planning_exactly_for_who_may_see_it(
    now, cpam, role, with_agenda
):
    staff = make_advisor(cpam, role=role).staff if with_agenda else make_staff(role, cpam=cpam)
    html = logged_in(staff).get("/conseiller/").content.decode()
    has_entry = 'href="/conseiller/planning/"' in html
    assert has_entry is perms.can_view_planning(staff)
    assert has_entry is (with_agenda or role == "supervisor")


def test_the_planning_is_for_staff_only(day):
    response = Client().get(PLANNING)
    assert response.status_code == 302
    assert response["Location"].startswith("/conseiller/connexion/")


def test_queries_do_not_grow_with_the_appointments_but_for_the_number_to_call(
    now, cpam, django_assert_max_num_queries
):
    """One query per phone appointment (the account's number); none per member, motive or site."""
    advisor = make_advisor(cpam, ranges=((time(9, 0), time(12, 0)),))
    for hour, minute in ((9, 0), (9, 30), (10, 0), (10, 30), (11, 0)):
        account = AccountFactory(member=MemberFactory(cpam=cpam))
        book(
            account, advisor, paris(2026, 11, 3, hour, minute), motive_code="css", channel="on_site"
        )
    client = logged_in(advisor.staff)
    client.get(PLANNING, {"jour": TUESDAY})  # warm the session
    with django_assert_max_num_queries(12):
        response = client.get(PLANNING, {"jour": TUESDAY})
    assert response.content.decode().count("Sur place, Accueil Paris 11e") == 5
    assert Appointment.objects.count() == 5
