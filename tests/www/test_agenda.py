"""Mon agenda through HTTP: the booking journey (phone and on site), the list, cancel and move.

Time is pinned (tests/appointments/conftest.py): Monday 2 November 2026,
10:00 in Paris. The first bookable day is Tuesday 3 November, the last
Monday 14 December; the advisor receives 9:00–12:00 on weekdays, and the
motive `arret-travail-ij` lasts 20 minutes, so the earliest slot is Tuesday
3 November at 9:00 (8:00 UTC).
"""

import re
from datetime import date, time
from email import message_from_bytes, policy

import pytest
import time_machine
from django.test import Client

from portal.appointments import ics, services, slots
from portal.appointments.models import AdvisorTimeLock, Appointment, Motive
from portal.audit.models import AuditEntry
from portal.notifications.models import OutboundMessage
from tests.appointments.conftest import NOW, make_advisor, make_site, paris, utc
from tests.factories import AccountFactory, CpamFactory, MemberFactory

MOTIVE = "arret-travail-ij"
FIRST_SLOT = paris(2026, 11, 3, 9, 0)


def login(client, account):
    client.force_login(account, backend="portal.accounts.backends.NirBackend")
    return client


def page(response) -> str:
    return response.content.decode()


def book(account, *, start=None, motive_code=MOTIVE, channel="phone", site_id=None, message=""):
    """Book through the service (the HTTP journey is tested on its own)."""
    motive = Motive.objects.get(code=motive_code)
    free = slots.free_slots(
        cpam=account.member.cpam,
        motive=motive,
        channel=channel,
        start=date(2026, 11, 3),
        end=date(2026, 12, 14),
        site_id=site_id,
    )
    slot = next(s for s in free if start is None or s.start == utc(start))
    return services.appointment_book(
        account=account, slot_id=slot.id, motive_code=motive_code, channel=channel, message=message
    )


def slot_id_at(account, start, *, motive_code=MOTIVE, channel="phone", site_id=None) -> str:
    motive = Motive.objects.get(code=motive_code)
    day = start.date()
    free = slots.free_slots(
        cpam=account.member.cpam,
        motive=motive,
        channel=channel,
        start=day,
        end=day,
        site_id=site_id,
    )
    return next(s for s in free if s.start == utc(start)).id


@pytest.fixture
def now():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def cpam(db):
    return CpamFactory()


@pytest.fixture
def site(cpam):
    site = make_site(cpam)
    site.opening_hours = "Du lundi au vendredi, 8 h 30 – 17 h"
    site.save()
    return site


@pytest.fixture
def advisor(cpam, site):
    return make_advisor(cpam, site=site)


@pytest.fixture
def account(cpam):
    return AccountFactory(member=MemberFactory(cpam=cpam, first_names="Paul", last_name="Martin"))


@pytest.fixture
def member(client, account, now, advisor):
    return login(client, account)


# --- the journey ------------------------------------------------------------------------------


def sent_emails(smtp_server, subject_part: str):
    parsed = [message_from_bytes(m.content, policy=policy.default) for m in smtp_server.messages]
    return [m for m in parsed if subject_part in m["Subject"]]


def ics_attachment(message) -> tuple[str, str]:
    (part,) = [p for p in message.iter_attachments() if p.get_filename() == "rendez-vous.ics"]
    return part.get_content_type(), part.get_content()


def test_phone_journey_from_the_agenda_to_the_email(member, account, run_tasks, smtp_server):
    agenda = member.get("/agenda/")
    assert agenda.status_code == 200
    assert "Vous n’avez aucun rendez-vous à venir." in page(agenda)
    assert 'href="/agenda/nouveau/"' in page(agenda)

    # 1. The motive: a plain GET form to the next step, each motive with its description.
    step1 = page(member.get("/agenda/nouveau/"))
    assert '<form method="get" action="/agenda/nouveau/type/"' in step1
    assert f'name="motif" value="{MOTIVE}"' in step1
    assert "Comprendre le calcul et le versement de vos indemnités journalières" in step1
    assert "Étape 1 sur 4" in step1

    # 2. The type: phone or on site, with the account's number.
    step2 = page(member.get("/agenda/nouveau/type/", {"motif": MOTIVE}))
    assert '<form method="get" action="/agenda/nouveau/lieu/"' in step2
    assert 'value="phone"' in step2 and 'value="on_site"' in step2
    assert "Entretien téléphonique" in step2 and "Sur place" in step2
    assert "06 12 34 56 78" in step2

    # A phone interview needs no site: straight on to the week.
    to_week = member.get("/agenda/nouveau/lieu/", {"motif": MOTIVE, "type": "phone"})
    assert to_week.status_code == 302
    assert to_week["Location"] == f"/agenda/nouveau/creneau/?motif={MOTIVE}&type=phone"

    # 3. The week: the earliest slot highlighted, times as plain links.
    week = member.get(to_week["Location"])
    text = page(week)
    assert week.status_code == 200
    assert "Semaine du lundi 2 novembre au dimanche 8 novembre 2026" in text
    assert "Premier créneau disponible" in text
    assert "mardi 3 novembre 2026 à 09:00" in text
    assert "09:00 — premier créneau disponible" in text
    earliest = week.context["week"]["earliest"]["url"]
    assert earliest.startswith("/agenda/nouveau/confirmer/?")
    assert f'href="{earliest.replace("&", "&amp;")}"' in text

    # 4. The recap and the message.
    confirm = member.get(earliest)
    text = page(confirm)
    assert confirm.status_code == 200
    assert "mardi 3 novembre 2026, de 09:00 à 09:20" in text
    assert "06 12 34 56 78" in text
    assert 'href="/mon-compte/mobile/"' in text
    assert '<form method="post"' in text and "csrfmiddlewaretoken" in text
    assert '<textarea name="message"' in text and "500 caractères au maximum" in text
    assert "Étape 4 sur 4" in text

    done = member.post(earliest, {"message": "Mon employeur n’a pas reçu l’attestation."})
    assert done.status_code == 302
    appointment = Appointment.objects.get(member=account.member)
    assert done["Location"] == f"/agenda/{appointment.public_id}/confirmation/"
    assert appointment.channel == "phone"
    assert appointment.starts_at == utc(FIRST_SLOT)
    assert appointment.message == "Mon employeur n’a pas reçu l’attestation."

    # 5. The confirmation page, the .ics, the email with its attachment.
    confirmed = page(member.get(done["Location"]))
    assert "Votre rendez-vous est confirmé" in confirmed
    assert account.email in confirmed
    assert f'href="/agenda/{appointment.public_id}/rendez-vous.ics"' in confirmed
    assert "Un conseiller vous appellera au 06 12 34 56 78." in confirmed

    invitation = member.get(f"/agenda/{appointment.public_id}/rendez-vous.ics")
    assert invitation.status_code == 200
    assert invitation["Content-Type"] == ics.CONTENT_TYPE_REQUEST
    assert 'filename="rendez-vous.ics"' in invitation["Content-Disposition"]
    body = page(invitation)
    assert "METHOD:REQUEST" in body and "DTSTART:20261103T080000Z" in body

    (queued,) = OutboundMessage.objects.filter(template="appointment_booked")
    assert queued.recipient == account.email
    assert queued.attachment_name == "rendez-vous.ics"
    assert queued.attachment_type == ics.CONTENT_TYPE_REQUEST
    run_tasks()
    (sent,) = sent_emails(smtp_server, "est confirmé")
    assert sent["To"] == account.email
    assert (
        "un conseiller vous appellera au 06 12 34 56 78" in sent.get_body(("plain",)).get_content()
    )
    content_type, content = ics_attachment(sent)
    assert content_type == "text/calendar"
    assert "DTSTART:20261103T080000Z" in content and "METHOD:REQUEST" in content

    # Mon agenda now lists it, with what to do.
    text = page(member.get("/agenda/"))
    assert "mardi 3 novembre 2026 à 09:00" in text
    assert "Arrêt de travail (nouvelle demande ou en cours) / indemnités journalières" in text
    assert "Un conseiller vous appellera au 06 12 34 56 78." in text
    assert "Mon employeur n’a pas reçu l’attestation." in text
    assert f'href="/agenda/{appointment.public_id}/annuler/"' in text
    assert f'href="/agenda/{appointment.public_id}/deplacer/"' in text
    assert AuditEntry.objects.filter(action="appointment.booked").count() == 1


def test_on_site_journey_with_the_site_and_its_opening_hours(
    member, account, site, run_tasks, smtp_server
):
    other = make_site(site.cpam, name="Accueil Paris 15e")
    make_advisor(site.cpam, site=other, ranges=((time(14, 0), time(16, 0)),))
    step = page(member.get("/agenda/nouveau/lieu/", {"motif": MOTIVE, "type": "on_site"}))
    assert '<form method="get" action="/agenda/nouveau/creneau/"' in step
    assert "Accueil Paris 11e" in step and "Accueil Paris 15e" in step
    assert "21 rue Georges Auric, 75019 Paris" in step
    assert "Horaires d’ouverture : Du lundi au vendredi, 8 h 30 – 17 h" in step

    week = member.get(
        "/agenda/nouveau/creneau/", {"motif": MOTIVE, "type": "on_site", "lieu": other.pk}
    )
    assert week.status_code == 200
    # Only the chosen site's slots: the other advisor receives 14:00–16:00.
    earliest = week.context["week"]["earliest"]
    assert earliest["start"] == utc(paris(2026, 11, 3, 14, 0))
    assert "Accueil Paris 15e" in page(week)

    confirm = page(member.get(earliest["url"]))
    assert "Accueil Paris 15e, 21 rue Georges Auric, 75019 Paris" in confirm
    assert "Présentez-vous à l’accueil" in confirm
    done = member.post(earliest["url"], {"message": ""})
    assert done.status_code == 302
    appointment = Appointment.objects.get(member=account.member)
    assert appointment.channel == "on_site" and appointment.site == other
    text = page(member.get("/agenda/"))
    assert "Accueil Paris 15e, 21 rue Georges Auric, 75019 Paris" in text
    assert "vous appellera" not in text
    run_tasks()
    (sent,) = sent_emails(smtp_server, "est confirmé")
    assert "Accueil Paris 15e" in sent.get_body(("plain",)).get_content()
    assert "LOCATION:Accueil Paris 15e" in ics_attachment(sent)[1]


def test_the_steps_keep_the_choices_for_the_back_links(member, site):
    week = member.get(
        "/agenda/nouveau/creneau/", {"motif": MOTIVE, "type": "on_site", "lieu": site.pk}
    )
    links = week.context["links"]
    assert links["motive"] == f"/agenda/nouveau/?motif={MOTIVE}&type=on_site&lieu={site.pk}"
    # Going back to a step shows the choice already made.
    step1 = page(member.get(links["motive"]))
    assert f'value="{MOTIVE}" checked' in step1
    step2 = page(member.get(links["channel"]))
    assert 'value="on_site" checked' in step2
    step_site = page(member.get(links["site"]))
    assert f'value="{site.pk}" checked' in step_site


def test_the_funds_cancellation_link_preselects_the_motive(member):
    response = member.get("/agenda/nouveau/", {"motif": "css"})
    assert response.status_code == 200
    text = page(response)
    assert 'value="css" checked' in text
    assert text.count(" checked") == 1


def test_the_confirmation_post_needs_the_csrf_token(account, now, advisor):
    browser = login(Client(enforce_csrf_checks=True), account)
    url = browser.get("/agenda/nouveau/creneau/", {"motif": MOTIVE, "type": "phone"}).context[
        "week"
    ]["earliest"]["url"]
    form = page(browser.get(url))
    assert browser.post(url, {"message": ""}).status_code == 403
    assert not Appointment.objects.exists()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    assert browser.post(url, {"message": "", "csrfmiddlewaretoken": token}).status_code == 302
    assert Appointment.objects.count() == 1


def test_pages_work_without_javascript(member, account):
    """Every step is a plain form or link: no script in the page, no button that needs one."""
    appointment = book(account)
    urls = [
        "/agenda/",
        "/agenda/nouveau/",
        f"/agenda/nouveau/type/?motif={MOTIVE}",
        f"/agenda/nouveau/lieu/?motif={MOTIVE}&type=on_site",
        f"/agenda/nouveau/creneau/?motif={MOTIVE}&type=phone",
        f"/agenda/{appointment.public_id}/confirmation/",
        f"/agenda/{appointment.public_id}/annuler/",
        f"/agenda/{appointment.public_id}/deplacer/",
    ]
    for url in urls:
        text = page(member.get(url))
        main = text[text.index("<main") : text.index("</main>")]
        assert "<script" not in main and '<button type="button"' not in main, url
        assert "onclick" not in main and "javascript:" not in main
        for form in re.findall(r"<form[^>]*>", main):
            assert 'method="get"' in form or 'method="post"' in form, (url, form)


# --- Mon agenda -------------------------------------------------------------------------------


def test_agenda_lists_upcoming_then_past_and_cancelled_with_their_status(
    member, account, advisor, cpam
):
    upcoming = book(account, start=paris(2026, 11, 5, 10, 0))
    fund_cancelled = book(account, start=paris(2026, 11, 4, 9, 0), motive_code="css")
    staff = advisor.staff
    services.appointment_cancel_by_fund(
        staff=staff, appointment=fund_cancelled, reason="Fermeture exceptionnelle de l’accueil."
    )
    text = page(member.get("/agenda/"))
    assert text.index("Mes rendez-vous à venir") < text.index("jeudi 5 novembre 2026 à 10:00")
    past_part = text[text.index("Mes rendez-vous passés ou annulés") :]
    assert "mercredi 4 novembre 2026 à 09:00" in past_part
    assert "Annulé par la caisse" in past_part
    assert "Fermeture exceptionnelle de l’accueil." in past_part
    assert 'href="/agenda/nouveau/?motif=css"' in past_part
    assert f"/agenda/{fund_cancelled.public_id}/annuler/" not in text
    assert f"/agenda/{upcoming.public_id}/annuler/" in text
    assert 'href="/agenda/nouveau/"' in text

    with time_machine.travel(paris(2026, 11, 6, 9, 0), tick=False):
        login(member, account)
        text = page(member.get("/agenda/"))
    past_part = text[text.index("Mes rendez-vous passés ou annulés") :]
    assert "jeudi 5 novembre 2026 à 10:00" in past_part and "Passé" in past_part
    assert "Vous n’avez aucun rendez-vous à venir." in text


def test_less_than_two_hours_before_the_agenda_says_to_call(member, account):
    appointment = book(account, start=FIRST_SLOT)
    with time_machine.travel(paris(2026, 11, 3, 7, 1), tick=False):
        login(member, account)
        text = page(member.get("/agenda/"))
    assert (
        "Moins de 2 heures avant : pour annuler ou déplacer ce rendez-vous, appelez le 36 46."
        in text
    )
    assert f"/agenda/{appointment.public_id}/annuler/" not in text
    assert f"/agenda/{appointment.public_id}/deplacer/" not in text


def test_agenda_queries_do_not_grow_with_the_appointments(
    member, account, django_assert_num_queries
):
    book(account, start=FIRST_SLOT)
    member.get("/agenda/")
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        member.get("/agenda/")
    book(account, start=paris(2026, 11, 4, 9, 0), motive_code="css")
    book(account, start=paris(2026, 11, 5, 9, 0), motive_code="at-mp")
    with django_assert_num_queries(len(one)):
        member.get("/agenda/")


def test_the_space_links_to_the_agenda(member):
    text = page(member.get("/mon-espace/"))
    assert 'href="/agenda/"' in text and "Mon agenda" in text


# --- cancel ---------------------------------------------------------------------------------


def test_cancel_asks_then_cancels_and_emails_the_cancellation(member, account, run_tasks):
    appointment = book(account, start=FIRST_SLOT)
    url = f"/agenda/{appointment.public_id}/annuler/"
    ask = page(member.get(url))
    assert "Voulez-vous vraiment annuler ce rendez-vous ?" in ask
    assert f'<form method="post" action="{url}">' in ask
    done = member.post(url)
    assert done.status_code == 302 and done["Location"] == "/agenda/"
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED_BY_MEMBER
    assert not AdvisorTimeLock.objects.filter(appointment=appointment).exists()
    text = page(member.get("/agenda/"))
    assert "Votre rendez-vous du mardi 3 novembre 2026 à 09:00 est annulé." in text
    assert "Annulé par vous" in text
    invitation = member.get(f"/agenda/{appointment.public_id}/rendez-vous.ics")
    assert invitation["Content-Type"] == ics.CONTENT_TYPE_CANCEL
    (queued,) = OutboundMessage.objects.filter(template="appointment_cancelled")
    assert queued.attachment_type == ics.CONTENT_TYPE_CANCEL
    assert "METHOD:CANCEL" in queued.attachment_body
    # The confirmation page of a cancelled appointment leads back to the agenda.
    assert member.get(f"/agenda/{appointment.public_id}/confirmation/")["Location"] == "/agenda/"


def test_cancel_until_two_hours_before_and_not_after(member, account):
    appointment = book(account, start=FIRST_SLOT)
    url = f"/agenda/{appointment.public_id}/annuler/"
    with time_machine.travel(paris(2026, 11, 3, 7, 1), tick=False):
        login(member, account)
        refused = member.get(url)
        assert refused.status_code == 200
        assert "moins de 2 heures" in page(refused) and "36 46" in page(refused)
        assert "<form" not in page(refused).split('id="contenu"')[1]
        late = member.post(url)
        assert late.status_code == 409
        assert "Ce rendez-vous a lieu dans moins de 2 heures" in page(late)
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.BOOKED
    with time_machine.travel(paris(2026, 11, 3, 7, 0), tick=False):
        login(member, account)
        assert member.post(url).status_code == 302
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED_BY_MEMBER


def test_cancel_twice_says_it_is_no_longer_open(member, account):
    appointment = book(account, start=FIRST_SLOT)
    url = f"/agenda/{appointment.public_id}/annuler/"
    assert member.post(url).status_code == 302
    again = member.post(url)
    assert again.status_code == 409
    assert "Ce rendez-vous est annulé ou déjà passé" in page(again)
    assert "Ce rendez-vous est annulé ou déjà passé" in page(member.get(url))
    assert OutboundMessage.objects.filter(template="appointment_cancelled").count() == 1


# --- reschedule -----------------------------------------------------------------------------


def test_reschedule_shows_the_week_then_moves_it(member, account, run_tasks):
    appointment = book(account, start=FIRST_SLOT, message="Mon message")
    week = member.get(f"/agenda/{appointment.public_id}/deplacer/")
    assert week.status_code == 200
    text = page(week)
    assert "Votre rendez-vous actuel" in text and "mardi 3 novembre 2026, de 09:00 à 09:20" in text
    starts = [s["start"] for d in week.context["week"]["days"] for s in d["slots"]]
    assert utc(FIRST_SLOT) not in starts  # its own time is no move
    assert utc(paris(2026, 11, 3, 9, 20)) in starts
    target = next(
        s["url"]
        for d in week.context["week"]["days"]
        for s in d["slots"]
        if s["start"] == utc(paris(2026, 11, 4, 10, 0))
    )
    assert target.startswith(f"/agenda/{appointment.public_id}/deplacer/confirmer/?creneau=")
    confirm = page(member.get(target))
    assert "mercredi 4 novembre 2026, de 10:00 à 10:20" in confirm
    assert "mardi 3 novembre 2026, de 09:00 à 09:20" in confirm
    moved = member.post(target)
    assert moved.status_code == 302
    assert moved["Location"] == f"/agenda/{appointment.public_id}/confirmation/?deplace=1"
    assert "Votre rendez-vous est déplacé" in page(member.get(moved["Location"]))
    appointment.refresh_from_db()
    assert appointment.starts_at == utc(paris(2026, 11, 4, 10, 0))
    assert appointment.sequence == 1 and appointment.message == "Mon message"
    (queued,) = OutboundMessage.objects.filter(template="appointment_rescheduled")
    assert queued.attachment_name == "rendez-vous.ics" and "SEQUENCE:1" in queued.attachment_body


def test_reschedule_on_site_stays_at_the_same_site(member, account, site, cpam):
    other = make_site(cpam, name="Accueil Paris 15e")
    make_advisor(cpam, site=other, ranges=((time(14, 0), time(16, 0)),))
    appointment = book(account, start=FIRST_SLOT, channel="on_site", site_id=site.pk)
    week = member.get(f"/agenda/{appointment.public_id}/deplacer/")
    starts = [
        s["start"].astimezone(NOW.tzinfo).time()
        for d in week.context["week"]["days"]
        for s in d["slots"]
    ]
    assert starts and all(t < time(12, 0) for t in starts)


def test_a_failed_reschedule_leaves_the_appointment_intact(member, account, cpam):
    appointment = book(account, start=FIRST_SLOT)
    target_start = paris(2026, 11, 4, 10, 0)
    target = slot_id_at(account, target_start)
    url = f"/agenda/{appointment.public_id}/deplacer/confirmer/?creneau={target}"
    assert member.get(url).status_code == 200
    # Someone else takes the new slot meanwhile.
    rival = AccountFactory(member=MemberFactory(cpam=cpam))
    services.appointment_book(account=rival, slot_id=target, motive_code=MOTIVE, channel="phone")
    locks_before = sorted(
        AdvisorTimeLock.objects.filter(appointment=appointment).values_list("cell", flat=True)
    )
    failed = member.post(url)
    assert failed.status_code == 409
    text = page(failed)
    assert "Ce créneau n’est plus disponible" in text
    assert "mercredi 4 novembre 2026 à 09:40" in text or "mercredi 4 novembre 2026 à 10:20" in text
    assert f"/agenda/{appointment.public_id}/deplacer/confirmer/?creneau=" in text
    appointment.refresh_from_db()
    assert appointment.starts_at == utc(FIRST_SLOT)
    assert appointment.status == Appointment.Status.BOOKED and appointment.sequence == 0
    locks_after = sorted(
        AdvisorTimeLock.objects.filter(appointment=appointment).values_list("cell", flat=True)
    )
    assert locks_after == locks_before and len(locks_after) == 4
    assert not OutboundMessage.objects.filter(template="appointment_rescheduled").exists()


def test_reschedule_refused_less_than_two_hours_before(member, account):
    appointment = book(account, start=FIRST_SLOT)
    target = slot_id_at(account, paris(2026, 11, 4, 10, 0))
    with time_machine.travel(paris(2026, 11, 3, 7, 30), tick=False):
        login(member, account)
        week = member.get(f"/agenda/{appointment.public_id}/deplacer/")
        assert "moins de 2 heures" in page(week)
        assert "week" not in week.context
        late = member.post(f"/agenda/{appointment.public_id}/deplacer/confirmer/?creneau={target}")
        assert late.status_code == 409
        assert "Ce rendez-vous a lieu dans moins de 2 heures" in page(late)
    appointment.refresh_from_db()
    assert appointment.starts_at == utc(FIRST_SLOT) and appointment.sequence == 0


def test_reschedule_of_a_cancelled_appointment_is_refused(member, account):
    appointment = book(account, start=FIRST_SLOT)
    services.appointment_cancel(account=account, appointment=appointment)
    target = slot_id_at(account, paris(2026, 11, 4, 10, 0))
    assert "Ce rendez-vous est annulé ou déjà passé" in page(
        member.get(f"/agenda/{appointment.public_id}/deplacer/")
    )
    refused = member.post(f"/agenda/{appointment.public_id}/deplacer/confirmer/?creneau={target}")
    assert refused.status_code == 409
    assert "Ce rendez-vous est annulé ou déjà passé" in page(refused)
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED_BY_MEMBER


# --- another member's appointment -------------------------------------------------------------


def test_another_members_appointment_is_a_404_on_every_route(member, account, cpam):
    stranger = AccountFactory(member=MemberFactory(cpam=cpam))
    theirs = book(stranger, start=FIRST_SLOT)
    target = slot_id_at(stranger, paris(2026, 11, 4, 10, 0))
    routes = [
        ("get", f"/agenda/{theirs.public_id}/confirmation/"),
        ("get", f"/agenda/{theirs.public_id}/rendez-vous.ics"),
        ("get", f"/agenda/{theirs.public_id}/annuler/"),
        ("post", f"/agenda/{theirs.public_id}/annuler/"),
        ("get", f"/agenda/{theirs.public_id}/deplacer/"),
        ("get", f"/agenda/{theirs.public_id}/deplacer/confirmer/?creneau={target}"),
        ("post", f"/agenda/{theirs.public_id}/deplacer/confirmer/?creneau={target}"),
    ]
    for method, url in routes:
        assert getattr(member, method)(url).status_code == 404, url
    theirs.refresh_from_db()
    assert theirs.status == Appointment.Status.BOOKED and theirs.starts_at == utc(FIRST_SLOT)
    assert str(theirs.public_id) not in page(member.get("/agenda/"))


@pytest.mark.parametrize(
    "public_id",
    ["nope", "12345", "00000000-0000-0000-0000-000000000000", "%00", "x" * 300, "1%20or%201=1"],
)
def test_unknown_or_malformed_ids_are_a_404(member, public_id):
    for suffix in (
        "confirmation/",
        "rendez-vous.ics",
        "annuler/",
        "deplacer/",
        "deplacer/confirmer/",
    ):
        assert member.get(f"/agenda/{public_id}/{suffix}").status_code == 404
    assert member.post(f"/agenda/{public_id}/annuler/").status_code == 404


def test_the_agenda_needs_a_login(client, db):
    for url in ("/agenda/", "/agenda/nouveau/", "/agenda/nouveau/creneau/?motif=css&type=phone"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/connexion/")
