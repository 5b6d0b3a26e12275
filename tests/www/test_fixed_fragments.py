"""`{% fixed %}` (portal/www/templatetags/fixed.py): the page frame's parts drawn once per
process and language stay right for every language, setting and page."""

import pytest
from django.template import Context, Template, TemplateSyntaxError
from django.utils import translation


@pytest.mark.django_db
def test_the_frame_follows_the_language(client):
    french = client.get("/").content.decode()
    assert "Accès rapide" in french and "Mentions légales" in french
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    english = client.get("/").content.decode()
    assert "Quick access" in english and "Legal notice" in english
    assert "Accès rapide" not in english
    client.post("/i18n/setlang/", {"language": "fr", "next": "/"})
    assert client.get("/").content.decode().count("Accès rapide") == 1


@pytest.mark.django_db
def test_the_blocks_between_fixed_parts_stay_the_pages(client):
    """The console's suffix to the service's name sits between two fixed parts."""
    assert "console conseiller" not in client.get("/").content.decode()
    assert "console conseiller" in client.get("/conseiller/connexion/").content.decode()
    assert "console conseiller" not in client.get("/").content.decode()


def test_drawn_once_per_language_and_forgotten_when_a_setting_changes(settings):
    template = Template(
        "{% load fixed i18n %}{% fixed %}{{ value }} {% translate 'Mentions légales' %}"
        "{% endfixed %}"
    )
    assert template.render(Context({"value": "a"})) == "a Mentions légales"
    assert template.render(Context({"value": "b"})) == "a Mentions légales"  # kept
    with translation.override("en"):
        assert template.render(Context({"value": "c"})) == "c Legal notice"
    settings.SERVICE_NAME = "Autre service"
    assert template.render(Context({"value": "d"})) == "d Mentions légales"


def test_it_takes_no_argument():
    with pytest.raises(TemplateSyntaxError):
        Template("{% load fixed %}{% fixed 'x' %}{% endfixed %}")
