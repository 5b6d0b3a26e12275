"""Staff sessions, apart from members' ones (keys of their own in the session).

A browser may hold a member login and a staff login at once; each part of the
site looks only at its own. The staff's session dies with a password change
or an epoch bump, and after an idle or absolute timeout.
"""

import time

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac

from .models import Staff

STAFF_ID = "staff_id"
STAFF_HASH = "staff_hash"
STAFF_STARTED = "staff_started_at"
STAFF_SEEN = "staff_seen_at"


def _hash(staff: Staff) -> str:
    return salted_hmac(
        "portal.staff.session", f"{staff.password}:{staff.session_epoch}", algorithm="sha256"
    ).hexdigest()


def staff_login(request, staff: Staff) -> None:
    request.session.cycle_key()
    now = time.time()
    request.session[STAFF_ID] = staff.pk
    request.session[STAFF_HASH] = _hash(staff)
    request.session[STAFF_STARTED] = now
    request.session[STAFF_SEEN] = now


def staff_logout(request) -> None:
    for key in (STAFF_ID, STAFF_HASH, STAFF_STARTED, STAFF_SEEN):
        request.session.pop(key, None)
    request.session.cycle_key()


def get_staff(request) -> Staff | None:
    session = request.session
    staff_id = session.get(STAFF_ID)
    if not staff_id:
        return None
    now = time.time()
    if (
        now - session.get(STAFF_STARTED, 0) > settings.SESSION_ABSOLUTE_TIMEOUT
        or now - session.get(STAFF_SEEN, 0) > settings.SESSION_IDLE_TIMEOUT
    ):
        staff_logout(request)
        return None
    staff = Staff.objects.select_related("cpam").filter(pk=staff_id, is_active=True).first()
    if staff is None or not constant_time_compare(session.get(STAFF_HASH, ""), _hash(staff)):
        staff_logout(request)
        return None
    session[STAFF_SEEN] = now
    return staff


class StaffMiddleware:
    """`request.staff`: the logged-in staff member, or None."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.staff = get_staff(request)
        return self.get_response(request)
