import csv
import io

import pytest

from portal.audit.services import record
from tests.console.conftest import make_staff, staff_login
from tests.factories import AccountFactory, CpamFactory, MemberFactory


@pytest.mark.django_db
def test_supervisor_filters_pages_and_exports_the_trail(client, supervisor):
    account = AccountFactory(member__cpam=supervisor.cpam)
    record(
        action="console.member.searched",
        actor="staff:999",
        member=account.member,
        data={"outcome": "found"},
    )
    other_cpam = CpamFactory(code="131", name="Marseille")
    stranger = MemberFactory(cpam=other_cpam, last_name="Ailleurs")
    record(
        action="console.member.searched",
        actor="staff:998",
        member=stranger,
        data={"outcome": "found"},
    )
    staff_login(client, supervisor)
    page = client.get("/conseiller/journal/", {"action": "console."})
    assert page.status_code == 200
    text = page.content.decode()
    assert account.member.last_name in text
    assert stranger.last_name not in text  # another CPAM's members are not shown
    assert account.member.nir not in text
    export = client.get("/conseiller/journal/export.csv", {"nir": account.member.nir})
    assert export["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert rows[0][:4] == ["seq", "created_at", "actor", "action"]
    assert {row[3] for row in rows[1:]} == {"console.member.searched"}
    assert all(row[5] == str(account.member.pk) for row in rows[1:])
    assert account.member.nir not in "".join(",".join(r) for r in rows)


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["phone_advisor", "front_desk"])
def test_only_supervisors_see_the_trail(client, role):
    staff = make_staff(role)
    staff_login(client, staff)
    assert client.get("/conseiller/journal/").status_code == 403
    assert client.get("/conseiller/journal/export.csv").status_code == 403


@pytest.mark.django_db
def test_anonymous_is_sent_to_the_console_login(client):
    assert client.get("/conseiller/journal/")["Location"] == "/conseiller/connexion/"
