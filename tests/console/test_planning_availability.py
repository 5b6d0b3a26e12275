"""The supervisor's availability pages: advisors, weekly opening ranges, absences."""

from datetime import date, datetime, time
from datetime import timezone as dt_timezone

import pytest
import time_machine

from portal.appointments.models import Absence, Appointment, OpeningRange
from portal.audit.models import AuditEntry
from portal.members.models import Cpam
from portal.notifications.models import OutboundMessage
from tests.console.conftest import make_member_account
from tests.console.test_planning_helpers import (
    NOW,
    book,
    logged_in,
    make_advisor,
    make_site,
    make_staff,
    mask,
    paris,
    slot_starts,
)
from tests.factories import AccountFactory, CpamFactory, MemberFactory

UTC = dt_timezone.utc  # datetime.UTC needs Python 3.11

ADVISORS = "/conseiller/planning/conseillers/"
WEDNESDAY = date(2026, 11, 4)


@pytest.fixture
def now():
    with time_machine.travel(NOW, tick=False) as clock:
        yield clock


@pytest.fixture
def cpam(db):
    return CpamFactory()


@pytest.fixture
def advisor(now, cpam):
    advisor = make_advisor(cpam)
    advisor.staff.first_name, advisor.staff.last_name = "Claire", "Durand"
    advisor.staff.save()
    return advisor


@pytest.fixture
def supervisor(now, cpam):
    return logged_in(make_staff("supervisor", cpam=cpam))


def availability(advisor) -> str:
    return f"{ADVISORS}{advisor.pk}/"


# --- the list of advisors ------------------------------------------------------------------


def test_the_supervisor_lists_the_cpams_advisors_with_motives_and_channels(
    advisor, supervisor, cpam
):
    from portal.appointments.models import Motive

    phone_only = make_advisor(
        cpam,
        site=make_site(cpam, "Accueil Paris 15e"),
        motives=Motive.objects.filter(code="css"),
        on_site=False,
    )
    stranger = make_advisor(Cpam.objects.create(code="131", name="Bouches-du-Rhône"))
    html = supervisor.get(ADVISORS).content.decode()
    assert "Claire Durand" in html
    assert availability(advisor) in html and availability(phone_only) in html
    assert availability(stranger) not in html
    assert "Téléphone et sur place" in html
    assert "Accueil Paris 15e" in html
    assert "Demande de Complémentaire santé solidaire (CSS)" in html
    assert "Frontaliers suisses" in html  # all motives for Claire
    # The phone-only advisor's row: one motive, one channel.
    row = html[html.index(availability(phone_only)) - 1500 : html.index(availability(phone_only))]
    assert "Frontaliers suisses" not in row
    assert "<td>Téléphone</td>" in row


def test_the_planning_links_to_it_for_supervisors(advisor, supervisor):
    html = supervisor.get("/conseiller/planning/").content.decode()
    assert f'href="{ADVISORS}"' in html
    assert f'href="{availability(advisor)}"' in html


# --- weekly opening ranges -----------------------------------------------------------------


def test_adding_a_range_opens_slots_and_deleting_it_closes_them(advisor, supervisor):
    assert [t.time() for t in slot_starts(advisor, WEDNESDAY) if t.hour >= 14] == []
    response = supervisor.post(
        availability(advisor) + "plages/",
        {"weekday": "2", "start_time": "14:00", "end_time": "15:00", "channel": ""},
    )
    assert response.status_code == 302
    assert response["Location"] == availability(advisor) + "#plages"
    afternoon = [t.time() for t in slot_starts(advisor, WEDNESDAY) if t.hour >= 14]
    assert afternoon == [time(14, 0), time(14, 20), time(14, 40)]
    # Only on Wednesdays.
    assert [t for t in slot_starts(advisor, date(2026, 11, 5)) if t.hour >= 14] == []
    opening = OpeningRange.objects.get(advisor=advisor, weekday=2, start_time=time(14, 0))
    entry = AuditEntry.objects.filter(action="appointment.range.added").latest("seq")
    assert entry.data["range"] == opening.pk
    html = supervisor.get(response["Location"]).content.decode()
    assert "Plage d’ouverture ajoutée." in html
    assert "Mercredi" in html and "14:00–15:00" in html

    response = supervisor.post(availability(advisor) + f"plages/{opening.pk}/suppression/")
    assert response.status_code == 302
    assert not OpeningRange.objects.filter(pk=opening.pk).exists()
    assert [t for t in slot_starts(advisor, WEDNESDAY) if t.hour >= 14] == []
    assert AuditEntry.objects.filter(action="appointment.range.deleted").exists()


def test_a_range_for_one_channel_with_a_validity(advisor, supervisor):
    response = supervisor.post(
        availability(advisor) + "plages/",
        {
            "weekday": "2",
            "start_time": "14:00",
            "end_time": "15:00",
            "channel": "on_site",
            "valid_from": "2026-11-11",
            "valid_until": "2026-12-31",
        },
    )
    assert response.status_code == 302
    opening = OpeningRange.objects.get(advisor=advisor, weekday=2, start_time=time(14, 0))
    assert (opening.channel, opening.valid_from, opening.valid_until) == (
        "on_site",
        date(2026, 11, 11),
        date(2026, 12, 31),
    )
    # Not yet valid on the 4th, and for on-site interviews only.
    assert [t for t in slot_starts(advisor, WEDNESDAY, channel="on_site") if t.hour >= 14] == []
    later = date(2026, 11, 18)
    assert [t.hour for t in slot_starts(advisor, later, channel="on_site") if t.hour >= 14]
    assert [t for t in slot_starts(advisor, later, channel="phone") if t.hour >= 14] == []
    html = supervisor.get(availability(advisor)).content.decode()
    assert "du 11/11/2026 au 31/12/2026" in html


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"weekday": "2", "start_time": "15:00", "end_time": "14:00"}, "après l’heure de début"),
        ({"weekday": "2", "start_time": "14:00", "end_time": "14:00"}, "après l’heure de début"),
        ({"weekday": "9", "start_time": "14:00", "end_time": "15:00"}, "Choisissez un jour"),
        ({"weekday": "lundi", "start_time": "14:00", "end_time": "15:00"}, "Choisissez un jour"),
        ({"weekday": "2", "start_time": "14:03", "end_time": "15:00"}, "à 5 minutes près"),
        ({"weekday": "2", "start_time": "25:00", "end_time": "26:00"}, "heure valide"),
        ({"weekday": "2", "start_time": "１４:００", "end_time": "15:00"}, "heure valide"),
        ({"weekday": "2", "start_time": "14:00\x00", "end_time": "15:00"}, "heure valide"),
        ({"weekday": "2"}, "Ce champ est obligatoire"),
        (
            {"weekday": "2", "start_time": "14:00", "end_time": "15:00", "channel": "fax"},
            "type d’entretien",
        ),
        (
            {
                "weekday": "2",
                "start_time": "14:00",
                "end_time": "15:00",
                "valid_from": "2026-12-01",
                "valid_until": "2026-11-01",
            },
            "après la date de début",
        ),
        (
            {
                "weekday": "2",
                "start_time": "14:00",
                "end_time": "15:00",
                "valid_from": "31/02/2026",
            },
            "date valide",
        ),
        (
            {
                "weekday": "2",
                "start_time": "14:00",
                "end_time": "15:00",
                "valid_until": "9999-12-31",
            },
            "Saisissez une date entre",
        ),
    ],
)
def test_a_bad_range_is_a_clear_message(advisor, supervisor, data, message):
    response = supervisor.post(availability(advisor) + "plages/", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not OpeningRange.objects.filter(
        advisor=advisor, weekday=2, start_time__gte=time(13)
    ).exists()


def test_a_channel_the_advisor_does_not_serve_is_not_offered(now, cpam, supervisor):
    phone_only = make_advisor(cpam, on_site=False)
    html = supervisor.get(availability(phone_only)).content.decode()
    assert 'value="phone"' in html and 'value="on_site"' not in html
    response = supervisor.post(
        availability(phone_only) + "plages/",
        {"weekday": "2", "start_time": "14:00", "end_time": "15:00", "channel": "on_site"},
    )
    assert response.status_code == 400


def test_deleting_a_range_keeps_its_booked_appointments(advisor, supervisor, cpam):
    account = AccountFactory(member=MemberFactory(cpam=cpam))
    appointment = book(account, advisor, paris(2026, 11, 4, 9, 0))
    opening = OpeningRange.objects.get(advisor=advisor, weekday=2)
    supervisor.post(availability(advisor) + f"plages/{opening.pk}/suppression/")
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.BOOKED
    assert slot_starts(advisor, WEDNESDAY) == []


# --- absences --------------------------------------------------------------------------------


def add_absence(client, advisor, start, end, reason=""):
    return client.post(
        availability(advisor) + "absences/",
        {"absence_start": start, "absence_end": end, "absence_reason": reason},
    )


def test_an_absence_over_booked_appointments_cancels_them_and_lists_them(advisor, supervisor, cpam):
    marie = make_member_account(cpam)
    paul = AccountFactory(member=MemberFactory(cpam=cpam, first_names="Paul", last_name="Lambert"))
    lina = AccountFactory(member=MemberFactory(cpam=cpam, first_names="Lina", last_name="Ferrand"))
    inside_1 = book(marie, advisor, paris(2026, 11, 4, 9, 20))
    inside_2 = book(paul, advisor, paris(2026, 11, 4, 10, 0), motive_code="css", channel="on_site")
    outside = book(lina, advisor, paris(2026, 11, 4, 11, 0))

    response = add_absence(supervisor, advisor, "2026-11-04T09:00", "2026-11-04T10:30", "Formation")
    assert response.status_code == 302
    assert response["Location"] == availability(advisor) + "#annules"

    for appointment in (inside_1, inside_2, outside):
        appointment.refresh_from_db()
    assert inside_1.status == inside_2.status == Appointment.Status.CANCELLED_BY_FUND
    assert outside.status == Appointment.Status.BOOKED
    # Both members told, with the nearest free slots; not the third.
    emails = OutboundMessage.objects.filter(template="appointment_cancelled_by_fund")
    assert {e.member_id for e in emails} == {marie.member_id, paul.member_id}
    for email in emails:
        assert "Votre conseiller est absent à cette date." in email.body_text
        assert "créneaux libres les plus proches" in email.body_text
    # The absence is taken off the free slots.
    starts = slot_starts(advisor, WEDNESDAY)
    assert not [t for t in starts if time(9, 0) <= t.time() < time(10, 30)]
    assert time(10, 40) in [t.time() for t in starts]

    html = supervisor.get(response["Location"]).content.decode()
    assert "2 rendez-vous pris sur cette période ont été annulés" in html
    assert "Rendez-vous annulés par l’absence du 04/11/2026 09:00 au 04/11/2026 10:30" in html
    section = html[html.index('id="annules"') : html.index('id="plages"')]
    assert section.index("Quenardel") < section.index("Lambert")  # in time order
    assert "Marie-Hélène Louise Quenardel" in section and "Paul Lambert" in section
    assert mask(marie.member.nir) in section and mask(paul.member.nir) in section
    assert "mercredi 4 novembre 2026, 09:20" in section
    assert "mercredi 4 novembre 2026, 10:00" in section
    assert "Arrêt de travail (nouvelle demande ou en cours) / indemnités journalières" in section
    assert "Demande de Complémentaire santé solidaire (CSS)" in section
    assert "Ferrand" not in section
    assert marie.member.nir[:9] not in html and marie.member.iban not in html
    # Listed again on a later visit (the follow-up), and the absence itself.
    html = supervisor.get(availability(advisor)).content.decode()
    assert "Rendez-vous annulés par l’absence" in html
    assert "Formation" in html


def test_an_absence_without_appointments(advisor, supervisor):
    response = add_absence(supervisor, advisor, "2026-11-04T09:00", "2026-11-04T12:00")
    assert response.status_code == 302
    assert response["Location"] == availability(advisor) + "#absences"
    html = supervisor.get(response["Location"]).content.decode()
    assert "Aucun rendez-vous n’était pris sur cette période." in html
    assert 'id="annules"' not in html
    assert slot_starts(advisor, WEDNESDAY) == []
    assert AuditEntry.objects.filter(action="appointment.absence.added").exists()


def test_absence_times_are_the_offices_wall_clock(now, supervisor, cpam):
    advisor = make_advisor(cpam)
    add_absence(supervisor, advisor, "04/11/2026 09:00", "04/11/2026 10:00")
    absence = Absence.objects.get(advisor=advisor)
    assert absence.starts_at == datetime(2026, 11, 4, 8, 0, tzinfo=UTC)  # Paris is UTC+1
    assert absence.ends_at == datetime(2026, 11, 4, 9, 0, tzinfo=UTC)


def test_absence_times_overseas(db):
    with time_machine.travel(NOW, tick=False):
        reunion = Cpam.objects.create(code="974", name="La Réunion")
        advisor = make_advisor(reunion)
        client = logged_in(make_staff("supervisor", cpam=reunion))
        add_absence(client, advisor, "2026-11-04T09:00", "2026-11-04T10:00")
        html = client.get(availability(advisor)).content.decode()
    absence = Absence.objects.get(advisor=advisor)
    assert absence.starts_at == datetime(2026, 11, 4, 5, 0, tzinfo=UTC)  # UTC+4
    assert "09:00" in html and "Indian/Reunion" in html


def test_deleting_an_absence_reopens_the_slots(advisor, supervisor):
    add_absence(supervisor, advisor, "2026-11-04T09:00", "2026-11-04T12:00")
    absence = Absence.objects.get(advisor=advisor)
    response = supervisor.post(availability(advisor) + f"absences/{absence.pk}/suppression/")
    assert response.status_code == 302
    assert not Absence.objects.exists()
    assert slot_starts(advisor, WEDNESDAY)
    assert AuditEntry.objects.filter(action="appointment.absence.deleted").exists()
    assert "Absence supprimée." in supervisor.get(response["Location"]).content.decode()


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2026-11-04T12:00", "2026-11-04T09:00", "La fin de l’absence doit être après son début."),
        ("2026-11-04T09:00", "2026-11-04T09:00", "La fin de l’absence doit être après son début."),
        ("", "2026-11-04T09:00", "Ce champ est obligatoire"),
        ("demain", "2026-11-04T09:00", "Saisissez une date et une heure valides"),
        ("2026-11-31T09:00", "2026-12-01T09:00", "Saisissez une date et une heure valides"),
        ("0001-01-01T00:00", "2026-11-04T09:00", "Saisissez une date entre"),
        ("2026-11-04T09:00", "9999-12-31T23:59", "Saisissez une date entre"),
        ("２０２６-11-04T09:00", "2026-11-04T10:00", "Saisissez une date et une heure valides"),
        ("2026-11-04T09:00\x00", "2026-11-04T10:00", "Saisissez une date et une heure valides"),
        ("x" * 10000, "2026-11-04T10:00", "Saisissez une date et une heure valides"),
        # The clocks go from 02:00 to 03:00 on 28 March 2027 in Paris.
        ("2027-03-28T02:30", "2027-03-28T12:00", "Cette heure n’existe pas ce jour-là"),
    ],
)
def test_a_bad_absence_is_a_clear_message(advisor, supervisor, start, end, message):
    response = add_absence(supervisor, advisor, start, end)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Absence.objects.exists()


def test_a_reason_too_long_is_refused(advisor, supervisor):
    response = add_absence(supervisor, advisor, "2026-11-04T09:00", "2026-11-04T10:00", "x" * 201)
    assert response.status_code == 400
    assert "200 caractères" in response.content.decode()


# --- scope -----------------------------------------------------------------------------------


def test_another_cpams_advisor_is_404_everywhere(now, supervisor, advisor):
    stranger = make_advisor(Cpam.objects.create(code="131", name="Bouches-du-Rhône"))
    opening = stranger.ranges.first()
    absence = Absence.objects.create(
        advisor=stranger,
        starts_at=paris(2026, 11, 4, 9),
        ends_at=paris(2026, 11, 4, 10),
        created_by="test",
    )
    base = availability(stranger)
    assert supervisor.get(base).status_code == 404
    assert (
        supervisor.post(
            base + "plages/", {"weekday": "2", "start_time": "14:00", "end_time": "15:00"}
        ).status_code
        == 404
    )
    assert supervisor.post(base + f"plages/{opening.pk}/suppression/").status_code == 404
    assert (
        supervisor.post(
            base + "absences/",
            {"absence_start": "2026-11-04T09:00", "absence_end": "2026-11-04T10:00"},
        ).status_code
        == 404
    )
    assert supervisor.post(base + f"absences/{absence.pk}/suppression/").status_code == 404
    # Nor through one's own advisor's address.
    own = availability(advisor)
    assert supervisor.post(own + f"plages/{opening.pk}/suppression/").status_code == 404
    assert supervisor.post(own + f"absences/{absence.pk}/suppression/").status_code == 404
    assert OpeningRange.objects.filter(pk=opening.pk).exists()
    assert Absence.objects.filter(pk=absence.pk).exists()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", f"{ADVISORS}0/"),
        ("get", f"{ADVISORS}99999999999999999999999/"),
        ("get", f"{ADVISORS}-1/"),
        ("get", f"{ADVISORS}abc/"),
        ("post", f"{ADVISORS}99999999999999999999999/absences/"),
        ("post", f"{ADVISORS}{{advisor}}/plages/99999999999999999999999/suppression/"),
        ("post", f"{ADVISORS}{{advisor}}/absences/99999999999999999999999/suppression/"),
    ],
)
def test_unknown_ids_are_404_never_500(advisor, supervisor, method, path):
    response = getattr(supervisor, method)(path.format(advisor=advisor.pk))
    assert response.status_code == 404


def test_deletions_are_post_only(advisor, supervisor):
    opening = advisor.ranges.first()
    assert (
        supervisor.get(availability(advisor) + f"plages/{opening.pk}/suppression/").status_code
        == 405
    )
    assert OpeningRange.objects.filter(pk=opening.pk).exists()
