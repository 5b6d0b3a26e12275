"""Each named permission of the back office, for every role and the cases that must say no."""

import inspect
from pathlib import Path

import pytest
from django.utils import timezone

from portal.accounts.models import Account
from portal.members.models import Member
from portal.staff import perms
from portal.staff.models import Staff

OWN_CPAM, OTHER_CPAM = 1, 2
ROLES = ("phone_advisor", "front_desk", "supervisor")

# function name -> roles it allows (for a member of the staff's own CPAM, when it takes one).
TABLE = {
    "can_use_console": {"phone_advisor", "front_desk", "supervisor"},
    "can_search_member": {"phone_advisor", "front_desk"},
    "can_act_on_member": {"phone_advisor", "front_desk"},
    "can_check_identity": {"phone_advisor", "front_desk"},
    "can_send_recovery_code": {"phone_advisor"},
    "can_delete_account": {"phone_advisor", "front_desk"},
    "can_record_visit": {"front_desk"},
    "can_issue_activation_code": {"front_desk"},
    "can_update_channels_at_desk": {"front_desk"},
    "can_lift_block": {"supervisor"},
    "can_view_audit": {"supervisor"},
    "can_export_audit": {"supervisor"},
    "can_manage_staff": {"supervisor"},
}


def staff(role, **overrides) -> Staff:
    fields = {
        "role": role,
        "cpam_id": OWN_CPAM,
        "password": "pbkdf2_sha256$hash",
        "totp_confirmed_at": timezone.now(),
        "is_active": True,
        **overrides,
    }
    return Staff(**fields)


def takes_member(name: str) -> bool:
    return "member" in inspect.signature(getattr(perms, name)).parameters


def ask(name, who, member_cpam=OWN_CPAM):
    function = getattr(perms, name)
    if takes_member(name):
        return function(who, Member(cpam_id=member_cpam))
    return function(who)


# Permissions on appointments and advisors rather than members: their own matrix.
AGENDA = {
    "can_view_planning",
    "can_view_appointment",
    "can_record_outcome",
    "can_cancel_appointment",
    "can_manage_availability",
}


def test_the_table_covers_every_permission():
    names = {name for name, _ in inspect.getmembers(perms, inspect.isfunction)}
    assert {name for name in names if name.startswith("can_")} == set(TABLE) | AGENDA
    agenda_matrix = (Path(__file__).parent / "test_planning_perms.py").read_text()
    assert all(name in agenda_matrix for name in AGENDA)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", sorted(TABLE))
def test_each_role_in_its_own_cpam(name, role):
    assert ask(name, staff(role)) is (role in TABLE[name])


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", sorted(n for n in TABLE if takes_member(n)))
def test_never_on_a_member_of_another_cpam(name, role):
    assert ask(name, staff(role), member_cpam=OTHER_CPAM) is False


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"is_active": False}, id="inactive"),
        pytest.param({"totp_confirmed_at": None}, id="totp-not-enrolled"),
        pytest.param({"password": ""}, id="no-password-yet"),
        pytest.param({"password": "", "totp_confirmed_at": None}, id="never-enrolled"),
    ],
)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", sorted(TABLE))
def test_inactive_or_not_enrolled_staff_may_do_nothing(name, role, overrides):
    assert ask(name, staff(role, **overrides)) is False


@pytest.mark.parametrize(
    "who",
    [
        pytest.param(None, id="anonymous"),
        pytest.param(Account(state=Account.State.ACTIVE), id="member-account"),
        pytest.param(staff("root"), id="unknown-role"),
    ],
)
@pytest.mark.parametrize("name", sorted(TABLE))
def test_anything_else_may_do_nothing(name, who):
    assert ask(name, who) is False
