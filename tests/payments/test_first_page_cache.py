"""The first page of Mes paiements, kept drawn per member: never stale, never another's.

The page as the menu reaches it (no filter, no cursor) is cached under a key
made of the member, the day, the language, the code and a brief of the
member's payment data (`selectors.first_page_version`): an import that adds
or changes a line, a new stoppage or beneficiary shows at the next request.
"""

from datetime import date

import pytest
import time_machine
from django.core.cache import cache, caches

from portal.members.models import Beneficiary
from portal.payments import kept_pages, selectors
from portal.payments.models import WorkStoppage
from tests.api.test_payments_api import bearer
from tests.factories import AccountFactory
from tests.www.test_payments import login, make_line

from .helpers import allowance, allowances_feed, reimbursement, reimbursements_feed, run


def main(response) -> str:
    """The page's content, without the frame (CSRF tokens, session countdown)."""
    assert response.status_code == 200
    html = response.content.decode()
    return html[html.index("<main") : html.index("</main>")]


@pytest.fixture
def member_client(client, paul):
    login(client, paul.accounts.get())
    return client


def test_an_import_shows_at_the_next_request(member_client, paul, tmp_path, today):
    first = main(member_client.get("/paiements/"))
    assert "Aucun paiement ne correspond à ces critères." in first
    assert main(member_client.get("/paiements/")) == first  # drawn once, kept

    # The nightly import brings a line not paid yet…
    with time_machine.travel("2026-03-16 12:02:00+01:00", tick=False):
        pending = reimbursement(
            line_id="L0001", payment_date="", payment_reference="", status="in_progress"
        )
        assert (
            run("import_reimbursements", reimbursements_feed(tmp_path, [pending])).counts["created"]
            == 1
        )
        page = main(member_client.get("/paiements/"))
    assert "En cours de traitement : 19,00 €" in page
    assert "Consultation du médecin généraliste" in page

    # … the next one pays it (an update of the same line) and brings another.
    with time_machine.travel("2026-03-16 12:04:00+01:00", tick=False):
        paid = reimbursement(
            line_id="L0001", payment_date="2026-03-16", payment_reference="VIR20260316A"
        )
        other = reimbursement(
            line_id="L0002", payment_date="2026-03-16", payment_reference="VIR20260316A"
        )
        counts = run("import_reimbursements", reimbursements_feed(tmp_path, [paid, other])).counts
        assert (counts["created"], counts["updated"]) == (1, 1)
        page = main(member_client.get("/paiements/"))
    assert "En cours de traitement" not in page
    assert "Virement du 16 mars 2026 : 38,00 € versés à : Vous" in page


def test_a_new_stoppage_or_beneficiary_shows_at_the_next_request(
    member_client, paul, tmp_path, today
):
    make_line(paul, paid_on=date(2026, 3, 10), reference="VIR-1")
    page = main(member_client.get("/paiements/"))
    assert "Voir le détail de mes arrêts de travail" not in page
    run("import_allowances", allowances_feed(tmp_path, [allowance()]))
    assert WorkStoppage.objects.filter(member=paul).exists()
    assert "Voir le détail de mes arrêts de travail" in main(member_client.get("/paiements/"))

    Beneficiary.objects.create(
        member=paul, first_names="Hugo", last_name="Martin", birth_date=date(2019, 5, 2)
    )
    assert ">Hugo</option>" in main(member_client.get("/paiements/"))
    Beneficiary.objects.filter(first_names="Hugo").update(first_names="Hugo-Louis")
    page = main(member_client.get("/paiements/"))
    assert ">Hugo-Louis</option>" in page and ">Hugo</option>" not in page


def test_the_cached_page_is_the_page_drawn_anew(member_client, paul, today):
    child = paul.beneficiaries.get()
    make_line(paul, paid_on=date(2026, 3, 10), reference="VIR-1", net="19.00")
    make_line(paul, paid_on=date(2026, 2, 10), reference="VIR-0", beneficiary=child)
    make_line(paul)  # not paid yet
    drawn = main(member_client.get("/paiements/"))
    kept = main(member_client.get("/paiements/"))  # from the cache…
    cache.clear()  # … and this one is drawn again
    assert kept == drawn == main(member_client.get("/paiements/"))
    # A filter is never cached: what the form sends is drawn for the request.
    filtered = member_client.get("/paiements/", {"beneficiary": "me"})
    assert [t.reference for t in filtered.context["transfers"]] == ["", "VIR-1"]


def test_each_member_gets_their_own_page(client, paul, camille, today):
    make_line(paul, paid_on=date(2026, 3, 10), reference="VIR-PAUL")
    login(client, paul.accounts.get())
    assert "Paul (vous)" in main(client.get("/paiements/"))
    client.logout()
    login(client, camille.accounts.get())
    page = main(client.get("/paiements/"))
    assert "Camille (vous)" in page
    assert "Paul" not in page and "Léa" not in page
    assert "Aucun paiement ne correspond à ces critères." in page


def test_the_day_and_the_language_are_part_of_the_key(member_client, paul, today):
    make_line(paul, paid_on=date(2026, 3, 10), reference="VIR-1")
    french = main(member_client.get("/paiements/"))
    assert "mars 2026" in french
    with time_machine.travel("2026-04-02 12:00:00+02:00", tick=False):
        # A new month: the chart's twelve months and the statements move on.
        login(member_client, paul.accounts.get())
        assert '<option value="2026-04">avril 2026</option>' in main(
            member_client.get("/paiements/")
        )
    login(member_client, paul.accounts.get())
    member_client.post("/i18n/setlang/", {"language": "en", "next": "/paiements/"})
    english = main(member_client.get("/paiements/"))
    assert english != french
    assert "March 2026" in english


def test_the_first_page_costs_two_queries_once_drawn(
    member_client, paul, today, django_assert_num_queries
):
    for day in range(1, 16):
        make_line(paul, paid_on=date(2026, 3, day), reference=f"VIR-{day:02d}")
    make_line(paul)
    member_client.get("/paiements/")
    # The session with its account (and member), the brief of the payment data.
    with django_assert_num_queries(2):
        assert member_client.get("/paiements/").status_code == 200
    cache.clear()
    # Drawn anew: + the beneficiaries, the transfers, their lines, the chart.
    with django_assert_num_queries(6):
        assert member_client.get("/paiements/").status_code == 200


def test_the_version_reads_the_payment_data_of_the_viewer_only(paul, camille, today):
    account = paul.accounts.get()
    before = selectors.first_page_version(account=account)
    make_line(camille, paid_on=date(2026, 3, 10), reference="VIR-C")
    assert selectors.first_page_version(account=account) == before
    make_line(paul, paid_on=date(2026, 3, 10), reference="VIR-P")
    assert selectors.first_page_version(account=account) != before
    closed = AccountFactory(state="deleted")
    assert selectors.first_page_version(account=closed) is None


def test_with_the_shared_cache_unreachable_the_page_is_kept_per_process(
    member_client, paul, today, monkeypatch
):
    def unreachable(*args, **kwargs):
        raise ConnectionError("Redis is away")

    make_line(paul, paid_on=date(2026, 3, 10), reference="VIR-1")
    monkeypatch.setattr(caches["default"], "get", unreachable)
    monkeypatch.setattr(caches["default"], "set", unreachable)
    try:
        drawn = main(member_client.get("/paiements/"))
        assert "Virement du 10 mars 2026" in drawn
        assert kept_pages.cache.degraded
        assert main(member_client.get("/paiements/")) == drawn
    finally:
        kept_pages.cache.reset()


def _kept(paul) -> tuple[str, str]:
    """The one first page in the cache: its key and what the cache holds."""
    [key] = [k for k in cache._cache if f"payments:first-page:{paul.pk}:" in k]
    return key.split(":", 2)[2], cache.get(key.split(":", 2)[2])


def test_the_cache_holds_the_page_encrypted(member_client, paul, today):
    page = main(member_client.get("/paiements/"))
    key, stored = _kept(paul)
    assert isinstance(stored, str) and stored.startswith("v1$")
    assert paul.first_names not in stored and "€" not in stored and "<" not in stored
    assert main(member_client.get("/paiements/")) == page


def test_a_page_planted_in_the_cache_is_never_served(member_client, paul, today, caplog):
    page = main(member_client.get("/paiements/"))
    key, _ = _kept(paul)
    planted = '<a href="https://hameconnage.example">Mettez à jour votre RIB</a>'
    cache.set(key, planted)  # someone able to write to Redis, without the key
    again = main(member_client.get("/paiements/"))
    assert "hameconnage" not in again and again == page
    assert "a cached first page of Mes paiements was refused: not a sealed value" in caplog.text


def test_another_members_sealed_page_moved_under_this_key_is_refused(client, paul, camille, today):
    login(client, camille.accounts.get())
    client.get("/paiements/")
    _, camilles = _kept(camille)
    client.logout()
    login(client, paul.accounts.get())
    page = main(client.get("/paiements/"))
    key, _ = _kept(paul)
    cache.set(key, camilles)  # a valid seal, for another key
    assert main(client.get("/paiements/")) == page
    assert camille.first_names not in page


# The API's first page (`GET /api/v1/reimbursements`, no filter, no cursor) is
# kept the same way, under keys of its own.


def _api_items(client, auth) -> list[dict]:
    response = client.get("/api/v1/reimbursements", **auth)
    assert response.status_code == 200
    return response.json()["items"]


def test_the_api_first_page_shows_an_import_at_the_next_request(client, paul, tmp_path, today):
    auth = bearer(client, paul.accounts.get())
    assert _api_items(client, auth) == []
    assert _api_items(client, auth) == []  # kept
    with time_machine.travel("2026-03-16 12:02:00+01:00", tick=False):
        pending = reimbursement(
            line_id="L0001", payment_date="", payment_reference="", status="in_progress"
        )
        run("import_reimbursements", reimbursements_feed(tmp_path, [pending]))
        auth = bearer(client, paul.accounts.get())
        [item] = _api_items(client, auth)
    assert (item["line_id"], item["status"]) == ("L0001", "in_progress")
    with time_machine.travel("2026-03-16 12:04:00+01:00", tick=False):
        paid = reimbursement(
            line_id="L0001", payment_date="2026-03-16", payment_reference="VIR20260316A"
        )
        run("import_reimbursements", reimbursements_feed(tmp_path, [paid]))
        auth = bearer(client, paul.accounts.get())
        [item] = _api_items(client, auth)
    assert (item["status"], item["payment_reference"]) == ("paid", "VIR20260316A")


def test_the_api_first_page_shows_a_beneficiarys_new_nir(client, paul, today):
    child = paul.beneficiaries.get()
    make_line(paul, paid_on=date(2026, 3, 10), reference="VIR-1", beneficiary=child)
    auth = bearer(client, paul.accounts.get())
    assert [i["beneficiary_nir"] for i in _api_items(client, auth)] == [child.nir]
    Beneficiary.objects.filter(pk=child.pk).update(nir="2150375111042")
    assert [i["beneficiary_nir"] for i in _api_items(client, auth)] == ["2150375111042"]


def test_the_api_first_page_is_kept_sealed_and_never_served_planted(client, paul, camille, today):
    make_line(paul, paid_on=date(2026, 3, 10), reference="VIR-PAUL")
    make_line(camille, paid_on=date(2026, 3, 11), reference="VIR-CAMILLE")
    camille_auth = bearer(client, camille.accounts.get())
    _api_items(client, camille_auth)
    auth = bearer(client, paul.accounts.get())
    items = _api_items(client, auth)
    [key] = [k for k in cache._cache if f"payments:api-first-page:{paul.pk}:" in k]
    key = key.split(":", 2)[2]
    [camilles_key] = [k for k in cache._cache if f"payments:api-first-page:{camille.pk}:" in k]
    stored = cache.get(key)
    assert stored.startswith("v1$") and "VIR-PAUL" not in stored and "{" not in stored
    cache.set(key, '{"items": [], "next_cursor": null}')  # written by someone without the key
    assert _api_items(client, auth) == items
    cache.set(key, cache.get(camilles_key.split(":", 2)[2]))  # another member's seal
    assert [i["payment_reference"] for i in _api_items(client, auth)] == ["VIR-PAUL"]
