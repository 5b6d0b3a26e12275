"""Mon agenda: every refusal in plain French, the week's bounds, and garbage in the address.

Same pinned time and office as test_agenda.py: Monday 2 November 2026, 10:00
in Paris; bookable from Tuesday 3 November to Monday 14 December.
"""

# The fixtures are imported from test_agenda.py, then used as arguments.
# ruff: noqa: F811

from datetime import UTC, date, datetime, time
from urllib.parse import urlencode

import pytest

from portal.appointments import services
from portal.appointments.models import Appointment, Motive, OpeningRange
from portal.appointments.slots import Slot
from portal.notifications.models import OutboundMessage
from tests.appointments.conftest import make_advisor, paris, utc
from tests.factories import AccountFactory, CpamFactory, MemberFactory
from tests.www.test_agenda import (  # noqa: F401 (fixtures)
    FIRST_SLOT,
    MOTIVE,
    account,
    advisor,
    book,
    cpam,
    login,
    member,
    now,
    page,
    site,
    slot_id_at,
)

CONFIRM = "/agenda/nouveau/confirmer/"


def confirm_url(slot_id: str, channel: str = "phone", motive: str = MOTIVE, **extra) -> str:
    return f"{CONFIRM}?{urlencode({'motif': motive, 'type': channel, **extra, 'creneau': slot_id})}"


def error_focus(text: str) -> bool:
    """The error summary is announced and takes the focus on load (no JavaScript needed)."""
    return 'role="alert" id="resume-erreurs" tabindex="-1" autofocus' in text


# --- the service's refusals at confirmation -----------------------------------------------------


def test_slot_taken_meanwhile_offers_the_nearest_free_slots(member, account, cpam):
    slot_id = slot_id_at(account, paris(2026, 11, 3, 10, 0))
    url = confirm_url(slot_id)
    assert member.get(url).status_code == 200
    rival = AccountFactory(member=MemberFactory(cpam=cpam))
    services.appointment_book(account=rival, slot_id=slot_id, motive_code=MOTIVE, channel="phone")

    response = member.post(url, {"message": "Bonjour"})
    assert response.status_code == 409
    text = page(response)
    assert error_focus(text)
    assert text.startswith("<!DOCTYPE html>") and "<title>Erreur : " in text
    assert (
        "Ce créneau n’est plus disponible : il vient d’être réservé par une autre personne." in text
    )
    alternatives = response.context["problem"]["alternatives"]
    assert [a["start"] for a in alternatives] == [
        utc(paris(2026, 11, 3, 9, 20)),
        utc(paris(2026, 11, 3, 9, 40)),
        utc(paris(2026, 11, 3, 10, 20)),
    ]
    assert "mardi 3 novembre 2026 à 09:40" in text
    # Each alternative leads back to step 4 with that slot, and can be booked.
    assert all(
        a["url"].startswith(f"{CONFIRM}?motif={MOTIVE}&type=phone&creneau=") for a in alternatives
    )
    assert "<textarea" not in text  # no form to confirm a slot that cannot be had
    assert member.post(alternatives[0]["url"], {"message": ""}).status_code == 302
    mine = Appointment.objects.get(member=account.member)
    assert mine.starts_at == utc(paris(2026, 11, 3, 9, 20))

    # Opening a taken slot's address says so at once.
    again = member.get(url)
    assert again.status_code == 409 and "Ce créneau n’est plus disponible" in page(again)


def test_motive_already_booked(member, account):
    book(account, start=FIRST_SLOT)
    url = confirm_url(slot_id_at(account, paris(2026, 11, 5, 9, 0)))
    response = member.post(url, {"message": ""})
    assert response.status_code == 409
    text = page(response)
    assert error_focus(text)
    assert "Vous avez déjà un rendez-vous à venir pour ce motif." in text
    assert 'href="/agenda/"' in text
    assert Appointment.objects.filter(member=account.member).count() == 1
    # Step 1 says it beforehand, beside the motive.
    step1 = page(member.get("/agenda/nouveau/"))
    assert "Vous avez déjà un rendez-vous à venir pour ce motif." in step1


def test_too_many_appointments(member, account):
    for code, day in (("css", 3), ("at-mp", 4), ("capital-deces", 5)):
        book(account, start=paris(2026, 11, day, 9, 0), motive_code=code)
    url = confirm_url(slot_id_at(account, paris(2026, 11, 6, 9, 0)))
    response = member.post(url, {"message": ""})
    assert response.status_code == 409
    text = page(response)
    assert "Vous avez déjà 3 rendez-vous à venir : c’est le maximum." in text
    assert Appointment.objects.filter(member=account.member).count() == 3
    assert "c’est le maximum" in page(member.get("/agenda/"))
    assert "c’est le maximum" in page(member.get("/agenda/nouveau/"))


def test_phone_required_without_a_mobile_in_the_account(client, cpam, now, advisor):
    account = AccountFactory(member=MemberFactory(cpam=cpam), mobile_phone="")
    login(client, account)
    step2 = page(client.get("/agenda/nouveau/type/", {"motif": MOTIVE}))
    assert "Votre compte n’a pas de numéro de téléphone mobile." in step2
    assert 'href="/mon-compte/mobile/"' in step2
    for url in (
        f"/agenda/nouveau/lieu/?motif={MOTIVE}&type=phone",
        f"/agenda/nouveau/creneau/?motif={MOTIVE}&type=phone",
        confirm_url(slot_id_at(account, FIRST_SLOT)),
    ):
        response = client.get(url)
        assert response.status_code == 400, url
        text = page(response)
        assert error_focus(text)
        assert (
            "Pour un entretien téléphonique, le conseiller vous appelle sur votre téléphone mobile"
            in text
        )
        assert 'href="/mon-compte/mobile/"' in text
    response = client.post(confirm_url(slot_id_at(account, FIRST_SLOT)), {"message": ""})
    assert response.status_code == 400
    assert not Appointment.objects.exists()


def test_phone_required_when_the_mobile_goes_between_recap_and_confirmation(
    member, account, monkeypatch
):
    """The page checks the mobile first; the service's own refusal is shown the same way."""
    url = confirm_url(slot_id_at(account, FIRST_SLOT))
    real = services.appointment_book

    def without_mobile(**kwargs):
        kwargs["account"].mobile_phone = ""
        return real(**kwargs)

    monkeypatch.setattr(services, "appointment_book", without_mobile)
    response = member.post(url, {"message": ""})
    assert response.status_code == 400
    text = page(response)
    assert "ajoutez d’abord un numéro de mobile dans Mon compte" in text
    assert 'href="/mon-compte/mobile/"' in text
    assert not Appointment.objects.exists()


def test_message_too_long(member, account):
    url = confirm_url(slot_id_at(account, FIRST_SLOT))
    response = member.post(url, {"message": "a" * 501})
    assert response.status_code == 400
    text = page(response)
    assert (
        "Votre message fait 501 caractères : raccourcissez-le à 500 caractères au maximum." in text
    )
    assert 'aria-invalid="true"' in text and 'href="#id_message"' in text
    assert "a" * 501 in text  # what was typed is kept
    assert not Appointment.objects.exists()
    # 500 characters are fine, a line break counting as one.
    message = ("b" * 99 + "\r\n") * 5
    assert member.post(url, {"message": message}).status_code == 302
    assert len(Appointment.objects.get().message) == 499


def test_message_too_long_from_the_service_is_a_field_error(member, account, monkeypatch):
    url = confirm_url(slot_id_at(account, FIRST_SLOT))

    def refuse(**kwargs):
        raise services.MessageTooLong()

    monkeypatch.setattr(services, "appointment_book", refuse)
    response = member.post(url, {"message": "court"})
    assert response.status_code == 400
    assert "Votre message dépasse 500 caractères : raccourcissez-le." in page(response)


@pytest.mark.parametrize(
    "slot_id",
    ["", "garbage", "1.phone.1.29000000:forged", "x" * 5000, "\x00", "é:é"],
)
def test_invalid_slot(member, slot_id):
    for method in ("get", "post"):
        response = getattr(member, method)(confirm_url(slot_id))
        assert response.status_code == 400
        text = page(response)
        assert error_focus(text)
        assert "Ce créneau n’existe pas ou n’est pas proposé pour ce rendez-vous." in text
        assert f'href="/agenda/nouveau/creneau/?motif={MOTIVE}&amp;type=phone"' in text
    assert not Appointment.objects.exists()


def test_a_slot_of_another_motive_or_type_is_invalid(member, account, site):
    other_motive = slot_id_at(account, FIRST_SLOT, motive_code="css")
    on_site = slot_id_at(account, FIRST_SLOT, channel="on_site", site_id=site.pk)
    for url in (
        confirm_url(other_motive),
        confirm_url(on_site),
        confirm_url(slot_id_at(account, FIRST_SLOT), channel="on_site", lieu=site.pk),
    ):
        response = member.post(url, {"message": ""})
        assert response.status_code == 400, url
        assert "Ce créneau n’existe pas ou n’est pas proposé" in page(response)
    assert not Appointment.objects.exists()


def test_invalid_motive(member):
    for url in (
        "/agenda/nouveau/type/?motif=inconnu",
        "/agenda/nouveau/type/",
        f"{CONFIRM}?motif=inconnu&type=phone&creneau=x",
    ):
        response = member.get(url)
        assert response.status_code == 400, url
        text = page(response)
        assert error_focus(text) and "<title>Erreur : " in text
        assert "motif" in text and (
            "Ce motif n’est pas proposé" in text or "Choisissez le motif" in text
        )
        assert 'class="fr-fieldset fr-fieldset--error"' in text
        assert 'href="#motif-1"' in text
    Motive.objects.filter(code="css").update(is_active=False)
    response = member.get("/agenda/nouveau/type/", {"motif": "css"})
    assert response.status_code == 400 and "Ce motif n’est pas proposé" in page(response)


def test_invalid_channel(member):
    Motive.objects.filter(code="css").update(phone=False)
    for params in (
        {"motif": MOTIVE, "type": "fax"},
        {"motif": "css", "type": "phone"},
        {"motif": MOTIVE},
    ):
        response = member.get("/agenda/nouveau/creneau/", params)
        assert response.status_code == 400, params
        text = page(response)
        assert error_focus(text)
        assert "Choisissez" in text and 'href="#type-1"' in text
    text = page(member.get("/agenda/nouveau/type/", {"motif": "css"}))
    assert 'value="phone"' not in text and 'value="on_site" checked' in text


def test_invalid_or_missing_site(member, site, cpam):
    for lieu in ("", "abc", "999999", "-1"):
        response = member.get(
            "/agenda/nouveau/creneau/", {"motif": MOTIVE, "type": "on_site", "lieu": lieu}
        )
        assert response.status_code == 400, lieu
        assert error_focus(page(response))
        assert "accueil" in page(response)


def test_no_site_receives_for_this_motive(member, advisor):
    advisor.on_site = False
    advisor.save()
    text = page(member.get("/agenda/nouveau/lieu/", {"motif": MOTIVE, "type": "on_site"}))
    assert "Aucun accueil de votre caisse ne reçoit sur place pour ce motif." in text


# --- the week's bounds ----------------------------------------------------------------------


def week(member, **params):
    response = member.get("/agenda/nouveau/creneau/", {"motif": MOTIVE, "type": "phone", **params})
    assert response.status_code == 200
    return response


def test_the_first_week_starts_at_the_notice(member):
    response = week(member)
    text = page(response)
    data = response.context["week"]
    assert data["monday"] == date(2026, 11, 2) and data["first"] == date(2026, 11, 3)
    assert data["previous_url"] is None and "Semaine précédente" not in text
    assert "Semaine suivante" in text
    assert data["next_url"].endswith("semaine=2026-11-09")
    monday = data["days"][0]
    assert (
        monday["day"] == date(2026, 11, 2) and monday["state"] == "too_soon" and not monday["slots"]
    )
    assert "Trop proche : réservez au moins 1 jour ouvré à l’avance." in text
    assert (
        "Vous pouvez prendre rendez-vous du mardi 3 novembre 2026 au lundi 14 décembre 2026."
        in text
    )


def test_the_last_week_ends_at_the_horizon(member):
    response = week(member, semaine="2026-12-14")
    data = response.context["week"]
    text = page(response)
    assert data["monday"] == date(2026, 12, 14)
    assert data["next_url"] is None and "Semaine suivante" not in text
    assert data["previous_url"].endswith("semaine=2026-12-07")
    states = {d["day"]: d["state"] for d in data["days"]}
    assert states[date(2026, 12, 14)] == "open"
    assert states[date(2026, 12, 15)] == "too_far"
    assert "Pas encore ouvert à la réservation." in text


@pytest.mark.parametrize(
    ("asked", "monday"),
    [
        ("2030-01-01", date(2026, 12, 14)),
        ("1999-01-01", date(2026, 11, 2)),
        ("0001-01-01", date(2026, 11, 2)),
        ("9999-12-31", date(2026, 12, 14)),
        ("2026-11-19", date(2026, 11, 16)),
        ("2026-02-30", date(2026, 11, 2)),
        ("demain", date(2026, 11, 2)),
    ],
)
def test_a_week_out_of_bounds_or_garbage_is_brought_back(member, asked, monday):
    assert week(member, semaine=asked).context["week"]["monday"] == monday


def test_a_public_holiday_says_so(member):
    response = week(member, semaine="2026-11-11")
    states = {d["day"]: d["state"] for d in response.context["week"]["days"]}
    assert states[date(2026, 11, 11)] == "holiday"
    assert "Jour férié : pas de rendez-vous." in page(response)


def test_an_empty_week_links_to_the_week_of_the_earliest_slot(member, advisor):
    OpeningRange.objects.filter(advisor=advisor).update(valid_from=date(2026, 11, 16))
    response = week(member)
    text = page(response)
    data = response.context["week"]
    assert data["count"] == 0 and not data["earliest_here"]
    assert data["earliest"]["start"] == utc(paris(2026, 11, 16, 9, 0))
    assert "lundi 16 novembre 2026 à 09:00" in text
    assert "Voir la semaine de ce créneau" in text
    assert data["earliest"]["week_url"].endswith("semaine=2026-11-16")
    assert "Aucun créneau libre cette semaine." in text
    there = week(member, semaine="2026-11-16").context["week"]
    assert there["earliest_here"] and there["days"][0]["slots"][0]["earliest"]


def test_no_free_slot_at_all(member, advisor):
    OpeningRange.objects.filter(advisor=advisor).delete()
    text = page(week(member))
    assert "Aucun créneau n’est libre pour ce rendez-vous pour le moment." in text
    assert "36 46" in text


def test_times_are_shown_in_the_offices_zone(client, now, db):
    reunion = CpamFactory(code="974", name="La Réunion")
    make_advisor(reunion, ranges=((time(9, 0), time(10, 0)),))
    account = AccountFactory(member=MemberFactory(cpam=reunion))
    login(client, account)
    response = client.get("/agenda/nouveau/creneau/", {"motif": MOTIVE, "type": "phone"})
    text = page(response)
    assert "Les heures sont celles de votre caisse (fuseau Indian/Reunion)." in text
    # 9:00 in Saint-Denis is 5:00 UTC (6:00 in Paris): the page says 09:00.
    assert response.context["week"]["earliest"]["start"] == datetime(2026, 11, 3, 5, 0, tzinfo=UTC)
    assert "mardi 3 novembre 2026 à 09:00" in text


# --- garbage in the address ----------------------------------------------------------------------


GARBAGE = [
    {"motif": "\x00"},
    {"motif": "x" * 10000},
    {"motif": "' OR 1=1 --"},
    {"motif": MOTIVE, "type": "\x00"},
    {"motif": MOTIVE, "type": "on_site", "lieu": "\x00"},
    {"motif": MOTIVE, "type": "on_site", "lieu": "99999999999999999999999"},
    {"motif": MOTIVE, "type": "phone", "semaine": "\x00"},
    {"motif": MOTIVE, "type": "phone", "semaine": "2026-13-45"},
    {"motif": MOTIVE, "type": "phone", "creneau": "\x00"},
    {"motif": MOTIVE, "type": "phone", "creneau": "1.phone.1.99999999999999999999999:x"},
    {"motif": [MOTIVE, "css"], "type": ["phone", "on_site"]},
]


@pytest.mark.parametrize(
    "path",
    [
        "/agenda/",
        "/agenda/nouveau/",
        "/agenda/nouveau/type/",
        "/agenda/nouveau/lieu/",
        "/agenda/nouveau/creneau/",
        CONFIRM,
    ],
)
def test_nothing_500s_on_garbage_query_strings(member, path):
    for params in GARBAGE:
        response = member.get(path, params)
        assert response.status_code in (200, 302, 400, 409), (params, response.status_code)
        if path == CONFIRM:
            response = member.post(f"{path}?{urlencode(params, doseq=True)}", {"message": "\x00"})
            assert response.status_code in (400, 409), (params, response.status_code)
    assert not Appointment.objects.exists()


def test_nothing_500s_on_garbage_when_moving(member, account):
    appointment = book(account, start=FIRST_SLOT)
    base = f"/agenda/{appointment.public_id}/deplacer/"
    for params in ({"semaine": "\x00"}, {"semaine": "9999-99-99"}, {"semaine": "x" * 5000}):
        assert member.get(base, params).status_code == 200
    for creneau in ("", "\x00", "x" * 5000, "1.phone.1.2:bad"):
        for method in ("get", "post"):
            response = getattr(member, method)(f"{base}confirmer/", {"creneau": creneau})
            assert response.status_code == 400
            assert "Ce créneau n’existe pas ou n’est pas proposé" in page(response)
    appointment.refresh_from_db()
    assert appointment.starts_at == utc(FIRST_SLOT) and appointment.sequence == 0


def test_moving_to_its_own_time_is_not_offered(member, account):
    appointment = book(account, start=FIRST_SLOT)
    own = Slot(
        appointment.starts_at,
        appointment.ends_at,
        appointment.advisor_id,
        appointment.site_id,
        appointment.motive_id,
        appointment.channel,
    ).id
    url = f"/agenda/{appointment.public_id}/deplacer/confirmer/?creneau={own}"
    for method in ("get", "post"):
        response = getattr(member, method)(url)
        assert response.status_code == 400
        assert "Ce créneau n’existe pas ou n’est pas proposé" in page(response)
    appointment.refresh_from_db()
    assert appointment.sequence == 0
    assert not OutboundMessage.objects.filter(template="appointment_rescheduled").exists()
