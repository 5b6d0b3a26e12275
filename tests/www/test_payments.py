"""Mes paiements and Mes indemnités journalières: what a member sees, and never another's."""

import itertools
from datetime import date, timedelta
from decimal import Decimal

import pytest
import time_machine

from portal.members.models import Beneficiary
from portal.payments.models import AllowancePayment, ReimbursementLine, WorkStoppage
from tests.factories import AccountFactory

_ids = itertools.count(1)


def make_line(
    member, *, paid_on=None, reference="", beneficiary=None, net="21.00", care=None, **extra
):
    n = next(_ids)
    return ReimbursementLine.objects.create(
        line_id=f"L{n:08d}",
        member=member,
        beneficiary=beneficiary,
        care_date=care or (paid_on or date(2026, 2, 1)) - timedelta(days=3),
        act_code="G",
        act_label="Consultation généraliste",
        professional="Dr Morel, médecin généraliste",
        amount_paid=Decimal("30.00"),
        base_amount=Decimal("30.00"),
        rate=Decimal("70.00"),
        gross_reimbursed=Decimal("21.00"),
        participation_forfaitaire=Decimal("2.00"),
        franchise=Decimal("0.00"),
        net_reimbursed=Decimal(net),
        payee="member",
        payment_date=paid_on,
        payment_reference=reference,
        status="paid" if paid_on else "in_progress",
        **extra,
    )


def login(client, account):
    client.force_login(account, backend="portal.accounts.backends.NirBackend")


@pytest.fixture
def account(db):
    return AccountFactory()


@pytest.mark.django_db
def test_lines_are_grouped_by_transfer_with_their_total(client, account):
    make_line(account.member, paid_on=date(2026, 2, 10), reference="VIR-1", net="19.00")
    make_line(account.member, paid_on=date(2026, 2, 10), reference="VIR-1", net="5.50")
    make_line(account.member, paid_on=date(2026, 1, 20), reference="VIR-0", net="10.00")
    make_line(account.member)  # not paid yet
    login(client, account)
    with time_machine.travel("2026-03-01 10:00:00+01:00", tick=False):
        page = client.get("/paiements/").content.decode()
    assert (
        "Virement du 10 février 2026 : 24,50 €" in page
        or "Virement du 10 février 2026 : 24.50 €" in page
    )
    assert "En cours de traitement" in page
    assert page.index("10 février 2026") < page.index("20 janvier 2026")


@pytest.mark.django_db
def test_pagination_is_stable_when_new_payments_arrive(client, account):
    for day in range(1, 26):
        make_line(account.member, paid_on=date(2026, 1, day), reference=f"VIR-{day:02d}")
    login(client, account)
    first = client.get("/paiements/", {"kind": "soins"})
    assert first.context["next_cursor"]
    page_one = [t.reference for t in first.context["transfers"]]
    assert len(page_one) == 20 and page_one[0] == "VIR-25"
    # A new payment arrives between the two pages: page two does not shift.
    make_line(account.member, paid_on=date(2026, 2, 1), reference="VIR-NEW")
    second = client.get("/paiements/", {"kind": "soins", "apres": first.context["next_cursor"]})
    assert [t.reference for t in second.context["transfers"]] == [
        f"VIR-{d:02d}" for d in range(5, 0, -1)
    ]
    assert second.context["next_cursor"] is None


@pytest.mark.django_db
def test_the_list_page_costs_a_fixed_number_of_queries(
    client, account, django_assert_max_num_queries
):
    for day in range(1, 21):
        make_line(account.member, paid_on=date(2026, 1, day), reference=f"VIR-{day:02d}")
        make_line(account.member, paid_on=date(2026, 1, day), reference=f"VIR-{day:02d}")
    login(client, account)
    with django_assert_max_num_queries(20):
        assert client.get("/paiements/").status_code == 200


@pytest.mark.django_db
def test_filters_by_beneficiary_and_period(client, account):
    child = Beneficiary.objects.create(
        member=account.member, first_names="Léa", last_name="Dupont", birth_date=date(2015, 3, 8)
    )
    own = make_line(account.member, paid_on=date(2026, 2, 10), reference="VIR-A")
    childs = make_line(
        account.member, paid_on=date(2026, 2, 11), reference="VIR-B", beneficiary=child
    )
    login(client, account)
    only_child = client.get("/paiements/", {"beneficiary": str(child.pk)}).context["transfers"]
    assert [line.pk for t in only_child for line in t.lines] == [childs.pk]
    only_me = client.get("/paiements/", {"beneficiary": "me"}).context["transfers"]
    assert [line.pk for t in only_me for line in t.lines] == [own.pk]
    none = client.get("/paiements/", {"since": "2026-03-01"}).context["transfers"]
    assert none == []


@pytest.mark.django_db
def test_the_chart_has_an_equivalent_table(client, account):
    make_line(account.member, paid_on=date(2026, 2, 10), reference="VIR-1", net="19.00")
    login(client, account)
    with time_machine.travel("2026-03-01 10:00:00+01:00", tick=False):
        page = client.get("/paiements/").content.decode()
    assert '<svg class="payments-chart"' in page
    assert 'aria-hidden="true"' in page
    assert "février 2026" in page and "19" in page
    assert "style=" not in page.split("<main")[1]  # no inline style: the CSP forbids it


@pytest.mark.django_db
def test_line_detail_and_csv_export(client, account):
    line = make_line(account.member, paid_on=date(2026, 2, 10), reference="VIR-1")
    login(client, account)
    detail = client.get(f"/paiements/ligne/{line.line_id}/").content.decode()
    assert "Base de remboursement" in detail and "Participation forfaitaire" in detail
    export = client.get("/paiements/export.csv")
    body = b"".join(export.streaming_content).decode()
    assert body.splitlines()[0].startswith("date_des_soins;")
    assert "Consultation généraliste" in body


@pytest.mark.django_db
def test_csv_cells_cannot_be_formulas(client, account):
    make_line(account.member, paid_on=date(2026, 2, 10), reference="=HYPERLINK(1)")
    login(client, account)
    body = b"".join(client.get("/paiements/export.csv").streaming_content).decode()
    assert ";'=HYPERLINK(1);" in body


@pytest.mark.django_db
def test_another_members_data_is_never_shown(client, account):
    other = AccountFactory()
    theirs = make_line(other.member, paid_on=date(2026, 2, 10), reference="VIR-THEIRS")
    stoppage = WorkStoppage.objects.create(
        stoppage_id="S-THEIRS",
        member=other.member,
        kind="maladie",
        start=date(2026, 1, 5),
        waiting_days=3,
    )
    login(client, account)
    assert client.get(f"/paiements/ligne/{theirs.line_id}/").status_code == 404
    assert "VIR-THEIRS" not in client.get("/paiements/").content.decode()
    assert (
        "VIR-THEIRS" not in b"".join(client.get("/paiements/export.csv").streaming_content).decode()
    )
    assert stoppage.stoppage_id not in client.get("/indemnites/").content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/paiements/", "/indemnites/", "/paiements/export.csv", "/paiements/ligne/L1/"]
)
def test_pages_need_a_login(client, path):
    assert client.get(path).status_code == 302


@pytest.mark.django_db
def test_allowances_timeline_total_and_next_payment(client, account):
    stoppage = WorkStoppage.objects.create(
        stoppage_id="S-1",
        member=account.member,
        kind="maladie",
        start=date(2026, 1, 5),
        waiting_days=3,
    )
    for i, (start, end, paid) in enumerate(
        [
            (date(2026, 1, 8), date(2026, 1, 21), date(2026, 1, 23)),
            (date(2026, 1, 22), date(2026, 2, 4), date(2026, 2, 6)),
        ]
    ):
        AllowancePayment.objects.create(
            payment_id=f"P-{i}",
            stoppage=stoppage,
            member=account.member,
            period_start=start,
            period_end=end,
            days=14,
            daily_gross=Decimal("40.00"),
            gross=Decimal("560.00"),
            csg=Decimal("34.72"),
            crds=Decimal("2.80"),
            net=Decimal("522.48"),
            payment_date=paid,
            status="paid",
        )
    login(client, account)
    page = client.get("/indemnites/").content.decode()
    assert "depuis le 5 janvier 2026 (en cours)" in page
    assert "1044,96 €" in page
    assert "20 février 2026" in page  # 14 days after the last payment
    assert "3 jours non indemnisés" in page
