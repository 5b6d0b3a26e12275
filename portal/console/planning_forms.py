"""Forms of the advisor side of Mon agenda: they parse and explain; the rules are in services."""

from datetime import date, datetime
from datetime import timezone as dt_timezone

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from portal.appointments.models import CELL_MINUTES, Channel, OpeningRange
from portal.appointments.services import FUND_CANCEL_REASON_MAX_LENGTH
from portal.www.forms import BaseForm, DateInput

# Dates outside these bounds are typing mistakes, and far enough from the
# limits of `datetime` that a day before or after, or a zone offset, never
# overflows.
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)
OUTCOME_NOTE_MAX_LENGTH = 5000
ABSENCE_REASON_MAX_LENGTH = 200


class PlanningForm(BaseForm):
    """DSFR classes: a select is a `fr-select`, not a `fr-input`."""

    def _decorate(self, name, field):
        super()._decorate(name, field)
        if isinstance(field.widget, forms.Select):
            field.widget.attrs["class"] = "fr-select"
        elif isinstance(field.widget, forms.RadioSelect):
            field.widget.attrs.pop("class", None)


def _in_bounds(day: date) -> None:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValidationError(
            _("Saisissez une date entre %(first)s et %(last)s.")
            % {"first": FIRST_DAY.strftime("%d/%m/%Y"), "last": LAST_DAY.strftime("%d/%m/%Y")},
            code="out_of_range",
        )


class DayField(forms.DateField):
    """A day typed with ASCII digits (look-alike digits are refused), within sane bounds."""

    def __init__(self, **kwargs):
        kwargs.setdefault("widget", DateInput(format="%Y-%m-%d"))
        kwargs.setdefault("input_formats", ["%Y-%m-%d", "%d/%m/%Y"])
        kwargs.setdefault(
            "error_messages",
            {"invalid": _("Saisissez une date valide, par exemple 03/11/2026.")},
        )
        super().__init__(**kwargs)

    def to_python(self, value):
        if isinstance(value, str) and not value.isascii():
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        day = super().to_python(value)
        if day is not None:
            _in_bounds(day)
        return day


class TimeInput(forms.TimeInput):
    input_type = "time"


class ClockField(forms.TimeField):
    """A wall-clock time HH:MM on the 5-minute grid of the agenda."""

    def __init__(self, **kwargs):
        kwargs.setdefault("widget", TimeInput(format="%H:%M"))
        kwargs.setdefault("input_formats", ["%H:%M", "%H:%M:%S", "%Hh%M", "%H h %M"])
        kwargs.setdefault(
            "error_messages", {"invalid": _("Saisissez une heure valide, par exemple 09:30.")}
        )
        super().__init__(**kwargs)

    def to_python(self, value):
        if isinstance(value, str) and not value.isascii():
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        value = super().to_python(value)
        if value is not None and (value.minute % CELL_MINUTES or value.second):
            raise ValidationError(
                _("Choisissez une heure ronde à %(minutes)s minutes près (par exemple 09:05).")
                % {"minutes": CELL_MINUTES},
                code="grid",
            )
        return value


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"


class LocalDateTimeField(forms.Field):
    """A date and time of the office's wall clock, kept naive: the form gives it its zone."""

    widget = DateTimeLocalInput(format="%Y-%m-%dT%H:%M")
    default_error_messages = {
        "invalid": _("Saisissez une date et une heure valides, par exemple 03/11/2026 14:00."),
    }
    formats = (
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%d/%m/%Y %H:%M",
        "%d/%m/%Y %Hh%M",
    )

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if isinstance(value, datetime):
            return value.replace(tzinfo=None)
        value = " ".join(str(value).split())
        if not value.isascii() or len(value) > 30:
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        for fmt in self.formats:
            try:
                parsed = datetime.strptime(value, fmt)
            except ValueError:
                continue
            _in_bounds(parsed.date())
            return parsed
        raise ValidationError(self.error_messages["invalid"], code="invalid")


def localize(naive: datetime, tz) -> datetime | None:
    """`naive` in the zone `tz`, or None when that wall time does not exist (clocks go forward)."""
    aware = naive.replace(tzinfo=tz)
    if aware.astimezone(dt_timezone.utc).astimezone(tz).replace(tzinfo=None) != naive:
        return None
    return aware


# --- planning --------------------------------------------------------------------------------


class PlanningDayForm(PlanningForm):
    jour = DayField(label=_("Jour affiché"), required=False, help_text=_("Format : jj/mm/aaaa"))


# --- one appointment -------------------------------------------------------------------------


class OutcomeForm(PlanningForm):
    outcome = forms.ChoiceField(
        label=_("Résultat de l’entretien"),
        choices=[
            ("done", _("Entretien effectué")),
            ("no_show", _("Assuré absent ou sans réponse")),
        ],
        widget=forms.RadioSelect,
        error_messages={"required": _("Indiquez si l’entretien a eu lieu.")},
    )
    note = forms.CharField(
        label=_("Note"),
        required=False,
        max_length=OUTCOME_NOTE_MAX_LENGTH,
        help_text=_("Ce qui a été dit ou fait, sur le motif du rendez-vous seulement."),
        widget=forms.Textarea(attrs={"rows": 4}),
    )


class FundCancelForm(PlanningForm):
    reason = forms.CharField(
        label=_("Raison de l’annulation"),
        max_length=FUND_CANCEL_REASON_MAX_LENGTH,
        help_text=_(
            "Obligatoire. Elle est envoyée par courriel à l’assuré, avec les créneaux libres les plus proches."
        ),
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": _("Indiquez la raison de l’annulation : l’assuré la recevra.")},
    )

    def clean_reason(self):
        reason = " ".join(self.cleaned_data["reason"].split())
        if not reason:
            raise ValidationError(
                _("Indiquez la raison de l’annulation : l’assuré la recevra."), code="required"
            )
        return reason


# --- availability ----------------------------------------------------------------------------


class OpeningRangeForm(PlanningForm):
    weekday = forms.TypedChoiceField(
        label=_("Jour de la semaine"),
        coerce=int,
        choices=OpeningRange.Weekday.choices,
        error_messages={"invalid_choice": _("Choisissez un jour de la semaine.")},
    )
    start_time = ClockField(label=_("De"), help_text=_("Heure locale de la caisse, HH:MM"))
    end_time = ClockField(label=_("À"), help_text=_("Heure locale de la caisse, HH:MM"))
    channel = forms.ChoiceField(
        label=_("Entretiens"),
        required=False,
        error_messages={"invalid_choice": _("Choisissez un type d’entretien proposé.")},
    )
    valid_from = DayField(label=_("Valable à partir du"), required=False)
    valid_until = DayField(label=_("Valable jusqu’au"), required=False)

    def __init__(self, *args, advisor, **kwargs):
        super().__init__(*args, **kwargs)
        served = [c for c in Channel if getattr(advisor, c.value)]
        self.fields["channel"].choices = [
            ("", _("Tous les entretiens du conseiller")),
            *[(c.value, c.label) for c in served],
        ]

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start_time"), cleaned.get("end_time")
        if start and end and end <= start:
            self.add_error("end_time", _("L’heure de fin doit être après l’heure de début."))
        since, until = cleaned.get("valid_from"), cleaned.get("valid_until")
        if since and until and until < since:
            self.add_error("valid_until", _("Cette date doit être après la date de début."))
        return cleaned


class AbsenceForm(PlanningForm):
    absence_start = LocalDateTimeField(
        label=_("Du"), help_text=_("Date et heure locales de la caisse, jj/mm/aaaa hh:mm")
    )
    absence_end = LocalDateTimeField(
        label=_("Au"), help_text=_("Date et heure locales de la caisse, jj/mm/aaaa hh:mm")
    )
    absence_reason = forms.CharField(
        label=_("Raison"),
        required=False,
        max_length=ABSENCE_REASON_MAX_LENGTH,
        help_text=_("Pour l’équipe : congé, formation… Elle n’est pas envoyée à l’assuré."),
    )

    def __init__(self, *args, tz, **kwargs):
        self.tz = tz
        super().__init__(*args, **kwargs)

    def clean(self):
        cleaned = super().clean()
        for name in ("absence_start", "absence_end"):
            naive = cleaned.get(name)
            if naive is None:
                continue
            aware = localize(naive, self.tz)
            if aware is None:
                self.add_error(name, _("Cette heure n’existe pas ce jour-là (changement d’heure)."))
                cleaned.pop(name, None)
            else:
                cleaned[name] = aware
        start, end = cleaned.get("absence_start"), cleaned.get("absence_end")
        if start and end and end <= start:
            self.add_error("absence_end", _("La fin de l’absence doit être après son début."))
        return cleaned
