"""French by default, English on request: the switch, the browser's preference, the catalog."""

import ast
import gettext
import html
import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation

from portal.accounts.passwords import PolicyValidator, rule_message
from portal.members.nir import NirError, parse
from tests.factories import PASSWORD, AccountFactory

LOCALE_DIR = Path(settings.BASE_DIR) / "portal" / "locale" / "en" / "LC_MESSAGES"
PUBLIC_PAGES = [
    "/",
    "/connexion/",
    "/compte/creer/",
    "/compte/creer/envoye/",
    "/compte/confirmer/",
    "/accessibilite/",
    "/mentions-legales/",
    "/donnees-personnelles/",
    "/demo/boite-mail/",
    "/page-qui-n-existe-pas/",
]


@pytest.fixture(autouse=True)
def _default_language():
    """LocaleMiddleware leaves the last request's language active in the thread: reset it so
    that English requests here do not leak into tests that expect French."""
    translation.deactivate()
    yield
    translation.deactivate()


def html_lang(response) -> str:
    return re.search(r'<html lang="([^"]+)"', response.content.decode()).group(1)


def visible_text(response) -> str:
    page = response.content.decode()
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def switch_to(client, language, next_url="/connexion/"):
    return client.post("/i18n/setlang/", {"language": language, "next": next_url})


# --- the default is French ---------------------------------------------------------------


@pytest.mark.django_db
def test_default_page_is_french(client):
    response = client.get("/connexion/")
    assert response.status_code == 200
    assert html_lang(response) == "fr"
    page = response.content.decode()
    assert "Numéro de sécurité sociale" in page
    assert "Mot de passe" in page
    assert "Créer mon compte" in page


@pytest.mark.django_db
@pytest.mark.parametrize("accept", ["fr", "fr-FR,fr;q=0.9", "fr-CA", "de-DE,de;q=0.9"])
def test_french_or_unsupported_browser_stays_french(client, accept):
    response = client.get("/connexion/", HTTP_ACCEPT_LANGUAGE=accept)
    assert html_lang(response) == "fr"
    assert "Numéro de sécurité sociale" in response.content.decode()
    assert "Social security number" not in response.content.decode()


# --- the switch --------------------------------------------------------------------------


@pytest.mark.django_db
def test_header_has_an_accessible_switch_that_needs_no_javascript(client):
    page = client.get("/connexion/").content.decode()
    form = re.search(r'<form method="post" action="/i18n/setlang/">(.*?)</form>', page, re.S)
    assert form, "a plain POST form to set_language"
    form = form.group(1)
    assert 'name="csrfmiddlewaretoken"' in form
    assert '<input type="hidden" name="next" value="/connexion/">' in form
    assert re.search(r"<legend[^>]*>Langue du site</legend>", form)
    french = re.search(r'<button [^>]*value="fr"[^>]*>Français</button>', form).group(0)
    english = re.search(r'<button [^>]*value="en"[^>]*>English</button>', form).group(0)
    assert 'lang="fr"' in french
    assert 'aria-current="true"' in french
    assert 'lang="en"' in english
    assert "aria-current" not in english


@pytest.mark.django_db
def test_switching_to_english_then_back_to_french(client):
    response = switch_to(client, "en")
    assert response.status_code == 302
    assert response["Location"] == "/connexion/"

    page = client.get("/connexion/")
    assert html_lang(page) == "en"
    content = page.content.decode()
    for label in ("Social security number", "Password", "Sign in", "Create my account"):
        assert label in content
    assert "Numéro de sécurité sociale" not in content
    assert re.search(r"<legend[^>]*>Site language</legend>", content)
    assert re.search(r'value="en" lang="en"\s+class="[^"]*" aria-current="true">English', content)

    switch_to(client, "fr")
    page = client.get("/connexion/")
    assert html_lang(page) == "fr"
    assert "Numéro de sécurité sociale" in page.content.decode()


@pytest.mark.django_db
def test_switch_refuses_an_offsite_next(client):
    response = switch_to(client, "en", next_url="https://evil.example/")
    assert response.status_code == 302
    assert response["Location"] == "/"


@pytest.mark.django_db
def test_english_browser_gets_english(client):
    response = client.get("/connexion/", HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.9,fr;q=0.5")
    assert html_lang(response) == "en"
    assert "Social security number" in response.content.decode()


@pytest.mark.django_db
def test_the_switch_wins_over_the_browser(client):
    switch_to(client, "fr")
    response = client.get("/connexion/", HTTP_ACCEPT_LANGUAGE="en")
    assert html_lang(response) == "fr"


# --- messages from forms, views and domain rules --------------------------------------------


@pytest.mark.django_db
def test_login_failure_message_in_both_languages(client):
    account = AccountFactory()
    data = {"nir": account.nir, "password": "Pas-Le-Bon-Mot-2"}
    assert (
        "Numéro de sécurité sociale ou mot de passe incorrect."
        in client.post("/connexion/", data).content.decode()
    )
    switch_to(client, "en")
    assert (
        "Incorrect social security number or password."
        in client.post("/connexion/", data).content.decode()
    )
    response = client.post("/connexion/", {"nir": account.nir, "password": PASSWORD})
    assert response.status_code == 302
    space = client.get("/mon-espace/").content.decode()
    assert "Sign out" in space
    assert "My payments" in space


@pytest.mark.django_db
def test_nir_and_form_errors_are_translated(client):
    switch_to(client, "en")
    response = client.post("/compte/creer/", {"nir": "7850578006084", "iban_last7": "12"})
    content = response.content.decode()
    assert response.status_code == 400
    assert "This is a temporary number" in content
    assert "numéro provisoire" not in content
    assert "The form contains 3 errors" in content
    assert "Date of birth: This field is required." in content  # Django's own catalog


def test_nir_error_message_is_a_str_in_the_language_active_when_raised():
    with translation.override("en"), pytest.raises(NirError) as exc:
        parse("7850578006084", require_key=False)
    assert type(exc.value.message) is str
    assert exc.value.message.startswith("This is a temporary number")
    assert exc.value.code == "temporary"
    with pytest.raises(NirError) as exc:
        parse("7850578006084", require_key=False)
    assert type(exc.value.message) is str
    assert "numéro provisoire" in exc.value.message


def test_password_rule_messages_are_formatted_in_the_active_language(settings):
    settings.PASSWORD_MIN_LENGTH = 14
    assert rule_message("min_length") == "Au moins 14 caractères."
    with translation.override("en"):
        assert rule_message("min_length") == "At least 14 characters."
        assert rule_message("max_length") == "At most 128 characters."
        assert "At least 14 characters." in PolicyValidator().get_help_text()


@pytest.mark.django_db
def test_api_rule_names_are_codes_whatever_the_language(client, member):
    payload = {
        "nir": member.nir,
        "birth_date": member.birth_date.isoformat(),
        "iban_last7": member.iban[-7:],
        "email": "nouvelle@example.org",
        "password": "court",
    }
    for accept in ("fr", "en"):
        response = client.post(
            "/api/v1/accounts",
            json.dumps(payload),
            content_type="application/json",
            HTTP_ACCEPT_LANGUAGE=accept,
        )
        assert response.status_code == 400
        assert response.json() == {"error": "weak_password", "rules": ["min_length", "uppercase"]}


def french_leftovers(response) -> list[str]:
    """Words with French accents or apostrophes, once the proper names are taken out."""
    text = visible_text(response)
    for name in (
        settings.SERVICE_NAME,
        settings.FUND_NAME,
        "République Française",  # the State's mark is always French
        "Français",  # the language switch names each language in itself
        "Défenseur des droits",
    ):
        text = text.replace(name, "")
    return re.findall(r"\S*[àâçéèêëîïôûùœ’]\S*", text, flags=re.IGNORECASE)


@pytest.mark.django_db
@pytest.mark.parametrize("path", PUBLIC_PAGES)
def test_english_pages_have_no_french_left(client, path):
    """Catches a string left outside the translation markers."""
    assert french_leftovers(client.get(path))  # the check does see French…
    switch_to(client, "en")
    assert french_leftovers(client.get(path)) == []  # …and finds none in English


@pytest.mark.django_db
def test_english_member_space_has_no_french_left(client):
    account = AccountFactory()
    client.post("/connexion/", {"nir": account.nir, "password": PASSWORD})
    switch_to(client, "en", next_url="/mon-espace/")
    response = client.get("/mon-espace/")
    assert response.status_code == 200
    assert french_leftovers(response) == []


# --- the catalog -----------------------------------------------------------------------------


def read_po(path: Path) -> list[dict]:
    """The .po entries as dicts of their keywords (msgid, msgstr[0], …) and flags."""
    entries, entry, key = [], None, None
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if not line.strip():
            if entry is not None:
                entries.append(entry)
            entry, key = None, None
            continue
        if entry is None:
            entry = {"flags": set()}
        if line.startswith("#,"):
            entry["flags"].update(flag.strip() for flag in line[2:].split(","))
        elif line.startswith("#~"):
            entry["flags"].add("obsolete")
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            entry[key] += ast.literal_eval(line)
        else:
            key, literal = line.split(" ", 1)
            entry[key] = ast.literal_eval(literal)
    return entries


def test_every_msgid_has_an_english_translation_and_none_is_fuzzy():
    entries = read_po(LOCALE_DIR / "django.po")
    header, messages = entries[0], entries[1:]
    assert header["msgid"] == ""
    assert "Language: en\n" in header["msgstr"]
    assert "charset=UTF-8" in header["msgstr"]
    assert len(messages) > 100
    problems = []
    for entry in entries:
        if "fuzzy" in entry["flags"] or "obsolete" in entry["flags"]:
            problems.append(("fuzzy or obsolete", entry.get("msgid")))
        translations = [value for key, value in entry.items() if key.startswith("msgstr")]
        if entry is not header and (not translations or not all(t.strip() for t in translations)):
            problems.append(("untranslated", entry["msgid"]))
        if "msgid_plural" in entry and not {"msgstr[0]", "msgstr[1]"} <= entry.keys():
            problems.append(("missing plural form", entry["msgid"]))
    assert problems == []


def test_compiled_catalog_matches_the_po():
    """The .mo is committed: it must be recompiled whenever the .po changes."""
    with (LOCALE_DIR / "django.mo").open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    for entry in read_po(LOCALE_DIR / "django.po")[1:]:
        context = entry.get("msgctxt")
        if "msgid_plural" in entry:
            one, many = entry["msgid"], entry["msgid_plural"]
            if context is not None:
                assert compiled.npgettext(context, one, many, 1) == entry["msgstr[0]"]
                assert compiled.npgettext(context, one, many, 2) == entry["msgstr[1]"]
            else:
                assert compiled.ngettext(one, many, 1) == entry["msgstr[0]"]
                assert compiled.ngettext(one, many, 2) == entry["msgstr[1]"]
        elif context is not None:
            assert compiled.pgettext(context, entry["msgid"]) == entry["msgstr"]
        else:
            assert compiled.gettext(entry["msgid"]) == entry["msgstr"]
