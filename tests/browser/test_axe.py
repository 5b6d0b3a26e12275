"""Every page passes axe-core (no moderate, serious or critical violation) at 1280 and 320 px.

Adding a page is one line in PAGES. `who` is the person looking at it (their
data comes from the demo loader); `errors=True` also checks the page after its
form is sent empty: the error summary, the fields' messages, and that the
focus lands on the summary. Pages reached only in the middle of a journey
(signup's second step, a reset link, the SMS-code steps, the console's
identity check) are checked along the journeys in test_journeys.py.
"""

from dataclasses import dataclass

import pytest

from portal.appointments.models import Advisor, Appointment
from portal.payments.models import ReimbursementLine
from tests.browser.a11y import page_problems
from tests.browser.helpers import (
    ADVISOR,
    SUPERVISOR,
    load_demo,
    member_login,
    staff_login,
)


@dataclass(frozen=True)
class Page:
    path: str  # may hold {placeholders} filled from the persona's data
    who: str = "anonymous"  # anonymous, member, supervisor, advisor
    errors: bool = False
    # A problem reported to the page's owner: expected to fail until fixed, then
    # the check fails again until this note goes.
    known: str = ""


PAGES = [
    # Public pages
    Page("/"),
    Page("/connexion/", errors=True),
    Page("/compte/creer/", errors=True),
    Page("/compte/confirmer/lien-invalide"),
    Page("/mot-de-passe-oublie/", errors=True),
    Page("/mot-de-passe-oublie/envoye/"),
    Page("/mot-de-passe-oublie/nouveau-mot-de-passe/"),  # no link opened: "link invalid"
    Page("/mot-de-passe-oublie/code-sms", errors=True),
    Page("/mot-de-passe-oublie/code-activation", errors=True),
    Page("/accessibilite/"),
    Page("/mentions-legales/"),
    Page("/donnees-personnelles/"),
    Page("/demo/boite-mail/"),
    Page("/page-qui-n-existe-pas/"),
    Page("/conseiller/connexion/", errors=True),
    # Mon espace, Mon compte
    Page("/mon-espace/", "member"),
    Page("/mon-compte/", "member"),
    Page("/mon-compte/courriel/", "member", errors=True),
    Page("/mon-compte/mobile/", "member", errors=True),
    Page("/mon-compte/mot-de-passe/", "member", errors=True),
    Page("/mon-compte/deconnexion-partout/", "member"),
    Page("/deconnexion/", "member"),
    # Mes paiements, Mes indemnités
    Page("/paiements/", "member"),
    Page("/paiements/?beneficiaire=&type=&du=2000-01-01&au=2000-01-31", "member"),
    Page("/paiements/ligne/{line}/", "member"),
    Page("/indemnites/", "member"),
    Page("/mon-compte/communication/", "member"),
    # Mon agenda (the booking's last steps: test_journeys.py)
    Page("/agenda/", "member"),
    Page("/agenda/nouveau/", "member"),
    Page("/agenda/nouveau/type/?motif=arret-travail-ij", "member"),
    Page("/agenda/nouveau/lieu/?motif=arret-travail-ij&type=on_site", "member"),
    Page("/agenda/nouveau/mode/?motif=arret-travail-ij&type=relay", "member"),
    Page("/agenda/nouveau/creneau/?motif=arret-travail-ij&type=phone", "member"),
    Page("/agenda/{appointment}/confirmation/", "member"),
    Page("/agenda/{appointment}/annuler/", "member"),
    Page("/agenda/{appointment}/deplacer/", "member"),
    # Advisor console
    Page("/conseiller/", "advisor", errors=True),
    Page("/conseiller/planning/", "advisor"),
    Page("/conseiller/rendez-vous/{appointment}/", "advisor"),
    Page("/conseiller/", "supervisor"),
    Page("/conseiller/journal/", "supervisor"),
    Page("/conseiller/equipe/", "supervisor"),
    Page("/conseiller/planning/", "supervisor"),
    Page("/conseiller/planning/conseillers/", "supervisor"),
    Page("/conseiller/planning/conseillers/{advisor}/", "supervisor"),
]

PERSONAS = sorted({page.who for page in PAGES})


def persona_setup(page, who: str) -> dict:
    """Log `who` in; return the values the paths' placeholders need."""
    load_demo()
    if who == "member":
        member_login(page)
    elif who == "supervisor":
        staff_login(page, SUPERVISOR)
    elif who == "advisor":
        staff_login(page, ADVISOR)
    paul = "185057800608"
    line = ReimbursementLine.objects.filter(member__nir__startswith=paul).first()
    # The demo's appointment of Paul with the demo advisor, later today.
    appointment = Appointment.objects.filter(member__nir__startswith=paul).first()
    return {
        "line": line.line_id,
        "appointment": appointment.public_id,
        "advisor": Advisor.objects.get(staff__email=ADVISOR).pk,
    }


def errors_problems(page, label: str) -> list[str]:
    """Send the page's form empty; the summary must be there and hold the focus."""
    page.locator("main form[novalidate] [type=submit]").first.click()
    page.wait_for_load_state()
    summary = page.locator("#resume-erreurs")
    if not summary.count():
        return [f"{label}: no error summary after sending the form empty"]
    problems = []
    focused = page.evaluate("() => document.activeElement && document.activeElement.id")
    if focused != "resume-erreurs":
        problems.append(f"{label}: the focus is on #{focused}, not on the error summary")
    return problems + page_problems(page, label)


@pytest.mark.parametrize("who", PERSONAS)
def test_every_page_passes_axe_at_both_widths(page, subtests, who):
    values = persona_setup(page, who)
    for entry in [p for p in PAGES if p.who == who]:
        path = entry.path.format(**values)
        with subtests.test(msg=path):
            page.goto(path)
            problems = page_problems(page, path)
            if entry.known:
                assert problems, f"{path} passes now: remove its note ({entry.known})"
                pytest.xfail(f"{entry.known}\n" + "\n".join(problems))
            assert not problems, "\n".join(problems)
            if not entry.errors:
                continue
            problems = errors_problems(page, f"{path} (form sent empty)")
            assert not problems, "\n".join(problems)
