"""Mon agenda forms: they parse the booking's query string and the confirmation.

The booking steps are GET forms whose values come back in the address, so
anything may arrive there: each choice is checked against the list the page
offered, and a bad value gives a French message on that step, never a 500.
The rules themselves (notice, limits, free slot) live in the appointments
services.
"""

from datetime import date

from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from portal.appointments.models import Channel, CommunicationMode
from portal.appointments.services import MESSAGE_MAX_LENGTH

from .forms import MODES_NEEDING_A_CAMERA, BaseForm

CHANNEL_LABELS = {
    Channel.PHONE: _("Entretien téléphonique"),
    Channel.ON_SITE: _("Sur place"),
    Channel.RELAY: _("Entretien en visio avec interprétation / transcription"),
}
CHANNEL_HINTS = {
    Channel.PHONE: _(
        "Un conseiller vous appelle sur votre téléphone mobile, le jour et à l’heure choisis."
    ),
    Channel.ON_SITE: _("Vous êtes reçu(e) par un conseiller dans un accueil de votre caisse."),
    Channel.RELAY: _(
        "Pour les personnes sourdes ou malentendantes : un conseiller et un professionnel du "
        "service relais (interprète en langue des signes, transcripteur ou codeur) vous "
        "reçoivent en visio. Vous choisissez le mode à l’étape suivante ; aucun numéro de "
        "téléphone n’est nécessaire."
    ),
}


def booking_channels(motive) -> list[str]:
    """The channels of the motive that this booking journey offers (phone, on site, relay)."""
    return [channel for channel in motive.channels if channel in CHANNEL_LABELS]


def mode_parse(value) -> str:
    """A relay mode from the address or the account (`lsf`, `ttrp`, `lfpc`); "" for anything
    else."""
    value = str(value)[:10]
    return value if value in CommunicationMode.values else ""


def mode_needs_camera(mode: str) -> bool:
    return mode in MODES_NEEDING_A_CAMERA


# The longest value worth reading from the address; anything longer is garbage.
QUERY_VALUE_MAX = 300


class MotiveChoiceForm(forms.Form):
    """Step 1: the motive, from the fund's list (`motif` in the address)."""

    motif = forms.ChoiceField(
        label=_("Motif du rendez-vous"),
        error_messages={
            "required": _("Choisissez le motif de votre rendez-vous."),
            "invalid_choice": _(
                "Ce motif n’est pas proposé. Choisissez le motif de votre rendez-vous dans la liste."
            ),
        },
    )

    def __init__(self, *args, motives, **kwargs):
        super().__init__(*args, **kwargs)
        self.motives = {motive.code: motive for motive in motives}
        self.fields["motif"].choices = [(code, m.label) for code, m in self.motives.items()]

    def clean_motif(self):
        return self.motives[self.cleaned_data["motif"]]


class ChannelChoiceForm(forms.Form):
    """Step 2: phone, on site or relay, among the channels the motive allows (`type`)."""

    type = forms.ChoiceField(
        label=_("Type de rendez-vous"),
        error_messages={
            "required": _("Choisissez le type de rendez-vous dans la liste."),
            "invalid_choice": _(
                "Ce type de rendez-vous n’est pas proposé pour ce motif. Choisissez l’un des "
                "types de la liste."
            ),
        },
    )

    def __init__(self, *args, motive, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["type"].choices = [(c, CHANNEL_LABELS[c]) for c in booking_channels(motive)]


class ModeChoiceForm(forms.Form):
    """Step 2, relay: how the member talks with the advisor (`mode`)."""

    mode = forms.ChoiceField(
        label=_("Mode de communication"),
        choices=CommunicationMode.choices,
        error_messages={
            "required": _(
                "Choisissez le mode de communication de l’entretien en visio : LSF, TTRP ou LfPC."
            ),
            "invalid_choice": _(
                "Ce mode de communication n’est pas proposé. Choisissez LSF, TTRP ou LfPC dans "
                "la liste."
            ),
        },
    )


class SiteChoiceForm(forms.Form):
    """Step 2, on site: the reception site (`lieu`)."""

    lieu = forms.ChoiceField(
        label=_("Lieu du rendez-vous"),
        error_messages={
            "required": _("Choisissez l’accueil où vous souhaitez être reçu(e)."),
            "invalid_choice": _(
                "Cet accueil ne reçoit pas pour ce motif. Choisissez l’un des accueils de la liste."
            ),
        },
    )

    def __init__(self, *args, sites, **kwargs):
        super().__init__(*args, **kwargs)
        self.sites = {str(site.pk): site for site in sites}
        self.fields["lieu"].choices = [(pk, site.name) for pk, site in self.sites.items()]

    def clean_lieu(self):
        return self.sites[self.cleaned_data["lieu"]]


class MessageField(forms.CharField):
    """Line breaks count as one character, as the browser counts them in the textarea."""

    def to_python(self, value):
        if isinstance(value, str):
            value = value.replace("\r\n", "\n")
        return super().to_python(value)


class BookingConfirmForm(BaseForm):
    """Step 4: the optional message to the advisor."""

    message = MessageField(
        label=_("Votre message au conseiller"),
        required=False,
        max_length=MESSAGE_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 5}),
        error_messages={
            "max_length": _(
                "Votre message fait %(show_value)d caractères : raccourcissez-le à %(limit_value)d "
                "caractères au maximum."
            ),
        },
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Set here, not on the field: the limit is interpolated in the request's language.
        field = self.fields["message"]
        field.help_text = gettext(
            "Précisez votre demande pour que le conseiller la prépare. %(max)s caractères au "
            "maximum."
        ) % {"max": MESSAGE_MAX_LENGTH}
        field.widget.attrs["aria-describedby"] = "id_message-hint"


def day_parse(value) -> date | None:
    """A day from the address (`semaine=2026-11-09`); None for anything else."""
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None
