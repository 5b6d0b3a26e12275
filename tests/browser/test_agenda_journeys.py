"""Mon agenda in Chromium: a phone booking with the mouse, a relay booking (LSF) with the
keyboard alone, then cancelling and moving appointments from Mon agenda.

The relay booking is the deaf or hard-of-hearing member's journey: Tab,
Shift+Tab, Space, Enter and the arrow keys only; at each step the focus can be
seen and lands on the new step's title (the stepper's), or on the error
summary when a step is sent empty. axe-core checks the relay pages that no
other test reaches: the mode step with its error, the week of relay slots and
the confirmation with the video link. The demo loader provides the advisors
who hold relay interviews and the relay service's professionals.
"""

import re

from django.conf import settings
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from portal.accounts.models import Account
from portal.appointments import services, slots
from portal.appointments.models import Appointment, Motive
from portal.notifications.models import OutboundMessage
from portal.www.management.commands.load_demo import DEMO_PASSWORD
from tests.browser.a11y import assert_accessible
from tests.browser.helpers import PAUL_NIR, load_demo, mailbox_open, member_login
from tests.browser.keyboard import assert_focus_visible, focused, has_focus, tab_to

LSF = "Langue des signes française (LSF)"
RELAY = "Entretien en visio avec interprétation / transcription"
MATERNITY = "Congé maternité / congé paternité"
CSS = "Demande de Complémentaire santé solidaire (CSS)"
STEP_TITLE = ".fr-stepper__title"


# --- the keyboard, beyond keyboard.py ---------------------------------------------------------


def assert_focus_on(page, selector: str, what: str) -> None:
    """The element has the focus (autofocus runs just after the load) and it can be seen."""
    try:
        page.wait_for_function(
            "sel => document.activeElement === document.querySelector(sel)",
            arg=selector,
            timeout=3_000,
        )
    except PlaywrightTimeout:
        raise AssertionError(
            f"{what}: the focus is on {focused(page)}, not on {selector}"
        ) from None
    assert_focus_visible(page)


def shift_tab_to(page, locator, *, max_presses: int = 30) -> None:
    """Press Shift+Tab until `locator` has the focus; every element met shows its focus."""
    for _ in range(max_presses):
        page.keyboard.press("Shift+Tab")
        if focused(page) is None:
            continue
        assert_focus_visible(page)
        if has_focus(locator):
            return
    raise AssertionError(f"{locator} never got the focus with Shift+Tab")


def arrow_to(page, radio, *, key: str = "ArrowDown", max_presses: int = 12) -> None:
    """Move through a radio group with the arrow keys (each press checks the next one)."""
    for _ in range(max_presses):
        if has_focus(radio) and radio.is_checked():
            return
        page.keyboard.press(key)
        assert_focus_visible(page)
    raise AssertionError(f"{radio} never got checked with {key}")


def tab_round(page, *, max_presses: int = 80) -> int:
    """Tab through the whole page and back to the first element met: no trap on the way.

    Returns how many elements took the focus.
    """
    page.keyboard.press("Tab")
    page.evaluate("() => { window.__firstFocused = document.activeElement; }")
    for count in range(1, max_presses):
        page.keyboard.press("Tab")
        if focused(page) is None:
            continue  # the browser's own controls, past the page's end
        assert_focus_visible(page)
        if page.evaluate("() => document.activeElement === window.__firstFocused"):
            return count
    raise AssertionError(f"the focus did not come round in {max_presses} presses: {focused(page)}")


def radio(page, name: str, value: str):
    # (by value: Playwright's role names cannot hold a "/" in a regular expression)
    return page.locator(f"main input[type=radio][name={name}][value={value}]")


def step(page, url: str) -> None:
    page.wait_for_url(re.compile(url))


# --- a phone booking with the mouse -----------------------------------------------------------


def test_phone_booking_with_the_mouse_and_its_email(page, run_tasks):
    load_demo()
    member_login(page)
    page.goto("/agenda/")
    main = page.locator("main")
    main.get_by_role("link", name="Prendre un rendez-vous").click()
    step(page, r".*/agenda/nouveau/$")
    main.locator("label", has_text=CSS).click()
    assert page.get_by_role("radio", name=re.compile(r"^Demande de Complémentaire")).is_checked()
    main.get_by_role("button", name="Continuer").click()
    step(page, r".*/agenda/nouveau/type/\?motif=css$")
    main.locator("label", has_text="Entretien téléphonique").click()
    main.get_by_role("button", name="Continuer").click()

    # (the site step sends a phone interview straight on to the week)
    step(page, r".*/agenda/nouveau/creneau/\?motif=css&type=phone$")
    assert "Entretien téléphonique" in main.inner_text()
    main.locator("a.fr-tag").first.click()
    step(page, r".*/agenda/nouveau/confirmer/\?.*creneau=")
    assert "06 12 34 56 78" in main.inner_text()
    main.locator("textarea").fill("Je voudrais savoir si j’ai droit à la CSS.")
    main.get_by_role("button", name="Confirmer le rendez-vous").click()

    step(page, r".*/agenda/[^/]+/confirmation/$")
    assert has_focus(page.locator("h1")), "the confirmation's title has the focus"
    text = main.inner_text()
    assert "Votre rendez-vous est confirmé" in text
    assert "Un conseiller vous appellera au 06 12 34 56 78." in text
    assert "paul.martin@example.org" in text
    when = re.search(r"(\w+ \d+ \w+ \d{4}), de (\d\d:\d\d) à", text)
    day, start = when.groups()

    run_tasks()  # the worker sends the email with its invitation
    mailbox_open(page, "Votre rendez-vous du")
    message = page.locator(".demo-message").inner_text()
    assert "Votre rendez-vous avec un conseiller de l'Assurance Maladie est confirmé" in message
    assert f"Motif : {CSS}" in message
    assert f"le {day} à {start}" in message
    assert "Entretien téléphonique : un conseiller vous appellera au" in message
    assert "Pièce jointe : rendez-vous.ics" in page.locator("main").inner_text()
    assert "paul.martin@example.org" in page.locator("main dl").inner_text()


# --- a relay booking with the keyboard alone --------------------------------------------------


def test_relay_booking_with_the_keyboard_alone(page):
    """From the login page to the confirmation with its video link, without the mouse."""
    load_demo()
    keyboard = page.keyboard
    page.goto("/connexion/")
    tab_to(page, page.get_by_label("Numéro de sécurité sociale"))
    keyboard.type(PAUL_NIR)
    tab_to(page, page.locator("#id_password"))
    keyboard.type(DEMO_PASSWORD)
    keyboard.press("Enter")
    step(page, r".*/mon-espace/$")
    main = page.locator("main")
    tab_to(page, main.get_by_role("link", name="Mes rendez-vous avec un conseiller"))
    keyboard.press("Enter")
    step(page, r".*/agenda/$")
    tab_to(page, main.get_by_role("link", name="Prendre un rendez-vous"))
    keyboard.press("Enter")

    # Step 1, the motive: the first radio, then down the list to the one wanted.
    step(page, r".*/agenda/nouveau/$")
    assert_focus_on(page, STEP_TITLE, "motive step")
    assert "Étape 1 sur 4" in page.locator(STEP_TITLE).inner_text()
    tab_to(page, page.locator("#motif-1"))
    arrow_to(page, radio(page, "motif", "maternite-paternite"))
    tab_to(page, main.get_by_role("button", name="Continuer"))
    keyboard.press("Enter")

    # Step 2, the type: nothing is checked beforehand for Paul (no declared need).
    step(page, r".*/agenda/nouveau/type/\?motif=maternite-paternite$")
    assert_focus_on(page, STEP_TITLE, "type step")
    assert "Type de rendez-vous" in page.locator(STEP_TITLE).inner_text()
    tab_to(page, page.locator("#type-1"))
    arrow_to(page, radio(page, "type", "relay"))
    tab_to(page, main.get_by_role("button", name="Continuer"))
    keyboard.press("Enter")

    # Step 2 again, the relay's mode: sent empty first.
    step(page, r".*/agenda/nouveau/mode/\?motif=maternite-paternite&type=relay$")
    assert_focus_on(page, STEP_TITLE, "mode step")
    assert tab_round(page) > 10  # the whole page, and back: no trap
    tab_to(page, main.get_by_role("button", name="Continuer"))
    keyboard.press("Enter")
    step(page, r".*/agenda/nouveau/creneau/\?motif=maternite-paternite&type=relay$")
    summary = page.locator("#resume-erreurs")
    assert_focus_on(page, "#resume-erreurs", "mode step sent empty")
    assert page.title().startswith("Erreur")
    assert_accessible(page, "booking, relay mode with its error")
    # The summary's link leads to the first mode; Space checks it.
    tab_to(page, summary.get_by_role("link"))
    keyboard.press("Enter")
    assert_focus_on(page, "#mode-1", "the summary's link")
    lsf = radio(page, "mode", "lsf")
    assert lsf.get_attribute("id") == "mode-1"
    assert has_focus(lsf)
    keyboard.press("Space")
    assert lsf.is_checked()
    tab_to(page, main.get_by_role("button", name="Continuer"))
    keyboard.press("Enter")

    # Step 3, the week of relay slots.
    step(page, r".*/agenda/nouveau/creneau/\?motif=maternite-paternite&type=relay&mode=lsf$")
    assert_focus_on(page, STEP_TITLE, "week step")
    assert "Date et heure" in page.locator(STEP_TITLE).inner_text()
    assert f"Mode de communication : {LSF}" in main.inner_text()
    assert_accessible(page, "booking, week of relay slots")
    # The buttons that change the week show their whole text (the DSFR cut them to 2 rem).
    cut = main.locator("nav a.fr-btn").evaluate_all(
        "links => links.filter(a => a.scrollWidth > a.clientWidth).map(a => a.textContent)"
    )
    assert cut == [], f"buttons whose text is cut: {cut}"
    tab_to(page, main.get_by_role("link", name="Semaine suivante").first)
    keyboard.press("Enter")
    step(page, r".*/agenda/nouveau/creneau/\?.*mode=lsf&semaine=\d{4}-\d\d-\d\d$")
    assert_focus_on(page, STEP_TITLE, "the next week")
    tab_to(page, main.locator("a.fr-tag").first)
    keyboard.press("Enter")

    # Step 4, the recap: a message, past the button and back with Shift+Tab.
    step(page, r".*/agenda/nouveau/confirmer/\?.*mode=lsf.*creneau=")
    assert_focus_on(page, STEP_TITLE, "confirmation step")
    recap = main.locator("dl").inner_text()
    assert LSF in recap and RELAY in recap
    tab_to(page, main.locator("textarea"))
    keyboard.type("Je viendrai avec mon compagnon, qui entend.")
    tab_to(page, main.get_by_role("link", name="Choisir un autre créneau"))
    shift_tab_to(page, main.get_by_role("button", name="Confirmer le rendez-vous"))
    keyboard.press("Enter")

    # Booked: the title has the focus; the mode and the video link are shown.
    step(page, r".*/agenda/[^/]+/confirmation/$")
    assert_focus_on(page, "h1", "booked")
    text = main.inner_text()
    assert "Votre rendez-vous est confirmé" in text
    assert f"Mode de communication\n{LSF}" in text
    assert "Je viendrai avec mon compagnon, qui entend." in text
    appointment = Appointment.objects.get(member__nir__startswith="185057800608", channel="relay")
    assert appointment.communication_mode == "lsf"
    assert appointment.relay_professional is not None
    assert appointment.video_url.startswith(settings.VISIO_BASE_URL)
    video = main.get_by_role("link", name=re.compile("^Rejoindre la visio"))
    assert video.get_attribute("href") == appointment.video_url
    assert appointment.video_url in text
    assert "Prévoyez un ordinateur, une tablette ou un téléphone avec une caméra." in text
    assert_accessible(page, "booking, relay confirmed with its video link")
    tab_to(page, video)


# --- cancel and move from Mon agenda ----------------------------------------------------------


def _book(motive_code: str, channel: str, *, mode: str = "", index: int = 0) -> Appointment:
    """Paul books the `index`-th free slot through the service the confirmation page calls."""
    account = Account.objects.get(nir="1850578006084")
    motive = Motive.objects.get(code=motive_code)
    cpam = account.member.cpam
    first, last = slots.bookable_days(cpam, motive)
    found = slots.free_slots(
        cpam=cpam, motive=motive, channel=channel, start=first, end=last, mode=mode
    )
    return services.appointment_book(
        account=account,
        slot_id=found[index].id,
        motive_code=motive_code,
        channel=channel,
        communication_mode=mode,
    )


def test_cancel_then_reschedule_from_mon_agenda(page):
    load_demo()
    phone = _book("css", "phone")
    relay = _book("maternite-paternite", "relay", mode="lsf", index=5)
    member_login(page)
    page.goto("/agenda/")
    main = page.locator("main")
    upcoming = main.locator("section[aria-labelledby=a-venir]")

    # Cancel the phone interview.
    upcoming.locator("article", has_text=CSS).get_by_role(
        "link", name=re.compile("^Annuler le rendez-vous du")
    ).click()
    step(page, rf".*/agenda/{phone.public_id}/annuler/$")
    assert CSS in main.inner_text()
    main.get_by_role("button", name="Oui, annuler ce rendez-vous").click()
    step(page, r".*/agenda/$")
    assert "est annulé. Un courriel de confirmation vous a été envoyé." in main.inner_text()
    assert CSS not in upcoming.inner_text()
    past = main.locator("section[aria-labelledby=passes]").locator("article", has_text=CSS)
    assert "Annulé par vous" in past.text_content()
    phone.refresh_from_db()
    assert phone.status == Appointment.Status.CANCELLED_BY_MEMBER
    assert OutboundMessage.objects.filter(template="appointment_cancelled").exists()

    # Move the relay interview: same motive, type and mode, another time.
    upcoming.locator("article", has_text=MATERNITY).get_by_role(
        "link", name=re.compile("^Déplacer le rendez-vous du")
    ).click()
    step(page, rf".*/agenda/{relay.public_id}/deplacer/$")
    assert_focus_on(page, "h1", "reschedule, the week")
    assert LSF in main.inner_text()
    main.locator("a.fr-tag").first.click()
    step(page, rf".*/agenda/{relay.public_id}/deplacer/confirmer/\?creneau=")
    assert_focus_on(page, "h1", "reschedule, the new slot")
    new_time = main.locator("h2:has-text('Nouveau créneau') + p").inner_text()
    main.get_by_role("button", name="Confirmer le nouveau créneau").click()
    step(page, r".*/agenda/[^/]+/confirmation/\?deplace=1$")
    assert_focus_on(page, "h1", "moved")
    text = main.inner_text()
    assert "Votre rendez-vous est déplacé" in text
    assert new_time in text
    assert f"Mode de communication\n{LSF}" in text
    assert main.get_by_role("link", name=re.compile("^Rejoindre la visio")).count() == 1
    moved = Appointment.objects.get(
        member__nir__startswith="185057800608",
        motive__code="maternite-paternite",
        status=Appointment.Status.BOOKED,
    )
    assert moved.starts_at != relay.starts_at
    assert moved.communication_mode == "lsf"
