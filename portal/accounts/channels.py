"""The recovery channels in Mon compte: email, mobile and password changes.

Every recovery path relies on the registered email and mobile, so changing
them asks for the current password (throttled together with the login, so
that a stolen session cannot guess it faster than the login form), and the
new channel must prove it reaches the member: a link to the new address, a
code by SMS to the new number. Each change is audited and reported to the
registered address.

The current password is checked before the change's transaction, so that a
failed check's audit entry is committed although the service then raises.
"""

import re
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal.audit.services import record
from portal.core.tokens import new_token, token_hash
from portal.members import nir as nir_rules
from portal.notifications.services import email_send, sms_send

from . import codes
from .models import Account, AccountToken, OneTimeCode
from .services import (
    InvalidCredentials,
    ServiceError,
    Throttled,
    TokenExpired,
    TokenInvalid,
    _throttles,
    _tokens_revoke,
    account_password_set,
    account_sessions_revoke,
)

EMAIL_CHANGE = AccountToken.Purpose.EMAIL_CHANGE
MOBILE_CHANGE = OneTimeCode.Purpose.MOBILE_CHANGE

# The issue fixes these numbers; they are not operator knobs.
EMAIL_CHANGE_LINK_TTL = 24 * 3600
EMAIL_CHANGE_LINKS_PER_HOUR = 3
MOBILE_CODE_DIGITS = 6
MOBILE_CODE_TTL = 10 * 60
MOBILE_CODE_MAX_ATTEMPTS = 5
MOBILE_CODES_PER_HOUR = 3


class SameAsCurrent(ServiceError):
    """The new email or mobile is the one already registered."""

    code = "same_as_current"


class TooManyLinks(Throttled):
    """The hourly number of email-change links was reached."""

    code = "too_many_links"


class NoPendingChange(ServiceError):
    code = "no_pending_change"


def _actor(account: Account) -> str:
    return f"member:{account.pk}"


def _locked(account: Account) -> Account:
    return Account.objects.select_for_update().select_related("member").get(pk=account.pk)


def phone_mask(phone) -> str:
    """`06 •• •• •• 42`: the national format with all but the first and last two digits hidden."""
    if not phone:
        return ""
    national = phone.as_national if hasattr(phone, "as_national") else str(phone)
    total = sum(char.isdigit() for char in national)
    seen = 0

    def hide(match: re.Match) -> str:
        nonlocal seen
        seen += 1
        return match.group(0) if seen <= 2 or seen > total - 2 else "•"

    return re.sub(r"\d", hide, national)


# --- the current password ---------------------------------------------------------------


def current_password_check(*, account: Account, password: str, ip: str, purpose: str) -> None:
    """Ask for the current password again before a sensitive change.

    Failures count in the login's per-account throttle (same key, same
    progressive delay), so that the two forms together give an attacker no
    more guesses than the login alone. Raises `Throttled` or `InvalidCredentials`.
    """
    by_account, _ = _throttles()
    key = account.nir or ""
    verdict = by_account.check(key)
    if not verdict.allowed:
        record(
            action="account.reauth.throttled",
            actor=_actor(account),
            member=account.member,
            ip=ip,
            data={"purpose": purpose},
        )
        raise Throttled(verdict.retry_after)
    if not account.check_password(password):
        by_account.fail(key)
        record(
            action="account.reauth.failed",
            actor=_actor(account),
            member=account.member,
            ip=ip,
            data={"purpose": purpose},
        )
        raise InvalidCredentials()
    by_account.reset(key)


def pending_changes_revoke(*, account: Account) -> None:
    """Kill the email-change links and SMS codes not yet used.

    They were authorised by the old password or by a session that is ending;
    a thief's pending change must not survive the owner taking the account back.
    """
    _tokens_revoke(account=account, purpose=EMAIL_CHANGE)
    codes.codes_revoke(account=account)


# --- email ------------------------------------------------------------------------------


def email_change_request(
    *, account: Account, new_email: str, current_password: str, ip: str
) -> datetime:
    """Send a 24 h confirmation link to the new address; the registered one stays until then.

    Raises `SameAsCurrent`, `InvalidCredentials`, `Throttled` (wrong
    passwords) or `TooManyLinks` (more than 3 links in an hour). Returns the link's expiry.
    A new request kills the earlier links.
    """
    new_email = new_email.strip()
    if new_email.lower() == account.email.lower():
        raise SameAsCurrent()
    current_password_check(account=account, password=current_password, ip=ip, purpose="email")
    with transaction.atomic():
        account = _locked(account)
        now = timezone.now()
        issued = AccountToken.objects.filter(
            account=account, purpose=EMAIL_CHANGE, created_at__gt=now - timedelta(hours=1)
        )
        if issued.count() >= EMAIL_CHANGE_LINKS_PER_HOUR:
            record(
                action="account.email_change.throttled",
                actor=_actor(account),
                member=account.member,
                ip=ip,
            )
            throttled = True
        else:
            throttled = False
            _tokens_revoke(account=account, purpose=EMAIL_CHANGE)
            token = new_token()
            valid_until = now + timedelta(seconds=EMAIL_CHANGE_LINK_TTL)
            AccountToken.objects.create(
                account=account,
                purpose=EMAIL_CHANGE,
                token_hash=token_hash(token),
                target=new_email,
                expires_at=valid_until,
            )
            email_send(
                to=new_email,
                member=account.member,
                template="email_change_confirm",
                context={
                    "member": account.member,
                    "masked_nir": nir_rules.mask(account.nir or account.member.nir),
                    "new_email": new_email,
                    "link": f"{settings.SITE_URL}/mon-compte/courriel/confirmer/{token}",
                    "valid_until": timezone.localtime(valid_until),
                },
                expires_at=valid_until,
            )
            record(
                action="account.email_change.requested",
                actor=_actor(account),
                member=account.member,
                ip=ip,
                data={"new_email": new_email},
            )
    if throttled:  # raised after the commit, so that the audit entry stays
        raise TooManyLinks()
    return valid_until


def email_change_token_check(*, token: str) -> AccountToken:
    """The live email-change token for `token`, or `TokenExpired` / `TokenInvalid`."""
    found = (
        AccountToken.objects.select_related("account__member")
        .filter(token_hash=token_hash(token or ""), purpose=EMAIL_CHANGE)
        .first()
    )
    if (
        found is None
        or found.used_at
        or found.revoked_at
        or found.account.state != Account.State.ACTIVE
    ):
        raise TokenInvalid()
    if found.expires_at <= timezone.now():
        raise TokenExpired()
    return found


def email_change_pending(*, account: Account) -> AccountToken | None:
    """The live email-change link of the account, to show it in Mon compte."""
    return (
        AccountToken.objects.filter(
            account=account,
            purpose=EMAIL_CHANGE,
            used_at__isnull=True,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
        )
        .order_by("-created_at")
        .first()
    )


def email_change_confirm(*, token: str, ip: str) -> Account:
    """Make the new address the registered one, from the link sent to it. Single use.

    The old address is kept in `email_previous` and told of the change, with
    how to react; reset links already sent to it die. Raises `TokenExpired`
    or `TokenInvalid` (both audited).
    """
    try:
        found = email_change_token_check(token=token)
        with transaction.atomic():
            claimed = AccountToken.objects.filter(
                pk=found.pk,
                used_at__isnull=True,
                revoked_at__isnull=True,
                expires_at__gt=timezone.now(),
            ).update(used_at=timezone.now())
            if not claimed:  # used by a concurrent request
                raise TokenInvalid()
            account = _locked(found.account)
            old_email, now = account.email, timezone.now()
            account.email_previous = old_email
            account.email = found.target
            account.email_confirmed_at = now
            account.save(update_fields=["email", "email_previous", "email_confirmed_at"])
            _tokens_revoke(account=account, purpose=AccountToken.Purpose.PASSWORD_RESET)
            email_send(
                to=old_email,
                member=account.member,
                template="email_change_done",
                context={
                    "member": account.member,
                    "masked_nir": nir_rules.mask(account.nir or account.member.nir),
                    "new_email": account.email,
                    "changed_at": timezone.localtime(now),
                },
            )
            record(
                action="account.email_change.confirmed",
                actor=_actor(account),
                member=account.member,
                ip=ip,
                data={"previous_email": old_email, "new_email": account.email},
            )
    except TokenInvalid as exc:
        action = "link_expired" if isinstance(exc, TokenExpired) else "link_invalid"
        record(action=f"account.email_change.{action}", actor="anonymous", ip=ip)
        raise
    return account


# --- mobile -----------------------------------------------------------------------------


def _mobile_code_send(*, account: Account, target: str, ip: str, resent: bool) -> OneTimeCode:
    code, row = codes.code_issue(
        account=account,
        purpose=MOBILE_CHANGE,
        target=target,
        digits=MOBILE_CODE_DIGITS,
        ttl=MOBILE_CODE_TTL,
        max_attempts=MOBILE_CODE_MAX_ATTEMPTS,
        per_hour=MOBILE_CODES_PER_HOUR,
    )
    sms_send(
        to=target,
        member=account.member,
        template="mobile_change_code",
        context={"code": code, "minutes": MOBILE_CODE_TTL // 60},
        expires_at=row.expires_at,
    )
    record(
        action="account.mobile_change.code_resent" if resent else "account.mobile_change.requested",
        actor=_actor(account),
        member=account.member,
        ip=ip,
        data={"new_mobile": target},
    )
    return row


def _codes_throttle_audited(func, *, account: Account, ip: str, **kwargs):
    """Run `func` in a transaction; `TooManyCodes` is audited after the rollback, then raised."""
    try:
        with transaction.atomic():
            return func(account=_locked(account), ip=ip, **kwargs)
    except codes.TooManyCodes:
        record(
            action="account.mobile_change.throttled",
            actor=_actor(account),
            member=account.member,
            ip=ip,
        )
        raise


def mobile_change_request(
    *, account: Account, new_mobile: str, current_password: str, ip: str
) -> OneTimeCode:
    """Send a 6-digit code by SMS to the new number (E.164); typing it confirms the change.

    Raises `SameAsCurrent`, `InvalidCredentials`, `Throttled` (wrong
    passwords) or `codes.TooManyCodes` (more than 3 codes in an hour). A new code kills the earlier ones.
    """
    current = account.mobile_phone.as_e164 if account.mobile_phone else ""
    if new_mobile == current:
        raise SameAsCurrent()
    current_password_check(account=account, password=current_password, ip=ip, purpose="mobile")
    return _codes_throttle_audited(
        _mobile_code_send, account=account, ip=ip, target=new_mobile, resent=False
    )


def mobile_change_pending(*, account: Account) -> OneTimeCode | None:
    """The change waiting for its code: the latest code, unused and less than an hour old.

    It may be expired or exhausted: the member can still ask for a new code
    to the same number without typing the password again.
    """
    found = codes.code_latest(account=account, purpose=MOBILE_CHANGE)
    if found is None or found.used_at or found.created_at <= timezone.now() - timedelta(hours=1):
        return None
    return found


def mobile_change_resend(*, account: Account, ip: str) -> OneTimeCode:
    """A new code to the number of the pending change. Raises `NoPendingChange` or `TooManyCodes`."""
    pending = mobile_change_pending(account=account)
    if pending is None:
        raise NoPendingChange()
    return _codes_throttle_audited(
        _mobile_code_send, account=account, ip=ip, target=pending.target, resent=True
    )


def mobile_change_confirm(*, account: Account, code: str, ip: str) -> Account:
    """Check the code; if right, the number it was sent to becomes the registered mobile.

    Raises a `codes.CodeInvalid` (`CodeWrong` with the tries left, `CodeExhausted`,
    `CodeExpired`) after committing the try it used and its audit entry.
    The registered address is told of the change.
    """
    with transaction.atomic():
        account = _locked(account)
        verdict = codes.code_check(account=account, purpose=MOBILE_CHANGE, code=code)
        if verdict.ok:
            previous = account.mobile_phone.as_e164 if account.mobile_phone else ""
            account.mobile_phone = verdict.row.target
            account.save(update_fields=["mobile_phone"])
            email_send(
                to=account.email,
                member=account.member,
                template="mobile_change_done",
                context={
                    "member": account.member,
                    "masked_nir": nir_rules.mask(account.nir or account.member.nir),
                    "masked_mobile": phone_mask(account.mobile_phone),
                    "changed_at": timezone.localtime(),
                },
            )
            record(
                action="account.mobile_change.confirmed",
                actor=_actor(account),
                member=account.member,
                ip=ip,
                data={"previous_mobile": previous, "new_mobile": verdict.row.target},
            )
        else:
            record(
                action="account.mobile_change.rejected",
                actor=_actor(account),
                member=account.member,
                ip=ip,
                data={
                    "reason": verdict.error.code,
                    "attempts": verdict.row.attempts if verdict.row else 0,
                },
            )
    if verdict.error:
        raise verdict.error
    return account


# --- password and sessions ------------------------------------------------------------------


def account_password_change(
    *, account: Account, current_password: str, new_password: str, ip: str
) -> Account:
    """Change the password knowing the current one (Mon compte).

    `account_password_set` checks the policy, ends every session and API
    token and tells the registered address; pending channel changes die too.
    The caller keeps the member's current session alive
    (`update_session_auth_hash` with the returned account).
    Raises `InvalidCredentials`, `Throttled` or `WeakPassword`.
    """
    current_password_check(account=account, password=current_password, ip=ip, purpose="password")
    with transaction.atomic():
        account = _locked(account)
        account_password_set(
            account=account,
            password=new_password,
            actor=_actor(account),
            ip=ip,
            reason="password_change",
        )
        pending_changes_revoke(account=account)
    return account


@transaction.atomic
def account_logout_everywhere(*, account: Account, ip: str) -> None:
    """ "Se déconnecter de tous mes appareils": every session and API token ends,
    and so do pending channel changes (a thief's session may have started one)."""
    account = _locked(account)
    account_sessions_revoke(account=account, actor=_actor(account), ip=ip)
    pending_changes_revoke(account=account)


# --- notifications ----------------------------------------------------------------------


@transaction.atomic
def account_notifications_set(*, account: Account, new_payments: bool, ip: str) -> None:
    """The member's choice of a "Nouveau paiement" email after each payment import."""
    if account.notify_new_payments == new_payments:
        return
    Account.objects.filter(pk=account.pk).update(notify_new_payments=new_payments)
    account.notify_new_payments = new_payments
    record(
        action="account.notifications.changed",
        actor=_actor(account),
        member=account.member,
        ip=ip,
        data={"new_payments": new_payments},
    )


# --- communication need -------------------------------------------------------------------


class InvalidCommunicationMode(ServiceError):
    """Not a mode of the relay service (lsf, ttrp, lfpc), nor empty."""

    code = "invalid_communication_mode"


@transaction.atomic
def account_communication_mode_set(*, account: Account, mode: str, ip: str) -> None:
    """Declare (or withdraw, with "") the member's communication need: lsf, ttrp or lfpc.

    Booking then offers the relay interview first with this mode chosen; the
    member may still pick another type of interview. Raises
    `InvalidCommunicationMode` for anything else. No change, no audit entry.
    """
    # The relay service's modes; imported here so that accounts does not load appointments.
    from portal.appointments.models import CommunicationMode

    mode = "" if mode is None else mode
    if not isinstance(mode, str) or (mode and mode not in CommunicationMode.values):
        raise InvalidCommunicationMode()
    if account.communication_mode == mode:
        return
    Account.objects.filter(pk=account.pk).update(communication_mode=mode)
    account.communication_mode = mode
    record(
        action="account.communication_mode.changed",
        actor=_actor(account),
        member=account.member,
        ip=ip,
        data={"communication_mode": mode},
    )
