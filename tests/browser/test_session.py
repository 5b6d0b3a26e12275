"""The idle timeout warns before it logs out and can be extended (RGAA 13.1); no script needed otherwise.

The 30-minute idle timeout is the server's (the session's expiry, pushed back
at every request); portal/static/portal/session-timeout.js only warns 5
minutes before and, on "Rester connecté(e)", makes one light request. The
browser's clock is Playwright's fake one, moved forward by hand.
"""

import re

from portal.accounts.models import Session
from tests.browser.a11y import assert_accessible
from tests.browser.helpers import SUPERVISOR, load_demo, member_login, staff_login
from tests.browser.keyboard import assert_focus_visible, has_focus, tab_to


def session_expiry():
    return Session.objects.get().expire_date


def test_the_member_is_warned_and_stays_logged_in(page):
    load_demo()
    page.clock.install()
    member_login(page)
    dialog = page.locator("#session-timeout")
    warning_title = dialog.get_by_role("heading", name="Votre session va bientôt expirer")
    assert not dialog.is_visible()

    page.clock.fast_forward("24:50")
    assert not dialog.is_visible()
    page.clock.fast_forward("00:15")  # 25 minutes without a request: 5 left
    warning_title.wait_for()
    assert has_focus(warning_title)
    assert_focus_visible(page)
    assert re.search(r"déconnecté\(e\) à \d\d:\d\d", dialog.inner_text())
    assert_accessible(page, "session timeout warning")

    before = session_expiry()
    tab_to(page, dialog.get_by_role("button", name="Rester connecté(e)"), max_presses=3)
    with page.expect_response(lambda response: response.request.method == "HEAD"):
        page.keyboard.press("Enter")
    dialog.wait_for(state="hidden")
    assert session_expiry() > before, "the server's session was extended"

    # Escape on the warning also means "I am here".
    page.clock.fast_forward("25:05")
    warning_title.wait_for()
    with page.expect_response(lambda response: response.request.method == "HEAD"):
        page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")


def test_the_member_is_told_when_the_session_has_expired(page):
    load_demo()
    page.clock.install()
    member_login(page)
    page.goto("/paiements/")
    page.clock.fast_forward("25:05")
    page.clock.fast_forward("05:00")
    expired_title = page.get_by_role("heading", name="Votre session a expiré")
    expired_title.wait_for()
    assert has_focus(expired_title)
    assert_accessible(page, "session expired")
    Session.objects.all().delete()  # what the server's own clock did meanwhile
    page.get_by_role("link", name="Se reconnecter").click()
    page.wait_for_url(re.compile(r".*/connexion/\?next=/paiements/$"))


def test_the_advisor_is_warned_too(page):
    load_demo()
    page.clock.install()
    staff_login(page, SUPERVISOR)
    page.clock.fast_forward("25:05")
    page.get_by_role("heading", name="Votre session va bientôt expirer").wait_for()
    page.clock.fast_forward("05:00")
    Session.objects.all().delete()
    page.get_by_role("link", name="Se reconnecter").click()
    page.wait_for_url("**/conseiller/connexion/")


def test_no_warning_for_a_visitor(page):
    page.clock.install()
    page.goto("/")
    assert page.locator("#session-timeout").count() == 0


def test_the_site_works_without_javascript(browser, live_server):
    load_demo()
    context = browser.new_context(
        base_url=live_server.url, locale="fr-FR", java_script_enabled=False
    )
    page = context.new_page()
    try:
        member_login(page)
        for path in ("/paiements/", "/indemnites/", "/mon-compte/"):
            page.goto(path)
            assert not page.locator("#session-timeout").is_visible()
        page.goto("/mon-compte/mot-de-passe/")
        page.get_by_role("button", name="Modifier mon mot de passe").click()
        assert page.locator("#resume-erreurs").is_visible()
        page.locator("header").get_by_role("button", name="Se déconnecter").click()
        page.wait_for_url(re.compile(r".*/($|\?)"))
    finally:
        context.close()
