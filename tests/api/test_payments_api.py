from datetime import date
from decimal import Decimal

import pytest

from portal.api.schemas import ReimbursementOut, ReimbursementPage
from portal.members.models import Beneficiary
from portal.payments.models import AllowancePayment, WorkStoppage
from tests.factories import PASSWORD, AccountFactory
from tests.www.test_payments import make_line


def bearer(client, account):
    token = client.post(
        "/api/v1/auth/token",
        {"nir": account.nir, "password": PASSWORD},
        content_type="application/json",
    ).json()["access_token"]
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


@pytest.mark.django_db
def test_reimbursements_keyset_pages_with_feed_field_names(client):
    account = AccountFactory()
    for day in range(1, 61):
        make_line(
            account.member,
            paid_on=date(2026, 1, 1).replace(day=1) if day > 31 else date(2026, 1, day),
            reference=f"V{day:02d}",
        )
    make_line(account.member)  # unpaid: last
    auth = bearer(client, account)
    seen = []
    cursor = ""
    for _ in range(5):
        page = client.get("/api/v1/reimbursements", {"cursor": cursor}, **auth).json()
        seen += [item["line_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 61
    first = client.get("/api/v1/reimbursements", **auth).json()["items"][0]
    assert first["net_reimbursed"] == "21.00"
    assert {
        "line_id",
        "care_date",
        "act_code",
        "net_reimbursed",
        "payee",
        "beneficiary_nir",
    } <= set(first)
    assert client.get("/api/v1/reimbursements", {"cursor": "%%%"}, **auth).json() == {
        "error": "invalid_cursor"
    }


@pytest.mark.django_db
def test_reimbursements_filters_and_scope(client):
    account = AccountFactory()
    other = AccountFactory()
    child = Beneficiary.objects.create(
        member=account.member,
        nir="2150375112233" + "00",
        first_names="Léa",
        last_name="Dupont",
        birth_date=date(2015, 3, 8),
    )
    mine = make_line(account.member, paid_on=date(2026, 2, 10), reference="V1")
    childs = make_line(account.member, paid_on=date(2026, 2, 11), reference="V2", beneficiary=child)
    make_line(other.member, paid_on=date(2026, 2, 12), reference="THEIRS")
    auth = bearer(client, account)
    items = client.get("/api/v1/reimbursements", **auth).json()["items"]
    assert {i["line_id"] for i in items} == {mine.line_id, childs.line_id}
    only = client.get("/api/v1/reimbursements", {"beneficiary": child.nir}, **auth).json()["items"]
    assert [i["line_id"] for i in only] == [childs.line_id]
    me = client.get("/api/v1/reimbursements", {"beneficiary": "me"}, **auth).json()["items"]
    assert [i["line_id"] for i in me] == [mine.line_id]
    period = client.get(
        "/api/v1/reimbursements", {"from": "2026-02-08", "to": "2026-02-08"}, **auth
    ).json()
    assert [i["line_id"] for i in period["items"]] == [childs.line_id]
    assert client.get("/api/v1/reimbursements").status_code == 401


@pytest.mark.django_db
def test_daily_allowances(client):
    account = AccountFactory()
    stoppage = WorkStoppage.objects.create(
        stoppage_id="S-1",
        member=account.member,
        kind="maladie",
        start=date(2026, 1, 5),
        waiting_days=3,
    )
    AllowancePayment.objects.create(
        payment_id="P-1",
        stoppage=stoppage,
        member=account.member,
        period_start=date(2026, 1, 8),
        period_end=date(2026, 1, 21),
        days=14,
        daily_gross=Decimal("40.00"),
        gross=Decimal("560.00"),
        csg=Decimal("34.72"),
        crds=Decimal("2.80"),
        net=Decimal("522.48"),
        payment_date=date(2026, 1, 23),
        status="paid",
    )
    other = AccountFactory()
    WorkStoppage.objects.create(
        stoppage_id="S-THEIRS", member=other.member, kind="at_mp", start=date(2026, 1, 1)
    )
    body = client.get("/api/v1/daily-allowances", **bearer(client, account)).json()
    assert [s["stoppage_id"] for s in body] == ["S-1"]
    assert body[0]["payments"][0]["net"] == "522.48"
    assert body[0]["next_payment_expected"] == "2026-02-06"


@pytest.mark.django_db
def test_reimbursements_answer_is_the_schemas_and_the_first_page_is_kept(
    client, django_assert_num_queries
):
    """Serialized by hand for speed (portal/api/v1.py): exactly what `ReimbursementPage`
    gives; the first page kept drawn per member (portal/payments/kept_pages.py)."""
    account = AccountFactory()
    child = Beneficiary.objects.create(
        member=account.member,
        nir="2150375111042",
        first_names="Léa",
        last_name="Martin",
        birth_date=date(2015, 3, 8),
    )
    make_line(account.member, paid_on=date(2026, 2, 10), reference="VIR-1", beneficiary=child)
    make_line(account.member, transmitted_to_complementary=True)
    auth = bearer(client, account)
    with django_assert_num_queries(3):  # the token (account, member), the brief, the lines
        response = client.get("/api/v1/reimbursements", **auth)
    assert response.status_code == 200
    with django_assert_num_queries(2):  # kept: the token, the brief
        again = client.get("/api/v1/reimbursements", **auth)
    assert again.content == response.content
    assert again["Content-Type"] == response["Content-Type"]
    with django_assert_num_queries(2):  # a filter: never kept (the token, the lines)
        filtered = client.get("/api/v1/reimbursements?beneficiary=me", **auth)
    assert [item["beneficiary_nir"] for item in filtered.json()["items"]] == [""]
    assert response["Content-Type"] == "application/json; charset=utf-8"
    body = response.json()
    validated = ReimbursementPage.model_validate(body).model_dump(mode="json")
    assert body == validated
    assert [list(item) for item in body["items"]] == [list(ReimbursementOut.model_fields)] * 2
    assert body["items"][0]["beneficiary_nir"] == "2150375111042"
    assert body["items"][1]["payment_date"] is None
