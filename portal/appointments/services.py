"""Booking, cancelling and moving appointments; outcomes; absences and opening ranges.

Every change is one transaction with its audit entry, its emails and its
reminder task. Member rules (one open appointment per motive, at most three
upcoming) are checked under a lock of the member's row; the advisor's time
is taken by inserting one `AdvisorTimeLock` row per 5-minute cell, which the
database refuses for a cell already held: whatever the concurrency, one
booking wins and the others get `SlotTaken` with the nearest alternatives.
"""

from __future__ import annotations

import logging
import unicodedata
import uuid
from datetime import date, datetime, time, timedelta

import phonenumbers
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from portal.accounts.models import Account
from portal.accounts.services import ServiceError
from portal.audit.services import record
from portal.core import metrics
from portal.members.models import Member
from portal.notifications.services import SmsError, email_send, sms_send
from portal.staff import perms
from portal.staff.models import Staff

from . import calendar, ics
from .models import (
    CELL_MINUTES,
    Absence,
    Advisor,
    AdvisorTimeLock,
    Appointment,
    Channel,
    CommunicationMode,
    Motive,
    OpeningRange,
    RelayTimeLock,
)
from .slots import Slot, SlotInvalid, nearest_slots, slot_decode, slot_still_free

logger = logging.getLogger(__name__)

LATEST_CHANGE = timedelta(hours=2)  # members cancel or move until 2 hours before
MAX_UPCOMING = 3
MESSAGE_MAX_LENGTH = 500
REMINDER_BEFORE = timedelta(hours=24)
FUND_CANCEL_REASON_MAX_LENGTH = 300


class AppointmentError(ServiceError):
    code = "appointment_error"


class InvalidSlot(AppointmentError):
    code = "invalid_slot"


class SlotTaken(AppointmentError):
    """The slot expired or was taken meanwhile; `alternatives` are the nearest free ones."""

    code = "slot_taken"

    def __init__(self, alternatives: list[Slot] | None = None):
        self.alternatives = alternatives or []
        super().__init__(self.code)


class InvalidMotive(AppointmentError):
    code = "invalid_motive"


class InvalidChannel(AppointmentError):
    code = "invalid_channel"


class PhoneRequired(AppointmentError):
    """A phone interview needs a mobile number in the account (Mon compte)."""

    code = "phone_required"


class MotiveAlreadyBooked(AppointmentError):
    code = "motive_already_booked"


class TooManyAppointments(AppointmentError):
    code = "too_many_appointments"


class MessageTooLong(AppointmentError):
    code = "message_too_long"


class TooLate(AppointmentError):
    """Less than 2 hours before the appointment: the member must call."""

    code = "too_late"


class NotOpen(AppointmentError):
    """The appointment is already cancelled, done or past."""

    code = "not_open"


class InvalidPeriod(AppointmentError):
    code = "invalid_period"


class ReasonRequired(AppointmentError):
    code = "reason_required"


class InvalidOutcome(AppointmentError):
    code = "invalid_outcome"


class NotStarted(AppointmentError):
    """An outcome is recorded once the appointment has started."""

    code = "not_started"


class InvalidCommunicationMode(AppointmentError):
    """A relay appointment needs a mode: lsf, ttrp or lfpc."""

    code = "invalid_communication_mode"


# --- reading -------------------------------------------------------------------------------


def motive_get(code: str) -> Motive:
    code = str(code)
    if len(code) > 40 or "\x00" in code:  # PostgreSQL refuses NUL in text
        raise InvalidMotive()
    motive = Motive.objects.filter(code=code, is_active=True).first()
    if motive is None:
        raise InvalidMotive()
    return motive


def member_appointments(member: Member):
    """All of the member's appointments, whatever their state (newest first)."""
    return (
        Appointment.objects.filter(member=member)
        .select_related("motive", "site", "advisor__staff")
        .order_by("-starts_at")
    )


def member_upcoming(member: Member, now: datetime | None = None):
    now = now or timezone.now()
    return (
        member_appointments(member)
        .filter(status=Appointment.Status.BOOKED, starts_at__gt=now)
        .order_by("starts_at")
    )


def member_appointment_get(member: Member, public_id) -> Appointment | None:
    """The member's appointment with this public id, or None (never another member's)."""
    try:
        public_id = uuid.UUID(str(public_id))
    except ValueError:
        return None
    return member_appointments(member).filter(public_id=public_id).first()


def can_change(appointment: Appointment, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    return appointment.is_open and appointment.starts_at - now >= LATEST_CHANGE


def account_phone(member: Member):
    """The number the advisor calls: the mobile of the member's live account."""
    account = _live_account(member)
    return account.mobile_phone if account and account.mobile_phone else None


# --- member actions -----------------------------------------------------------------------


def appointment_book(
    *,
    account: Account,
    slot_id: str,
    motive_code: str,
    channel: str,
    message: str = "",
    communication_mode: str = "",
    ip: str | None = None,
    now: datetime | None = None,
) -> Appointment:
    """Book a slot. A relay appointment (`channel="relay"`) takes, in the same
    transaction, the advisor's time and a relay professional of the mode."""
    member = account.member
    motive = motive_get(motive_code)
    if channel not in motive.channels:
        raise InvalidChannel()
    if (channel == Channel.RELAY) != (communication_mode in CommunicationMode.values):
        raise InvalidCommunicationMode()
    ref = _slot_ref(slot_id, motive=motive, channel=channel, mode=communication_mode)
    if channel == Channel.PHONE and not account.mobile_phone:
        raise PhoneRequired()
    message = _message_clean(message)
    now = now or timezone.now()
    try:
        with transaction.atomic():
            Member.objects.select_for_update().filter(pk=member.pk).first()
            _rules_check(member, motive, now)
            slot = _slot_take_check(ref, member=member, motive=motive, now=now)
            appointment = Appointment.objects.create(
                member=member,
                motive=motive,
                channel=channel,
                advisor_id=slot.advisor_id,
                site_id=slot.site_id,
                starts_at=slot.start,
                ends_at=slot.end,
                message=message,
                communication_mode=communication_mode,
            )
            _locks_take(appointment)
            if channel == Channel.RELAY:
                _relay_take(appointment, member.cpam)
                _relay_link(appointment, "booked")
            _email(account, appointment, "appointment_booked")
            _reminder_queue(appointment, now)
            # Last: the audit chain's lock is held until the commit (see `record`).
            record(
                action="appointment.booked",
                actor=f"account:{account.pk}",
                member=member,
                ip=ip,
                data=_audit_data(appointment),
            )
            metrics.appointment_booked(channel=channel)
    except SlotTaken:
        raise SlotTaken(_alternatives(member, motive, channel, ref, now)) from None
    return appointment


def appointment_cancel(
    *,
    account: Account,
    appointment: Appointment,
    ip: str | None = None,
    now: datetime | None = None,
) -> Appointment:
    now = now or timezone.now()
    with transaction.atomic():
        appointment = _locked(appointment, member=account.member)
        if not appointment.is_open or appointment.starts_at <= now:
            raise NotOpen()
        if appointment.starts_at - now < LATEST_CHANGE:
            raise TooLate()
        appointment.status = Appointment.Status.CANCELLED_BY_MEMBER
        appointment.cancelled_at = now
        appointment.save(update_fields=["status", "cancelled_at", "updated_at"])
        _time_release(appointment)
        record(
            action="appointment.cancelled",
            actor=f"account:{account.pk}",
            member=appointment.member,
            ip=ip,
            data=_audit_data(appointment),
        )
        _email(account, appointment, "appointment_cancelled", cancel=True)
    return appointment


def appointment_reschedule(
    *,
    account: Account,
    appointment: Appointment,
    slot_id: str,
    ip: str | None = None,
    now: datetime | None = None,
) -> Appointment:
    """Move to another slot atomically: the new one is taken and the old freed, or nothing."""
    member = account.member
    now = now or timezone.now()
    motive = appointment.motive
    try:
        ref = slot_decode(slot_id)
    except SlotInvalid:
        raise InvalidSlot() from None
    # A move keeps the motive, the type of interview and the relay mode, and changes the time.
    if (
        ref.motive_id != motive.pk
        or ref.channel != appointment.channel
        or ref.mode != appointment.communication_mode
        or ref.start == appointment.starts_at
    ):
        raise InvalidSlot()
    if ref.channel == Channel.PHONE and not account.mobile_phone:
        raise PhoneRequired()
    try:
        with transaction.atomic():
            Member.objects.select_for_update().filter(pk=member.pk).first()
            # The advisors before the appointment, as `absence_add` does: no deadlock.
            for advisor_id in sorted({appointment.advisor_id, ref.advisor_id}):
                _advisor_share_lock(advisor_id)
            appointment = _locked(appointment, member=member)
            if not appointment.is_open or appointment.starts_at <= now:
                raise NotOpen()
            if appointment.starts_at - now < LATEST_CHANGE:
                raise TooLate()
            previous = {"start": appointment.starts_at.isoformat(), "channel": appointment.channel}
            _time_release(appointment)
            slot = _slot_take_check(ref, member=member, motive=motive, now=now, moving=appointment)
            appointment.advisor_id = slot.advisor_id
            appointment.site_id = slot.site_id
            appointment.starts_at = slot.start
            appointment.ends_at = slot.end
            appointment.sequence += 1
            appointment.save()
            _locks_take(appointment)
            if ref.channel == Channel.RELAY:
                _relay_take(appointment, member.cpam)
                _relay_link(appointment, "rescheduled")
            record(
                action="appointment.rescheduled",
                actor=f"account:{account.pk}",
                member=member,
                ip=ip,
                data={**_audit_data(appointment), "previous": previous},
            )
            _email(account, appointment, "appointment_rescheduled")
            _reminder_queue(appointment, now)
    except SlotTaken:
        alternatives = _alternatives(member, motive, ref.channel, ref, now)
        own = appointment.starts_at
        raise SlotTaken([s for s in alternatives if s.start != own]) from None
    appointment.refresh_from_db()
    return appointment


# --- fund actions ---------------------------------------------------------------------------


def appointment_cancel_by_fund(
    *, staff: Staff, appointment: Appointment, reason: str, ip: str | None = None
) -> Appointment:
    """Cancel for the fund: the member is told why and offered new slots."""
    if not perms.can_cancel_appointment(staff, appointment):
        raise PermissionDenied
    reason = " ".join(str(reason).split())[:FUND_CANCEL_REASON_MAX_LENGTH]
    if not reason:
        raise ReasonRequired()
    with transaction.atomic():
        appointment = _locked(appointment)
        if not appointment.is_open or appointment.ends_at <= timezone.now():
            raise NotOpen()  # a past appointment gets an outcome, not a cancellation
        _fund_cancel(appointment, reason=reason, actor=staff.actor, ip=ip)
    return appointment


def appointment_outcome_record(
    *,
    staff: Staff,
    appointment: Appointment,
    outcome: str,
    note: str = "",
    ip: str | None = None,
    now: datetime | None = None,
) -> Appointment:
    """Done, or no answer / no-show, once the appointment has started; and a note."""
    if not perms.can_record_outcome(staff, appointment):
        raise PermissionDenied
    if outcome not in (Appointment.Status.DONE, Appointment.Status.NO_SHOW):
        raise InvalidOutcome()
    now = now or timezone.now()
    with transaction.atomic():
        appointment = _locked(appointment)
        if appointment.status not in (
            Appointment.Status.BOOKED,
            Appointment.Status.DONE,
            Appointment.Status.NO_SHOW,
        ):
            raise NotOpen()
        if appointment.starts_at > now:
            raise NotStarted()
        appointment.status = outcome
        appointment.outcome_note = str(note).strip()[:5000]
        appointment.save(update_fields=["status", "outcome_note", "updated_at"])
        # The time is spent: keep the locks so that nobody books it after the fact.
        record(
            action="appointment.outcome",
            actor=staff.actor,
            member=appointment.member,
            ip=ip,
            data={**_audit_data(appointment), "outcome": outcome, "with_note": bool(note)},
        )
    return appointment


def absence_add(
    *,
    staff: Staff,
    advisor: Advisor,
    starts_at: datetime,
    ends_at: datetime,
    reason: str = "",
    ip: str | None = None,
) -> tuple[Absence, list[Appointment]]:
    """Add an absence; booked appointments inside it are cancelled and their members told.

    Returns the absence and those appointments, for the supervisor to follow up.
    The advisor's row is locked so that a booking running meanwhile either
    ends before (and its appointment is listed) or sees the absence.
    """
    if not perms.can_manage_availability(staff, advisor):
        raise PermissionDenied
    if ends_at <= starts_at:
        raise InvalidPeriod()
    with transaction.atomic():
        Advisor.objects.select_for_update().filter(pk=advisor.pk).first()
        absence = Absence.objects.create(
            advisor=advisor,
            starts_at=starts_at,
            ends_at=ends_at,
            reason=str(reason).strip()[:200],
            created_by=staff.actor,
        )
        # Row locks first, the audit chain's lock last (see `record`).
        affected = list(
            Appointment.objects.select_for_update()
            .filter(
                advisor=advisor,
                status=Appointment.Status.BOOKED,
                starts_at__lt=ends_at,
                ends_at__gt=starts_at,
            )
            .order_by("starts_at")
        )
        record(
            action="appointment.absence.added",
            actor=staff.actor,
            ip=ip,
            data={
                "advisor": advisor.pk,
                "absence": absence.pk,
                "from": starts_at.isoformat(),
                "to": ends_at.isoformat(),
                "cancelled": len(affected),
            },
        )
        for appointment in affected:
            _fund_cancel(
                appointment,
                reason="Votre conseiller est absent à cette date.",
                actor=staff.actor,
                ip=ip,
            )
    return absence, affected


def absence_delete(*, staff: Staff, absence: Absence, ip: str | None = None) -> None:
    if not perms.can_manage_availability(staff, absence.advisor):
        raise PermissionDenied
    with transaction.atomic():
        record(
            action="appointment.absence.deleted",
            actor=staff.actor,
            ip=ip,
            data={"advisor": absence.advisor_id, "absence": absence.pk},
        )
        absence.delete()


def opening_range_add(
    *,
    staff: Staff,
    advisor: Advisor,
    weekday: int,
    start_time: time,
    end_time: time,
    channel: str = "",
    valid_from: date | None = None,
    valid_until: date | None = None,
    ip: str | None = None,
) -> OpeningRange:
    if not perms.can_manage_availability(staff, advisor):
        raise PermissionDenied
    if end_time <= start_time or weekday not in range(7) or channel not in ("", *Channel.values):
        raise InvalidPeriod()
    if any(t.minute % CELL_MINUTES or t.second or t.microsecond for t in (start_time, end_time)):
        raise InvalidPeriod()  # ranges follow the 5-minute cells of the agenda
    if channel and not getattr(advisor, channel):
        raise InvalidChannel()
    if valid_from and valid_until and valid_until < valid_from:
        raise InvalidPeriod()
    with transaction.atomic():
        opening = OpeningRange.objects.create(
            advisor=advisor,
            weekday=weekday,
            start_time=start_time,
            end_time=end_time,
            channel=channel,
            valid_from=valid_from,
            valid_until=valid_until,
        )
        record(
            action="appointment.range.added",
            actor=staff.actor,
            ip=ip,
            data={
                "advisor": advisor.pk,
                "range": opening.pk,
                "weekday": weekday,
                "from": start_time.isoformat("minutes"),
                "to": end_time.isoformat("minutes"),
                "channel": channel,
            },
        )
    return opening


def opening_range_delete(*, staff: Staff, opening: OpeningRange, ip: str | None = None) -> None:
    """Remove a weekly range. Appointments already booked in it are kept."""
    if not perms.can_manage_availability(staff, opening.advisor):
        raise PermissionDenied
    with transaction.atomic():
        record(
            action="appointment.range.deleted",
            actor=staff.actor,
            ip=ip,
            data={"advisor": opening.advisor_id, "range": opening.pk},
        )
        opening.delete()


# --- reminders ------------------------------------------------------------------------------


def appointment_remind(*, appointment_id: int, sequence: int, now: datetime | None = None) -> bool:
    """Send the reminder queued for this version of the appointment, once.

    Nothing is sent for an appointment cancelled or moved since it was queued
    (the moved one has its own reminder), nor twice. Returns whether it sent.
    """
    now = now or timezone.now()
    with transaction.atomic():
        # `of`: the appointment's row only. Over a join, FOR UPDATE locks every
        # row joined, and a locked motive stops every booking of that motive
        # (their foreign key check) while this waits for the audit chain.
        member_id = (
            Appointment.objects.filter(pk=appointment_id)
            .values_list("member_id", flat=True)
            .first()
        )
        if member_id is None:
            return False
        # The member's row first, as booking, moving and cancelling take it:
        # one lock order (member, appointment, audit chain), no deadlock.
        Member.objects.select_for_update().filter(pk=member_id).first()
        appointment = (
            Appointment.objects.select_for_update(of=("self",))
            .select_related("motive", "site", "member")
            .filter(pk=appointment_id)
            .first()
        )
        if (
            appointment is None
            or appointment.status != Appointment.Status.BOOKED
            or appointment.sequence != sequence
            or appointment.reminded_sequence >= sequence
            or appointment.starts_at <= now
        ):
            return False
        account = _live_account(appointment.member)
        if account is None:
            return False
        appointment.reminded_sequence = sequence
        appointment.save(update_fields=["reminded_sequence", "updated_at"])
        _email(account, appointment, "appointment_reminder", with_ics=False)
        channels = ["email"]
        if account.mobile_phone:
            try:
                with transaction.atomic():
                    sms_send(
                        to=account.mobile_phone,
                        template="appointment_reminder",
                        context=_context(appointment),
                        member=appointment.member,
                        expires_at=appointment.starts_at,
                    )
                channels.append("sms")
            except SmsError:
                pass  # capped or refused: the email still goes, and the refusal is audited
        record(
            action="appointment.reminder.queued",
            actor="system",
            member=appointment.member,
            data={**_audit_data(appointment), "channels": channels},
        )
    return True


# --- internals ------------------------------------------------------------------------------


def _slot_ref(slot_id: str, *, motive: Motive, channel: str, mode: str = ""):
    try:
        ref = slot_decode(slot_id)
    except SlotInvalid:
        raise InvalidSlot() from None
    if ref.motive_id != motive.pk or ref.channel != channel or ref.mode != mode:
        raise InvalidSlot()
    return ref


def _message_clean(message: str) -> str:
    # Control characters (NUL, which PostgreSQL refuses, and the like) dropped; lines kept.
    message = "".join(
        c for c in str(message or "") if c in "\n\t" or unicodedata.category(c) != "Cc"
    ).strip()
    if len(message) > MESSAGE_MAX_LENGTH:
        raise MessageTooLong()
    return message


def _rules_check(member: Member, motive: Motive, now: datetime) -> None:
    upcoming = Appointment.objects.filter(
        member=member, status=Appointment.Status.BOOKED, starts_at__gt=now
    )
    if upcoming.filter(motive=motive).exists():
        raise MotiveAlreadyBooked()
    if upcoming.count() >= MAX_UPCOMING:
        raise TooManyAppointments()


def _slot_take_check(ref, *, member: Member, motive: Motive, now: datetime, moving=None) -> Slot:
    """The slot, if still free for this member; under a share lock of the advisor's row."""
    _advisor_share_lock(ref.advisor_id)
    slot = slot_still_free(
        ref, cpam=member.cpam, motive=motive, now=now, ignore=moving.pk if moving else None
    )
    if slot is None:
        raise SlotTaken()
    return slot


def _advisor_share_lock(advisor_id: int) -> None:
    """FOR KEY SHARE on the advisor: bookings do not wait for each other, but an
    absence being added (FOR UPDATE) waits for them and they wait for it."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT 1 FROM {Advisor._meta.db_table} WHERE id = %s FOR KEY SHARE",  # noqa: S608 (a model's table name)
                [advisor_id],
            )


def _cells(appointment: Appointment) -> list:
    """The 5-minute cells the appointment covers."""
    count = (appointment.ends_at - appointment.starts_at) // timedelta(minutes=CELL_MINUTES)
    return [appointment.starts_at + timedelta(minutes=CELL_MINUTES * i) for i in range(count)]


def _locks_take(appointment: Appointment) -> None:
    cells = [
        AdvisorTimeLock(advisor_id=appointment.advisor_id, cell=cell, appointment=appointment)
        for cell in _cells(appointment)
    ]
    try:
        with transaction.atomic():
            AdvisorTimeLock.objects.bulk_create(cells)
    except IntegrityError:
        raise SlotTaken() from None


def _time_release(appointment: Appointment) -> None:
    """Free the advisor's and the relay professional's time; tell the relay provider."""
    from .signals import appointment_days_changed

    appointment_days_changed(appointment)  # before a move changes its times
    appointment.locks.all().delete()
    if appointment.relay_professional_id:
        appointment.relay_locks.all().delete()
        if appointment.status != Appointment.Status.BOOKED:
            _relay_link(appointment, "cancelled")


def _relay_take(appointment: Appointment, cpam) -> None:
    """Hold a relay professional of the appointment's mode for its time, or raise SlotTaken.

    Tries the professionals free then, one after another: the database's
    unique constraint decides between concurrent bookings, as for advisors.
    """
    from .relay import relay_starts
    from .slots import _cell_of

    tz = calendar.zone(cpam)
    local = appointment.starts_at.astimezone(tz)
    day = local.date()
    k = (appointment.ends_at - appointment.starts_at) // timedelta(minutes=CELL_MINUTES)
    _, per_pro = relay_starts(
        mode=appointment.communication_mode,
        days=[day],
        tz=tz,
        k=k,
        window_start=datetime.combine(day, time.min, tz),
        window_end=datetime.combine(day + timedelta(days=1), time.min, tz),
        ignore=appointment.pk,
    )
    bit = 1 << _cell_of(appointment.starts_at, day, tz)
    candidates = sorted(pro for (pro, _), run in per_pro.items() if run & bit)
    for professional_id in candidates:
        cells = [
            RelayTimeLock(professional_id=professional_id, cell=cell, appointment=appointment)
            for cell in _cells(appointment)
        ]
        try:
            with transaction.atomic():
                RelayTimeLock.objects.bulk_create(cells)
        except IntegrityError:
            continue
        appointment.relay_professional_id = professional_id
        appointment.save(update_fields=["relay_professional", "updated_at"])
        return
    raise SlotTaken()


def _relay_link(appointment: Appointment, event: str) -> None:
    """The video-call link: at once from the builtin provider, later from a webhook."""
    from .relay import provider
    from .tasks import relay_notify

    relay = provider()
    if relay.immediate:
        if event in ("booked", "rescheduled") and not appointment.video_url:
            appointment.video_url = relay.link(appointment)
            appointment.save(update_fields=["video_url", "updated_at"])
        return
    relay_notify.enqueue(
        appointment_id=appointment.pk, event=event, sequence=appointment.sequence, attempt=1
    )


def relay_notify_run(*, appointment_id: int, event: str, sequence: int, attempt: int) -> None:
    """POST one event to the relay provider; retry with backoff; store the link it gives."""
    from portal.notifications.services import retry_delay

    from .relay import provider
    from .tasks import relay_notify

    appointment = (
        Appointment.objects.select_related("motive", "member").filter(pk=appointment_id).first()
    )
    if appointment is None:
        return
    if event != "cancelled" and (
        appointment.status != Appointment.Status.BOOKED or appointment.sequence != sequence
    ):
        return  # moved or cancelled since: that change sent its own event
    try:
        link = provider().notify(event, appointment)
    except Exception as exc:  # noqa: BLE001 (any failure of the provider is retried)
        if attempt >= settings.RELAY_WEBHOOK_MAX_ATTEMPTS:
            logger.error("relay %s of appointment %s given up: %s", event, appointment.pk, exc)
            record(
                action="appointment.relay.failed",
                actor="system",
                member=appointment.member,
                data={**_audit_data(appointment), "event": event, "attempts": attempt},
            )
            return
        logger.warning(
            "relay %s of appointment %s failed (attempt %s)", event, appointment.pk, attempt
        )
        relay_notify.using(run_after=timezone.now() + retry_delay(attempt)).enqueue(
            appointment_id=appointment_id, event=event, sequence=sequence, attempt=attempt + 1
        )
        return
    with transaction.atomic():
        appointment = _locked(appointment)
        record(
            action="appointment.relay.notified",
            actor="system",
            member=appointment.member,
            data={**_audit_data(appointment), "event": event, "attempts": attempt},
        )
        if not link or appointment.status != Appointment.Status.BOOKED:
            return
        if appointment.sequence != sequence or appointment.video_url == link:
            return
        appointment.video_url = link
        appointment.save(update_fields=["video_url", "updated_at"])
        account = _live_account(appointment.member)
        if account is not None:
            _email(account, appointment, "appointment_video_link", with_ics=False)


def _locked(appointment: Appointment, member: Member | None = None) -> Appointment:
    rows = Appointment.objects.select_for_update().filter(pk=appointment.pk)
    if member is not None:
        rows = rows.filter(member=member)
    locked = rows.first()
    if locked is None:
        raise NotOpen()
    return Appointment.objects.select_related("motive", "site", "member", "advisor__staff").get(
        pk=locked.pk
    )


def _fund_cancel(appointment: Appointment, *, reason: str, actor: str, ip: str | None) -> bool:
    """Cancel for the fund and tell the member; False when they have no account to tell."""
    appointment.status = Appointment.Status.CANCELLED_BY_FUND
    appointment.cancel_reason = reason
    appointment.cancelled_at = timezone.now()
    appointment.save(update_fields=["status", "cancel_reason", "cancelled_at", "updated_at"])
    _time_release(appointment)
    account = _live_account(appointment.member)
    alternatives = []
    if account is not None:
        # Before the audit entry: the search must not run under the chain's lock.
        alternatives = nearest_slots(
            cpam=appointment.member.cpam,
            motive=appointment.motive,
            channel=appointment.channel,
            near=appointment.starts_at,
            site_id=appointment.site_id if appointment.channel == Channel.ON_SITE else None,
            mode=appointment.communication_mode,
        )
    record(
        action="appointment.cancelled_by_fund",
        actor=actor,
        member=appointment.member,
        ip=ip,
        data={**_audit_data(appointment), "member_notified": account is not None},
    )
    if account is not None:
        _email(
            account,
            appointment,
            "appointment_cancelled_by_fund",
            cancel=True,
            extra={
                "alternatives": [_slot_context(s, appointment.member.cpam) for s in alternatives]
            },
        )
    return account is not None


def _alternatives(member, motive, channel, ref, now) -> list[Slot]:
    site_id = None
    if channel == Channel.ON_SITE:
        site_id = (
            Advisor.objects.filter(pk=ref.advisor_id).values_list("site_id", flat=True).first()
        )
    return nearest_slots(
        cpam=member.cpam,
        motive=motive,
        channel=channel,
        near=ref.start,
        site_id=site_id,
        mode=ref.mode,
    )


def _reminder_queue(appointment: Appointment, now: datetime) -> None:
    from .tasks import appointment_reminder

    run_after = appointment.starts_at - REMINDER_BEFORE
    task = appointment_reminder
    if run_after > now:
        task = task.using(run_after=run_after)
    task.enqueue(appointment_id=appointment.pk, sequence=appointment.sequence)


def _live_account(member: Member) -> Account | None:
    return (
        Account.objects.filter(member=member)
        .exclude(state=Account.State.DELETED)
        .order_by("-pk")
        .first()
    )


def _audit_data(appointment: Appointment) -> dict:
    return {
        "appointment": str(appointment.public_id),
        "motive": appointment.motive.code,
        "channel": appointment.channel,
        "advisor": appointment.advisor_id,
        "start": appointment.starts_at.isoformat(),
    }


def _context(appointment: Appointment) -> dict:
    tz = calendar.zone(appointment.member.cpam)
    local = appointment.starts_at.astimezone(tz)
    return {
        "appointment": appointment,
        "motive": appointment.motive,
        "site": appointment.site,
        "is_phone": appointment.channel == Channel.PHONE,
        "local_start": local,
        "local_end": appointment.ends_at.astimezone(tz),
        "tz_name": tz.key,
        "is_relay": appointment.channel == Channel.RELAY,
        "mode_label": CommunicationMode(appointment.communication_mode).label
        if appointment.communication_mode
        else "",
        "phone_display": _phone_display(account_phone(appointment.member)),
    }


def _phone_display(number) -> str:
    """+33 6 12 34 56 78 → 06 12 34 56 78 (national format for French numbers)."""
    if not number:
        return ""
    fmt = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if number.country_code == 33
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(number, fmt)


def _slot_context(slot: Slot, cpam) -> dict:
    return {"start": slot.start, "id": slot.id}


def _email(
    account: Account,
    appointment: Appointment,
    template: str,
    *,
    cancel: bool = False,
    with_ics: bool = True,
    extra: dict | None = None,
) -> None:
    attachment = None
    if with_ics:
        content = ics.appointment_ics(appointment, cancel=cancel, email=account.email)
        content_type = ics.CONTENT_TYPE_CANCEL if cancel else ics.CONTENT_TYPE_REQUEST
        attachment = (ics.FILENAME, content, content_type)
    email_send(
        to=account.email,
        template=template,
        context={**_context(appointment), **(extra or {})},
        member=appointment.member,
        attachment=attachment,
    )
