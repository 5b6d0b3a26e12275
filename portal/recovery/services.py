"""The assisted recovery, for a member without access to the registered mailbox.

An advisor (36 46) or a front-desk agent finds the member by exact NIR, runs
the identity check (match / no match per question, stored values never
shown), and only inside the 15-minute window a passed check opens may act:
send a recovery code by SMS to the mobile on file, record a visit with an
identity document and print an activation code, or delete the online account.
Staff never see, choose or set a password, never read a code, and never type
a phone number. Every step is audited.
"""

import hmac
from datetime import date, timedelta

from django.db import transaction
from django.utils import timezone

from portal.accounts import codes
from portal.accounts.models import Account, AccountToken, ApiToken, OneTimeCode
from portal.accounts.services import ServiceError, Throttled, WeakPassword, account_password_set
from portal.audit.services import record
from portal.core.logging import mask_secrets
from portal.members import nir as nir_rules
from portal.members.models import Member
from portal.notifications.services import email_send, sms_send
from portal.staff import perms
from portal.staff.models import Staff

from .models import ConsoleBlock, DeskVisit, IdentityCheck

CHECK_WINDOW = timedelta(minutes=15)
FAILED_CHECKS_BEFORE_BLOCK = 3
RECOVERY_CODE_DIGITS = 8
RECOVERY_CODE_TTL = 10 * 60
RECOVERY_CODE_TRIES = 5
RECOVERY_CODES_PER_DAY = 3
ACTIVATION_CODE_DIGITS = 8
ACTIVATION_CODE_TTL = 24 * 3600
ACTIVATION_CODE_TRIES = 5


class NotAllowed(ServiceError):
    code = "forbidden"


class MemberBlocked(ServiceError):
    code = "member_blocked"


class NoWindow(ServiceError):
    """No passed identity check by this staff member in the last 15 minutes."""

    code = "identity_check_required"


class NoAccount(ServiceError):
    code = "no_account"


class NoMobile(ServiceError):
    code = "no_mobile"


class TooManyRecoveryCodes(Throttled):
    code = "too_many_codes"


def _require(allowed: bool) -> None:
    if not allowed:
        raise NotAllowed()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _fold(text: str) -> str:
    """Case, accents and separators do not matter when a caller spells a first name."""
    import unicodedata

    decomposed = unicodedata.normalize("NFKD", text or "")
    letters = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return "".join(ch for ch in letters.lower() if ch.isalnum())


# --- finding and checking ------------------------------------------------------


def member_search(*, staff: Staff, nir: str, ip: str) -> Member | None:
    """The member with exactly this NIR, in the staff's CPAM; no browsing, no name search."""
    _require(perms.can_search_member(staff))
    member = None
    try:
        parsed = nir_rules.parse(nir, require_key=False)
    except nir_rules.NirError:
        parsed = None
    if parsed:
        member = (
            Member.objects.select_related("cpam")
            .filter(nir=parsed.number + nir_rules.key_for(parsed.number), cpam=staff.cpam)
            .first()
        )
    record(
        action="console.member.searched",
        actor=staff.actor,
        member=member,
        ip=ip,
        data={"outcome": "found" if member else "not_found"},
    )
    return member


def member_blocked(*, member: Member) -> bool:
    return ConsoleBlock.objects.filter(member=member, lifted_at__isnull=True).exists()


def _last_fact(member: Member) -> str:
    return "".join(member.iban.split()).upper()[-4:]


def identity_check_run(
    *,
    staff: Staff,
    member: Member,
    birth_date: date | None,
    postal_code: str,
    first_name: str,
    iban_last4: str,
    ip: str,
) -> IdentityCheck:
    """Compare what the caller says with the file; answer match / no match per question.

    All four must match. The third failed check on a member within 24 hours
    closes the console path for that member until a supervisor lifts it.
    Raises `MemberBlocked` (after committing the audit entry of the refusal).
    """
    _require(perms.can_check_identity(staff, member))
    with transaction.atomic():
        check = _identity_check_locked(
            staff=staff,
            member=member,
            birth_date=birth_date,
            postal_code=postal_code,
            first_name=first_name,
            iban_last4=iban_last4,
            ip=ip,
        )
    if check is None:
        raise MemberBlocked()
    return check


def _identity_check_locked(
    *,
    staff: Staff,
    member: Member,
    birth_date: date | None,
    postal_code: str,
    first_name: str,
    iban_last4: str,
    ip: str,
) -> IdentityCheck | None:
    """The check, in the caller's transaction; None (audited) when the member is blocked."""
    Member.objects.select_for_update().filter(pk=member.pk).first()  # serialise checks per member
    if member_blocked(member=member):
        record(
            action="console.identity_check.refused",
            actor=staff.actor,
            member=member,
            ip=ip,
            data={"outcome": "blocked"},
        )
        return None
    outcomes = {
        "birth_date": birth_date is not None and birth_date == member.birth_date,
        "postal_code": _same((postal_code or "").strip(), member.postal_code),
        "first_name": _first_name_matches(first_name, member.first_names),
        "iban_last4": _same("".join((iban_last4 or "").split()).upper(), _last_fact(member)),
    }
    passed = all(outcomes.values())
    check = IdentityCheck.objects.create(
        staff=staff, member=member, passed=passed, outcomes=outcomes
    )
    record(
        action="console.identity_check",
        actor=staff.actor,
        member=member,
        ip=ip,
        data={
            "outcome": "passed" if passed else "failed",
            "answers": outcomes,
            "check_id": check.pk,
        },
    )
    if not passed:
        since = timezone.now() - timedelta(hours=24)
        failures = IdentityCheck.objects.filter(member=member, passed=False, created_at__gt=since)
        last_lift = (
            ConsoleBlock.objects.filter(member=member, lifted_at__isnull=False)
            .order_by("-lifted_at")
            .first()
        )
        if last_lift:
            failures = failures.filter(created_at__gt=last_lift.lifted_at)
        if failures.count() >= FAILED_CHECKS_BEFORE_BLOCK:
            ConsoleBlock.objects.create(member=member)
            record(
                action="console.member.blocked",
                actor="system",
                member=member,
                ip=ip,
                data={"outcome": "flagged", "failed_checks_24h": failures.count()},
            )
    return check


def _first_name_matches(said: str, first_names: str) -> bool:
    """Any of the first names, or several in a row: a compound name ("Marie-Hélène") is
    said whole, and the register may spell it with a hyphen or a space."""
    said = _fold(said)
    if not said:
        return False
    parts = [_fold(part) for part in first_names.replace("-", " ").split()]
    parts = [part for part in parts if part]
    names = ["".join(parts[i:j]) for i in range(len(parts)) for j in range(i + 1, len(parts) + 1)]
    return any(_same(said, name) for name in names)


def check_window(*, staff: Staff, member: Member, check_id: int | None) -> IdentityCheck:
    """The passed check that lets `staff` act on `member` now, or `NoWindow`/`MemberBlocked`."""
    if member_blocked(member=member):
        raise MemberBlocked()
    check = (
        IdentityCheck.objects.filter(
            pk=check_id or 0,
            staff=staff,
            member=member,
            passed=True,
            created_at__gt=timezone.now() - CHECK_WINDOW,
        ).first()
        if check_id
        else None
    )
    if check is None:
        raise NoWindow()
    return check


def _live_account(member: Member) -> Account | None:
    return (
        Account.objects.select_for_update()
        .filter(member=member, state=Account.State.ACTIVE)
        .first()
    )


# --- phone path: recovery code by SMS -----------------------------------------


def masked_mobile(account: Account | None) -> str:
    """`06 •• •• •• 42`: enough for the caller to recognise the number, not to learn it."""
    if account is None or not account.mobile_phone:
        return ""
    national = account.mobile_phone.as_national.replace(" ", "")
    return f"{national[:2]} •• •• •• {national[-2:]}"


def recovery_code_send(
    *, staff: Staff, member: Member, check_id: int | None, ip: str
) -> OneTimeCode:
    """Send an 8-digit code to the mobile already on file. 10 min, single use, 5 tries, 3 a day.

    Raises `TooManyRecoveryCodes` after committing the audit entry of the refusal.
    """
    _require(perms.can_send_recovery_code(staff, member))
    with transaction.atomic():
        row = _recovery_code_send_locked(staff=staff, member=member, check_id=check_id, ip=ip)
    if row is None:
        raise TooManyRecoveryCodes(retry_after=3600)
    return row


def _recovery_code_send_locked(
    *, staff: Staff, member: Member, check_id: int | None, ip: str
) -> OneTimeCode | None:
    """The sending, in the caller's transaction; None (audited) at the daily limit."""
    check_window(staff=staff, member=member, check_id=check_id)
    account = _live_account(member)
    if account is None:
        raise NoAccount()
    if not account.mobile_phone:
        raise NoMobile()
    sent_today = OneTimeCode.objects.filter(
        account=account,
        purpose=OneTimeCode.Purpose.RECOVERY_SMS,
        created_at__gt=timezone.now() - timedelta(days=1),
    ).count()
    if sent_today >= RECOVERY_CODES_PER_DAY:
        record(
            action="console.recovery_code.refused",
            actor=staff.actor,
            member=member,
            ip=ip,
            data={"outcome": "daily_limit"},
        )
        return None
    code, row = codes.code_issue(
        account=account,
        purpose=OneTimeCode.Purpose.RECOVERY_SMS,
        target=account.mobile_phone.as_e164,
        digits=RECOVERY_CODE_DIGITS,
        ttl=RECOVERY_CODE_TTL,
        max_attempts=RECOVERY_CODE_TRIES,
        per_hour=RECOVERY_CODES_PER_DAY,
    )
    sms_send(
        to=account.mobile_phone.as_e164,
        template="recovery_code",
        context={"code": code, "minutes": RECOVERY_CODE_TTL // 60},
        member=member,
        expires_at=row.expires_at,
        sent_by=staff.actor,
    )
    record(
        action="console.recovery_code.sent",
        actor=staff.actor,
        member=member,
        ip=ip,
        data={"outcome": "sent", "code_id": row.pk},
    )
    return row


class CodeRefused(ServiceError):
    """Unknown NIR, wrong, expired, used or exhausted code: one answer for all."""

    code = "invalid_code"


def _redeem(
    *, nir: str, code: str, purpose: str, ip: str, throttle_kind: str, password: str | None = None
) -> Account:
    """Check NIR + code; consume the code when right (and set `password` if given).

    Unknown NIR, wrong, expired, used or exhausted code all give `CodeRefused`.
    A wrong try is committed even though the call fails. With a password, the
    code is consumed only if the password is accepted (`WeakPassword` leaves
    it usable).
    """
    from portal.core import throttle

    if throttle.hit_limit(kind=throttle_kind, value=ip, limit=30):
        raise Throttled()
    account = None
    try:
        parsed = nir_rules.parse(nir, require_key=False)
    except nir_rules.NirError:
        parsed = None
    code = (code or "").strip()
    verdict = None
    weak = None
    with transaction.atomic():
        if parsed:
            account = _live_account_by_nir(parsed.number)
        if account and code.isascii() and code.isdigit():
            try:
                with transaction.atomic():  # consumption and new password stand or fall together
                    verdict = codes.code_check(account=account, purpose=purpose, code=code)
                    if verdict.ok and password is not None:
                        account_password_set(
                            account=account,
                            password=password,
                            actor=f"member:{account.pk}",
                            ip=ip,
                            reason=purpose,
                        )
            except WeakPassword as exc:
                weak = exc
        ok = verdict is not None and verdict.ok and weak is None
        outcome = (
            "ok"
            if ok
            else ("weak_password" if weak else (verdict.error.code if verdict else "no_match"))
        )
        record(
            action=f"recovery.{purpose}.redeemed" if ok else f"recovery.{purpose}.refused",
            actor="anonymous",
            member=account.member if account else None,
            ip=ip,
            data={"outcome": outcome},
        )
    if weak is not None:
        raise weak
    if not ok:
        raise CodeRefused()
    return account


def _live_account_by_nir(number13: str) -> Account | None:
    return (
        Account.objects.select_for_update()
        .select_related("member")
        .filter(nir=number13, state=Account.State.ACTIVE)
        .first()
    )


def recovery_code_redeem(*, nir: str, code: str, ip: str) -> Account:
    """The member types NIR + the SMS code: consumed when right. Raises `CodeRefused`/`Throttled`."""
    return _redeem(
        nir=nir,
        code=code,
        purpose=OneTimeCode.Purpose.RECOVERY_SMS,
        ip=ip,
        throttle_kind="recovery-sms:ip",
    )


def recovery_code_reset(*, nir: str, code: str, password: str, ip: str) -> Account:
    """The API's one step: NIR + SMS code + new password."""
    return _redeem(
        nir=nir,
        code=code,
        purpose=OneTimeCode.Purpose.RECOVERY_SMS,
        ip=ip,
        throttle_kind="recovery-sms:ip",
        password=password,
    )


def recovery_password_set(*, account: Account, password: str, ip: str, reason: str) -> None:
    """After a redeemed code: the new password, by the same policy; sessions and tokens revoked."""
    with transaction.atomic():
        account = Account.objects.select_for_update().select_related("member").get(pk=account.pk)
        account_password_set(
            account=account, password=password, actor=f"member:{account.pk}", ip=ip, reason=reason
        )


# --- front desk: visit and activation code --------------------------------------


@transaction.atomic
def visit_record(
    *,
    staff: Staff,
    member: Member,
    check_id: int | None,
    document_type: str,
    last_chars: str,
    ip: str,
) -> DeskVisit:
    _require(perms.can_record_visit(staff, member))
    check_window(staff=staff, member=member, check_id=check_id)
    last_chars = "".join((last_chars or "").split()).upper()[-4:]
    if (
        document_type not in DeskVisit.Document.values
        or len(last_chars) != 4
        or not last_chars.isalnum()
    ):
        raise ValueError("document")
    visit = DeskVisit.objects.create(
        staff=staff, member=member, document_type=document_type, document_last_chars=last_chars
    )
    record(
        action="console.visit.recorded",
        actor=staff.actor,
        member=member,
        ip=ip,
        data={"outcome": "recorded", "visit_id": visit.pk, "document_type": document_type},
    )
    return visit


@transaction.atomic
def activation_code_issue(*, staff: Staff, member: Member, check_id: int | None, ip: str) -> str:
    """A one-time code printed on a slip (24 h), after a visit with a document in the window.

    Returned in clear only to be printed for the member, never stored.
    """
    _require(perms.can_issue_activation_code(staff, member))
    check = check_window(staff=staff, member=member, check_id=check_id)
    if not DeskVisit.objects.filter(
        staff=staff, member=member, created_at__gte=check.created_at
    ).exists():
        raise NoWindow()
    account = _live_account(member)
    if account is None:
        raise NoAccount()
    code, row = codes.code_issue(
        account=account,
        purpose=OneTimeCode.Purpose.DESK_ACTIVATION,
        digits=ACTIVATION_CODE_DIGITS,
        ttl=ACTIVATION_CODE_TTL,
        max_attempts=ACTIVATION_CODE_TRIES,
        per_hour=3,
    )
    record(
        action="console.activation_code.issued",
        actor=staff.actor,
        member=member,
        ip=ip,
        data={"outcome": "printed", "code_id": row.pk},
    )
    return code


def activation_code_redeem(*, nir: str, code: str, ip: str) -> Account:
    return _redeem(
        nir=nir,
        code=code,
        purpose=OneTimeCode.Purpose.DESK_ACTIVATION,
        ip=ip,
        throttle_kind="desk-activation:ip",
    )


@transaction.atomic
def activation_complete(
    *, account: Account, password: str, email: str, mobile_phone: str, ip: str
) -> None:
    """With a redeemed activation code: new password, and the email and mobile given at the desk."""
    account = Account.objects.select_for_update().select_related("member").get(pk=account.pk)
    changed = {}
    if email and email.lower() != account.email.lower():
        old_email = account.email
        account.email_previous, account.email = account.email, email
        # Given at the desk after a document check: as proven as a confirmed link.
        account.email_confirmed_at = timezone.now()
        changed["email"] = True
        if old_email:
            email_send(
                to=old_email,
                member=account.member,
                template="email_change_done",
                context={
                    "member": account.member,
                    "masked_nir": nir_rules.mask(account.nir or account.member.nir),
                    "new_email": email,
                    "changed_at": timezone.localtime(),
                },
            )
    if mobile_phone and str(account.mobile_phone) != mobile_phone:
        account.mobile_phone = mobile_phone
        changed["mobile"] = True
    if changed:
        account.save(
            update_fields=["email", "email_previous", "email_confirmed_at", "mobile_phone"]
        )
        record(
            action="recovery.desk_activation.channels_updated",
            actor=f"member:{account.pk}",
            member=account.member,
            ip=ip,
            data={"outcome": "updated", **changed},
        )
    account_password_set(
        account=account,
        password=password,
        actor=f"member:{account.pk}",
        ip=ip,
        reason="desk_activation",
    )


# --- deletion ------------------------------------------------------------------


@transaction.atomic
def account_delete(
    *, staff: Staff, member: Member, check_id: int | None, reason: str, ip: str
) -> Account:
    """Close the online account; the member's register data and history stay.

    Sessions, API tokens, links and codes die; the NIR is freed so that the
    member can create a new account with a new email and password.
    """
    _require(perms.can_delete_account(staff, member))
    check_window(staff=staff, member=member, check_id=check_id)
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("reason")
    account = _live_account(member) or (
        Account.objects.select_for_update()
        .filter(member=member, state=Account.State.PENDING)
        .first()
    )
    if account is None:
        raise NoAccount()
    now = timezone.now()
    previous_email = account.email
    account.state = Account.State.DELETED
    account.deleted_at = now
    account.nir = None
    account.session_epoch += 1
    account.set_unusable_password()
    account.save()
    ApiToken.objects.filter(account=account, revoked_at__isnull=True).update(revoked_at=now)
    AccountToken.objects.filter(
        account=account, used_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=now)
    codes.codes_revoke(account=account)
    if previous_email:
        email_send(
            to=previous_email,
            member=member,
            template="account_deleted",
            context={"member": member, "masked_nir": nir_rules.mask(member.nir)},
        )
    record(
        action="console.account.deleted",
        actor=staff.actor,
        member=member,
        ip=ip,
        data={"outcome": "deleted", "account_id": account.pk, "reason": mask_secrets(reason)[:500]},
    )
    return account


# --- supervisor -----------------------------------------------------------------


@transaction.atomic
def block_lift(*, staff: Staff, block: ConsoleBlock, ip: str) -> None:
    _require(perms.can_lift_block(staff, block.member))
    updated = ConsoleBlock.objects.filter(pk=block.pk, lifted_at__isnull=True).update(
        lifted_at=timezone.now(), lifted_by=staff
    )
    if updated:
        record(
            action="console.block.lifted",
            actor=staff.actor,
            member=block.member,
            ip=ip,
            data={"outcome": "lifted", "block_id": block.pk},
        )
