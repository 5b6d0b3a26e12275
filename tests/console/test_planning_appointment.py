"""One appointment in the console: its motive only, the outcome, the fund's cancellation."""

import re
from datetime import date
from decimal import Decimal

import pytest
import time_machine

from portal.appointments import services
from portal.appointments.models import Appointment
from portal.appointments.slots import free_slots
from portal.audit.models import AuditEntry
from portal.members.models import Cpam
from portal.notifications.models import OutboundMessage
from portal.payments.models import ReimbursementLine, WorkStoppage
from tests.console.conftest import MEMBER_FACTS, make_member_account, without_csrf
from tests.console.test_planning_helpers import (
    NOW,
    book,
    logged_in,
    make_advisor,
    make_staff,
    mask,
    paris,
    stoppage_with_payments,
)
from tests.factories import CpamFactory

SICKNESS, MATERNITY, AT_MP = (
    WorkStoppage.Kind.SICKNESS,
    WorkStoppage.Kind.MATERNITY,
    WorkStoppage.Kind.WORK_ACCIDENT,
)


@pytest.fixture
def now():
    with time_machine.travel(NOW, tick=False) as clock:
        yield clock


@pytest.fixture
def cpam(db):
    return CpamFactory()


@pytest.fixture
def advisor(now, cpam):
    return make_advisor(cpam)


@pytest.fixture
def account(cpam):
    """Marie-Hélène Quenardel (distinctive facts: IBAN, address, birth date…), with history:
    an open sick leave paid twice, a past maternity leave, a past work accident, a reimbursement."""
    account = make_member_account(cpam, postal_address="7 impasse des Tilleuls")
    member = account.member
    stoppage_with_payments(
        member,
        stoppage_id="AM-OPEN",
        kind=SICKNESS,
        start=date(2026, 10, 1),
        nets=("411.11", "422.22"),
    )
    stoppage_with_payments(
        member,
        stoppage_id="MAT-2024",
        kind=MATERNITY,
        start=date(2024, 3, 4),
        end=date(2024, 6, 23),
        nets=("733.33",),
    )
    stoppage_with_payments(
        member,
        stoppage_id="AT-2025",
        kind=AT_MP,
        start=date(2025, 2, 10),
        end=date(2025, 3, 9),
        nets=("644.44",),
    )
    ReimbursementLine.objects.create(
        line_id="R-1",
        member=member,
        care_date=date(2026, 9, 15),
        act_code="G",
        act_label="Consultation Docteur Zyxwv",
        professional="Dr Zyxwv",
        amount_paid=Decimal("30"),
        base_amount=Decimal("30"),
        rate=Decimal("70"),
        gross_reimbursed=Decimal("21"),
        participation_forfaitaire=Decimal("2"),
        franchise=Decimal("0"),
        net_reimbursed=Decimal("19"),
        payee="member",
        status="paid",
        payment_date=date(2026, 9, 20),
    )
    return account


def page(client, appointment):
    return client.get(f"/conseiller/rendez-vous/{appointment.public_id}/")


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def assert_nothing_unrelated(html, member):
    # Random tokens and ids could hold a short digit run by chance: drop them first.
    html = UUID.sub("", without_csrf(html))
    for fact in (
        MEMBER_FACTS["iban"],
        MEMBER_FACTS["iban"][-7:],
        "0143",
        "7 impasse des Tilleuls",
        "13008",
        "1979",
        MEMBER_FACTS["email"],
        "Zyxwv",  # a reimbursement
        member.nir[:9],
    ):
        assert fact not in html, fact


# --- the motive, and only the motive ------------------------------------------------------


def test_the_ij_motive_shows_the_open_stoppage_and_its_allowances(advisor, account):
    appointment = book(account, advisor, paris(2026, 11, 3, 9, 0), message="Où en est mon IJ ?")
    html = page(logged_in(advisor.staff), appointment).content.decode()
    assert (
        "L’entretien porte uniquement sur le motif : Arrêt de travail (nouvelle demande ou en cours) / indemnités journalières"
        in html
    )
    assert "Arrêt de travail en cours et indemnités journalières" in html
    assert "depuis le 1 octobre 2026 (en cours)" in html
    assert "411,11 €" in html and "422,22 €" in html
    assert "Total versé : 833,33 €" in html
    # Not the closed stoppages of other kinds.
    assert "733,33" not in html and "644,44" not in html
    # The member, minimally; the number to call; the message.
    assert "Marie-Hélène Louise Quenardel" in html
    assert mask(account.member.nir) in html
    assert 'href="tel:+33645871242"' in html
    assert "Où en est mon IJ ?" in html
    assert_nothing_unrelated(html, account.member)


def test_another_motive_shows_no_stoppage_nor_payment(advisor, account):
    appointment = book(account, advisor, paris(2026, 11, 3, 9, 0), motive_code="css")
    html = page(logged_in(advisor.staff), appointment).content.decode()
    assert (
        "L’entretien porte uniquement sur le motif : Demande de Complémentaire santé solidaire (CSS)"
        in html
    )
    for shown_for_other_motives in ("411,11", "733,33", "644,44", "indemnités journalières", "€"):
        assert shown_for_other_motives not in html
    assert_nothing_unrelated(html, account.member)


@pytest.mark.parametrize(
    ("motive_code", "shown", "hidden"),
    [
        ("maternite-paternite", ["733,33", "du 4 mars 2024 au 23 juin 2024"], ["411,11", "644,44"]),
        (
            "at-mp",
            ["644,44", "Accident du travail ou maladie professionnelle"],
            ["411,11", "733,33"],
        ),
    ],
)
def test_maternity_and_work_accident_motives_show_the_stoppages_of_their_kind(
    advisor, account, motive_code, shown, hidden
):
    appointment = book(account, advisor, paris(2026, 11, 3, 9, 0), motive_code=motive_code)
    html = page(logged_in(advisor.staff), appointment).content.decode()
    for text in shown:
        assert text in html, text
    for text in hidden:
        assert text not in html, text
    assert_nothing_unrelated(html, account.member)


def test_the_ij_motive_without_an_open_stoppage_says_so(advisor, cpam):
    account = make_member_account(cpam)
    appointment = book(account, advisor, paris(2026, 11, 3, 9, 0))
    html = page(logged_in(advisor.staff), appointment).content.decode()
    assert "Aucun arrêt de travail en cours." in html


def test_the_supervisor_sees_it_too_and_the_reading_is_audited(advisor, account, cpam):
    appointment = book(account, advisor, paris(2026, 11, 3, 9, 0))
    supervisor = make_staff("supervisor", cpam=cpam)
    response = page(logged_in(supervisor), appointment)
    assert response.status_code == 200
    entry = AuditEntry.objects.filter(action="console.appointment.viewed").latest("seq")
    assert entry.actor == supervisor.actor
    assert entry.member_id == account.member_id
    assert entry.data["appointment"] == str(appointment.public_id)


def test_on_site_appointments_show_the_site_and_no_number(advisor, account):
    appointment = book(
        account, advisor, paris(2026, 11, 3, 9, 0), motive_code="css", channel="on_site"
    )
    html = page(logged_in(advisor.staff), appointment).content.decode()
    assert "sur place, Accueil Paris 11e" in html
    assert "tel:" not in html


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/conseiller/rendez-vous/00000000-0000-0000-0000-000000000000/"),
        ("get", "/conseiller/rendez-vous/pas-un-identifiant/"),
        ("get", "/conseiller/rendez-vous/1/"),
        ("post", "/conseiller/rendez-vous/00000000-0000-0000-0000-000000000000/resultat/"),
        ("post", "/conseiller/rendez-vous/00000000-0000-0000-0000-000000000000/annulation/"),
        ("post", "/conseiller/rendez-vous/%00/annulation/"),
    ],
)
def test_unknown_or_malformed_ids_are_404(advisor, method, path):
    client = logged_in(advisor.staff)
    response = getattr(client, method)(
        path, {"outcome": "done", "reason": "x"} if method == "post" else None
    )
    assert response.status_code == 404


def test_another_cpams_appointment_is_404_for_its_supervisor_too(now, advisor, account):
    other_supervisor = make_staff(
        "supervisor", cpam=Cpam.objects.create(code="131", name="Bouches-du-Rhône")
    )
    appointment = book(account, advisor, paris(2026, 11, 3, 9, 0))
    client = logged_in(other_supervisor)
    assert page(client, appointment).status_code == 404
    response = client.post(
        f"/conseiller/rendez-vous/{appointment.public_id}/annulation/", {"reason": "Test"}
    )
    assert response.status_code == 404
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.BOOKED


# --- the outcome ------------------------------------------------------------------------


def outcome(client, appointment, **data):
    return client.post(f"/conseiller/rendez-vous/{appointment.public_id}/resultat/", data)


def test_no_outcome_before_the_start(now, advisor, account):
    appointment = book(account, advisor, paris(2026, 11, 3, 9, 0))
    now.move_to(paris(2026, 11, 3, 8, 59))
    client = logged_in(advisor.staff)
    html = page(client, appointment).content.decode()
    assert "Vous pourrez enregistrer le résultat à partir du début du rendez-vous" in html
    assert 'name="outcome"' not in html
    response = outcome(client, appointment, outcome="done", note="Trop tôt")
    assert response.status_code == 400
    assert "Le rendez-vous n’a pas encore commencé" in response.content.decode()
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.BOOKED
    assert appointment.outcome_note == ""


@pytest.mark.parametrize("result", ["done", "no_show"])
def test_the_holding_advisor_records_the_outcome_once_started(now, advisor, account, result):
    appointment = book(account, advisor, paris(2026, 11, 3, 9, 0))
    now.move_to(paris(2026, 11, 3, 9, 0))
    client = logged_in(advisor.staff)
    assert 'name="outcome"' in page(client, appointment).content.decode()
    response = outcome(client, appointment, outcome=result, note="Versement prévu le 12.")
    assert response.status_code == 302
    assert response["Location"] == f"/conseiller/rendez-vous/{appointment.public_id}/"
    appointment.refresh_from_db()
    assert appointment.status == result
    assert appointment.outcome_note == "Versement prévu le 12."
    entry = AuditEntry.objects.filter(action="appointment.outcome").latest("seq")
    assert entry.actor == advisor.staff.actor
    html = client.get(response["Location"]).content.decode()
    assert "Résultat de l’entretien enregistré." in html
    assert "Versement prévu le 12." in html
    assert "Corriger le résultat de l’entretien" in html


def test_only_the_holding_advisor_records_the_outcome(now, advisor, account, cpam):
    appointment = book(account, advisor, paris(2026, 11, 3, 9, 0))
    now.move_to(paris(2026, 11, 3, 9, 30))
    supervisor = make_staff("supervisor", cpam=cpam)
    colleague = make_advisor(cpam).staff
    client = logged_in(supervisor)
    assert 'name="outcome"' not in page(client, appointment).content.decode()
    assert outcome(client, appointment, outcome="done").status_code == 403
    assert outcome(logged_in(colleague), appointment, outcome="done").status_code == 404
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.BOOKED


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"outcome": ""},
        {"outcome": "cancelled_by_fund"},
        {"outcome": "booked"},
        {"outcome": "done", "note": "x" * 5001},
        {"outcome": ["done", "no_show"], "note": "\x00"},
    ],
)
def test_a_bad_outcome_is_a_clear_message(now, advisor, account, data):
    appointment = book(account, advisor, paris(2026, 11, 3, 9, 0))
    now.move_to(paris(2026, 11, 3, 9, 30))
    response = outcome(logged_in(advisor.staff), appointment, **data)
    assert response.status_code == 400
    assert "Le formulaire contient" in response.content.decode()
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.BOOKED


def test_no_outcome_for_a_cancelled_appointment(now, advisor, account):
    appointment = book(account, advisor, paris(2026, 11, 3, 9, 0))
    services.appointment_cancel(account=account, appointment=appointment)
    now.move_to(paris(2026, 11, 3, 9, 30))
    client = logged_in(advisor.staff)
    assert 'name="outcome"' not in page(client, appointment).content.decode()
    response = outcome(client, appointment, outcome="done")
    assert response.status_code == 302
    assert "aucun résultat à enregistrer" in client.get(response["Location"]).content.decode()
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED_BY_MEMBER


# --- the fund's cancellation -------------------------------------------------------------


def cancel(client, appointment, reason):
    return client.post(
        f"/conseiller/rendez-vous/{appointment.public_id}/annulation/", {"reason": reason}
    )


@pytest.mark.parametrize("who", ["holder", "supervisor"])
def test_the_fund_cancels_with_a_reason_and_the_member_gets_it_with_alternatives(
    advisor, account, cpam, who
):
    appointment = book(account, advisor, paris(2026, 11, 3, 9, 0))
    staff = advisor.staff if who == "holder" else make_staff("supervisor", cpam=cpam)
    client = logged_in(staff)
    response = cancel(client, appointment, "  Le conseiller   est en formation ce jour-là.  ")
    assert response.status_code == 302
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED_BY_FUND
    assert appointment.cancel_reason == "Le conseiller est en formation ce jour-là."
    assert not appointment.locks.exists()
    email = OutboundMessage.objects.get(
        template="appointment_cancelled_by_fund", member=account.member
    )
    assert email.recipient == account.email
    assert "Raison : Le conseiller est en formation ce jour-là." in email.body_text
    assert "Voici les créneaux libres les plus proches" in email.body_text
    # The freed 09:00 is offered again, and the other nearest free slots.
    assert "le mardi 3 novembre 2026 à 09:00" in email.body_text
    assert email.body_text.count("\n- le ") == 3
    entry = AuditEntry.objects.filter(action="appointment.cancelled_by_fund").latest("seq")
    assert entry.actor == staff.actor
    html = client.get(response["Location"]).content.decode()
    assert "Rendez-vous annulé." in html
    assert "Annulé par la caisse" in html
    assert "Raison de l’annulation : Le conseiller est en formation ce jour-là." in html
    assert 'name="reason"' not in html  # no second cancellation


@pytest.mark.parametrize("reason", ["", "   ", "\n\t", "x" * 301])
def test_the_reason_is_mandatory(advisor, account, reason):
    appointment = book(account, advisor, paris(2026, 11, 3, 9, 0))
    response = cancel(logged_in(advisor.staff), appointment, reason)
    assert response.status_code == 400
    html = response.content.decode()
    assert "Indiquez la raison de l’annulation" in html or "300 caractères" in html
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.BOOKED
    assert not OutboundMessage.objects.filter(template="appointment_cancelled_by_fund").exists()


def test_an_appointment_cancelled_or_over_cannot_be_cancelled_again(now, advisor, account):
    appointment = book(account, advisor, paris(2026, 11, 3, 9, 0))
    services.appointment_cancel(account=account, appointment=appointment)
    client = logged_in(advisor.staff)
    response = cancel(client, appointment, "Encore")
    assert response.status_code == 302
    assert "ne peut plus être annulé" in client.get(response["Location"]).content.decode()
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED_BY_MEMBER

    other = book(account, advisor, paris(2026, 11, 4, 9, 0))
    now.move_to(paris(2026, 11, 4, 9, 20))  # it ended: an outcome now, not a cancellation
    client = logged_in(advisor.staff)
    assert 'name="reason"' not in page(client, other).content.decode()
    response = cancel(client, other, "Trop tard")
    assert response.status_code == 302
    other.refresh_from_db()
    assert other.status == Appointment.Status.BOOKED
    assert not OutboundMessage.objects.filter(template="appointment_cancelled_by_fund").exists()


def test_a_cancellation_frees_the_slot(advisor, account):
    appointment = book(account, advisor, paris(2026, 11, 3, 9, 0))
    motive = appointment.motive

    def starts():
        return [
            s.start
            for s in free_slots(
                cpam=advisor.staff.cpam,
                motive=motive,
                channel="phone",
                start=date(2026, 11, 3),
                end=date(2026, 11, 3),
                advisor_ids=[advisor.pk],
                per_advisor=True,
            )
        ]

    assert appointment.starts_at not in starts()
    cancel(logged_in(advisor.staff), appointment, "Réunion de service")
    assert appointment.starts_at in starts()


def test_a_relay_appointment_shows_the_mode_prominently_and_the_video_link(db):
    """The advisor sees the mode (LSF, TTRP, LfPC) and the room, and no number to call."""
    from datetime import time

    import time_machine

    from portal.appointments import services, slots
    from portal.appointments.models import Motive, RelayProfessional, RelayRange
    from tests.appointments.conftest import make_advisor, paris
    from tests.console.conftest import staff_login
    from tests.factories import AccountFactory, CpamFactory, MemberFactory

    cpam = CpamFactory()
    motive = Motive.objects.get(code="arret-travail-ij")
    advisor = make_advisor(cpam, ranges=((time(9), time(12)),))
    advisor.relay = True
    advisor.save()
    interpreter = RelayProfessional.objects.create(name="Interprète", lsf=True)
    RelayRange.objects.create(
        professional=interpreter, weekday=3, start_time=time(8), end_time=time(18)
    )
    account = AccountFactory(member=MemberFactory(cpam=cpam))
    with time_machine.travel(paris(2026, 11, 2, 10), tick=False):
        day = paris(2026, 11, 5).date()
        [slot, *_] = slots.free_slots(
            cpam=cpam, motive=motive, channel="relay", mode="lsf", start=day, end=day
        )
        appointment = services.appointment_book(
            account=account,
            slot_id=slot.id,
            motive_code=motive.code,
            channel="relay",
            communication_mode="lsf",
        )
    with time_machine.travel(paris(2026, 11, 5, 8), tick=False):
        from django.test import Client

        client = Client()
        staff_login(client, advisor.staff)
        planning = client.get("/conseiller/planning/?jour=2026-11-05").content.decode()
        page = client.get(f"/conseiller/rendez-vous/{appointment.public_id}/").content.decode()
    assert "Langue des signes française (LSF)" in planning
    assert appointment.video_url in planning
    assert "tel:" not in planning
    assert "Entretien en visio avec le service relais : Langue des signes française (LSF)" in page
    assert appointment.video_url in page
    assert "ne pas appeler" in page
