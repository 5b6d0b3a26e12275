import pytest

from portal.audit.models import AuditEntry
from portal.staff.models import Staff
from tests.console.conftest import make_staff, staff_login


@pytest.mark.django_db
def test_supervisor_deactivates_and_reenrols_a_team_member(client, supervisor):
    advisor = make_staff("phone_advisor", cpam=supervisor.cpam)
    advisor_client = client.__class__()
    staff_login(advisor_client, advisor)
    staff_login(client, supervisor)
    page = client.get("/conseiller/equipe/").content.decode()
    assert advisor.email in page
    client.post(f"/conseiller/equipe/{advisor.pk}/acces/", {"active": "0"})
    assert Staff.objects.get(pk=advisor.pk).is_active is False
    assert (
        advisor_client.get("/conseiller/")["Location"] == "/conseiller/connexion/"
    )  # session ended at once
    client.post(f"/conseiller/equipe/{advisor.pk}/acces/", {"active": "1"})
    link_page = client.post(f"/conseiller/equipe/{advisor.pk}/enrolement/").content.decode()
    assert "/conseiller/enrolement/" in link_page
    refreshed = Staff.objects.get(pk=advisor.pk)
    assert refreshed.is_active and not refreshed.enrolled  # must enrol again
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"staff.deactivated", "staff.activated", "staff.enrolment.issued"} <= actions


@pytest.mark.django_db
def test_staff_management_is_for_supervisors_of_the_same_cpam(client, supervisor, other_cpam):
    stranger = make_staff("phone_advisor", cpam=other_cpam)
    staff_login(client, supervisor)
    assert (
        client.post(f"/conseiller/equipe/{stranger.pk}/acces/", {"active": "0"}).status_code == 404
    )
    assert (
        client.post(f"/conseiller/equipe/{supervisor.pk}/acces/", {"active": "0"}).status_code
        == 404
    )
    advisor = make_staff("phone_advisor", cpam=supervisor.cpam)
    advisor_client = client.__class__()
    staff_login(advisor_client, advisor)
    assert advisor_client.get("/conseiller/equipe/").status_code == 403
    assert Staff.objects.get(pk=stranger.pk).is_active
