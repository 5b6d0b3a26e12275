"""API v1: a stable contract for the mobile app and integrators."""

import json
from datetime import date, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.http import HttpResponse
from django.utils import timezone
from ninja import NinjaAPI, Query, Status
from phonenumber_field.phonenumber import to_python as phone_to_python

from portal.accounts import reset, services
from portal.appointments import calendar as appointments_calendar
from portal.appointments import services as appointments
from portal.appointments import slots as appointment_slots
from portal.appointments.models import Channel, CommunicationMode, Motive, Site
from portal.core.cache import agenda as cache
from portal.core.http import client_ip
from portal.members.nir import NirError, mask
from portal.notifications.sms import SmsRecipientRefused, sms_recipient_normalize
from portal.payments import documents
from portal.payments import selectors as payments
from portal.payments.kept_pages import KeptPages
from portal.recovery import services as recovery

from . import errors
from .auth import BearerToken
from .parser import StrictJsonParser
from .schemas import (
    MOTIVE_CODE_PATTERN,
    AcceptedOut,
    AccountCreateIn,
    AppointmentBookIn,
    AppointmentOut,
    AppointmentRescheduleIn,
    BookConflictOut,
    BookRefusedOut,
    ChangeConflictOut,
    DetailOut,
    ErrorOut,
    InvalidRequestOut,
    IsoDate,
    MeOut,
    MotiveOut,
    NotAuthenticatedOut,
    NotFoundOut,
    PasswordResetConfirmIn,
    PasswordResetIn,
    ReimbursementPage,
    RescheduleRefusedOut,
    SiteOut,
    SlotOut,
    SlotsRefusedOut,
    SlotTakenOut,
    SmsCodeResetIn,
    StatusOut,
    StoppageOut,
    TokenIn,
    TokenOut,
    WeakPasswordOut,
)

api = NinjaAPI(
    title="Mon compte santé — API",
    version="1.0.0",
    urls_namespace="api-v1",
    parser=StrictJsonParser(),
    docs_url="/docs",
    openapi_url="/openapi.json",
)
errors.install(api)

ACCEPTED = {
    "status": "accepted",
    "detail": (
        "Si les informations correspondent à un assuré, un courriel de confirmation a été "
        "envoyé à l’adresse indiquée. Le lien est valable 24 heures."
    ),
}


@api.post(
    "/accounts",
    response={
        202: AcceptedOut,
        400: ErrorOut | WeakPasswordOut,
        422: InvalidRequestOut,
        429: ErrorOut,
    },
    tags=["accounts"],
)
def account_create(request, payload: AccountCreateIn):
    """Create an online account: the proof of identity, then the credentials."""
    ip = client_ip(request)
    try:
        validate_email(payload.email)
    except DjangoValidationError:
        return Status(400, {"error": "invalid_email"})
    phone = None
    if payload.mobile_phone:
        phone = phone_to_python(payload.mobile_phone, region="FR")
        try:
            sms_recipient_normalize(phone)
        except SmsRecipientRefused:
            return Status(400, {"error": "invalid_mobile_phone"})
    member = services.account_identity_verify(
        nir=payload.nir, birth_date=payload.birth_date, iban_last7=payload.iban_last7, ip=ip
    )
    services.account_create(
        member=member,
        email=payload.email,
        mobile_phone=phone.as_e164 if phone else "",
        password=payload.password,
        ip=ip,
    )
    return Status(202, ACCEPTED)


@api.post(
    "/auth/token",
    response={200: TokenOut, 400: ErrorOut, 401: ErrorOut, 422: InvalidRequestOut, 429: ErrorOut},
    tags=["auth"],
)
def auth_token(request, payload: TokenIn):
    ip = client_ip(request)
    token, ttl = services.account_login_api(nir=payload.nir, password=payload.password, ip=ip)
    return Status(200, {"access_token": token, "token_type": "bearer", "expires_in": ttl})


@api.post("/auth/logout", response={204: None, 401: ErrorOut}, auth=BearerToken(), tags=["auth"])
def auth_logout(request):
    services.api_token_revoke(token=request.api_token, ip=client_ip(request))
    return Status(204, None)


@api.get("/me", response={200: MeOut, 401: ErrorOut}, auth=BearerToken(), tags=["accounts"])
def me(request):
    account = request.auth
    member = account.member
    return Status(
        200,
        {
            "nir": mask(member.nir),
            "first_names": member.first_names,
            "last_name": member.last_name,
            "email": account.email,
            "mobile_phone": account.mobile_phone.as_e164 if account.mobile_phone else "",
            "cpam": {"code": member.cpam.code, "name": member.cpam.name},
        },
    )


def _reset_accepted() -> dict:
    minutes = settings.PASSWORD_RESET_LINK_TTL // 60
    return {
        "detail": (
            "Si les informations correspondent à un compte, un courriel contenant un lien "
            f"valable {minutes} minutes a été envoyé à l’adresse électronique enregistrée "
            "dans ce compte."
        )
    }


@api.post(
    "/password-reset",
    response={202: DetailOut, 400: ErrorOut, 422: InvalidRequestOut, 429: ErrorOut},
    tags=["password-reset"],
)
def password_reset(request, payload: PasswordResetIn):
    """Ask for a reset link. The answer is the same whether or not the details match."""
    if not payload.nir.isascii():
        return Status(400, {"error": "invalid_nir"})
    try:
        reset.password_reset_request(
            nir=payload.nir, birth_date=payload.birth_date, ip=client_ip(request)
        )
    except NirError:
        return Status(400, {"error": "invalid_nir"})
    return Status(202, _reset_accepted())


@api.post(
    "/password-reset/confirm",
    response={
        200: StatusOut,
        400: ErrorOut | WeakPasswordOut,
        422: InvalidRequestOut,
        429: ErrorOut,
    },
    tags=["password-reset"],
)
def password_reset_confirm(request, payload: PasswordResetConfirmIn):
    """Set a new password with the token of an emailed link."""
    reset.password_reset_confirm(
        token=payload.token, password=payload.new_password, ip=client_ip(request)
    )
    return Status(200, {"status": "password_changed"})


@api.post(
    "/password-reset/sms-code",
    response={
        200: StatusOut,
        400: ErrorOut | WeakPasswordOut,
        422: InvalidRequestOut,
        429: ErrorOut,
    },
    tags=["password-reset"],
)
def password_reset_sms_code(request, payload: SmsCodeResetIn):
    """Set a new password with the code a 36 46 advisor sent by SMS."""
    try:
        recovery.recovery_code_reset(
            nir=payload.nir, code=payload.code, password=payload.new_password, ip=client_ip(request)
        )
    except recovery.CodeRefused:
        return Status(400, {"error": "invalid_code"})
    return Status(200, {"status": "password_changed"})


# The first page of the reimbursements, kept drawn per member.
first_pages = KeptPages(
    "api-first-page",
    label="first page of the reimbursements API",
    modules=[__name__, payments.__name__, "ninja.renderers"],
)


def _line_out(line) -> dict:
    amounts = (
        "amount_paid",
        "base_amount",
        "rate",
        "gross_reimbursed",
        "participation_forfaitaire",
        "franchise",
        "net_reimbursed",
    )
    return {
        "line_id": line.line_id,
        "beneficiary_nir": line.beneficiary.nir if line.beneficiary else "",
        "care_date": line.care_date,
        "act_code": line.act_code,
        "act_label": line.act_label,
        "professional": line.professional,
        **{name: f"{getattr(line, name):.2f}" for name in amounts},
        "payee": line.payee,
        "payment_date": line.payment_date,
        "payment_reference": line.payment_reference,
        "transmitted_to_complementary": line.transmitted_to_complementary,
        "status": line.status,
    }


@api.get(
    "/reimbursements",
    response={200: ReimbursementPage, 400: ErrorOut, 401: ErrorOut, 422: InvalidRequestOut},
    auth=BearerToken(),
    tags=["payments"],
)
def reimbursements(
    request,
    from_: IsoDate | None = Query(None, alias="from"),
    to: IsoDate | None = None,
    beneficiary: str | None = Query(None, max_length=20),
    cursor: str = Query("", max_length=200),
):
    """The member's reimbursement lines, newest payment first, keyset-paginated (`next_cursor`).

    `beneficiary`: a beneficiary's NIR, or `me` for the member's own care.
    """
    chosen = None
    if beneficiary == "me":
        chosen = "me"
    elif beneficiary:
        found = request.auth.member.beneficiaries.filter(nir=beneficiary).first()
        if found is None:
            return Status(400, {"error": "unknown_beneficiary"})
        chosen = str(found.pk)
    account = request.auth
    # The first page (no filter, no cursor) is kept drawn per member, as Mes
    # paiements' is (portal/payments/kept_pages.py).
    first = not (from_ or to or beneficiary or cursor)
    version = payments.first_page_version(account=account) if first else None
    key = first_pages.key(account, version) if version is not None else None
    content = first_pages.get(key) if key else None
    if content is None:
        filters = payments.Filters(since=from_, until=to, beneficiary=chosen)
        try:
            items, next_cursor = payments.lines_api_page(
                account=account, filters=filters, cursor=cursor
            )
        except ValueError:
            return Status(400, {"error": "invalid_cursor"})
        # Serialized here, field for field as `ReimbursementPage` says (tests
        # check it against the schema): its validation of each line through
        # Ninja's getters cost more than the rest of the answer.
        content = api.renderer.render(
            request,
            {"items": [_line_out(line) for line in items], "next_cursor": next_cursor},
            response_status=200,
        )
        if key:
            first_pages.set(key, content)
    return HttpResponse(content, status=200, content_type=api.get_content_type())


@api.get(
    "/daily-allowances",
    response={200: list[StoppageOut], 401: ErrorOut},
    auth=BearerToken(),
    tags=["payments"],
)
def daily_allowances(request):
    """The member's work stoppages with their daily-allowance payments."""
    result = []
    for item in payments.stoppages(account=request.auth):
        stoppage = item["stoppage"]
        result.append(
            {
                "stoppage_id": stoppage.stoppage_id,
                "stoppage_kind": stoppage.kind,
                "stoppage_start": stoppage.start,
                "stoppage_end": stoppage.end,
                "waiting_days": stoppage.waiting_days,
                "total_paid": f"{item['total']:.2f}",
                "next_payment_expected": item["next_date"],
                "payments": [
                    {
                        "payment_id": p.payment_id,
                        "period_start": p.period_start,
                        "period_end": p.period_end,
                        "days": p.days,
                        **{
                            k: f"{getattr(p, k):.2f}"
                            for k in ("daily_gross", "gross", "csg", "crds", "net")
                        },
                        "payment_date": p.payment_date,
                        "status": p.status,
                    }
                    for p in item["payments"]
                ],
            }
        )
    return Status(200, result)


@api.get(
    "/documents/monthly-statement",
    response={200: None, 400: ErrorOut, 401: ErrorOut, 404: ErrorOut},
    auth=BearerToken(),
    tags=["documents"],
    openapi_extra={
        "responses": {
            200: {
                "description": "The relevé mensuel, a tagged PDF",
                "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
            }
        }
    },
)
def monthly_statement(request, month: str = ""):
    """The member's relevé mensuel (PDF) of `month` (`YYYY-MM`), one of the last 27 months.

    A malformed month is `400 invalid_month`; a month outside the window `404 month_not_available`.
    """
    first = documents.parse_statement_month(month[:20])
    if first is None:
        return Status(400, {"error": "invalid_month"})
    today = timezone.localdate()
    if not documents.statement_available(first, today=today):
        return Status(404, {"error": "month_not_available"})
    content = documents.monthly_statement_pdf(account=request.auth, month=first, today=today)
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = (
        f'attachment; filename="{documents.monthly_statement_filename(first)}"'
    )
    return response


# --- appointments (Mon agenda) -----------------------------------------------

# The longest period one slot search may cover: the horizon (42 days by
# default) with room to spare, so that a search stays bounded.
SLOT_SEARCH_MAX_DAYS = 62
# Django matches the static paths below before `/appointments/{appointment_id}`
# because they are declared first: keep it so.


def _site_out(site: Site) -> dict:
    return {"id": site.pk, "name": site.name, "address": site.full_address}


def _slot_out(slot: appointment_slots.Slot, tz) -> dict:
    # In the office's zone, so that the offset of that day travels with the time.
    return {
        "slot": slot.id,
        "start": slot.start.astimezone(tz).isoformat(),
        "end": slot.end.astimezone(tz).isoformat(),
        "site": slot.site_id,
    }


def _slot_taken(exc: appointments.SlotTaken, member) -> Status:
    tz = appointments_calendar.zone(member.cpam)
    return Status(
        409,
        {"error": exc.code, "alternatives": [_slot_out(slot, tz) for slot in exc.alternatives]},
    )


def _appointment_out(appointment, tz, now) -> dict:
    return {
        "id": appointment.public_id,
        "motive": appointment.motive.code,
        "channel": appointment.channel,
        "start": appointment.starts_at.astimezone(tz),
        "end": appointment.ends_at.astimezone(tz),
        "status": appointment.status,
        "site": _site_out(appointment.site),
        "communication_mode": appointment.communication_mode,
        "video_url": appointment.video_url,
        "message": appointment.message,
        "can_change": appointments.can_change(appointment, now),
        "cancel_reason": appointment.cancel_reason,
    }


def _appointment_answer(request, appointment, status: int = 200) -> Status:
    tz = appointments_calendar.zone(request.auth.member.cpam)
    return Status(status, _appointment_out(appointment, tz, timezone.now()))


def _communication_mode(account, channel: str, mode: str) -> str:
    """The relay mode asked for (the account's by default); none for another channel."""
    if channel == Channel.RELAY:
        mode = mode or account.communication_mode
        if mode not in CommunicationMode.values:
            raise appointments.InvalidCommunicationMode()
        return mode
    if mode:
        raise appointments.InvalidCommunicationMode()
    return ""


def _own_appointment(request, appointment_id: str):
    """The member's appointment, or None: another member's and a malformed id alike."""
    return appointments.member_appointment_get(request.auth.member, appointment_id[:100])


@api.get(
    "/appointments/motives",
    response={200: list[MotiveOut], 401: NotAuthenticatedOut},
    auth=BearerToken(),
    tags=["appointments"],
)
def appointment_motives(request):
    """The reasons one may book an appointment for, in the fund's order."""
    return Status(
        200,
        [
            {
                "code": motive.code,
                "label": motive.label,
                "description": motive.description,
                "channels": [str(channel) for channel in motive.channels],
                "duration_minutes": motive.duration_minutes,
            }
            for motive in Motive.objects.filter(is_active=True)
        ],
    )


@api.get(
    "/appointments/sites",
    response={200: list[SiteOut], 401: NotAuthenticatedOut},
    auth=BearerToken(),
    tags=["appointments"],
)
def appointment_sites(request):
    """The reception sites of the member's CPAM: the `site` of a slot search."""
    sites = Site.objects.filter(cpam=request.auth.member.cpam, is_active=True)
    return Status(200, [_site_out(site) for site in sites])


@api.get(
    "/appointments/slots",
    response={
        200: list[SlotOut],
        400: SlotsRefusedOut,
        401: NotAuthenticatedOut,
        422: InvalidRequestOut,
    },
    auth=BearerToken(),
    tags=["appointments"],
)
def appointment_slots_search(
    request,
    motive: str = Query(..., max_length=40, pattern=MOTIVE_CODE_PATTERN),
    channel: str = Query(..., max_length=20),
    from_: IsoDate | None = Query(None, alias="from"),
    to: IsoDate | None = None,
    site: int | None = Query(None, ge=1, le=2**31 - 1),
    mode: str = Query("", max_length=10),
):
    """The free slots for `motive` by `channel` (`phone`, `on_site` or `relay`), in time order.

    One slot per start time, from day `from` to day `to` included (default:
    the whole bookable window, from the first day the notice allows to the
    motive's horizon), at most 62 days; days outside the window give nothing.
    `start` and `end` carry the office's offset of that day. `site`: only the
    advisors of that site (see `/appointments/sites`). A `relay` interview
    (video call through the relay service) needs the `mode`, `lsf`, `ttrp` or
    `lfpc` (default: the account's), and only takes it.
    """
    cpam = request.auth.member.cpam
    chosen = appointments.motive_get(motive)
    if channel not in chosen.channels:
        return Status(400, {"error": "invalid_channel"})
    mode = _communication_mode(request.auth, channel, mode)
    first, last = appointment_slots.bookable_days(cpam, chosen)
    # Left out, the bounds are the window's; `to` alone before it finds nothing.
    start = from_ or (min(first, to) if to else first)
    end = to or max(start, last)
    if end < start or (end - start).days >= SLOT_SEARCH_MAX_DAYS:
        return Status(400, {"error": "invalid_period"})
    if site is not None and not Site.objects.filter(pk=site, cpam=cpam, is_active=True).exists():
        return Status(400, {"error": "invalid_site"})
    body = _slots_json(cpam, chosen, channel, start, end, site, mode)
    return HttpResponse(body, content_type="application/json")


def _slots_json(cpam, motive, channel: str, start: date, end: date, site, mode: str) -> str:
    """The free slots as the JSON array `SlotOut` describes, cached day by day.

    Six weeks of a large office are a thousand slots and more: serialized here
    (tests check it against `SlotOut`), for the schema's validation of each
    would cost several times the search; and each day's serialized part is
    cached under the same versions as the day's search (`slots.day_cache_keys`),
    so that a repeated search costs a few cache reads (docs/performance.md).
    """
    tz = appointments_calendar.zone(cpam)
    now = timezone.now()
    first, last = appointment_slots.bookable_days(cpam, motive, now)
    start, end = max(start, first), min(end, last)
    if start > end:
        return "[]"
    search = {"cpam": cpam, "motive": motive, "channel": channel, "site_id": site, "mode": mode}
    if start <= now.astimezone(tz).date():  # today depends on the minute: never cached
        found = appointment_slots.free_slots(start=start, end=end, now=now, **search)
        return json.dumps([_slot_out(slot, tz) for slot in found], ensure_ascii=False)
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    keys = {
        day: f"{key}:json"
        for day, key in appointment_slots.day_cache_keys(
            cpam.pk, motive, channel, site, mode, days
        ).items()
    }
    parts = cache.get_many(list(keys.values()))
    missing = [day for day in days if keys[day] not in parts]
    if missing:
        by_day: dict[date, list[str]] = {day: [] for day in missing}
        for slot in appointment_slots.free_slots(
            start=missing[0], end=missing[-1], now=now, **search
        ):
            day = slot.start.astimezone(tz).date()
            if day in by_day:
                by_day[day].append(json.dumps(_slot_out(slot, tz), ensure_ascii=False))
        fresh = {keys[day]: ",".join(items) for day, items in by_day.items()}
        cache.set_many(fresh, appointment_slots.SEARCH_CACHE_SECONDS)
        parts.update(fresh)
    return "[" + ",".join(part for day in days if (part := parts[keys[day]])) + "]"


@api.get(
    "/appointments",
    response={200: list[AppointmentOut], 401: NotAuthenticatedOut},
    auth=BearerToken(),
    tags=["appointments"],
)
def appointment_list(request):
    """All of the member's appointments, upcoming and past, whatever their status,
    the latest start first."""
    tz = appointments_calendar.zone(request.auth.member.cpam)
    now = timezone.now()
    return Status(
        200,
        [
            _appointment_out(appointment, tz, now)
            for appointment in appointments.member_appointments(request.auth.member)
        ],
    )


@api.post(
    "/appointments",
    response={
        201: AppointmentOut,
        400: BookRefusedOut,
        401: NotAuthenticatedOut,
        409: SlotTakenOut | BookConflictOut,
        422: InvalidRequestOut,
    },
    auth=BearerToken(),
    tags=["appointments"],
)
def appointment_book(request, payload: AppointmentBookIn):
    """Book a slot of `/appointments/slots` for the same motive and channel.

    `409 slot_taken` when someone was faster (or the slot expired), with the
    nearest free slots as `alternatives`; a phone interview needs a mobile
    number in the account (`400 phone_required`).
    """
    try:
        appointment = appointments.appointment_book(
            account=request.auth,
            slot_id=payload.slot,
            motive_code=payload.motive,
            channel=payload.channel,
            message=payload.message,
            # The account's mode by default; the service checks it.
            communication_mode=payload.communication_mode
            or (request.auth.communication_mode if payload.channel == Channel.RELAY else ""),
            ip=client_ip(request),
        )
    except appointments.SlotTaken as exc:
        return _slot_taken(exc, request.auth.member)
    return _appointment_answer(request, appointment, status=201)


@api.get(
    "/appointments/{appointment_id}",
    response={200: AppointmentOut, 401: NotAuthenticatedOut, 404: NotFoundOut},
    auth=BearerToken(),
    tags=["appointments"],
)
def appointment_detail(request, appointment_id: str):
    appointment = _own_appointment(request, appointment_id)
    if appointment is None:
        return Status(404, {"error": "not_found"})
    return _appointment_answer(request, appointment)


@api.post(
    "/appointments/{appointment_id}/cancel",
    response={
        200: AppointmentOut,
        401: NotAuthenticatedOut,
        404: NotFoundOut,
        409: ChangeConflictOut,
    },
    auth=BearerToken(),
    tags=["appointments"],
)
def appointment_cancel(request, appointment_id: str):
    """Cancel, until 2 hours before (`409 too_late` after: the member must call)."""
    appointment = _own_appointment(request, appointment_id)
    if appointment is None:
        return Status(404, {"error": "not_found"})
    appointment = appointments.appointment_cancel(
        account=request.auth, appointment=appointment, ip=client_ip(request)
    )
    return _appointment_answer(request, appointment)


@api.post(
    "/appointments/{appointment_id}/reschedule",
    response={
        200: AppointmentOut,
        400: RescheduleRefusedOut,
        401: NotAuthenticatedOut,
        404: NotFoundOut,
        409: SlotTakenOut | ChangeConflictOut,
        422: InvalidRequestOut,
    },
    auth=BearerToken(),
    tags=["appointments"],
)
def appointment_reschedule(request, appointment_id: str, payload: AppointmentRescheduleIn):
    """Move to another time, until 2 hours before: a slot of the same motive and type of
    interview (and relay mode). The new slot is taken and the old one freed, or nothing
    changes."""
    appointment = _own_appointment(request, appointment_id)
    if appointment is None:
        return Status(404, {"error": "not_found"})
    try:
        appointment = appointments.appointment_reschedule(
            account=request.auth,
            appointment=appointment,
            slot_id=payload.slot,
            ip=client_ip(request),
        )
    except appointments.SlotTaken as exc:
        return _slot_taken(exc, request.auth.member)
    return _appointment_answer(request, appointment)
