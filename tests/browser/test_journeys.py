"""The member's and the advisor's journeys, end to end in Chromium, checked with axe-core on the way.

Account creation through the demo mailbox, login, the self-service reset done
with the keyboard alone, the reset by an SMS code that an advisor sends from
the console, the front desk's activation code, and the staff enrolment page.
"""

import re

from portal.accounts.models import Account
from tests.browser.a11y import assert_accessible
from tests.browser.helpers import (
    ADVISOR,
    CAMILLE,
    NEW_PASSWORD,
    PAUL_NIR,
    SUPERVISOR,
    load_demo,
    mailbox_open,
    member_login,
    staff_login,
)
from tests.browser.keyboard import assert_focus_visible, date_digits, focused, has_focus, tab_to

# Paul's answers to the advisor's identity questions (demo data).
PAUL_ANSWERS = {
    "Date de naissance": "1985-05-12",
    "Code postal": "75011",
    "Prénom": "Paul",
    "4 derniers caractères de l’IBAN": "0189",
}


def test_account_creation_through_the_demo_mailbox_then_login(page):
    load_demo()
    page.goto("/")
    page.locator("main").get_by_role("link", name="Créer mon compte").click()
    assert_accessible(page, "signup, step 1")
    page.get_by_label("Numéro de sécurité sociale").fill(CAMILLE["nir"])
    page.get_by_label("Date de naissance").fill(CAMILLE["birth_date"])
    page.get_by_label("Les 7 derniers caractères de votre IBAN").fill(CAMILLE["iban_last7"])
    page.get_by_role("button", name="Continuer").click()

    page.wait_for_url("**/compte/creer/identifiants/")
    assert has_focus(page.locator("h1")), "the new step's title has the focus"
    assert_accessible(page, "signup, step 2")
    page.get_by_role("button", name="Créer mon compte").click()  # sent empty first
    assert has_focus(page.locator("#resume-erreurs"))
    assert_accessible(page, "signup, step 2 with errors")
    # The address on file is offered; Camille keeps it.
    page.locator("#id_password").fill("court")
    # The rules' ticks say their state in words as well, for screen readers.
    state = page.locator("[data-rule=lowercase] [data-rule-state]")
    assert state.text_content() == " (respectée)"
    assert page.locator("[data-rule=min_length] [data-rule-state]").text_content() == (
        " (pas encore respectée)"
    )
    page.locator("#id_password").fill(NEW_PASSWORD)
    page.get_by_label("Confirmation du mot de passe").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Créer mon compte").click()

    page.wait_for_url("**/compte/creer/envoye/")
    assert has_focus(page.locator("h1"))
    assert_accessible(page, "signup, email sent")
    mailbox_open(page, "Activez votre compte")
    assert_accessible(page, "demo mailbox, a message")
    page.locator(".demo-message a[href*='/compte/confirmer/']").click()

    page.wait_for_url("**/compte/confirmer/")
    assert_accessible(page, "signup, activation")
    page.get_by_role("button", name="Activer mon compte").click()
    page.wait_for_url("**/connexion/")
    assert "Votre compte est activé" in page.locator("main").inner_text()
    assert Account.objects.get(nir="2920675112233").state == Account.State.ACTIVE

    # A wrong password first: the summary says so and has the focus.
    page.get_by_label("Numéro de sécurité sociale").fill(CAMILLE["nir"])
    page.locator("#id_password").fill("Pas-le-bon-mot-de-passe-1")
    page.locator("main").get_by_role("button", name="Se connecter").click()
    assert has_focus(page.locator("#resume-erreurs"))
    assert "incorrect" in page.locator("#resume-erreurs").inner_text()
    member_login(page, CAMILLE["nir"], NEW_PASSWORD)
    assert "Bonjour Camille Bernard" in page.locator("main").inner_text()


def test_self_service_reset_with_the_keyboard_alone(page, run_tasks):
    """From the login page to Mon espace without the mouse; every focus is visible."""
    load_demo()
    page.goto("/connexion/")
    keyboard = page.keyboard

    tab_to(page, page.get_by_role("link", name="Mot de passe oublié ?"))
    keyboard.press("Enter")
    page.wait_for_url("**/mot-de-passe-oublie/")
    tab_to(page, page.get_by_label("Numéro de sécurité sociale"))
    keyboard.type(PAUL_NIR)
    keyboard.press("Enter")  # no birth date yet

    summary = page.locator("#resume-erreurs")
    summary.wait_for()
    assert has_focus(summary), f"the focus is on {focused(page)}, not on the error summary"
    assert_focus_visible(page)
    assert "Date de naissance" in summary.inner_text()
    # The summary's link leads to the field (the NIR typed is kept).
    tab_to(page, summary.get_by_role("link", name=re.compile("Date de naissance")))
    keyboard.press("Enter")
    assert has_focus(page.get_by_label("Date de naissance"))
    keyboard.type(date_digits(page, "1985-05-12"))
    keyboard.press("Enter")

    # (the address keeps the "#id_birth_date" of the summary's link through the redirect)
    page.wait_for_url(re.compile(r".*/mot-de-passe-oublie/envoye/(#.*)?$"))
    assert has_focus(page.locator("h1")), "the new step's title has the focus"
    assert_focus_visible(page)
    run_tasks()  # the worker matches the details and sends the link
    tab_to(page, page.get_by_role("link", name="boîte mail de démonstration"))
    keyboard.press("Enter")
    page.wait_for_url("**/demo/boite-mail/")
    tab_to(page, page.get_by_role("link", name="Réinitialisation de votre mot de passe"))
    keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/demo/boite-mail/\d+/$"))
    tab_to(page, page.locator(".demo-message a[href*='/mot-de-passe-oublie/']").first)
    keyboard.press("Enter")

    page.wait_for_url("**/mot-de-passe-oublie/nouveau-mot-de-passe/")
    assert has_focus(page.locator("h1"))
    assert_accessible(page, "reset, new password")
    tab_to(page, page.locator("#id_password"))
    keyboard.type(NEW_PASSWORD)
    tab_to(page, page.get_by_label("Confirmation du mot de passe"))
    keyboard.type(NEW_PASSWORD)
    keyboard.press("Enter")

    page.wait_for_url("**/connexion/")
    assert "Votre mot de passe a été modifié" in page.locator("main").inner_text()
    tab_to(page, page.get_by_label("Numéro de sécurité sociale"))
    keyboard.type(PAUL_NIR)
    tab_to(page, page.locator("#id_password"))
    keyboard.type(NEW_PASSWORD)
    keyboard.press("Enter")
    page.wait_for_url("**/mon-espace/")


def _console_open_member(advisor_page, email: str) -> None:
    """Log in, find Paul by exact NIR, check the caller's identity."""
    staff_login(advisor_page, email)
    advisor_page.get_by_label("Numéro de sécurité sociale de l’assuré").fill(PAUL_NIR)
    advisor_page.get_by_role("button", name="Rechercher").click()
    advisor_page.wait_for_url(re.compile(r".*/conseiller/assure/\d+/$"))
    assert_accessible(advisor_page, "console, member before the identity check")
    for label, answer in PAUL_ANSWERS.items():
        advisor_page.get_by_label(label).fill(answer)
    advisor_page.get_by_role("button", name="Vérifier").click()
    advisor_page.get_by_text("Identité vérifiée").first.wait_for()
    assert_accessible(advisor_page, "console, member after the identity check")


def test_reset_with_an_sms_code_sent_by_an_advisor(page, other_page):
    load_demo()
    advisor = other_page
    _console_open_member(advisor, ADVISOR)
    advisor.get_by_role("button", name="Envoyer le code").click()
    advisor.get_by_text("Code envoyé par SMS").first.wait_for()
    assert_accessible(advisor, "console, code sent")

    mailbox_open(page, "SMS")
    code = re.search(r"\b(\d{8})\b", page.locator(".demo-message").inner_text()).group(1)
    page.goto("/mot-de-passe-oublie/")
    page.get_by_role("link", name="J’ai reçu un code par SMS").click()
    page.get_by_label("Numéro de sécurité sociale").fill(PAUL_NIR)
    page.get_by_label("Code reçu").fill(code)
    page.get_by_role("button", name="Continuer").click()

    page.wait_for_url("**/code-sms/nouveau-mot-de-passe/")
    assert has_focus(page.locator("h1"))
    assert_accessible(page, "SMS reset, new password")
    page.locator("#id_password").fill(NEW_PASSWORD)
    page.get_by_label("Confirmation du mot de passe").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Enregistrer le mot de passe").click()
    page.wait_for_url("**/connexion/")
    member_login(page, PAUL_NIR, NEW_PASSWORD)


def test_front_desk_activation_slip(other_page):
    load_demo()
    desk = other_page
    _console_open_member(desk, "accueil@example.org")
    desk.get_by_label("Pièce d’identité présentée").select_option(index=0)
    desk.get_by_label("4 derniers caractères du numéro de la pièce").fill("4321")
    desk.get_by_role("button", name="Enregistrer la visite et imprimer le code").click()
    desk.get_by_role("heading", name="Code d’activation").wait_for()
    assert_accessible(desk, "console, activation slip")


def test_staff_enrolment_pages(page, other_page, browser, live_server):
    load_demo()
    staff_login(other_page, SUPERVISOR)
    other_page.goto("/conseiller/equipe/")
    other_page.get_by_role("button", name=f"Nouveau lien d’enrôlement {ADVISOR}").click()
    link = other_page.locator("main code").inner_text()
    assert_accessible(other_page, "console, new enrolment link")

    response = page.goto(link)
    page.wait_for_url("**/conseiller/enrolement/")
    assert_accessible(page, "console, enrolment")
    # `same-origin`: with `no-referrer` Chromium would send `Origin: null` and the CSRF check
    # would refuse the form.
    assert response.headers.get("referrer-policy") == "same-origin"
    page.get_by_role("button", name="Activer mon accès").click()
    assert has_focus(page.locator("#resume-erreurs"))
    assert_accessible(page, "console, enrolment with errors")


def test_booking_an_appointment(page):
    """Mon agenda's last steps: a slot, the confirmation, the booked appointment."""
    load_demo()
    member_login(page)
    # (the demo already books Paul for the daily allowances: another motive)
    page.goto("/agenda/nouveau/creneau/?motif=maternite-paternite&type=phone")
    page.locator("main a[href*='creneau=']").first.click()
    page.wait_for_url(re.compile(r".*/agenda/nouveau/confirmer/\?.*"))
    assert_accessible(page, "booking, confirmation step")
    page.get_by_role("button", name="Confirmer le rendez-vous").click()
    page.wait_for_url(re.compile(r".*/agenda/[^/]+/confirmation/$"))
    assert_accessible(page, "booking, booked")
