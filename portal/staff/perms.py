"""What each back-office role may do: one named function per action, each tested.

Views never test roles directly; they call these (through
`portal.console.decorators.staff_required`). Member-facing actions are also
limited to members of the staff's own CPAM.
"""

from portal.members.models import Member

from .models import Staff

PHONE = Staff.Role.PHONE_ADVISOR
DESK = Staff.Role.FRONT_DESK
SUPERVISOR = Staff.Role.SUPERVISOR


def _is(staff, *roles) -> bool:
    return isinstance(staff, Staff) and staff.is_active and staff.enrolled and staff.role in roles


def can_use_console(staff) -> bool:
    return _is(staff, PHONE, DESK, SUPERVISOR)


def can_search_member(staff) -> bool:
    return _is(staff, PHONE, DESK)


def can_act_on_member(staff, member: Member) -> bool:
    """Member actions stay within the staff's own CPAM."""
    return can_search_member(staff) and member.cpam_id == staff.cpam_id


def can_check_identity(staff, member: Member) -> bool:
    return can_act_on_member(staff, member)


def can_send_recovery_code(staff, member: Member) -> bool:
    return _is(staff, PHONE) and can_act_on_member(staff, member)


def can_delete_account(staff, member: Member) -> bool:
    return _is(staff, PHONE, DESK) and can_act_on_member(staff, member)


def can_record_visit(staff, member: Member) -> bool:
    """Only a front-desk agent sees an identity document."""
    return _is(staff, DESK) and can_act_on_member(staff, member)


def can_issue_activation_code(staff, member: Member) -> bool:
    return _is(staff, DESK) and can_act_on_member(staff, member)


def can_update_channels_at_desk(staff, member: Member) -> bool:
    return _is(staff, DESK) and can_act_on_member(staff, member)


def can_lift_block(staff, member: Member) -> bool:
    return _is(staff, SUPERVISOR) and member.cpam_id == staff.cpam_id


def can_view_audit(staff) -> bool:
    return _is(staff, SUPERVISOR)


def can_export_audit(staff) -> bool:
    return _is(staff, SUPERVISOR)


def can_manage_staff(staff) -> bool:
    return _is(staff, SUPERVISOR)


# --- appointments (Mon agenda) ---------------------------------------------------------------


def _advisor_of(staff):
    """The staff's booking profile, if they hold appointments."""
    return getattr(staff, "advisor", None) if isinstance(staff, Staff) else None


def can_view_planning(staff) -> bool:
    """Advisors see their own day; supervisors their CPAM's."""
    return (_is(staff, PHONE, DESK) and _advisor_of(staff) is not None) or _is(staff, SUPERVISOR)


def _holds(staff, appointment) -> bool:
    """The staff member is the advisor who holds the appointment."""
    advisor = _advisor_of(staff) if _is(staff, PHONE, DESK) else None
    return advisor is not None and appointment.advisor_id == advisor.pk


def can_view_appointment(staff, appointment) -> bool:
    if _is(staff, SUPERVISOR):
        return appointment.member.cpam_id == staff.cpam_id
    return _holds(staff, appointment)


def can_record_outcome(staff, appointment) -> bool:
    """Only the advisor who holds the appointment records how it went."""
    return _holds(staff, appointment)


def can_cancel_appointment(staff, appointment) -> bool:
    """The advisor who holds it, or a supervisor of the member's CPAM."""
    return can_record_outcome(staff, appointment) or (
        _is(staff, SUPERVISOR) and appointment.member.cpam_id == staff.cpam_id
    )


def can_manage_availability(staff, advisor) -> bool:
    """Opening ranges and absences: a supervisor of the advisor's CPAM."""
    return _is(staff, SUPERVISOR) and advisor.staff.cpam_id == staff.cpam_id
