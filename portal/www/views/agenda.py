"""Mon agenda: the member's appointments; booking, cancelling and moving one.

The booking takes one step per page and is driven by GET: each page's
address carries the choices made so far (`motif`, `type`, `mode` for a relay
interview, `lieu` on site, `semaine`, `creneau`), so that the back button and
bookmarks work and nothing waits in the session. Only the confirmation is a
POST (with CSRF), and the service checks everything again then: the slot may
have been taken meanwhile.
Times are shown in the zone of the member's office, whatever the browser's.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from portal.appointments import calendar, ics, services, slots
from portal.appointments.models import Appointment, Channel, CommunicationMode, Motive, Site
from portal.core.http import client_ip

from ..agenda_forms import (
    CHANNEL_HINTS,
    CHANNEL_LABELS,
    QUERY_VALUE_MAX,
    BookingConfirmForm,
    ChannelChoiceForm,
    ModeChoiceForm,
    MotiveChoiceForm,
    SiteChoiceForm,
    booking_channels,
    day_parse,
    mode_needs_camera,
    mode_parse,
)
from ..forms import COMMUNICATION_MODE_HINTS

Status = Appointment.Status

STEPS = [
    gettext_lazy("Motif du rendez-vous"),
    gettext_lazy("Type de rendez-vous"),
    gettext_lazy("Date et heure"),
    gettext_lazy("Confirmation"),
]

STATUS_LABELS = {
    Status.BOOKED: gettext_lazy("Confirmé"),
    Status.DONE: gettext_lazy("Effectué"),
    Status.NO_SHOW: gettext_lazy("Absent(e) ou sans réponse"),
    Status.CANCELLED_BY_MEMBER: gettext_lazy("Annulé par vous"),
    Status.CANCELLED_BY_FUND: gettext_lazy("Annulé par la caisse"),
}
STATUS_BADGES = {
    Status.BOOKED: "success",
    Status.DONE: "success",
    Status.NO_SHOW: "warning",
    Status.CANCELLED_BY_MEMBER: "error",
    Status.CANCELLED_BY_FUND: "error",
}
CANCELLED = (Status.CANCELLED_BY_MEMBER, Status.CANCELLED_BY_FUND)


# --- what the member reads ----------------------------------------------------------------


def _problem_text(code: str) -> str:
    """The French message for a service error (`AppointmentError.code`)."""
    texts = {
        "invalid_slot": _(
            "Ce créneau n’existe pas ou n’est pas proposé pour ce rendez-vous. Choisissez un "
            "créneau dans la liste des créneaux libres."
        ),
        "slot_taken": _(
            "Ce créneau n’est plus disponible : il vient d’être réservé par une autre personne. "
            "Choisissez l’un des créneaux libres les plus proches, ou un autre créneau."
        ),
        "invalid_motive": _(
            "Ce motif de rendez-vous n’est plus proposé. Choisissez un motif dans la liste."
        ),
        "invalid_channel": _(
            "Ce type de rendez-vous n’est pas proposé pour ce motif. Choisissez un autre type "
            "de rendez-vous."
        ),
        "phone_required": _(
            "Pour un entretien téléphonique, le conseiller vous appelle sur votre téléphone "
            "mobile : ajoutez d’abord un numéro de mobile dans Mon compte."
        ),
        "motive_already_booked": _(
            "Vous avez déjà un rendez-vous à venir pour ce motif. Vous pouvez le déplacer ou "
            "l’annuler dans Mon agenda."
        ),
        "too_many_appointments": _(
            "Vous avez déjà %(max)d rendez-vous à venir : c’est le maximum. Annulez l’un d’eux "
            "dans Mon agenda pour en prendre un nouveau."
        )
        % {"max": services.MAX_UPCOMING},
        "message_too_long": _("Votre message dépasse %(max)d caractères : raccourcissez-le.")
        % {"max": services.MESSAGE_MAX_LENGTH},
        "too_late": _(
            "Ce rendez-vous a lieu dans moins de 2 heures : il ne peut plus être annulé ni "
            "déplacé en ligne. Appelez le 36 46."
        ),
        "not_open": _(
            "Ce rendez-vous est annulé ou déjà passé : il ne peut plus être annulé ni déplacé."
        ),
        "invalid_communication_mode": _(
            "Choisissez le mode de communication de l’entretien en visio : LSF, TTRP ou LfPC."
        ),
    }
    return texts.get(code) or _("Votre demande n’a pas pu aboutir. Réessayez, ou appelez le 36 46.")


def _problem(code: str, *, links=(), alternatives=()) -> dict:
    """An error to show above the page: its text, where to go next, other slots to pick."""
    return {
        "code": code,
        "text": _problem_text(code),
        "links": list(links),
        "alternatives": list(alternatives),
    }


def _title(text: str, has_error: bool) -> str:
    # The page title says first that something went wrong (RGAA 8.6).
    return _("Erreur : %(title)s") % {"title": text} if has_error else text


def _when(moment, cpam) -> str:
    """`mardi 3 novembre 2026 à 09:00`, in the office's zone."""
    local = moment.astimezone(calendar.zone(cpam))
    return _("%(day)s à %(time)s") % {
        "day": date_format(local, "l j F Y"),
        "time": date_format(local, "H:i"),
    }


def _change_refusal(appointment: Appointment, now=None) -> str | None:
    """Why the member may not cancel or move it online (`too_late`, `not_open`), or None."""
    now = now or timezone.now()
    if services.can_change(appointment, now):
        return None
    if not appointment.is_open or appointment.starts_at <= now:
        return "not_open"
    return "too_late"


def _mode_label(mode: str) -> str:
    return CommunicationMode(mode).label if mode in CommunicationMode.values else ""


def _card(appointment: Appointment, now) -> dict:
    """An appointment as Mon agenda shows it."""
    status = appointment.status
    label = STATUS_LABELS.get(status, status)
    badge = STATUS_BADGES.get(status, "info")
    if status == Status.BOOKED and appointment.starts_at <= now:
        label, badge = (
            (_("En cours"), "info") if appointment.ends_at > now else (_("Passé"), "info")
        )
    return {
        "appointment": appointment,
        "is_phone": appointment.channel == Channel.PHONE,
        "is_on_site": appointment.channel == Channel.ON_SITE,
        "is_relay": appointment.channel == Channel.RELAY,
        "mode_label": _mode_label(appointment.communication_mode),
        "needs_camera": mode_needs_camera(appointment.communication_mode),
        "channel_label": CHANNEL_LABELS.get(appointment.channel)
        or appointment.get_channel_display(),
        "status_label": label,
        "badge": badge,
        "refusal": _change_refusal(appointment, now),
        "upcoming": appointment.is_open and appointment.starts_at > now,
        "cancelled": status in CANCELLED,
    }


def _appointment_or_404(request, public_id: str) -> Appointment:
    """The member's own appointment; 404 for another member's, an unknown or a malformed id."""
    appointment = services.member_appointment_get(request.user.member, public_id[:100])
    if appointment is None:
        raise Http404
    return appointment


# --- Mon agenda -------------------------------------------------------------------------------


@login_required
@require_GET
def agenda(request):
    member = request.user.member
    now = timezone.now()
    upcoming = list(services.member_upcoming(member, now))
    others = list(
        services.member_appointments(member).exclude(status=Status.BOOKED, starts_at__gt=now)[:100]
    )
    return render(
        request,
        "www/agenda/list.html",
        {
            "title": _("Mon agenda"),
            "upcoming": [_card(a, now) for a in upcoming],
            "others": [_card(a, now) for a in others],
            "full": len(upcoming) >= services.MAX_UPCOMING,
            "max_upcoming": services.MAX_UPCOMING,
            "mobile": request.user.mobile_phone,
            "tz_name": calendar.zone(member.cpam).key,
        },
    )


@login_required
@require_GET
def ics_download(request, public_id: str):
    """The invitation to add to one's calendar (the cancellation, once cancelled)."""
    appointment = _appointment_or_404(request, public_id)
    cancel = appointment.status in CANCELLED
    response = HttpResponse(
        ics.appointment_ics(appointment, cancel=cancel, email=request.user.email),
        content_type=ics.CONTENT_TYPE_CANCEL if cancel else ics.CONTENT_TYPE_REQUEST,
    )
    response["Content-Disposition"] = f'attachment; filename="{ics.FILENAME}"'
    return response


# --- booking: the choices in the address ------------------------------------------------------


@dataclass
class Booking:
    """The choices made so far, read back from the address."""

    motive: Motive
    channel: str = ""
    site: Site | None = None
    mode: str = ""  # relay interviews: lsf, ttrp or lfpc

    @property
    def site_id(self) -> int | None:
        return self.site.pk if self.site is not None else None

    @property
    def mode_label(self) -> str:
        return _mode_label(self.mode)

    @property
    def needs_camera(self) -> bool:
        return mode_needs_camera(self.mode)

    def url(self, name: str, **extra) -> str:
        params = {
            "motif": self.motive.code,
            "type": self.channel,
            "mode": self.mode,
            "lieu": self.site_id or "",
        }
        params.update(extra)
        query = urlencode({key: value for key, value in params.items() if value})
        return f"{reverse(name)}?{query}"

    def change_links(self) -> dict:
        """Where the recap's « Modifier » links go: each earlier step, choices kept."""
        return {
            "motive": self.url("www:agenda_new"),
            "channel": self.url("www:agenda_new_channel"),
            "site": self.url("www:agenda_new_site"),
            "mode": self.url("www:agenda_new_mode"),
            "slot": self.url("www:agenda_new_slot"),
        }


def _motives():
    return Motive.objects.filter(is_active=True)


def _sites(cpam, motive: Motive):
    """The reception sites of the office where an advisor receives for this motive."""
    return (
        Site.objects.filter(
            cpam=cpam,
            is_active=True,
            advisors__on_site=True,
            advisors__motives=motive,
            advisors__staff__is_active=True,
        )
        .distinct()
        .order_by("name")
    )


def _booking(request, *, upto: str):
    """The choices in the address up to step `upto` (`motive`, `channel`, or `all`: the site
    on site, the mode for a relay interview).

    Returns a `Booking`, or the page of the first step whose choice is missing
    or wrong, with its error (status 400): a hand-edited or stale address
    lands on the step to redo, never on a 500.
    """
    query = request.GET
    motive_form = MotiveChoiceForm(query, motives=_motives())
    if not motive_form.is_valid():
        return _motive_page(request, motive_form, status=400)
    booking = Booking(motive=motive_form.cleaned_data["motif"])
    if upto == "motive":
        return booking
    channel_form = ChannelChoiceForm(query, motive=booking.motive)
    if not channel_form.is_valid():
        return _channel_page(request, booking, channel_form, status=400)
    booking.channel = channel_form.cleaned_data["type"]
    if booking.channel == Channel.PHONE and not request.user.mobile_phone:
        channel_form.add_error("type", _problem_text("phone_required"))
        return _channel_page(request, booking, channel_form, status=400)
    if upto == "channel" or booking.channel == Channel.PHONE:
        return booking
    if booking.channel == Channel.RELAY:
        mode_form = ModeChoiceForm(query)
        if not mode_form.is_valid():
            return _mode_page(request, booking, mode_form, status=400)
        booking.mode = mode_form.cleaned_data["mode"]
        return booking
    site_form = SiteChoiceForm(query, sites=_sites(request.user.member.cpam, booking.motive))
    if not site_form.is_valid():
        return _site_page(request, booking, site_form, status=400)
    booking.site = site_form.cleaned_data["lieu"]
    return booking


def _stepper(current: int) -> dict:
    return {
        "current": current,
        "total": len(STEPS),
        "title": STEPS[current - 1],
        "next": STEPS[current] if current < len(STEPS) else None,
    }


def _motive_page(request, form, *, selected: str = "", status: int = 200):
    upcoming = list(services.member_upcoming(request.user.member))
    booked = {appointment.motive_id for appointment in upcoming}
    field_errors = form.errors.get("motif") if form.is_bound else None
    return render(
        request,
        "www/agenda/new_motive.html",
        {
            "title": _title(_("Prendre un rendez-vous : motif"), bool(field_errors)),
            "errors": field_errors,
            "motives": [
                {"motive": m, "booked": m.pk in booked, "checked": m.code == selected}
                for m in form.motives.values()
            ],
            "full": len(upcoming) >= services.MAX_UPCOMING,
            "max_upcoming": services.MAX_UPCOMING,
            "stepper": _stepper(1),
        },
        status=status,
    )


def _channel_default(channels: list[str], need: str) -> str:
    """The type checked before the member chooses: the relay interview for a member who
    declared a communication need; else the only ordinary type, if there is just one."""
    if need and Channel.RELAY in channels:
        return Channel.RELAY
    ordinary = [channel for channel in channels if channel != Channel.RELAY]
    if len(ordinary) == 1:
        return ordinary[0]
    return channels[0] if len(channels) == 1 else ""


def _channel_page(request, booking: Booking, form, *, selected: str = "", status: int = 200):
    field_errors = form.errors.get("type") if form.is_bound else None
    if form.is_bound:
        selected = str(form.data.get("type", ""))
    need = mode_parse(request.user.communication_mode)
    channels = booking_channels(booking.motive)
    if need:
        # A member with a declared need sees the relay interview first, the phone last.
        channels.sort(key=lambda c: {Channel.RELAY: 0, Channel.PHONE: 2}.get(c, 1))
    if selected not in channels:
        selected = _channel_default(channels, need)
    return render(
        request,
        "www/agenda/new_channel.html",
        {
            "title": _title(_("Prendre un rendez-vous : type de rendez-vous"), bool(field_errors)),
            "booking": booking,
            "errors": field_errors,
            "channels": [
                {
                    "value": channel,
                    "label": CHANNEL_LABELS[channel],
                    "hint": CHANNEL_HINTS[channel],
                    "checked": channel == selected,
                }
                for channel in channels
            ],
            "mobile": request.user.mobile_phone,
            "phone_offered": Channel.PHONE in channels,
            "need_label": _mode_label(need),
            # A mode chosen earlier comes back when the member returns to this step.
            "mode": mode_parse(request.GET.get("mode", "")),
            "stepper": _stepper(2),
        },
        status=status,
    )


def _mode_page(request, booking: Booking, form, *, selected: str = "", status: int = 200):
    field_errors = form.errors.get("mode") if form.is_bound else None
    if form.is_bound:
        selected = str(form.data.get("mode", ""))
    # The mode declared in Mon compte, unless the address brings another.
    selected = mode_parse(selected) or mode_parse(request.user.communication_mode)
    return render(
        request,
        "www/agenda/new_mode.html",
        {
            "title": _title(
                _("Prendre un rendez-vous : mode de communication"), bool(field_errors)
            ),
            "booking": booking,
            "errors": field_errors,
            "modes": [
                {
                    "value": value,
                    "label": label,
                    "hint": COMMUNICATION_MODE_HINTS[value],
                    "checked": value == selected,
                }
                for value, label in CommunicationMode.choices
            ],
            "declared_label": _mode_label(request.user.communication_mode),
            "stepper": _stepper(2),
        },
        status=status,
    )


def _site_page(request, booking: Booking, form, *, selected: str = "", status: int = 200):
    field_errors = form.errors.get("lieu") if form.is_bound else None
    if form.is_bound:
        selected = str(form.data.get("lieu", ""))
    sites = list(form.sites.values())
    return render(
        request,
        "www/agenda/new_site.html",
        {
            "title": _title(_("Prendre un rendez-vous : lieu"), bool(field_errors)),
            "booking": booking,
            "errors": field_errors,
            "sites": [
                {"site": site, "checked": str(site.pk) == selected or len(sites) == 1}
                for site in sites
            ],
            "stepper": _stepper(2),
        },
        status=status,
    )


# --- booking: the steps -----------------------------------------------------------------------


@login_required
@require_GET
def new(request):
    """Step 1, the motive. `?motif=` preselects one (the fund's cancellation email links here)."""
    form = MotiveChoiceForm(motives=_motives())
    return _motive_page(request, form, selected=str(request.GET.get("motif", ""))[:100])


@login_required
@require_GET
def new_channel(request):
    """Step 2, phone, on site or relay (first for a member with a declared need)."""
    booking = _booking(request, upto="motive")
    if isinstance(booking, HttpResponse):
        return booking
    form = ChannelChoiceForm(motive=booking.motive)
    return _channel_page(request, booking, form, selected=str(request.GET.get("type", ""))[:20])


@login_required
@require_GET
def new_site(request):
    """Step 2, on site: the reception site. A phone interview goes on to the week, a relay
    interview to its mode."""
    booking = _booking(request, upto="channel")
    if isinstance(booking, HttpResponse):
        return booking
    if booking.channel == Channel.PHONE:
        return redirect(booking.url("www:agenda_new_slot"))
    if booking.channel == Channel.RELAY:
        return redirect(
            booking.url("www:agenda_new_mode", mode=mode_parse(request.GET.get("mode", "")))
        )
    form = SiteChoiceForm(sites=_sites(request.user.member.cpam, booking.motive))
    return _site_page(request, booking, form, selected=str(request.GET.get("lieu", ""))[:20])


@login_required
@require_GET
def new_mode(request):
    """Step 2, relay: the communication mode, checked beforehand from Mon compte."""
    booking = _booking(request, upto="channel")
    if isinstance(booking, HttpResponse):
        return booking
    if booking.channel != Channel.RELAY:
        return redirect(booking.url("www:agenda_new_site"))
    return _mode_page(
        request, booking, ModeChoiceForm(), selected=mode_parse(request.GET.get("mode", ""))
    )


@login_required
@require_GET
def new_slot(request):
    """Step 3, the week of free slots."""
    booking = _booking(request, upto="all")
    if isinstance(booking, HttpResponse):
        return booking
    week = _week(
        cpam=request.user.member.cpam,
        motive=booking.motive,
        channel=booking.channel,
        mode=booking.mode,
        site_id=booking.site_id,
        requested=day_parse(request.GET.get("semaine", "")),
        week_url=lambda day: booking.url("www:agenda_new_slot", semaine=day.isoformat()),
        slot_url=lambda slot: booking.url("www:agenda_new_confirm", creneau=slot.id),
    )
    return render(
        request,
        "www/agenda/week.html",
        {
            "title": _("Prendre un rendez-vous : date et heure"),
            "booking": booking,
            "channel_label": CHANNEL_LABELS[booking.channel],
            "links": booking.change_links(),
            "week": week,
            "stepper": _stepper(3),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def new_confirm(request):
    """Step 4, the recap and the message; the POST books (and the service checks again)."""
    booking = _booking(request, upto="all")
    if isinstance(booking, HttpResponse):
        return booking
    account = request.user
    cpam = account.member.cpam
    slot_id = str(request.GET.get("creneau", ""))[:QUERY_VALUE_MAX]
    form = BookingConfirmForm(request.POST if request.method == "POST" else None)
    status = 200
    problem = None
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                appointment = services.appointment_book(
                    account=account,
                    slot_id=slot_id,
                    motive_code=booking.motive.code,
                    channel=booking.channel,
                    communication_mode=booking.mode,
                    message=form.cleaned_data["message"],
                    ip=client_ip(request),
                )
            except services.MessageTooLong:  # the form checks the same limit
                form.add_error("message", _problem_text("message_too_long"))
            except services.SlotTaken as exc:
                problem, status = _booking_problem(booking, exc.code, exc.alternatives), 409
            except services.AppointmentError as exc:
                problem = _booking_problem(booking, exc.code)
                status = (
                    409 if exc.code in ("motive_already_booked", "too_many_appointments") else 400
                )
            else:
                return redirect("www:agenda_confirmed", public_id=appointment.public_id)
    slot = None
    if problem is None:
        slot, code, alternatives = _slot_check(
            slot_id,
            cpam=cpam,
            motive=booking.motive,
            channel=booking.channel,
            mode=booking.mode,
            site=booking.site,
        )
        if code is not None:
            problem = _booking_problem(booking, code, alternatives)
            status = 409 if code == "slot_taken" else 400
    return render(
        request,
        "www/agenda/confirm.html",
        {
            "title": _title(
                _("Prendre un rendez-vous : confirmation"), bool(problem or form.errors)
            ),
            "booking": booking,
            "channel_label": CHANNEL_LABELS[booking.channel],
            "is_phone": booking.channel == Channel.PHONE,
            "is_relay": booking.channel == Channel.RELAY,
            "links": booking.change_links(),
            "slot": slot,
            "problem": problem,
            "form": form,
            "mobile": account.mobile_phone,
            "tz_name": calendar.zone(cpam).key,
            "stepper": _stepper(4),
        },
        status=status,
    )


def _booking_problem(booking: Booking, code: str, alternatives=()) -> dict:
    links = {
        "invalid_slot": [(booking.url("www:agenda_new_slot"), _("Choisir un autre créneau"))],
        "slot_taken": [(booking.url("www:agenda_new_slot"), _("Voir tous les créneaux libres"))],
        "invalid_motive": [(reverse("www:agenda_new"), _("Choisir un motif"))],
        "invalid_channel": [
            (booking.url("www:agenda_new_channel"), _("Choisir un autre type de rendez-vous"))
        ],
        "invalid_communication_mode": [
            (booking.url("www:agenda_new_mode"), _("Choisir le mode de communication"))
        ],
        "phone_required": [
            (reverse("www:account_mobile"), _("Ajouter un numéro de mobile dans Mon compte")),
            (booking.url("www:agenda_new_channel"), _("Choisir un rendez-vous sur place")),
        ],
        "motive_already_booked": [(reverse("www:agenda"), _("Voir Mon agenda"))],
        "too_many_appointments": [(reverse("www:agenda"), _("Voir Mon agenda"))],
    }.get(code, [(reverse("www:agenda"), _("Voir Mon agenda"))])
    return _problem(
        code,
        links=links,
        alternatives=[
            {"start": s.start, "url": booking.url("www:agenda_new_confirm", creneau=s.id)}
            for s in alternatives
        ],
    )


def _slot_check(slot_id: str, *, cpam, motive, channel, mode="", site=None, moving=None):
    """The slot the address names, if still free: (slot, None, []) or (None, code, alternatives).

    The same checks as the service's, done early so that the recap never
    offers a slot that cannot be had; the service checks again when booking.
    """
    try:
        ref = slots.slot_decode(slot_id)
    except slots.SlotInvalid:
        return None, "invalid_slot", []
    if ref.motive_id != motive.pk or ref.channel != channel or ref.mode != mode:
        return None, "invalid_slot", []
    if moving is not None and ref.start == moving.starts_at:
        return None, "invalid_slot", []  # its own time: not a move
    slot = slots.slot_still_free(
        ref, cpam=cpam, motive=motive, ignore=moving.pk if moving is not None else None
    )
    if slot is None:
        site_id = site.pk if site is not None else None
        if moving is not None and channel == Channel.ON_SITE:
            site_id = moving.site_id
        alternatives = slots.nearest_slots(
            cpam=cpam, motive=motive, channel=channel, near=ref.start, site_id=site_id, mode=mode
        )
        if moving is not None:
            alternatives = [s for s in alternatives if s.start != moving.starts_at]
        return None, "slot_taken", alternatives
    if site is not None and slot.site_id != site.pk:
        return None, "invalid_slot", []
    return slot, None, []


def _is_own_time(slot_id: str, appointment: Appointment) -> bool:
    """Whether the slot is the appointment's own time, which is no move."""
    try:
        return slots.slot_decode(slot_id).start == appointment.starts_at
    except slots.SlotInvalid:
        return False


@login_required
@require_GET
def confirmed(request, public_id: str):
    """Step 5: booked (or moved). The email with the .ics is on its way."""
    appointment = _appointment_or_404(request, public_id)
    if not appointment.is_open:
        return redirect("www:agenda")
    moved = request.GET.get("deplace") == "1"
    return render(
        request,
        "www/agenda/confirmed.html",
        {
            "title": _("Votre rendez-vous est déplacé")
            if moved
            else _("Votre rendez-vous est confirmé"),
            "card": _card(appointment, timezone.now()),
            "moved": moved,
            "email": request.user.email,
            "mobile": request.user.mobile_phone,
            "tz_name": calendar.zone(request.user.member.cpam).key,
        },
    )


# --- the week of free slots --------------------------------------------------------------------


def _week(
    *, cpam, motive, channel, site_id, requested, week_url, slot_url, mode="", moving=None
) -> dict:
    """One week (Monday to Sunday) of free slots, within the notice and the horizon.

    `requested` is any day of the wanted week (from the address, so possibly
    absurd): it is brought back between the first and the last bookable day.
    The free slots of the whole bookable period are fetched once: they give
    this week, the earliest slot, and the next one after an empty week.
    """
    tz = calendar.zone(cpam)
    first, last = slots.bookable_days(cpam, motive)
    found = slots.free_slots(
        cpam=cpam, motive=motive, channel=channel, start=first, end=last, site_id=site_id, mode=mode
    )
    if moving is not None:
        # Its own time is not a move; its advisor is busy then anyway.
        found = [s for s in found if s.start != moving.starts_at]
    day = min(max(requested or first, first), last)
    monday = day - timedelta(days=day.weekday())
    sunday = monday + timedelta(days=6)
    by_day: dict[date, list] = defaultdict(list)
    for slot in found:
        by_day[slot.start.astimezone(tz).date()].append(slot)
    earliest = found[0] if found else None
    days = []
    for offset in range(7):
        current = monday + timedelta(days=offset)
        day_slots = by_day.get(current, [])
        if current.weekday() >= 5 and not day_slots:
            continue  # weekends only when someone receives then
        if current < first:
            state = "too_soon"
        elif current > last:
            state = "too_far"
        elif calendar.is_public_holiday(cpam.department, current):
            state = "holiday"
        elif not day_slots:
            state = "full"
        else:
            state = "open"
        days.append(
            {
                "day": current,
                "state": state,
                "slots": [
                    {"start": s.start, "url": slot_url(s), "earliest": s == earliest}
                    for s in day_slots
                ],
            }
        )
    count = sum(len(d["slots"]) for d in days)
    next_after = None
    if not count:
        next_after = next((s for s in found if s.start.astimezone(tz).date() > sunday), None)

    def jump(slot):
        if slot is None:
            return None
        return {"start": slot.start, "url": slot_url(slot), "week_url": week_url(_day_of(slot, tz))}

    return {
        "monday": monday,
        "sunday": sunday,
        "days": days,
        "count": count,
        "first": first,
        "last": last,
        "earliest": jump(earliest),
        "earliest_here": earliest is not None and monday <= _day_of(earliest, tz) <= sunday,
        "next_after": jump(next_after) if next_after not in (None, earliest) else None,
        "previous_url": week_url(monday - timedelta(days=7)) if monday > first else None,
        "next_url": week_url(monday + timedelta(days=7))
        if monday + timedelta(days=7) <= last
        else None,
        "notice_days": motive.min_notice_working_days,
        "tz_name": tz.key,
    }


def _day_of(slot, tz) -> date:
    return slot.start.astimezone(tz).date()


# --- cancel and move -----------------------------------------------------------------------


def _refused(request, appointment: Appointment, code: str, *, action: str, status: int):
    """The page that says why this appointment cannot be cancelled or moved online."""
    return render(
        request,
        "www/agenda/refused.html",
        {
            "title": _title(
                _("Annuler mon rendez-vous")
                if action == "cancel"
                else _("Déplacer mon rendez-vous"),
                True,
            ),
            "action": action,
            "problem": _problem(code, links=[(reverse("www:agenda"), _("Retour à Mon agenda"))]),
            "card": _card(appointment, timezone.now()),
            "mobile": request.user.mobile_phone,
            "tz_name": calendar.zone(request.user.member.cpam).key,
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def cancel(request, public_id: str):
    """GET asks for confirmation; POST cancels (until 2 hours before)."""
    appointment = _appointment_or_404(request, public_id)
    if request.method == "POST":
        try:
            services.appointment_cancel(
                account=request.user, appointment=appointment, ip=client_ip(request)
            )
        except (services.TooLate, services.NotOpen) as exc:
            return _refused(request, appointment, exc.code, action="cancel", status=409)
        messages.success(
            request,
            _(
                "Votre rendez-vous du %(when)s est annulé. Un courriel de confirmation vous a été "
                "envoyé."
            )
            % {"when": _when(appointment.starts_at, request.user.member.cpam)},
        )
        return redirect("www:agenda")
    refusal = _change_refusal(appointment)
    if refusal:
        return _refused(request, appointment, refusal, action="cancel", status=200)
    return render(
        request,
        "www/agenda/cancel.html",
        {
            "title": _("Annuler mon rendez-vous"),
            "card": _card(appointment, timezone.now()),
            "mobile": request.user.mobile_phone,
            "tz_name": calendar.zone(request.user.member.cpam).key,
        },
    )


@login_required
@require_GET
def reschedule(request, public_id: str):
    """The week of free slots for the same motive and type (and site on site, mode for relay)."""
    appointment = _appointment_or_404(request, public_id)
    refusal = _change_refusal(appointment)
    if refusal:
        return _refused(request, appointment, refusal, action="reschedule", status=200)
    base = reverse("www:agenda_reschedule", args=[appointment.public_id])
    confirm = reverse("www:agenda_reschedule_confirm", args=[appointment.public_id])
    week = _week(
        cpam=request.user.member.cpam,
        motive=appointment.motive,
        channel=appointment.channel,
        mode=appointment.communication_mode,
        site_id=appointment.site_id if appointment.channel == Channel.ON_SITE else None,
        requested=day_parse(request.GET.get("semaine", "")),
        week_url=lambda day: f"{base}?{urlencode({'semaine': day.isoformat()})}",
        slot_url=lambda slot: f"{confirm}?{urlencode({'creneau': slot.id})}",
        moving=appointment,
    )
    return render(
        request,
        "www/agenda/week.html",
        {
            "title": _("Déplacer mon rendez-vous"),
            "card": _card(appointment, timezone.now()),
            "mobile": request.user.mobile_phone,
            "week": week,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def reschedule_confirm(request, public_id: str):
    """The old and the new time side by side; the POST moves it, or changes nothing."""
    appointment = _appointment_or_404(request, public_id)
    account = request.user
    cpam = account.member.cpam
    slot_id = str(request.GET.get("creneau", ""))[:QUERY_VALUE_MAX]
    confirm = reverse("www:agenda_reschedule_confirm", args=[appointment.public_id])
    week_link = (
        reverse("www:agenda_reschedule", args=[appointment.public_id]),
        _("Voir tous les créneaux libres"),
    )

    def problem_of(code, alternatives=()):
        links = [week_link]
        if code == "phone_required":
            links.insert(
                0, (reverse("www:account_mobile"), _("Ajouter un numéro de mobile dans Mon compte"))
            )
        return _problem(
            code,
            links=links,
            alternatives=[
                {"start": s.start, "url": f"{confirm}?{urlencode({'creneau': s.id})}"}
                for s in alternatives
            ],
        )

    status = 200
    problem = None
    if request.method == "GET" or _is_own_time(slot_id, appointment):
        refusal = _change_refusal(appointment)
        if refusal:
            status = 200 if request.method == "GET" else 409
            return _refused(request, appointment, refusal, action="reschedule", status=status)
        if request.method == "POST":  # its own time: no move (the service would allow it)
            problem, status = problem_of("invalid_slot"), 400
    else:
        try:
            moved = services.appointment_reschedule(
                account=account, appointment=appointment, slot_id=slot_id, ip=client_ip(request)
            )
        except (services.TooLate, services.NotOpen) as exc:
            return _refused(request, appointment, exc.code, action="reschedule", status=409)
        except services.SlotTaken as exc:
            alternatives = [s for s in exc.alternatives if s.start != appointment.starts_at]
            problem, status = problem_of(exc.code, alternatives), 409
        except services.AppointmentError as exc:
            problem, status = problem_of(exc.code), 400
        else:
            url = reverse("www:agenda_confirmed", args=[moved.public_id])
            return redirect(f"{url}?deplace=1")
    slot = None
    if problem is None:
        slot, code, alternatives = _slot_check(
            slot_id,
            cpam=cpam,
            motive=appointment.motive,
            channel=appointment.channel,
            mode=appointment.communication_mode,
            moving=appointment,
        )
        if code is not None:
            problem = problem_of(code, alternatives)
            status = 409 if code == "slot_taken" else 400
        elif appointment.channel == Channel.PHONE and not account.mobile_phone:
            problem, status = problem_of("phone_required"), 400
    return render(
        request,
        "www/agenda/reschedule_confirm.html",
        {
            "title": _title(_("Déplacer mon rendez-vous : confirmation"), bool(problem)),
            "card": _card(appointment, timezone.now()),
            "slot": slot,
            "problem": problem,
            "mobile": account.mobile_phone,
            "tz_name": calendar.zone(cpam).key,
        },
        status=status,
    )
