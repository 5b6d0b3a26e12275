"""Who may see and do what in Mon agenda's console side.

First the permission functions, each role × the staff's own appointment, a
colleague's of the same CPAM, and one of another CPAM; then the same matrix
over HTTP (200 / redirect to the login form / 403 for a role that may not /
404 for what the staff is not even told exists).
"""

import pytest
import time_machine
from django.test import Client

from portal.appointments.models import Appointment
from portal.members.models import Cpam
from portal.staff import perms
from tests.console.test_planning_helpers import (
    NOW,
    book,
    logged_in,
    make_advisor,
    make_staff,
    paris,
)
from tests.factories import AccountFactory, CpamFactory, MemberFactory

# Staff roles, with or without a booking profile (an advisor who holds appointments).
ROLES = [
    "phone_advisor",
    "front_desk",
    "phone_advisor_without_agenda",
    "front_desk_without_agenda",
    "supervisor",
    "supervisor_with_agenda",
]
TARGETS = ["own", "colleague", "other_cpam"]  # whose appointment (or advisor) it is


def _actor(role, cpam):
    base = role.removesuffix("_without_agenda").removesuffix("_with_agenda")
    holds_appointments = role.endswith("_with_agenda") or (
        base != "supervisor" and not role.endswith("_without_agenda")
    )
    if holds_appointments:
        return make_advisor(cpam, role=base).staff
    return make_staff(base, cpam=cpam)


@pytest.fixture
def world(db):
    """CPAM A (the actors') and CPAM B, each with an advisor and a member."""
    cpam_a = CpamFactory()
    cpam_b = Cpam.objects.create(code="131", name="Bouches-du-Rhône")
    colleague = make_advisor(cpam_a)
    stranger = make_advisor(cpam_b)
    member_a = MemberFactory(cpam=cpam_a)
    member_b = MemberFactory(cpam=cpam_b)
    return {
        "cpam_a": cpam_a,
        "colleague": colleague,
        "stranger": stranger,
        "member_a": member_a,
        "member_b": member_b,
    }


def _target(world, actor, target):
    """(advisor, appointment) for the target; None when the actor has no agenda of their own."""
    if target == "own":
        advisor = getattr(actor, "advisor", None)
        member = world["member_a"]
    elif target == "colleague":
        advisor, member = world["colleague"], world["member_a"]
    else:
        advisor, member = world["stranger"], world["member_b"]
    if advisor is None:
        return None
    return advisor, Appointment(advisor=advisor, member=member, site=advisor.site)


# role -> (view planning, {target: (view, record outcome, cancel, manage availability)})
T, F = True, False
EXPECTED = {
    "phone_advisor": (
        T,
        {"own": (T, T, T, F), "colleague": (F, F, F, F), "other_cpam": (F, F, F, F)},
    ),
    "front_desk": (
        T,
        {"own": (T, T, T, F), "colleague": (F, F, F, F), "other_cpam": (F, F, F, F)},
    ),
    "phone_advisor_without_agenda": (F, {"colleague": (F, F, F, F), "other_cpam": (F, F, F, F)}),
    "front_desk_without_agenda": (F, {"colleague": (F, F, F, F), "other_cpam": (F, F, F, F)}),
    "supervisor": (T, {"colleague": (T, F, T, T), "other_cpam": (F, F, F, F)}),
    # A supervisor who also holds appointments records no outcome: that is the advisors' act.
    "supervisor_with_agenda": (
        T,
        {"own": (T, F, T, T), "colleague": (T, F, T, T), "other_cpam": (F, F, F, F)},
    ),
}
CASES = [(role, target) for role in ROLES for target in TARGETS]


@pytest.mark.parametrize(("role", "target"), CASES)
def test_permission_matrix(world, role, target):
    actor = _actor(role, world["cpam_a"])
    planning, by_target = EXPECTED[role]
    assert perms.can_view_planning(actor) is planning
    found = _target(world, actor, target)
    if found is None:
        assert target not in by_target  # no agenda of their own: nothing to decide
        return
    advisor, appointment = found
    assert (
        perms.can_view_appointment(actor, appointment),
        perms.can_record_outcome(actor, appointment),
        perms.can_cancel_appointment(actor, appointment),
        perms.can_manage_availability(actor, advisor),
    ) == by_target[target]


@pytest.mark.parametrize("state", ["inactive", "not_enrolled"])
def test_a_deactivated_or_unenrolled_advisor_may_do_nothing(world, state):
    advisor = make_advisor(world["cpam_a"])
    supervisor = make_staff("supervisor", cpam=world["cpam_a"])
    for staff in (advisor.staff, supervisor):
        if state == "inactive":
            staff.is_active = False
        else:
            staff.totp_confirmed_at = None
        staff.save()
    appointment = Appointment(advisor=advisor, member=world["member_a"], site=advisor.site)
    for staff in (advisor.staff, supervisor):
        assert not perms.can_view_planning(staff)
        assert not perms.can_view_appointment(staff, appointment)
        assert not perms.can_record_outcome(staff, appointment)
        assert not perms.can_cancel_appointment(staff, appointment)
        assert not perms.can_manage_availability(staff, advisor)


def test_nothing_for_a_member_or_an_anonymous_visitor(world):
    appointment = Appointment(
        advisor=world["colleague"], member=world["member_a"], site=world["colleague"].site
    )
    for who in (None, AccountFactory(member=world["member_a"])):
        assert not perms.can_view_planning(who)
        assert not perms.can_view_appointment(who, appointment)
        assert not perms.can_record_outcome(who, appointment)
        assert not perms.can_cancel_appointment(who, appointment)
        assert not perms.can_manage_availability(who, world["colleague"])


# --- the same over HTTP ------------------------------------------------------------------

ACTORS = [
    "anonymous",
    "holder",  # the phone advisor who holds the appointment
    "colleague",  # another phone advisor of the same CPAM
    "desk_without_agenda",
    "supervisor",
    "other_cpam_supervisor",
    "other_cpam_advisor",
]
PAGES = ["planning", "appointment", "outcome", "cancel", "advisors", "availability", "absence"]
EXPECTED_HTTP = {
    "planning": {
        "holder": 200,
        "colleague": 200,
        "desk_without_agenda": 403,
        "supervisor": 200,
        "other_cpam_supervisor": 200,
        "other_cpam_advisor": 200,
    },
    "appointment": {
        "holder": 200,
        "colleague": 404,
        "desk_without_agenda": 404,
        "supervisor": 200,
        "other_cpam_supervisor": 404,
        "other_cpam_advisor": 404,
    },
    "outcome": {
        "holder": 302,
        "colleague": 404,
        "desk_without_agenda": 404,
        "supervisor": 403,
        "other_cpam_supervisor": 404,
        "other_cpam_advisor": 404,
    },
    "cancel": {
        "holder": 302,
        "colleague": 404,
        "desk_without_agenda": 404,
        "supervisor": 302,
        "other_cpam_supervisor": 404,
        "other_cpam_advisor": 404,
    },
    "advisors": {
        "holder": 403,
        "colleague": 403,
        "desk_without_agenda": 403,
        "supervisor": 200,
        "other_cpam_supervisor": 200,  # their own CPAM's list
        "other_cpam_advisor": 403,
    },
    "availability": {
        "holder": 403,
        "colleague": 403,
        "desk_without_agenda": 403,
        "supervisor": 200,
        "other_cpam_supervisor": 404,
        "other_cpam_advisor": 404,
    },
    "absence": {
        "holder": 403,
        "colleague": 403,
        "desk_without_agenda": 403,
        "supervisor": 302,
        "other_cpam_supervisor": 404,
        "other_cpam_advisor": 404,
    },
}
HTTP_CASES = [
    (page, actor, EXPECTED_HTTP[page].get(actor, "login")) for page in PAGES for actor in ACTORS
]


def test_every_http_cell_is_decided():
    for page in PAGES:
        assert set(EXPECTED_HTTP[page]) | {"anonymous"} == set(ACTORS), page


@pytest.mark.parametrize(("page", "actor", "expected"), HTTP_CASES)
def test_http_matrix(db, page, actor, expected):
    with time_machine.travel(NOW, tick=False) as clock:
        cpam = CpamFactory()
        other = Cpam.objects.create(code="131", name="Bouches-du-Rhône")
        holder = make_advisor(cpam)
        account = AccountFactory(member=MemberFactory(cpam=cpam))
        appointment = book(account, holder, paris(2026, 11, 3, 9, 0))
        # Once started: the outcome may be recorded, and the cancellation is still possible.
        clock.move_to(paris(2026, 11, 3, 9, 5))
        staff = {
            "holder": lambda: holder.staff,
            "colleague": lambda: make_advisor(cpam).staff,
            "desk_without_agenda": lambda: make_staff("front_desk", cpam=cpam),
            "supervisor": lambda: make_staff("supervisor", cpam=cpam),
            "other_cpam_supervisor": lambda: make_staff("supervisor", cpam=other),
            "other_cpam_advisor": lambda: make_advisor(other).staff,
        }
        client = Client() if actor == "anonymous" else logged_in(staff[actor]())
        base = f"/conseiller/rendez-vous/{appointment.public_id}/"
        availability = f"/conseiller/planning/conseillers/{holder.pk}/"
        requests = {
            "planning": lambda: client.get("/conseiller/planning/"),
            "appointment": lambda: client.get(base),
            "outcome": lambda: client.post(base + "resultat/", {"outcome": "done"}),
            "cancel": lambda: client.post(base + "annulation/", {"reason": "Conseiller malade"}),
            "advisors": lambda: client.get("/conseiller/planning/conseillers/"),
            "availability": lambda: client.get(availability),
            "absence": lambda: client.post(
                availability + "absences/",
                {"absence_start": "2026-11-04T09:00", "absence_end": "2026-11-04T12:00"},
            ),
        }
        response = requests[page]()
    if expected == "login":
        assert response.status_code == 302
        assert response["Location"].startswith("/conseiller/connexion/")
        return
    assert response.status_code == expected
    appointment.refresh_from_db()
    if page == "outcome":
        done = expected == 302
        assert (appointment.status == Appointment.Status.DONE) is done
    if page == "cancel":
        cancelled = expected == 302
        assert (appointment.status == Appointment.Status.CANCELLED_BY_FUND) is cancelled
