"""The relay service for deaf and hard-of-hearing members: its hours, its professionals'
availability, and the provider of the video-call link.

The relay service works in Europe/Paris time: its opening hours
(`RELAY_SERVICE_HOURS`) and its professionals' weekly ranges are wall-clock
times there, turned into cells of the office's own day (the same cells as
the advisors', see `slots`), so that an overseas office gets the relay slots
the service can really staff.
"""

from __future__ import annotations

import abc
import hashlib
import hmac
import json
import logging
import re
import secrets
import urllib.request
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils.module_loading import import_string

from portal.notifications.sms import _NoRedirect  # a redirect is a failure, as for SMS

from .models import CELL_MINUTES, Appointment, RelayProfessional, RelayRange

logger = logging.getLogger(__name__)

RELAY_ZONE = ZoneInfo("Europe/Paris")
CELLS_PER_DAY = 24 * 60 // CELL_MINUTES


class ServiceHoursInvalid(ValueError):
    pass


@lru_cache(maxsize=8)
def service_hours(spec: str | None = None) -> dict[int, list[tuple[time, time]]]:
    """`"1-4 08:30-17:00; 5 08:30-16:00"` → {0: [(08:30, 17:00)], …, 4: [(08:30, 16:00)]}."""
    spec = settings.RELAY_SERVICE_HOURS if spec is None else spec
    hours: dict[int, list[tuple[time, time]]] = defaultdict(list)
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        match = re.fullmatch(r"([1-7])(?:-([1-7]))?((?:\s+\d{2}:\d{2}-\d{2}:\d{2})+)", part)
        if not match:
            raise ServiceHoursInvalid(f"RELAY_SERVICE_HOURS: cannot read {part!r}")
        first = int(match[1])
        last = int(match[2] or first)
        for span in match[3].split():
            start, end = (time.fromisoformat(t) for t in span.split("-"))
            if end <= start:
                raise ServiceHoursInvalid(f"RELAY_SERVICE_HOURS: empty range {span!r}")
            for weekday in range(first - 1, last):
                hours[weekday].append((start, end))
    return dict(hours)


def _paris_ranges_mask(weekly: dict[int, list[tuple[time, time]]], day: date, tz) -> int:
    """The cells of the office-local `day` covered by weekly ranges in Paris time."""
    from .slots import _bits, _cell_of

    mask = 0
    for paris_day in (day - timedelta(days=1), day, day + timedelta(days=1)):
        for start, end in weekly.get(paris_day.weekday(), ()):
            begin = datetime.combine(paris_day, start, RELAY_ZONE)
            finish = datetime.combine(paris_day, end, RELAY_ZONE)
            mask |= _bits(_cell_of(begin, day, tz), _cell_of(finish, day, tz))
    return mask


def relay_starts(
    *,
    mode: str,
    days: list[date],
    tz,
    k: int,
    window_start: datetime,
    window_end: datetime,
    ignore: int | None = None,
) -> tuple[dict[date, int], dict[tuple[int, date], int]]:
    """For each day, the cells where some professional of `mode` is free for k cells;
    and the same per professional (the booking picks one of them)."""
    from .slots import BUSY_STATUSES, _bits, _cell_of

    professionals = list(
        RelayProfessional.objects.filter(is_active=True, **{mode: True}).values_list(
            "pk", flat=True
        )
    )
    weekly: dict[int, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for pro, weekday, start, end in RelayRange.objects.filter(
        professional_id__in=professionals
    ).values_list("professional_id", "weekday", "start_time", "end_time"):
        weekly[pro][weekday].append((start, end))
    busy = defaultdict(list)
    held = Appointment.objects.filter(
        relay_professional_id__in=professionals,
        status__in=BUSY_STATUSES,
        starts_at__lt=window_end,
        ends_at__gt=window_start,
    )
    if ignore is not None:
        held = held.exclude(pk=ignore)
    for pro, s, e in held.values_list("relay_professional_id", "starts_at", "ends_at"):
        busy[pro].append((s, e))
    hours = service_hours()
    by_day: dict[date, int] = {}
    per_pro: dict[tuple[int, date], int] = {}
    for day in days:
        open_cells = _paris_ranges_mask(hours, day, tz)
        day_start = datetime.combine(day, time.min, tz)
        day_end = datetime.combine(day + timedelta(days=1), time.min, tz)
        union = 0
        for pro in professionals:
            free = _paris_ranges_mask(weekly[pro], day, tz) & open_cells
            for s, e in busy.get(pro, ()):
                if s < day_end and e > day_start:
                    free &= ~_bits(_cell_of(s, day, tz), _cell_of(e, day, tz, up=True))
            run = free
            for i in range(1, k):
                run &= free >> i
            if run:
                per_pro[pro, day] = run
                union |= run
        by_day[day] = union
    return by_day, per_pro


# --- the video-call link ----------------------------------------------------------------------


class RelayProvider(abc.ABC):
    """Produces the video-call link of a relay appointment and hears of its changes."""

    name: str
    # True: the link is known at once; False: it comes later, from `notify`.
    immediate: bool = True

    @abc.abstractmethod
    def link(self, appointment: Appointment) -> str:
        """The link for a new appointment, or "" when it comes later."""

    def notify(self, event: str, appointment: Appointment) -> str:
        """Tell the provider of `event` (booked, rescheduled, cancelled); return a link or ""."""
        return ""


class BuiltinProvider(RelayProvider):
    """A room under `VISIO_BASE_URL` with a random, unguessable id (128 bits)."""

    name = "builtin"

    def link(self, appointment: Appointment) -> str:
        return f"{settings.VISIO_BASE_URL.rstrip('/')}/{secrets.token_urlsafe(16)}"


class WebhookProvider(RelayProvider):
    """POST the booking as JSON to `RELAY_WEBHOOK_URL`, signed like RDV Service Public's
    webhooks (HMAC-SHA256 of the exact body, hex, header `X-Signature-SHA256`).

    The answer to `booked` and `rescheduled` is `{"url": "https://…"}`: the
    room. A non-2xx answer, a redirect, an error or a timeout raises, and the
    task retries with backoff; the same `id` and `sequence` let the provider
    drop a duplicate.
    """

    name = "webhook"
    immediate = False

    def link(self, appointment: Appointment) -> str:
        return ""

    def notify(self, event: str, appointment: Appointment) -> str:
        url = settings.RELAY_WEBHOOK_URL
        if not url:
            raise RuntimeError("RELAY_PROVIDER=webhook needs RELAY_WEBHOOK_URL")
        body = json.dumps(webhook_payload(event, appointment), sort_keys=True).encode()
        signature = hmac.new(settings.RELAY_WEBHOOK_SECRET.encode(), body, hashlib.sha256)
        request = urllib.request.Request(  # noqa: S310 (the URL is the operator's setting)
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "X-Signature-SHA256": signature.hexdigest(),
            },
        )
        opener = urllib.request.build_opener(_NoRedirect)
        with opener.open(request, timeout=settings.RELAY_WEBHOOK_TIMEOUT) as response:
            if not 200 <= response.status < 300:
                raise RuntimeError(f"relay provider answered {response.status}")
            if event == "cancelled":
                return ""
            answer = json.loads(response.read() or b"{}")
        link = str(answer.get("url", "")) if isinstance(answer, dict) else ""
        if not link.startswith("https://") or len(link) > 500:
            raise RuntimeError("relay provider gave no https link")
        return link


def webhook_payload(event: str, appointment: Appointment) -> dict:
    """What the provider needs to staff the call: no NIR, no contact details."""
    return {
        "event": event,
        "id": str(appointment.public_id),
        "sequence": appointment.sequence,
        "communication_mode": appointment.communication_mode,
        "professional": appointment.relay_professional_id,
        "start": appointment.starts_at.isoformat(),
        "end": appointment.ends_at.isoformat(),
        "motive": appointment.motive.code,
    }


PROVIDERS = {p.name: p for p in (BuiltinProvider, WebhookProvider)}


def provider() -> RelayProvider:
    name = settings.RELAY_PROVIDER
    cls = PROVIDERS.get(name) or import_string(name)
    return cls()
