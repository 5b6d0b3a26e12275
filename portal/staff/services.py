"""Writes on staff: creation with an enrolment link, enrolment, login."""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.db import transaction
from django.utils import timezone

from portal.accounts.passwords import PersonalData, unmet_rules
from portal.accounts.services import (
    InvalidCredentials,
    Throttled,
    TokenExpired,
    TokenInvalid,
    WeakPassword,
)
from portal.audit.services import record
from portal.core import throttle
from portal.core.tokens import new_token, token_hash
from portal.members.models import Cpam

from . import totp
from .models import Staff, StaffEnrolment

ENROLMENT_TTL = timedelta(hours=72)
_DUMMY = None


@transaction.atomic
def staff_create(*, email: str, role: str, cpam_code: str, actor: str) -> tuple[Staff, str]:
    """Create a staff member (no password yet) and return the one-time enrolment link."""
    cpam = Cpam.objects.get(code=cpam_code)
    if role not in Staff.Role.values:
        raise ValueError(f"unknown role {role!r}")
    staff = Staff(email=email.strip().lower(), role=role, cpam=cpam)
    staff.totp_secret_set(totp.new_key())
    staff.save(force_insert=True)
    link = staff_enrolment_issue(staff=staff, actor=actor)
    record(
        action="staff.created",
        actor=actor,
        data={"staff_id": staff.pk, "role": role, "cpam": cpam.code},
    )
    return staff, link


def staff_enrolment_issue(*, staff: Staff, actor: str) -> str:
    """A new enrolment link (72 h); earlier ones die. Enrolling again resets password and TOTP."""
    with transaction.atomic():
        StaffEnrolment.objects.filter(
            staff=staff, used_at__isnull=True, revoked_at__isnull=True
        ).update(revoked_at=timezone.now())
        if staff.totp_confirmed_at or not staff.totp_key:
            # Re-enrolment (lost phone, forgotten password): a fresh key, and no
            # login until the new link is used.
            staff.totp_secret_set(totp.new_key())
            staff.totp_confirmed_at = None
            staff.password = ""
            staff.session_epoch += 1
            staff.save(update_fields=["totp_key", "totp_confirmed_at", "password", "session_epoch"])
        token = new_token()
        StaffEnrolment.objects.create(
            staff=staff, token_hash=token_hash(token), expires_at=timezone.now() + ENROLMENT_TTL
        )
        record(action="staff.enrolment.issued", actor=actor, data={"staff_id": staff.pk})
    return f"{settings.SITE_URL}/conseiller/enrolement/{token}"


def enrolment_check(*, token: str) -> StaffEnrolment:
    found = (
        StaffEnrolment.objects.select_related("staff")
        .filter(token_hash=token_hash(token or ""))
        .first()
    )
    if found is None or found.used_at or found.revoked_at or not found.staff.is_active:
        raise TokenInvalid()
    if found.expires_at <= timezone.now():
        raise TokenExpired()
    return found


def staff_enrol(*, token: str, password: str, code: str, ip: str) -> Staff:
    """Set the password and confirm the TOTP app from an enrolment link. Single use.

    Raises `TokenInvalid`/`TokenExpired`, `WeakPassword`, or `InvalidCredentials`
    when the TOTP code does not match the key shown.
    """
    enrolment = enrolment_check(token=token)
    staff = enrolment.staff
    rules = unmet_rules(
        password,
        PersonalData(last_name=staff.last_name, first_names=staff.first_name, email=staff.email),
    )
    if rules:
        raise WeakPassword(rules)
    step = totp.verify(key_hex=staff.totp_secret, code=code, last_t=-1)
    if step is None:
        raise InvalidCredentials()
    with transaction.atomic():
        claimed = StaffEnrolment.objects.filter(pk=enrolment.pk, used_at__isnull=True).update(
            used_at=timezone.now()
        )
        if not claimed:
            raise TokenInvalid()
        staff = Staff.objects.select_for_update().get(pk=staff.pk)
        staff.password = make_password(password)
        staff.totp_confirmed_at = timezone.now()
        staff.totp_last_t = step
        staff.session_epoch += 1
        staff.save()
        record(action="staff.enrolled", actor=staff.actor, ip=ip, data={"staff_id": staff.pk})
    return staff


def _throttles():
    return (
        throttle.FailureThrottle(
            kind="staff-login:email", free=5, max_delay=settings.LOGIN_MAX_DELAY, ceiling=100
        ),
        throttle.FailureThrottle(
            kind="staff-login:ip",
            free=settings.LOGIN_FREE_FAILURES_PER_IP,
            max_delay=settings.LOGIN_MAX_DELAY,
            ceiling=settings.LOGIN_MAX_FAILURES_PER_IP,
        ),
    )


def _dummy() -> str:
    global _DUMMY
    if _DUMMY is None:
        _DUMMY = make_password("no staff has this password")
    return _DUMMY


def staff_authenticate(*, email: str, password: str, code: str, ip: str) -> Staff:
    """Email + password + TOTP code. One generic failure; same work for an unknown email."""
    key = (email or "").strip().lower()
    by_email, by_ip = _throttles()
    for verdict in (by_email.check(key), by_ip.check(ip)):
        if not verdict.allowed:
            record(action="staff.login.throttled", actor="anonymous", ip=ip)
            raise Throttled(verdict.retry_after)
    staff = Staff.objects.filter(email=key, is_active=True).first()
    password_ok = check_password(password, staff.password if staff and staff.password else _dummy())
    step = None
    if staff and password_ok and staff.totp_confirmed_at:
        step = totp.verify(key_hex=staff.totp_secret, code=code, last_t=staff.totp_last_t)
    if step is None:
        by_email.fail(key)
        by_ip.fail(ip)
        record(
            action="staff.login.failed",
            actor="anonymous",
            ip=ip,
            data={"staff_id": staff.pk if staff else None, "second_factor": bool(password_ok)},
        )
        raise InvalidCredentials()
    # The code is spent: the same one cannot open a second session.
    updated = Staff.objects.filter(pk=staff.pk, totp_last_t__lt=step).update(totp_last_t=step)
    if not updated:
        raise InvalidCredentials()
    by_email.reset(key)
    record(action="staff.login.succeeded", actor=staff.actor, ip=ip)
    return staff


@transaction.atomic
def staff_active_set(*, staff: Staff, active: bool, actor: str, ip: str) -> None:
    """Give or take away console access; taking it ends the person's sessions at once."""
    if staff.is_active == active:
        return
    staff.is_active = active
    staff.session_epoch += 1
    staff.save(update_fields=["is_active", "session_epoch"])
    record(
        action="staff.activated" if active else "staff.deactivated",
        actor=actor,
        ip=ip,
        data={"staff_id": staff.pk, "outcome": "active" if active else "inactive"},
    )
