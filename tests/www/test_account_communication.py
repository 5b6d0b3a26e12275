"""Mon compte: the communication need of a deaf or hard-of-hearing member (LSF, TTRP, LfPC),
declared once and used when booking an appointment."""

import re

import pytest
from django.test import Client

from portal.accounts import channels
from portal.accounts.models import Account
from portal.audit.models import AuditEntry

URL = "/mon-compte/communication/"

pytestmark = pytest.mark.django_db


@pytest.fixture
def member_client(client, account):
    client.force_login(account, backend="portal.accounts.backends.NirBackend")
    return client


def page(response) -> str:
    return response.content.decode()


def checked(text: str) -> list[str]:
    return re.findall(r'name="communication_mode" value="([^"]*)" checked', text)


def mode_of(account) -> str:
    return Account.objects.get(pk=account.pk).communication_mode


def entries():
    return list(
        AuditEntry.objects.filter(action="account.communication_mode.changed").order_by("seq")
    )


def test_the_overview_links_to_the_page(member_client):
    text = page(member_client.get("/mon-compte/"))
    assert "Mon besoin de communication" in text
    assert f'href="{URL}"' in text and "Déclarer un besoin de communication" in text


def test_the_page_explains_each_choice(member_client):
    response = member_client.get(URL)
    assert response.status_code == 200
    text = page(response)
    assert "<title>Mon besoin de communication — " in text
    assert f'<form method="post" action="{URL}"' in text and "csrfmiddlewaretoken" in text
    assert re.findall(r'name="communication_mode" value="([^"]*)"', text) == [
        "aucun",
        "lsf",
        "ttrp",
        "lfpc",
    ]
    assert checked(text) == ["aucun"]
    for words in (
        "Pas de besoin particulier",
        "Langue des signes française (LSF)",
        "Transcription en temps réel de la parole (TTRP)",
        "Langue française parlée complétée (LfPC)",
        "Un interprète traduit en direct",
        "Un transcripteur écrit en direct",
        "Un codeur accompagne les paroles du conseiller",
        "Aucune caméra n’est nécessaire.",
        "pas par un appel téléphonique",
    ):
        assert words in text, words
    # Each radio has its label (keyboard and screen readers), in one fieldset with a legend.
    for n in range(1, 5):
        assert f'id="communication_mode-{n}"' in text and f'for="communication_mode-{n}"' in text
    assert '<legend class="fr-fieldset__legend" id="communication_mode-legend">' in text


def test_declaring_a_need_saves_it_with_an_audit_entry(member_client, account):
    response = member_client.post(URL, {"communication_mode": "lsf"}, REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 302 and response["Location"] == "/mon-compte/"
    assert mode_of(account) == "lsf"
    (entry,) = entries()
    assert entry.actor == f"member:{account.pk}"
    assert entry.member_id == account.member_id
    assert entry.data == {"communication_mode": "lsf"}
    assert entry.ip == "203.0.113.9"
    overview = page(member_client.get("/mon-compte/"))
    assert "Votre besoin de communication est enregistré : Langue des signes française (LSF)." in (
        overview
    )
    assert "Vous avez déclaré ce mode de communication" in overview
    assert "Modifier mon besoin de communication" in overview
    assert checked(page(member_client.get(URL))) == ["lsf"]

    # The same choice again changes nothing and writes nothing.
    assert member_client.post(URL, {"communication_mode": "lsf"}).status_code == 302
    assert len(entries()) == 1
    # Another mode, then none.
    member_client.post(URL, {"communication_mode": "lfpc"})
    member_client.post(URL, {"communication_mode": "aucun"})
    assert mode_of(account) == ""
    assert [e.data["communication_mode"] for e in entries()] == ["lsf", "lfpc", ""]
    assert "vous n’avez pas de besoin de communication particulier" in page(
        member_client.get("/mon-compte/")
    )


def test_the_declared_need_preselects_the_relay_interview(member_client, account):
    member_client.post(URL, {"communication_mode": "ttrp"})
    text = page(member_client.get("/agenda/nouveau/type/", {"motif": "arret-travail-ij"}))
    assert re.findall(r'name="type" value="([^"]*)" checked', text) == ["relay"]
    to_mode = member_client.get(
        "/agenda/nouveau/lieu/", {"motif": "arret-travail-ij", "type": "relay"}
    )
    text = page(member_client.get(to_mode["Location"]))
    assert re.findall(r'name="mode" value="([^"]*)" checked', text) == ["ttrp"]


def test_the_post_needs_the_csrf_token(account):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(account, backend="portal.accounts.backends.NirBackend")
    assert browser.post(URL, {"communication_mode": "lsf"}).status_code == 403
    assert mode_of(account) == "" and not entries()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page(browser.get(URL)))[1]
    response = browser.post(URL, {"communication_mode": "lsf", "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and mode_of(account) == "lsf"


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"communication_mode": ""},
        {"communication_mode": "asl"},
        {"communication_mode": "LSF"},
        {"communication_mode": "\x00"},
        {"communication_mode": "lsf\x00"},
        {"communication_mode": "x" * 10000},
        {"communication_mode": "' OR 1=1 --"},
        {"other": "lsf"},
    ],
)
def test_garbage_is_a_french_message_and_changes_nothing(member_client, account, data):
    account.communication_mode = "ttrp"
    account.save()
    response = member_client.post(URL, data)
    assert response.status_code == 400
    text = page(response)
    assert 'role="alert" id="resume-erreurs" tabindex="-1" autofocus' in text
    assert "<title>Erreur : Mon besoin de communication" in text
    assert (
        "Choisissez l’une des options : pas de besoin particulier, LSF, TTRP ou LfPC." in text
        or "Cette option n’existe pas. Choisissez l’une des options de la liste." in text
    )
    assert 'href="#communication_mode-1"' in text
    assert 'class="fr-fieldset fr-fieldset--error"' in text
    assert mode_of(account) == "ttrp" and not entries()


def test_several_values_keep_the_last_and_never_500(member_client, account):
    response = member_client.post(URL, {"communication_mode": ["lsf", "\x00"]})
    assert response.status_code == 400
    assert mode_of(account) == ""
    response = member_client.post(URL, {"communication_mode": ["\x00", "lfpc"]})
    assert response.status_code == 302 and mode_of(account) == "lfpc"


def test_the_page_needs_a_login(client):
    for method in ("get", "post"):
        response = getattr(client, method)(URL)
        assert response.status_code == 302 and response["Location"].startswith("/connexion/")
    assert client.put(URL).status_code in (302, 405)


@pytest.mark.parametrize("mode", ["asl", "LSF", " lsf", 5, ["lsf"], "x" * 100])
def test_the_service_refuses_anything_but_the_modes(account, mode):
    with pytest.raises(channels.InvalidCommunicationMode):
        channels.account_communication_mode_set(account=account, mode=mode, ip="127.0.0.1")
    assert mode_of(account) == "" and not entries()


def test_the_service_saves_and_audits_each_change(account):
    for mode in ("lfpc", "lfpc", None, ""):
        channels.account_communication_mode_set(account=account, mode=mode, ip="127.0.0.1")
    assert mode_of(account) == ""
    assert [e.data for e in entries()] == [
        {"communication_mode": "lfpc"},
        {"communication_mode": ""},
    ]
