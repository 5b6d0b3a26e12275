"""Writes on online accounts: creation, confirmation, login, API tokens.

Every function is keyword-only, runs in one transaction and leaves an audit
entry for each state change. Views and API routes only translate.
"""

import hmac
import logging
from datetime import date, timedelta

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import models, transaction
from django.utils import timezone

from portal.audit.services import record
from portal.core import throttle
from portal.core.rows import JoinedRow
from portal.core.tokens import new_token, token_hash
from portal.members import nir as nir_rules
from portal.members.models import Member
from portal.notifications.services import email_send

from .models import Account, AccountToken, ApiToken
from .passwords import personal_data_of, unmet_rules

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    code = "error"


class IdentityNotVerified(ServiceError):
    code = "identity_not_verified"


class Throttled(ServiceError):
    code = "throttled"

    def __init__(self, retry_after: int = 3600):
        self.retry_after = retry_after
        super().__init__(self.code)


class WeakPassword(ServiceError):
    code = "weak_password"

    def __init__(self, rules: list[str]):
        self.rules = rules
        super().__init__(self.code)


class InvalidCredentials(ServiceError):
    code = "invalid_credentials"


class TokenInvalid(ServiceError):
    code = "invalid_token"


class TokenExpired(TokenInvalid):
    code = "expired_token"


# --- account creation ----------------------------------------------------


def _norm_iban_fragment(value: str) -> str:
    return "".join((value or "").split()).upper()


def account_identity_verify(*, nir: str, birth_date: date, iban_last7: str, ip: str) -> Member:
    """Check the proof of identity (NIR, birth date, last 7 of the IBAN on file).

    Every attempt counts against the NIR and the IP; a wrong proof raises
    `IdentityNotVerified` whichever field was wrong.
    """
    try:
        parsed = nir_rules.parse(nir, require_key=False)
    except nir_rules.NirError:
        parsed = None
    nir_key = parsed.number if parsed else nir_rules.compact(nir)[:13]
    over_nir = throttle.hit_limit(
        kind="create:nir", value=nir_key, limit=settings.ACCOUNT_CREATION_LIMIT_PER_NIR
    )
    over_ip = throttle.hit_limit(
        kind="create:ip", value=ip, limit=settings.ACCOUNT_CREATION_LIMIT_PER_IP
    )
    if over_nir or over_ip:
        record(action="account.creation.throttled", actor="anonymous", ip=ip)
        raise Throttled()
    member = None
    if parsed:
        member = (
            Member.objects.filter(nir=parsed.number + nir_rules.key_for(parsed.number))
            .select_related("cpam")
            .first()
        )
    expected_iban = _norm_iban_fragment(member.iban)[-7:] if member else "0" * 7
    given_iban = _norm_iban_fragment(iban_last7)[-7:]
    iban_ok = (
        hmac.compare_digest(expected_iban.encode(), given_iban.encode()) and len(given_iban) == 7
    )
    date_ok = member is not None and member.birth_date == birth_date
    if not (member and iban_ok and date_ok):
        record(action="account.creation.identity_failed", actor="anonymous", member=member, ip=ip)
        raise IdentityNotVerified()
    return member


@transaction.atomic
def account_create(
    *, member: Member, email: str, mobile_phone: str, password: str, ip: str
) -> None:
    """Create (or restart) the pending account of a member whose identity was verified.

    The answer is the same whether or not an account already exists: for an
    active account nothing changes and its owner is told by email that
    someone tried to create one. A pending account is restarted with the new
    details, and earlier confirmation links die.
    """
    member = Member.objects.select_for_update().get(pk=member.pk)
    personal = personal_data_of(member, email)
    rules = unmet_rules(password, personal)
    if rules:
        raise WeakPassword(rules)

    existing = (
        Account.objects.select_for_update()
        .filter(member=member)
        .exclude(state=Account.State.DELETED)
        .first()
    )
    if existing and existing.state == Account.State.ACTIVE:
        email_send(
            to=existing.email,
            template="account_creation_attempt",
            context={"member": member, "masked_nir": nir_rules.mask(member.nir)},
            member=member,
        )
        record(action="account.creation.existing_account", actor="anonymous", member=member, ip=ip)
        return

    account = existing or Account(member=member, nir=member.nir13)
    account.email = email
    account.mobile_phone = mobile_phone or ""
    account.state = Account.State.PENDING
    account.set_password(password)
    account.save()
    _tokens_revoke(account=account, purpose=AccountToken.Purpose.CONFIRM_EMAIL)
    token = _token_issue(
        account=account,
        purpose=AccountToken.Purpose.CONFIRM_EMAIL,
        ttl=settings.ACCOUNT_CONFIRMATION_TTL,
    )
    email_send(
        to=email,
        member=member,
        template="account_confirmation",
        context={
            "member": member,
            "link": f"{settings.SITE_URL}/compte/confirmer/{token}",
            "valid_until": timezone.localtime(
                timezone.now() + timedelta(seconds=settings.ACCOUNT_CONFIRMATION_TTL)
            ),
        },
    )
    record(
        action="account.created" if existing is None else "account.creation.restarted",
        actor="anonymous",
        member=member,
        ip=ip,
        data={"account_id": account.pk},
    )


def _token_issue(*, account: Account, purpose: str, ttl: int) -> str:
    token = new_token()
    AccountToken.objects.create(
        account=account,
        purpose=purpose,
        token_hash=token_hash(token),
        expires_at=timezone.now() + timedelta(seconds=ttl),
    )
    return token


def _tokens_revoke(*, account: Account, purpose: str) -> None:
    AccountToken.objects.filter(
        account=account, purpose=purpose, used_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())


@transaction.atomic
def account_confirm(*, token: str, ip: str) -> Account:
    """Activate a pending account from its emailed link. Single use, 24 h."""
    found = (
        AccountToken.objects.select_for_update()
        .select_related("account")
        .filter(token_hash=token_hash(token), purpose=AccountToken.Purpose.CONFIRM_EMAIL)
        .first()
    )
    if found is None or found.used_at or found.revoked_at:
        raise TokenInvalid()
    if found.expires_at <= timezone.now():
        raise TokenExpired()
    account = found.account
    if account.state != Account.State.PENDING:
        raise TokenInvalid()
    found.used_at = timezone.now()
    found.save(update_fields=["used_at"])
    account.state = Account.State.ACTIVE
    account.activated_at = account.email_confirmed_at = timezone.now()
    account.save(update_fields=["state", "activated_at", "email_confirmed_at"])
    record(
        action="account.activated",
        actor=f"member:{account.pk}",
        member=account.member,
        ip=ip,
        data={"account_id": account.pk},
    )
    return account


def confirmation_token_state(*, token: str) -> str:
    """'valid', 'expired' or 'invalid', without consuming the token (for the confirmation page)."""
    found = AccountToken.objects.filter(
        token_hash=token_hash(token), purpose=AccountToken.Purpose.CONFIRM_EMAIL
    ).first()
    if found is None or found.used_at or found.revoked_at:
        return "invalid"
    if found.expires_at <= timezone.now():
        return "expired"
    return "valid"


# --- password and sessions ---------------------------------------------------


def account_password_set(
    *, account: Account, password: str, actor: str, ip: str | None, reason: str
) -> None:
    """Replace the password, by any path (reset link, SMS code, change in Mon compte).

    Checks the policy, then, in the caller's transaction: every session and
    API token of the account is revoked, every outstanding reset link dies,
    the registered address is told, and the change is audited. Raises
    `WeakPassword`.
    """
    rules = unmet_rules(password, personal_data_of(account.member, account.email))
    if rules:
        raise WeakPassword(rules)
    with transaction.atomic():
        account.set_password(password)
        account.session_epoch += 1  # the password change alone would do; explicit is clearer
        account.save(update_fields=["password", "session_epoch"])
        _tokens_revoke(account=account, purpose=AccountToken.Purpose.PASSWORD_RESET)
        _pending_changes_revoke(account=account)
        revoked = ApiToken.objects.filter(account=account, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        email_send(
            to=account.email,
            member=account.member,
            template="password_changed",
            context={
                "member": account.member,
                "masked_nir": nir_rules.mask(account.nir or account.member.nir),
                "changed_at": timezone.localtime(),
            },
        )
        record(
            action="account.password.changed",
            actor=actor,
            member=account.member,
            ip=ip,
            data={"reason": reason, "api_access_revoked": revoked},
        )


def _pending_changes_revoke(*, account: Account) -> None:
    """Email-change links and SMS codes not yet used die with the old password or sessions:
    a thief's pending change must not survive the owner taking the account back."""
    from . import codes

    _tokens_revoke(account=account, purpose=AccountToken.Purpose.EMAIL_CHANGE)
    codes.codes_revoke(account=account)


@transaction.atomic
def account_sessions_revoke(*, account: Account, actor: str, ip: str | None) -> None:
    """Log out of every device: every session and API token of the account ends."""
    Account.objects.filter(pk=account.pk).update(session_epoch=models.F("session_epoch") + 1)
    account.refresh_from_db(fields=["session_epoch"])
    _pending_changes_revoke(account=account)
    revoked = ApiToken.objects.filter(account=account, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    record(
        action="account.sessions.revoked",
        actor=actor,
        member=account.member,
        ip=ip,
        data={"api_access_revoked": revoked},
    )


# --- login ---------------------------------------------------------------


def _throttles() -> tuple[throttle.FailureThrottle, throttle.FailureThrottle]:
    return (
        throttle.FailureThrottle(
            kind="login:nir",
            free=settings.LOGIN_FREE_FAILURES,
            max_delay=settings.LOGIN_MAX_DELAY,
            ceiling=settings.LOGIN_MAX_FAILURES_PER_ACCOUNT,
        ),
        throttle.FailureThrottle(
            kind="login:ip",
            free=settings.LOGIN_FREE_FAILURES_PER_IP,
            max_delay=settings.LOGIN_MAX_DELAY,
            ceiling=settings.LOGIN_MAX_FAILURES_PER_IP,
        ),
    )


_DUMMY_HASH = None


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = make_password("not a password of anyone")
    return _DUMMY_HASH


def account_authenticate(*, nir: str, password: str, ip: str, channel: str = "web") -> Account:
    """Check NIR + password. Raises `InvalidCredentials` or `Throttled`.

    An unknown NIR costs one Argon2 verification like a known one, so that
    neither the answer nor its time tells whether an account exists.
    """
    from django.contrib.auth.hashers import check_password

    key = nir_rules.compact(nir)[:13]
    by_account, by_ip = _throttles()
    for verdict in (by_account.check(key), by_ip.check(ip)):
        if not verdict.allowed:
            record(action="account.login.throttled", actor="anonymous", ip=ip)
            raise Throttled(verdict.retry_after)

    account = None
    try:
        parsed = nir_rules.parse_login(nir)
    except nir_rules.NirError:
        parsed = None
    if parsed:
        account = (
            Account.objects.select_related("member")
            .filter(nir=parsed.number, state=Account.State.ACTIVE)
            .first()
        )
    if account is None:
        check_password(password, _dummy_hash())
        by_account.fail(key)
        by_ip.fail(ip)
        record(action="account.login.failed", actor="anonymous", ip=ip)
        raise InvalidCredentials()
    if not account.check_password(password):
        by_account.fail(key)
        by_ip.fail(ip)
        record(action="account.login.failed", actor="anonymous", member=account.member, ip=ip)
        raise InvalidCredentials()
    by_account.reset(key)
    if channel == "web":
        record(
            action="account.login.succeeded",
            actor=f"member:{account.pk}",
            member=account.member,
            ip=ip,
            data={"channel": "web"},
        )
    return account


# --- API tokens ------------------------------------------------------------


def account_login_api(*, nir: str, password: str, ip: str) -> tuple[str, int]:
    """API login: the credentials, then a bearer token, audited as one event.

    The password is verified outside any transaction (Argon2 is the slow part
    and must not hold a database lock); the token and its audit entry are
    written together in one short transaction.
    """
    account = account_authenticate(nir=nir, password=password, ip=ip, channel="api")
    return api_token_issue(account=account, ip=ip)


@transaction.atomic
def api_token_issue(*, account: Account, ip: str) -> tuple[str, int]:
    token = new_token()
    ttl = settings.API_TOKEN_TTL
    issued = ApiToken.objects.create(
        account=account,
        token_hash=token_hash(token),
        expires_at=timezone.now() + timedelta(seconds=ttl),
    )
    record(
        action="account.login.succeeded",
        actor=f"member:{account.pk}",
        member=account.member,
        ip=ip,
        data={"channel": "api", "bearer_id": issued.pk},
    )
    return token, ttl


@transaction.atomic
def api_token_revoke(*, token: ApiToken, ip: str) -> None:
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    record(
        action="account.api_token.revoked",
        actor=f"member:{token.account_id}",
        member=token.account.member,
        ip=ip,
    )


# Read at every API request: in SQL built once (portal/core/rows.py).
_LIVE_API_TOKEN = JoinedRow(
    ApiToken,
    related=["account__member__cpam"],
    conditions=["token_hash", "revoked_at__isnull", "expires_at__gt", "account__state"],
)


def api_token_resolve(*, raw: str) -> ApiToken | None:
    """The live token matching a bearer string, or None."""
    return _LIVE_API_TOKEN.get(token_hash(raw), timezone.now(), Account.State.ACTIVE)
