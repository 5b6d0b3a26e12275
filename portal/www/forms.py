"""Member-site forms: they parse and give translated messages; rules live in services."""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from phonenumber_field.formfields import PhoneNumberField

from portal.accounts.passwords import RULES, personal_data_of, rule_message, unmet_rules
from portal.members import nir as nir_rules


class NirField(forms.CharField):
    def __init__(self, *, require_key: bool, **kwargs):
        self.require_key = require_key
        kwargs.setdefault("max_length", 30)
        super().__init__(**kwargs)

    def widget_attrs(self, widget):
        attrs = super().widget_attrs(widget)
        attrs.update({"autocomplete": "username", "inputmode": "numeric", "spellcheck": "false"})
        return attrs

    def clean(self, value):
        value = super().clean(value)
        try:
            return nir_rules.parse(value, require_key=self.require_key).full
        except nir_rules.NirError as exc:
            raise ValidationError(exc.message, code=exc.code) from exc


def validate_sms_mobile(phone):
    """A number the portal can send SMS to: a mobile of France or another EU state."""
    from portal.notifications.sms import SmsRecipientRefused, sms_recipient_normalize

    if not phone:
        return
    try:
        sms_recipient_normalize(phone)
    except SmsRecipientRefused as exc:
        if exc.reason == "not_mobile":
            message = _(
                "Ce numéro n’est pas un numéro de mobile : il doit pouvoir recevoir des SMS."
            )
        else:
            message = _(
                "Saisissez un numéro de mobile français ou d’un autre pays de l’Union européenne."
            )
        raise ValidationError(message, code=exc.reason) from None


class BaseForm(forms.Form):
    """DSFR classes on every widget, and the ARIA links from a field to its hint and errors."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            self._decorate(name, field)

    def _decorate(self, name, field):
        classes = field.widget.attrs.get("class", "")
        field.widget.attrs["class"] = f"{classes} fr-input".strip()
        if field.help_text:
            field.widget.attrs["aria-describedby"] = f"id_{name}-hint"

    def full_clean(self):
        super().full_clean()
        for name in self.errors:
            if name in self.fields:
                widget = self.fields[name].widget
                described = [f"id_{name}-messages"]
                if self.fields[name].help_text:
                    described.insert(0, f"id_{name}-hint")
                widget.attrs["aria-describedby"] = " ".join(described)
                widget.attrs["aria-invalid"] = "true"


class DateInput(forms.DateInput):
    input_type = "date"


class LoginForm(BaseForm):
    nir = NirField(
        require_key=False,
        label=_("Numéro de sécurité sociale"),
        help_text=_("13 chiffres, sans la clé. Exemple : 1 85 05 78 006 084"),
    )
    password = forms.CharField(
        label=_("Mot de passe"),
        max_length=1024,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class IdentityForm(BaseForm):
    nir = NirField(
        require_key=False,
        label=_("Numéro de sécurité sociale"),
        help_text=_("13 chiffres, avec ou sans la clé. Il figure sur votre carte Vitale."),
    )
    birth_date = forms.DateField(
        label=_("Date de naissance"),
        help_text=_("Format : jj/mm/aaaa"),
        widget=DateInput(format="%Y-%m-%d", attrs={"autocomplete": "bday"}),
        input_formats=["%Y-%m-%d", "%d/%m/%Y"],
    )
    iban_last7 = forms.CharField(
        label=_("Les 7 derniers caractères de votre IBAN"),
        help_text=_(
            "Ceux du compte bancaire sur lequel l’Assurance Maladie vous rembourse. "
            "Exemple : 1234567"
        ),
        min_length=7,
        max_length=9,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def clean_iban_last7(self):
        value = "".join(self.cleaned_data["iban_last7"].split()).upper()
        if len(value) != 7 or not value.isalnum():
            raise ValidationError(_("Saisissez exactement 7 caractères (chiffres ou lettres)."))
        return value


class PasswordPairMixin:
    """Two password fields, checked against the whole policy; each unmet rule shown."""

    @property
    def password_rules(self):
        return [{"code": code, "text": rule_message(code)} for code in RULES]

    def _password_fields(self):
        self.fields["password"] = forms.CharField(
            label=_("Mot de passe"),
            max_length=1024,
            strip=False,
            help_text=" ".join(rule_message(code) for code in RULES),
            widget=forms.PasswordInput(
                attrs={"autocomplete": "new-password", "data-password-rules": "1"}
            ),
        )
        self.fields["password2"] = forms.CharField(
            label=_("Confirmation du mot de passe"),
            max_length=1024,
            strip=False,
            widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        )

    def check_passwords(self, cleaned, personal):
        password, password2 = cleaned.get("password"), cleaned.get("password2")
        if password is None:
            return cleaned
        for code in unmet_rules(password, personal):
            self.add_error("password", ValidationError(rule_message(code), code=code))
        if password2 is not None and password != password2:
            self.add_error("password2", ValidationError(rule_message("mismatch"), code="mismatch"))
        return cleaned


class CredentialsForm(PasswordPairMixin, BaseForm):
    def clean_mobile_phone(self):
        phone = self.cleaned_data.get("mobile_phone")
        validate_sms_mobile(phone)
        return phone

    email = forms.EmailField(
        label=_("Adresse électronique"),
        help_text=_("Format attendu : nom@domaine.fr. Vous y recevrez le lien d’activation."),
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    mobile_phone = PhoneNumberField(
        label=_("Téléphone mobile"),
        region="FR",
        required=False,
        help_text=_(
            "Facultatif. Format attendu : 06 12 34 56 78. Il sert à vous aider si vous perdez "
            "l’accès à votre messagerie."
        ),
        widget=forms.TextInput(attrs={"autocomplete": "tel", "inputmode": "tel"}),
        error_messages={
            "invalid": _("Saisissez un numéro de mobile valide, par exemple 06 12 34 56 78.")
        },
    )

    def __init__(self, *args, member, **kwargs):
        self.member = member
        super().__init__(*args, **kwargs)
        self._password_fields()
        for name in ("password", "password2"):
            self._decorate(name, self.fields[name])

    def clean(self):
        cleaned = super().clean()
        personal = personal_data_of(self.member, cleaned.get("email") or "")
        return self.check_passwords(cleaned, personal)


# --- Mon compte: recovery channels ----------------------------------------------------------


class ReauthForm(BaseForm):
    """A sensitive change: the current password is asked again (checked by the service)."""

    current_password = forms.CharField(
        label=_("Mot de passe actuel"),
        help_text=_("Pour votre sécurité, confirmez qu’il s’agit bien de vous."),
        max_length=1024,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class EmailChangeForm(ReauthForm):
    email = forms.EmailField(
        label=_("Nouvelle adresse électronique"),
        help_text=_(
            "Format attendu : nom@domaine.fr. Vous y recevrez un lien pour confirmer cette adresse."
        ),
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    field_order = ["email", "current_password"]


class MobileChangeForm(ReauthForm):
    mobile_phone = PhoneNumberField(
        label=_("Nouveau numéro de téléphone mobile"),
        region="FR",
        help_text=_(
            "Format attendu : 06 12 34 56 78. Vous y recevrez par SMS un code pour confirmer "
            "ce numéro."
        ),
        widget=forms.TextInput(attrs={"autocomplete": "tel", "inputmode": "tel"}),
        error_messages={
            "invalid": _("Saisissez un numéro de mobile valide, par exemple 06 12 34 56 78.")
        },
    )
    field_order = ["mobile_phone", "current_password"]

    def clean_mobile_phone(self):
        phone = self.cleaned_data["mobile_phone"]
        validate_sms_mobile(phone)
        return phone


class MobileCodeForm(BaseForm):
    code = forms.CharField(
        label=_("Code reçu par SMS"),
        help_text=_("6 chiffres. Exemple : 123456"),
        max_length=30,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "spellcheck": "false",
            }
        ),
    )

    def clean_code(self):
        value = "".join(self.cleaned_data["code"].split())
        if len(value) != 6 or not value.isascii() or not value.isdigit():
            raise ValidationError(_("Saisissez les 6 chiffres du code reçu par SMS."))
        return value


class PasswordChangeForm(PasswordPairMixin, ReauthForm):
    def __init__(self, *args, account, **kwargs):
        self.account = account
        super().__init__(*args, **kwargs)
        self._password_fields()
        self.fields["password"].label = _("Nouveau mot de passe")
        self.fields["password2"].label = _("Confirmation du nouveau mot de passe")
        for name in ("password", "password2"):
            self._decorate(name, self.fields[name])

    def clean(self):
        cleaned = super().clean()
        return self.check_passwords(
            cleaned, personal_data_of(self.account.member, self.account.email)
        )


# --- communication need (Mon compte, and the relay step of Mon agenda) ----------------------

# What each mode of the relay service is, in plain words; LSF and LfPC need a camera.
COMMUNICATION_MODE_HINTS = {
    "lsf": _(
        "Un interprète traduit en direct entre la langue des signes et le français parlé du "
        "conseiller. Il vous faut une caméra (webcam ou téléphone) : l’interprète doit vous voir."
    ),
    "ttrp": _(
        "Un transcripteur écrit en direct tout ce que dit le conseiller : vous lisez le texte à "
        "l’écran et vous répondez à l’oral ou par écrit. Aucune caméra n’est nécessaire."
    ),
    "lfpc": _(
        "Un codeur accompagne les paroles du conseiller de gestes de la main près du visage, qui "
        "aident à lire sur les lèvres. Il vous faut une caméra (webcam ou téléphone) : le codeur "
        "doit vous voir."
    ),
}
MODES_NEEDING_A_CAMERA = ("lsf", "lfpc")
NO_COMMUNICATION_NEED = "aucun"


class CommunicationModeForm(forms.Form):
    """Mon compte: a communication need (a relay mode) or none. The radios are drawn by the
    template; "aucun" stands for no need, so that an empty post is an error, not a reset."""

    communication_mode = forms.ChoiceField(
        label=_("Votre besoin de communication"),
        error_messages={
            "required": _(
                "Choisissez l’une des options : pas de besoin particulier, LSF, TTRP ou LfPC."
            ),
            "invalid_choice": _(
                "Cette option n’existe pas. Choisissez l’une des options de la liste."
            ),
        },
    )

    def __init__(self, *args, **kwargs):
        from portal.appointments.models import CommunicationMode

        super().__init__(*args, **kwargs)
        self.fields["communication_mode"].choices = [
            (NO_COMMUNICATION_NEED, _("Pas de besoin particulier")),
            *CommunicationMode.choices,
        ]

    def clean_communication_mode(self):
        value = self.cleaned_data["communication_mode"]
        return "" if value == NO_COMMUNICATION_NEED else value
