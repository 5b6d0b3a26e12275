"""Who may see which payment: a member sees only their own (and their beneficiaries')."""

from portal.accounts.models import Account


def _active(viewer) -> bool:
    return isinstance(viewer, Account) and viewer.is_active


def can_view_payments(viewer) -> bool:
    return _active(viewer)


def can_view_reimbursement(viewer, line) -> bool:
    return _active(viewer) and line.member_id == viewer.member_id


def can_view_allowance(viewer, payment) -> bool:
    return _active(viewer) and payment.member_id == viewer.member_id
