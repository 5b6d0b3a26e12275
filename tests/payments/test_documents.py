"""The downloads of Mes paiements: accessible PDFs with the member's own figures, and nobody else's.

Each PDF costs WeasyPrint most of a second: the tests build as few as they can.
"""

import io
from datetime import date
from decimal import Decimal

import pytest
from pypdf import PdfReader

from portal.payments.models import AllowancePayment, WorkStoppage
from tests.factories import PASSWORD
from tests.www.test_payments import login, make_line

# `today` (conftest) freezes time on 2026-03-16: the window runs from January 2024 to March 2026.


def pdf_text(response) -> str:
    """The PDF's text with whitespace collapsed, after checking it is a tagged French PDF."""
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith('attachment; filename="')
    assert response.content.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(response.content))
    catalog = reader.trailer["/Root"]
    assert "/StructTreeRoot" in catalog
    assert catalog["/MarkInfo"]["/Marked"]
    assert catalog["/Lang"] == "fr"
    assert reader.metadata.title
    return " ".join("\n".join(page.extract_text() for page in reader.pages).split())


def allowance(member, *, paid_on, gross, csg, crds, net, stoppage=None, status="paid"):
    stoppage = stoppage or WorkStoppage.objects.create(
        stoppage_id=f"S-{member.pk}-{paid_on}",
        member=member,
        kind="maladie",
        start=date(2026, 1, 5),
        waiting_days=3,
    )
    return AllowancePayment.objects.create(
        payment_id=f"P-{member.pk}-{paid_on}",
        stoppage=stoppage,
        member=member,
        period_start=date(2026, 1, 8),
        period_end=date(2026, 1, 21),
        days=14,
        daily_gross=Decimal(gross) / 14,
        gross=Decimal(gross),
        csg=Decimal(csg),
        crds=Decimal(crds),
        net=Decimal(net),
        payment_date=paid_on,
        status=status,
    )


@pytest.fixture
def paul_client(client, paul):
    login(client, paul.accounts.get())
    return client


@pytest.mark.django_db
def test_the_monthly_statement_lists_the_months_paid_lines_and_allowances(
    paul_client, paul, camille
):
    child = paul.beneficiaries.get()
    make_line(paul, paid_on=date(2026, 2, 10), reference="VIR-1", net="19.00")
    make_line(paul, paid_on=date(2026, 2, 10), reference="VIR-1", net="5.50")
    make_line(paul, paid_on=date(2026, 2, 20), reference="VIR-2", net="12.34", beneficiary=child)
    make_line(paul, paid_on=date(2026, 1, 31), reference="VIR-0", net="77.77")  # January
    make_line(paul, net="66.66")  # not paid yet
    make_line(camille, paid_on=date(2026, 2, 10), reference="VIR-C", net="44.44")
    allowance(paul, paid_on=date(2026, 2, 14), gross="100.00", csg="6.20", crds="0.50", net="93.30")
    allowance(
        camille, paid_on=date(2026, 2, 14), gross="300.00", csg="18.60", crds="1.50", net="279.90"
    )

    response = paul_client.get("/paiements/releve/2026-02.pdf")

    assert response["Content-Disposition"] == 'attachment; filename="releve-mensuel-2026-02.pdf"'
    text = pdf_text(response)
    assert "Assurance Maladie" in text and "Relevé mensuel de février 2026" in text
    assert "Paul Martin" in text and "Léa Martin" in text
    for amount in ("19,00 €", "5,50 €", "12,34 €", "93,30 €", "100,00 €", "6,20 €", "0,50 €"):
        assert amount in text
    assert "Total des remboursements de soins 36,84 €" in text
    assert "Total des indemnités journalières 93,30 €" in text
    assert "130,14 €" in text
    for elsewhere in ("77,77", "66,66", "44,44", "279,90", "Camille", "Bernard"):
        assert elsewhere not in text


@pytest.mark.django_db
def test_the_statement_exists_for_the_last_27_months_only(paul_client):
    page = paul_client.get("/paiements/").content.decode()
    assert 'value="2024-01"' in page and 'value="2026-03"' in page
    assert 'value="2023-12"' not in page and 'value="2026-04"' not in page
    # The form's choice lands on the statement's address.
    chosen = paul_client.get("/paiements/releve/", {"mois": "2024-01"})
    assert chosen.status_code == 302 and chosen["Location"] == "/paiements/releve/2024-01.pdf"
    assert paul_client.get("/paiements/releve/", {"mois": "2023-12"}).status_code == 404

    for month in ("2023-12", "2026-04", "2026-13", "2026-3", "abcd-ef", "2026-03-01"):
        assert paul_client.get(f"/paiements/releve/{month}.pdf").status_code == 404, month
    text = pdf_text(paul_client.get("/paiements/releve/2024-01.pdf"))  # the 27th month back
    assert "Relevé mensuel de janvier 2024" in text
    assert "Aucun remboursement de soins payé ce mois-ci." in text


@pytest.mark.django_db
def test_the_entitlement_certificate_shows_the_member_and_beneficiaries(paul_client, paul, camille):
    response = paul_client.get("/paiements/attestation-droits.pdf")

    assert response["Content-Disposition"] == (
        'attachment; filename="attestation-droits-2026-03-16.pdf"'
    )
    text = pdf_text(response)
    nir = paul.nir
    full = f"{nir[0]} {nir[1:3]} {nir[3:5]} {nir[5:7]} {nir[7:10]} {nir[10:13]} {nir[13:]}"
    assert full in text
    assert "Paul Martin" in text and "12/05/1985" in text
    assert f"CPAM {paul.cpam.name} ({paul.cpam.code})" in text
    assert "Martin Léa 08/03/2015" in text
    assert "délivrée le 16 mars 2026, valable à la date d’émission" in text
    assert "Camille" not in text and camille.nir[:5] not in text.replace(" ", "")


@pytest.mark.django_db
def test_the_allowance_certificate_totals_the_payments_of_the_period(paul_client, paul, camille):
    stoppage = allowance(
        paul, paid_on=date(2025, 4, 1), gross="200.00", csg="12.40", crds="1.00", net="186.60"
    ).stoppage
    allowance(
        paul,
        paid_on=date(2026, 2, 14),
        gross="100.00",
        csg="6.20",
        crds="0.50",
        net="93.30",
        stoppage=stoppage,
    )
    allowance(  # before the period
        paul,
        paid_on=date(2025, 3, 16),
        gross="50.00",
        csg="3.10",
        crds="0.25",
        net="46.65",
        stoppage=stoppage,
    )
    allowance(
        camille, paid_on=date(2026, 2, 14), gross="300.00", csg="18.60", crds="1.50", net="279.90"
    )

    # Twelve months exactly: the longest period allowed.
    response = paul_client.get(
        "/indemnites/attestation.pdf", {"du": "2025-03-17", "au": "2026-03-16"}
    )

    text = pdf_text(response)
    assert "Attestation de paiement des indemnités journalières" in text
    assert "du 17 mars 2025 au 16 mars 2026" in text
    assert "Paul Martin" in text
    for amount in ("186,60 €", "93,30 €", "12,40 €", "6,20 €"):
        assert amount in text
    assert "Total 300,00 € 18,60 € 1,50 € 279,90 €" in text
    assert "total net versé : 279,90 €" in text
    assert "46,65" not in text and "Camille" not in text


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({}, "Indiquez la date de début et la date de fin"),
        ({"du": "2025-01-01"}, "Indiquez la date de début et la date de fin"),
        ({"du": "2025-02-30", "au": "2025-03-01"}, "ne sont pas valides"),
        ({"du": "01/02/2025", "au": "2025-03-01"}, "ne sont pas valides"),
        ({"du": "20250201", "au": "2025-03-01"}, "ne sont pas valides"),
        ({"du": "2025-03-01", "au": "2025-02-01"}, "doit être postérieure"),
        ({"du": "2025-03-17", "au": "2026-03-17"}, "ne peut pas dépasser 12 mois"),
        ({"du": "0001-01-01", "au": "9999-12-31"}, "ne peut pas dépasser 12 mois"),
    ],
)
def test_a_bad_period_gets_a_french_400_page(paul_client, query, message):
    response = paul_client.get("/indemnites/attestation.pdf", query)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "Période incorrecte" in page and message in page


@pytest.mark.django_db
def test_the_download_forms_are_on_the_pages(paul_client):
    page = paul_client.get("/indemnites/").content.decode()
    assert 'action="/indemnites/attestation.pdf"' in page
    assert 'name="du"' in page and 'value="2025-03-17"' in page and 'value="2026-03-16"' in page
    assert (
        'href="/paiements/attestation-droits.pdf"'
        in paul_client.get("/paiements/").content.decode()
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "/paiements/releve/2026-02.pdf",
        "/paiements/releve/?mois=2026-02",
        "/paiements/attestation-droits.pdf",
        "/indemnites/attestation.pdf?du=2025-03-17&au=2026-03-16",
    ],
)
def test_anonymous_visitors_are_sent_to_the_login_page(client, today, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/connexion/")


def bearer(client, member):
    token = client.post(
        "/api/v1/auth/token",
        {"nir": member.accounts.get().nir, "password": PASSWORD},
        content_type="application/json",
    ).json()["access_token"]
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


@pytest.mark.django_db
def test_the_api_serves_the_monthly_statement(client, paul, camille):
    make_line(paul, paid_on=date(2026, 2, 10), reference="VIR-1", net="19.00")
    make_line(camille, paid_on=date(2026, 2, 10), reference="VIR-C", net="44.44")
    auth = bearer(client, paul)
    url = "/api/v1/documents/monthly-statement"

    text = pdf_text(client.get(url, {"month": "2026-02"}, **auth))
    assert "Relevé mensuel de février 2026" in text and "19,00 €" in text
    assert "44,44" not in text and "Camille" not in text

    for month in ("2026-13", "2026-2", "février", ""):
        response = client.get(url, {"month": month}, **auth)
        assert response.status_code == 400 and response.json() == {"error": "invalid_month"}
    assert client.get(url, **auth).json() == {"error": "invalid_month"}
    for month in ("2023-12", "2026-04"):
        response = client.get(url, {"month": month}, **auth)
        assert response.status_code == 404 and response.json() == {"error": "month_not_available"}
    response = client.get(url, {"month": "2026-02"})
    assert response.status_code == 401 and response.json() == {"error": "not_authenticated"}
    bad = client.get(url, {"month": "2026-02"}, HTTP_AUTHORIZATION="Bearer nope")
    assert bad.status_code == 401
