"""What a person does in the browser, in a few words: log in, read the demo mailbox."""

import io
import re

from django.core.management import call_command

from portal.staff import totp
from portal.staff.models import Staff
from portal.www.management.commands.load_demo import DEMO_PASSWORD, DEMO_STAFF_PASSWORD

# Paul Martin, the demo member with an account (README).
PAUL_NIR = "1 85 05 78 006 084"
# Camille Bernard, a demo member without an account yet.
CAMILLE = {"nir": "2 92 06 75 112 233", "birth_date": "1992-06-03", "iban_last7": "7890143"}
SUPERVISOR = "superviseur@example.org"
ADVISOR = "conseiller@example.org"
NEW_PASSWORD = "Nouvelle-Phrase-Secrete-7"


def load_demo() -> None:
    """The demo data of `make run`: members, a year of payments, staff, the agenda."""
    call_command("load_demo", stdout=io.StringIO())


def member_login(page, nir: str = PAUL_NIR, password: str = DEMO_PASSWORD) -> None:
    page.goto("/connexion/")
    page.get_by_label("Numéro de sécurité sociale").fill(nir)
    page.locator("#id_password").fill(password)
    page.locator("main").get_by_role("button", name="Se connecter").click()
    page.wait_for_url("**/mon-espace/")


def staff_login(page, email: str) -> None:
    """Email, password and the TOTP code of the moment (the demo staff's keys are fixed)."""
    staff = Staff.objects.get(email=email)
    page.goto("/conseiller/connexion/")
    page.get_by_label("Adresse électronique professionnelle").fill(email)
    page.locator("#id_password").fill(DEMO_STAFF_PASSWORD)
    page.get_by_label("Code de l’application d’authentification").fill(
        totp.current_code(staff.totp_secret)
    )
    page.locator("main").get_by_role("button", name="Se connecter").click()
    page.wait_for_url(re.compile(r".*/conseiller/$"))


def mailbox_open(page, subject: str) -> None:
    """Open the latest message whose subject starts with `subject` ("SMS": an SMS)."""
    page.goto("/demo/boite-mail/")
    page.get_by_role("link", name=re.compile("^" + re.escape(subject))).first.click()
    page.wait_for_url(re.compile(r".*/demo/boite-mail/\d+/$"))
