"""Self-service password reset ("Mot de passe oublié"): NIR + birth date → an
emailed link valid 30 minutes → a new password.

The request does the same work whatever the details: it counts the attempt
against the client IP and queues the matching for the task worker, so neither
the answer nor its timing says whether an account matched. The worker checks
the details, applies the per-account limits, issues the link and sends it to
the address registered in the account, never to one taken from the request.
"""

import logging
from datetime import date, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal.audit.services import record
from portal.core import metrics, throttle
from portal.core.tokens import token_hash
from portal.members import nir as nir_rules
from portal.notifications.services import email_send

from .models import Account, AccountToken
from .services import (
    Throttled,
    TokenExpired,
    TokenInvalid,
    _token_issue,
    _tokens_revoke,
    account_password_set,
)

logger = logging.getLogger(__name__)

RESET = AccountToken.Purpose.PASSWORD_RESET


def password_reset_request(*, nir: str, birth_date: date, ip: str) -> None:
    """Accept a reset request (web form or API). Raises `Throttled` past the IP limit.

    `nir` must already be a valid NIR (13 or 15 characters). The matching
    happens in the worker (`password_reset_process`).
    """
    from .tasks import password_reset_process

    if throttle.hit_limit(kind="reset:ip", value=ip, limit=settings.PASSWORD_RESET_LIMIT_PER_IP):
        record(
            action="account.password_reset.requested",
            actor="anonymous",
            ip=ip,
            data={"outcome": "throttled_ip"},
        )
        metrics.password_reset_requested(outcome="throttled")
        raise Throttled()
    number = nir_rules.parse(nir, require_key=False).number
    with transaction.atomic():
        password_reset_process.enqueue(nir13=number, birth_date=birth_date.isoformat(), ip=ip)
    metrics.password_reset_requested(outcome="accepted")


def password_reset_process(*, nir13: str, birth_date: date, ip: str) -> str:
    """Match the details and, when they match an active account, email a link.

    Returns the internal outcome (also audited): `matched`, `not_matched`,
    `throttled_account` or `recent_email`. Runs in the worker.
    """
    now = timezone.now()
    with transaction.atomic():
        account = (
            Account.objects.select_for_update()
            .select_related("member")
            .filter(nir=nir13, state=Account.State.ACTIVE)
            .first()
        )
        member = account.member if account else None
        outcome = _outcome(account=account, birth_date=birth_date, now=now)
        if outcome == "matched":
            _tokens_revoke(account=account, purpose=RESET)
            ttl = settings.PASSWORD_RESET_LINK_TTL
            token = _token_issue(account=account, purpose=RESET, ttl=ttl)
            valid_until = now + timedelta(seconds=ttl)
            email_send(
                to=account.email,
                member=member,
                template="password_reset",
                context={
                    "member": member,
                    "masked_nir": nir_rules.mask(account.nir),
                    "link": f"{settings.SITE_URL}/mot-de-passe-oublie/{token}",
                    "valid_until": timezone.localtime(valid_until),
                    "ttl_minutes": ttl // 60,
                },
                expires_at=valid_until,
            )
        record(
            action="account.password_reset.requested",
            actor="anonymous",
            member=member,
            ip=ip,
            data={"outcome": outcome},
        )
    return outcome


def _outcome(*, account: Account | None, birth_date: date, now) -> str:
    if account is None or account.member.birth_date != birth_date or not account.email:
        return "not_matched"
    issued = AccountToken.objects.filter(account=account, purpose=RESET)
    if (
        issued.filter(created_at__gt=now - timedelta(hours=1)).count()
        >= settings.PASSWORD_RESET_LIMIT_PER_ACCOUNT_HOUR
        or issued.filter(created_at__gt=now - timedelta(days=1)).count()
        >= settings.PASSWORD_RESET_LIMIT_PER_ACCOUNT_DAY
    ):
        return "throttled_account"
    recent = now - timedelta(hours=settings.RESET_RECENT_EMAIL_HOURS)
    if (
        account.email_previous
        and account.email_confirmed_at
        and account.email_confirmed_at > recent
    ):
        return "recent_email"
    return "matched"


def _confirm_throttled(ip: str) -> bool:
    return throttle.hit_limit(
        kind="reset-confirm:ip", value=ip, limit=settings.PASSWORD_RESET_CONFIRM_LIMIT_PER_IP
    )


def reset_token_check(*, token: str) -> AccountToken:
    """The live reset token for `token`, or `TokenExpired` / `TokenInvalid`. Consumes nothing."""
    found = (
        AccountToken.objects.select_related("account__member")
        .filter(token_hash=token_hash(token or ""), purpose=RESET)
        .first()
    )
    if found is None or found.used_at or found.revoked_at:
        raise TokenInvalid()
    if found.expires_at <= timezone.now() or found.account.state != Account.State.ACTIVE:
        raise TokenExpired() if found.expires_at <= timezone.now() else TokenInvalid()
    return found


def password_reset_link_opened(*, token: str, ip: str) -> None:
    """Audit the opening of a link (valid or not) and count it against the IP."""
    if _confirm_throttled(ip):
        raise Throttled()
    try:
        found = reset_token_check(token=token)
    except TokenExpired:
        record(action="account.password_reset.link_expired", actor="anonymous", ip=ip)
    except TokenInvalid:
        record(action="account.password_reset.link_invalid", actor="anonymous", ip=ip)
    else:
        record(
            action="account.password_reset.link_opened",
            actor="anonymous",
            member=found.account.member,
            ip=ip,
        )


def password_reset_confirm(*, token: str, password: str, ip: str) -> Account:
    """Set the new password from a reset link. Single use, even under concurrency.

    Raises `Throttled`, `TokenExpired`, `TokenInvalid` or `WeakPassword` (the
    link then stays usable). On success every session, API token and other
    reset link of the account dies and the registered address is told.
    """
    if _confirm_throttled(ip):
        raise Throttled()
    try:
        found = reset_token_check(token=token)
        with transaction.atomic():
            # The conditional update is the lock: of concurrent submissions of
            # one link exactly one finds it unused.
            claimed = AccountToken.objects.filter(
                pk=found.pk,
                used_at__isnull=True,
                revoked_at__isnull=True,
                expires_at__gt=timezone.now(),
            ).update(used_at=timezone.now())
            if not claimed:
                raise TokenInvalid()
            account = (
                Account.objects.select_for_update()
                .select_related("member")
                .get(pk=found.account_id)
            )
            account_password_set(
                account=account,
                password=password,
                actor=f"member:{account.pk}",
                ip=ip,
                reason="password_reset",
            )
    except TokenInvalid as exc:
        action = "link_expired" if isinstance(exc, TokenExpired) else "link_invalid"
        record(action=f"account.password_reset.{action}", actor="anonymous", ip=ip)
        raise
    metrics.password_reset_completed()
    return account
