"""Mon agenda, the advisor side (`/conseiller/planning/`, `/conseiller/rendez-vous/…`).

The day's planning (an advisor's own appointments, or every advisor of the
CPAM for a supervisor), one appointment with only the data of its motive,
its outcome and its cancellation by the fund, and the supervisor's pages for
advisors' weekly opening ranges and absences.

Views are thin: who may see or do what is `portal.staff.perms`, and every
change is a service of `portal.appointments.services`, which audits it and
notifies the member. Times are stored in UTC and shown in the office's zone.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_GET, require_POST

from portal.appointments import calendar
from portal.appointments import services as appointments
from portal.appointments.models import Absence, Advisor, Appointment, Channel, OpeningRange
from portal.audit.services import record
from portal.core.http import client_ip
from portal.members.nir import mask
from portal.payments.models import AllowancePayment, WorkStoppage
from portal.staff import perms

from .decorators import staff_required
from .planning_forms import (
    FIRST_DAY,
    LAST_DAY,
    AbsenceForm,
    FundCancelForm,
    OpeningRangeForm,
    OutcomeForm,
    PlanningDayForm,
)

# The appointments a supervisor added an absence over, kept for the follow-up of re-booking.
ABSENCE_CANCELLED = "console_absence_cancelled"
# Statuses in which the member may still be called (a cancelled appointment is not).
CALLABLE = (Appointment.Status.BOOKED, Appointment.Status.DONE, Appointment.Status.NO_SHOW)
OUTCOME_STATUSES = CALLABLE

# What an advisor may see of the member's payments, by motive: the interview
# covers the motive only, so every other motive shows none of it.
MOTIVE_STOPPAGES = {
    # The current (open) work stoppage, whatever its kind, and its daily allowances.
    "arret-travail-ij": (
        {"end__isnull": True},
        gettext_lazy("Arrêt de travail en cours et indemnités journalières"),
    ),
    "maternite-paternite": (
        {"kind__in": [WorkStoppage.Kind.MATERNITY, WorkStoppage.Kind.PATERNITY]},
        gettext_lazy("Congés maternité et paternité et leurs indemnités journalières"),
    ),
    "at-mp": (
        {"kind": WorkStoppage.Kind.WORK_ACCIDENT},
        gettext_lazy(
            "Arrêts pour accident du travail ou maladie professionnelle et leurs indemnités journalières"
        ),
    ),
}


def _zone(staff):
    return calendar.zone(staff.cpam)


def _day_window(day: date, tz) -> tuple[datetime, datetime]:
    """From the office's midnight to the next (23 or 25 hours on the days the clocks change)."""
    start = datetime.combine(day, time.min, tz)
    end = datetime.combine(day + timedelta(days=1), time.min, tz)
    return start, end


@dataclass
class Row:
    """One appointment as the console lists it: minimal member data."""

    appointment: Appointment
    masked_nir: str
    phone: object = None  # the number to call (phone appointments not cancelled)
    viewable: bool = True

    @property
    def tel(self) -> str:
        return self.phone.as_e164 if self.phone else ""

    @property
    def phone_display(self) -> str:
        if not self.phone:
            return ""
        if self.phone.country_code == 33:
            return self.phone.as_national
        return self.phone.as_international


def _row(staff, appointment: Appointment) -> Row:
    phone = None
    if appointment.channel == Channel.PHONE and appointment.status in CALLABLE:
        phone = appointments.account_phone(appointment.member)
    return Row(
        appointment=appointment,
        masked_nir=mask(appointment.member.nir),
        phone=phone,
        viewable=perms.can_view_appointment(staff, appointment),
    )


@dataclass
class Group:
    advisor: Advisor
    manageable: bool
    rows: list[Row] = field(default_factory=list)


# --- planning ------------------------------------------------------------------------------


@staff_required(perms.can_view_planning)
@require_GET
def planning(request):
    """The day's appointments in order: the advisor's own, or every advisor's for a supervisor."""
    staff = request.staff
    tz = _zone(staff)
    today = timezone.now().astimezone(tz).date()
    form = PlanningDayForm(request.GET if "jour" in request.GET else None)
    day, status = today, 200
    if form.is_bound:
        if form.is_valid():
            day = form.cleaned_data["jour"] or today
        else:
            status = 400
    start, end = _day_window(day, tz)

    # The groups: the staff's own agenda if they hold appointments, and every advisor whose
    # availability they manage (a supervisor: the whole CPAM). Each appointment listed is
    # still checked with `can_view_appointment`.
    own = getattr(staff, "advisor", None)
    advisors = Advisor.objects.filter(staff__cpam=staff.cpam).select_related("staff", "site")
    groups: dict[int, Group] = {}
    for advisor in advisors:
        manageable = perms.can_manage_availability(staff, advisor)
        if manageable or (own is not None and advisor.pk == own.pk):
            groups[advisor.pk] = Group(advisor, manageable)
    day_appointments = (
        Appointment.objects.filter(advisor_id__in=groups, starts_at__gte=start, starts_at__lt=end)
        .select_related("member", "motive", "site", "advisor__staff")
        .order_by("starts_at", "pk")
    )
    for appointment in day_appointments:
        if perms.can_view_appointment(staff, appointment):
            groups[appointment.advisor_id].rows.append(_row(staff, appointment))
    # Advisors who left stay listed on the days they still had appointments.
    shown = [g for g in groups.values() if g.rows or g.advisor.staff.is_active or g.advisor == own]
    shown.sort(key=lambda g: (own is None or g.advisor.pk != own.pk,))
    previous_day, next_day = day - timedelta(days=1), day + timedelta(days=1)
    return render(
        request,
        "console/planning.html",
        {
            "title": _("Planning"),
            "form": form,
            "day": day,
            "today": today,
            "previous_day": previous_day if previous_day >= FIRST_DAY else None,
            "next_day": next_day if next_day <= LAST_DAY else None,
            "groups": shown,
            "own_only": len(shown) == 1 and own is not None and shown[0].advisor.pk == own.pk,
            "can_manage": any(g.manageable for g in groups.values()),
            "tz_name": tz.key,
        },
        status=status,
    )


# --- one appointment -----------------------------------------------------------------------


def _appointment_get(request, public_id) -> Appointment:
    """The appointment if the staff may see it; a 404 otherwise, whether it exists or not."""
    appointment = (
        Appointment.objects.select_related("member", "motive", "site", "advisor__staff")
        .filter(public_id=public_id)
        .first()
    )
    if appointment is None or not perms.can_view_appointment(request.staff, appointment):
        raise Http404
    return appointment


def _motive_stoppages(appointment: Appointment) -> dict | None:
    """The member's work stoppages that the motive is about, with their payments; None when
    the motive is not about stoppages (nothing of the member's payments is shown then)."""
    scope = MOTIVE_STOPPAGES.get(appointment.motive.code)
    if scope is None:
        return None
    filters, title = scope
    payments = AllowancePayment.objects.filter(member_id=appointment.member_id).order_by(
        "period_start", "pk"
    )
    found = []
    for stoppage in (
        WorkStoppage.objects.filter(member_id=appointment.member_id, **filters)
        .prefetch_related(Prefetch("payments", queryset=payments))
        .order_by("-start", "-pk")
    ):
        rows = list(stoppage.payments.all())
        paid = [p for p in rows if p.status == AllowancePayment.Status.PAID]
        found.append(
            {
                "stoppage": stoppage,
                "payments": rows,
                "total_paid": sum((p.net for p in paid), Decimal("0")),
            }
        )
    return {"title": title, "items": found}


def _appointment_page(
    request, appointment: Appointment, *, outcome_form=None, cancel_form=None, status=200
):
    staff = request.staff
    now = timezone.now()
    can_outcome = (
        perms.can_record_outcome(staff, appointment) and appointment.status in OUTCOME_STATUSES
    )
    can_cancel = perms.can_cancel_appointment(staff, appointment) and _cancellable(appointment, now)
    # Reading a member's data from the console leaves a trace, as the member search does.
    record(
        action="console.appointment.viewed",
        actor=staff.actor,
        member=appointment.member,
        ip=client_ip(request),
        data={"appointment": str(appointment.public_id), "motive": appointment.motive.code},
    )
    return render(
        request,
        "console/appointment.html",
        {
            "title": _("Rendez-vous"),
            "row": _row(staff, appointment),
            "appointment": appointment,
            "stoppages": _motive_stoppages(appointment),
            "started": appointment.starts_at <= now,
            "can_outcome": can_outcome,
            "can_cancel": can_cancel,
            "outcome_form": outcome_form
            or OutcomeForm(
                initial={"outcome": appointment.status, "note": appointment.outcome_note}
                if appointment.status != Appointment.Status.BOOKED
                else None
            ),
            "cancel_form": cancel_form or FundCancelForm(),
            "tz_name": _zone(staff).key,
        },
        status=status,
    )


def _cancellable(appointment: Appointment, now: datetime) -> bool:
    """Open and not over: once it has ended, the advisor records an outcome instead."""
    return appointment.is_open and appointment.ends_at > now


@staff_required(perms.can_use_console)
@require_GET
def appointment_view(request, public_id):
    return _appointment_page(request, _appointment_get(request, public_id))


@staff_required(perms.can_use_console)
@require_POST
def appointment_outcome(request, public_id):
    appointment = _appointment_get(request, public_id)
    if not perms.can_record_outcome(request.staff, appointment):
        raise PermissionDenied
    form = OutcomeForm(request.POST)
    if not form.is_valid():
        return _appointment_page(request, appointment, outcome_form=form, status=400)
    try:
        appointments.appointment_outcome_record(
            staff=request.staff,
            appointment=appointment,
            outcome=form.cleaned_data["outcome"],
            note=form.cleaned_data["note"],
            ip=client_ip(request),
        )
    except appointments.NotOpen:
        messages.error(request, _("Ce rendez-vous est annulé : aucun résultat à enregistrer."))
    except appointments.AppointmentError:
        if appointment.starts_at > timezone.now():
            message = _(
                "Le rendez-vous n’a pas encore commencé : vous pourrez enregistrer son résultat à partir de son heure de début."
            )
        else:
            message = _("Le résultat n’a pas pu être enregistré.")
        form.add_error(None, message)
        return _appointment_page(request, appointment, outcome_form=form, status=400)
    else:
        messages.success(request, _("Résultat de l’entretien enregistré."))
    return redirect("console:appointment", public_id=appointment.public_id)


@staff_required(perms.can_use_console)
@require_POST
def appointment_cancel(request, public_id):
    appointment = _appointment_get(request, public_id)
    if not perms.can_cancel_appointment(request.staff, appointment):
        raise PermissionDenied
    form = FundCancelForm(request.POST)
    if not form.is_valid():
        return _appointment_page(request, appointment, cancel_form=form, status=400)
    if not _cancellable(appointment, timezone.now()):
        messages.error(
            request,
            _("Ce rendez-vous ne peut plus être annulé : il est déjà annulé, terminé ou passé."),
        )
        return redirect("console:appointment", public_id=appointment.public_id)
    try:
        appointments.appointment_cancel_by_fund(
            staff=request.staff,
            appointment=appointment,
            reason=form.cleaned_data["reason"],
            ip=client_ip(request),
        )
    except appointments.NotOpen:
        messages.error(request, _("Ce rendez-vous est déjà annulé ou terminé."))
    except appointments.AppointmentError:
        form.add_error("reason", _("Indiquez la raison de l’annulation : l’assuré la recevra."))
        return _appointment_page(request, appointment, cancel_form=form, status=400)
    else:
        messages.success(
            request,
            _(
                "Rendez-vous annulé. L’assuré reçoit la raison par courriel, avec les créneaux libres les plus proches."
            ),
        )
    return redirect("console:appointment", public_id=appointment.public_id)


# --- availability (supervisors) ------------------------------------------------------------


@staff_required(perms.can_view_planning)
@require_GET
def advisor_list(request):
    staff = request.staff
    advisors = list(
        Advisor.objects.filter(staff__cpam=staff.cpam)
        .select_related("staff", "site")
        .prefetch_related("motives")
    )
    manageable = [a for a in advisors if perms.can_manage_availability(staff, a)]
    # The CPAM has advisors and this staff may manage none of them: not their page.
    if advisors and not manageable:
        raise PermissionDenied
    return render(
        request,
        "console/planning_advisors.html",
        {"title": _("Disponibilités des conseillers"), "advisors": manageable},
    )


def _advisor_get(request, advisor_id: int) -> Advisor:
    """An advisor of the staff's CPAM whose availability they manage: 404 outside the CPAM."""
    advisor = Advisor.objects.select_related("staff", "site").filter(pk=advisor_id).first()
    if advisor is None or advisor.staff.cpam_id != request.staff.cpam_id:
        raise Http404
    if not perms.can_manage_availability(request.staff, advisor):
        raise PermissionDenied
    return advisor


def _cancelled_by_absence(request, advisor: Advisor) -> dict | None:
    """The appointments that the last absence added here cancelled, for the follow-up of
    re-booking (still listed if that absence is deleted since: they stay cancelled)."""
    kept = request.session.get(ABSENCE_CANCELLED, {}).get(str(advisor.pk))
    if not isinstance(kept, dict) or not kept.get("appointments"):
        return None
    try:
        period = (datetime.fromisoformat(kept["from"]), datetime.fromisoformat(kept["to"]))
    except (KeyError, TypeError, ValueError):
        return None
    rows = [
        Row(appointment=a, masked_nir=mask(a.member.nir))
        for a in Appointment.objects.filter(pk__in=kept["appointments"], advisor=advisor)
        .select_related("member", "motive", "site", "advisor__staff")
        .order_by("starts_at", "pk")
    ]
    return {"starts_at": period[0], "ends_at": period[1], "rows": rows}


def _advisor_page(request, advisor: Advisor, *, range_form=None, absence_form=None, status=200):
    tz = _zone(request.staff)
    return render(
        request,
        "console/planning_advisor.html",
        {
            "title": _("Disponibilités de %(name)s") % {"name": advisor},
            "advisor": advisor,
            "motives": advisor.motives.all(),
            "ranges": advisor.ranges.order_by("weekday", "start_time", "pk"),
            "absences": advisor.absences.filter(ends_at__gt=timezone.now()).order_by(
                "starts_at", "pk"
            ),
            "range_form": range_form or OpeningRangeForm(advisor=advisor),
            "absence_form": absence_form or AbsenceForm(tz=tz),
            "cancelled": _cancelled_by_absence(request, advisor),
            "tz_name": tz.key,
        },
        status=status,
    )


def _to_advisor(advisor: Advisor, anchor: str):
    return redirect(reverse("console:planning_advisor", args=[advisor.pk]) + anchor)


@staff_required(perms.can_use_console)
@require_GET
def advisor_availability(request, advisor_id: int):
    return _advisor_page(request, _advisor_get(request, advisor_id))


@staff_required(perms.can_use_console)
@require_POST
def range_add(request, advisor_id: int):
    advisor = _advisor_get(request, advisor_id)
    form = OpeningRangeForm(request.POST, advisor=advisor)
    if form.is_valid():
        try:
            appointments.opening_range_add(
                staff=request.staff,
                advisor=advisor,
                weekday=form.cleaned_data["weekday"],
                start_time=form.cleaned_data["start_time"],
                end_time=form.cleaned_data["end_time"],
                channel=form.cleaned_data["channel"],
                valid_from=form.cleaned_data["valid_from"],
                valid_until=form.cleaned_data["valid_until"],
                ip=client_ip(request),
            )
        except appointments.InvalidPeriod:
            form.add_error(
                None, _("Cette plage n’est pas valide : vérifiez les heures et les dates.")
            )
        else:
            messages.success(request, _("Plage d’ouverture ajoutée."))
            return _to_advisor(advisor, "#plages")
    return _advisor_page(request, advisor, range_form=form, status=400)


@staff_required(perms.can_use_console)
@require_POST
def range_delete(request, advisor_id: int, range_id: int):
    advisor = _advisor_get(request, advisor_id)
    opening = OpeningRange.objects.filter(pk=range_id, advisor=advisor).first()
    if opening is None:
        raise Http404
    opening.advisor = advisor
    appointments.opening_range_delete(staff=request.staff, opening=opening, ip=client_ip(request))
    messages.success(
        request,
        _("Plage d’ouverture supprimée. Les rendez-vous déjà pris sur cette plage sont maintenus."),
    )
    return _to_advisor(advisor, "#plages")


@staff_required(perms.can_use_console)
@require_POST
def absence_add(request, advisor_id: int):
    advisor = _advisor_get(request, advisor_id)
    form = AbsenceForm(request.POST, tz=_zone(request.staff))
    if form.is_valid():
        try:
            absence, cancelled = appointments.absence_add(
                staff=request.staff,
                advisor=advisor,
                starts_at=form.cleaned_data["absence_start"],
                ends_at=form.cleaned_data["absence_end"],
                reason=form.cleaned_data["absence_reason"],
                ip=client_ip(request),
            )
        except appointments.InvalidPeriod:
            form.add_error("absence_end", _("La fin de l’absence doit être après son début."))
        else:
            request.session[ABSENCE_CANCELLED] = {
                **request.session.get(ABSENCE_CANCELLED, {}),
                str(advisor.pk): {
                    "from": absence.starts_at.isoformat(),
                    "to": absence.ends_at.isoformat(),
                    "appointments": [a.pk for a in cancelled],
                },
            }
            if cancelled:
                messages.warning(
                    request,
                    ngettext(
                        "Absence enregistrée. %(count)d rendez-vous pris sur cette période a été annulé et l’assuré prévenu : voyez la liste ci-dessous pour le suivi.",
                        "Absence enregistrée. %(count)d rendez-vous pris sur cette période ont été annulés et les assurés prévenus : voyez la liste ci-dessous pour le suivi.",
                        len(cancelled),
                    )
                    % {"count": len(cancelled)},
                )
                return _to_advisor(advisor, "#annules")
            messages.success(
                request, _("Absence enregistrée. Aucun rendez-vous n’était pris sur cette période.")
            )
            return _to_advisor(advisor, "#absences")
    return _advisor_page(request, advisor, absence_form=form, status=400)


@staff_required(perms.can_use_console)
@require_POST
def absence_delete(request, advisor_id: int, absence_id: int):
    advisor = _advisor_get(request, advisor_id)
    absence = Absence.objects.filter(pk=absence_id, advisor=advisor).first()
    if absence is None:
        raise Http404
    absence.advisor = advisor
    appointments.absence_delete(staff=request.staff, absence=absence, ip=client_ip(request))
    messages.success(
        request,
        _(
            "Absence supprimée. Les rendez-vous annulés à cause d’elle ne sont pas rétablis : les assurés peuvent reprendre rendez-vous."
        ),
    )
    return _to_advisor(advisor, "#absences")
