from datetime import datetime

from django.db.models import Count, F, Q
from django.utils import timezone

from portal.accounts.models import OneTimeCode

from .models import OutboundMessage


def demo_mailbox():
    return OutboundMessage.objects.only(
        "id", "channel", "recipient", "subject", "status", "created_at"
    )[:200]


def sms_code_usage(*, since: datetime, now: datetime | None = None) -> dict:
    """How many one-time codes sent by SMS between `since` and `now` were used.

    A code went by SMS when its target is a phone number (E.164); printed
    codes have none. A code still waiting to be typed (not used, revoked,
    expired or exhausted) has not had its chance yet: it is counted in `sent`
    and `pending` but left out of `ratio`, which is used / (sent - pending),
    or None when no code is settled.
    """
    now = now or timezone.now()
    codes = OneTimeCode.objects.filter(
        created_at__gte=since, created_at__lte=now, target__startswith="+"
    )
    counts = codes.aggregate(
        sent=Count("id"),
        used=Count("id", filter=Q(used_at__isnull=False)),
        pending=Count(
            "id",
            filter=Q(
                used_at__isnull=True,
                revoked_at__isnull=True,
                expires_at__gt=now,
                attempts__lt=F("max_attempts"),
            ),
        ),
    )
    settled = counts["sent"] - counts["pending"]
    return {**counts, "ratio": counts["used"] / settled if settled else None}
