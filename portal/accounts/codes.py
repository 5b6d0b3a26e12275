"""Short one-time codes (SMS, printed): issue and check, for any purpose.

Used by the mobile change (6 digits, 10 min, 5 tries) and meant for the
assisted recovery (8 digits by SMS). Both functions run in the caller's
transaction; `code_check` returns its verdict instead of raising, so that the
wrong try it counts is committed with the caller's audit entry rather than
rolled back by an exception.
"""

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.crypto import salted_hmac

from .models import Account, OneTimeCode
from .services import ServiceError, Throttled

HASH_SALT = "portal.accounts.OneTimeCode"


class CodeInvalid(ServiceError):
    """No code is waiting (never sent, already used, or replaced)."""

    code = "invalid_code"


class CodeExpired(CodeInvalid):
    code = "expired_code"


class CodeExhausted(CodeInvalid):
    """Every try of the code was used: it is dead, a new one must be asked for."""

    code = "too_many_attempts"


class CodeWrong(CodeInvalid):
    code = "wrong_code"

    def __init__(self, remaining: int):
        self.remaining = remaining
        super().__init__(self.code)


class TooManyCodes(Throttled):
    """The hourly number of codes of this purpose was reached."""

    code = "too_many_codes"


def code_hash(*, account_id: int, purpose: str, code: str, secret: str | None = None) -> str:
    """HMAC-SHA256 keyed with SECRET_KEY, bound to the account and the purpose."""
    return salted_hmac(
        HASH_SALT, f"{account_id}:{purpose}:{code}", secret=secret, algorithm="sha256"
    ).hexdigest()


def _matches(found: OneTimeCode, code: str) -> bool:
    # Codes issued just before a SECRET_KEY rotation stay checkable.
    secrets_to_try = [None, *settings.SECRET_KEY_FALLBACKS]
    return any(
        hmac.compare_digest(
            found.code_hash,
            code_hash(account_id=found.account_id, purpose=found.purpose, code=code, secret=key),
        )
        for key in secrets_to_try
    )


def code_issue(
    *,
    account: Account,
    purpose: str,
    target: str = "",
    digits: int,
    ttl: int,
    max_attempts: int,
    per_hour: int,
) -> tuple[str, OneTimeCode]:
    """Create a code, revoking the earlier live ones of the same purpose.

    Returns the code in clear (to send it, never to store it) and its row.
    Raises `TooManyCodes` when `per_hour` codes of this purpose were already
    issued to the account in the last hour. Locks the account row, so that
    concurrent requests cannot both pass the hourly limit.
    """
    Account.objects.select_for_update().filter(pk=account.pk).first()
    now = timezone.now()
    window_start = now - timedelta(hours=1)
    recent = OneTimeCode.objects.filter(
        account=account, purpose=purpose, created_at__gt=window_start
    )
    if recent.count() >= per_hour:
        oldest = recent.order_by("created_at").first()
        retry_after = int((oldest.created_at - window_start).total_seconds()) + 1
        raise TooManyCodes(retry_after=max(retry_after, 1))
    codes_revoke(account=account, purpose=purpose)
    code = f"{secrets.randbelow(10**digits):0{digits}d}"
    row = OneTimeCode.objects.create(
        account=account,
        purpose=purpose,
        code_hash=code_hash(account_id=account.pk, purpose=purpose, code=code),
        target=target,
        expires_at=now + timedelta(seconds=ttl),
        max_attempts=max_attempts,
    )
    return code, row


def codes_revoke(*, account: Account, purpose: str | None = None) -> int:
    """Kill the live codes of the account (of one purpose, or all)."""
    live = OneTimeCode.objects.filter(
        account=account, used_at__isnull=True, revoked_at__isnull=True
    )
    if purpose:
        live = live.filter(purpose=purpose)
    return live.update(revoked_at=timezone.now())


def code_latest(*, account: Account, purpose: str) -> OneTimeCode | None:
    """The most recent code of this purpose, whatever its state."""
    return (
        OneTimeCode.objects.filter(account=account, purpose=purpose)
        .order_by("-created_at", "-id")
        .first()
    )


def code_pending(*, account: Account, purpose: str) -> OneTimeCode | None:
    """The live code waiting to be typed, if any (not used, revoked, expired or exhausted)."""
    found = code_latest(account=account, purpose=purpose)
    if (
        found is None
        or found.used_at
        or found.revoked_at
        or found.attempts >= found.max_attempts
        or found.expires_at <= timezone.now()
    ):
        return None
    return found


@dataclass(frozen=True)
class CodeVerdict:
    row: OneTimeCode | None
    error: CodeInvalid | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def code_check(*, account: Account, purpose: str, code: str) -> CodeVerdict:
    """Check a typed code against the latest one of this purpose; consume it if right.

    Only the latest code counts (a re-sent code replaces the earlier ones).
    A wrong code uses one try; the last wrong try kills the code. An expired
    or dead code uses no try. Must run inside a transaction (row lock).
    """
    found = (
        OneTimeCode.objects.select_for_update()
        .filter(account=account, purpose=purpose)
        .order_by("-created_at", "-id")
        .first()
    )
    now = timezone.now()
    if found is None or found.used_at:
        return CodeVerdict(found, CodeInvalid())
    if found.attempts >= found.max_attempts:
        return CodeVerdict(found, CodeExhausted())
    if found.revoked_at:
        return CodeVerdict(found, CodeInvalid())
    if found.expires_at <= now:
        return CodeVerdict(found, CodeExpired())
    if _matches(found, code):
        found.used_at = now
        found.save(update_fields=["used_at"])
        return CodeVerdict(found)
    found.attempts += 1
    update = ["attempts"]
    if found.attempts >= found.max_attempts:
        found.revoked_at = now
        update.append("revoked_at")
    found.save(update_fields=update)
    remaining = found.max_attempts - found.attempts
    return CodeVerdict(found, CodeWrong(remaining) if remaining else CodeExhausted())
