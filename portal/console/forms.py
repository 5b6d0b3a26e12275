from django import forms
from django.utils.translation import gettext_lazy as _
from phonenumber_field.formfields import PhoneNumberField

from portal.recovery.models import DeskVisit
from portal.www.forms import BaseForm, DateInput, NirField, PasswordPairMixin
from portal.www.reset_forms import AsciiDateField, NewPasswordForm


class StaffLoginForm(BaseForm):
    email = forms.EmailField(
        label=_("Adresse électronique professionnelle"),
        widget=forms.EmailInput(attrs={"autocomplete": "username"}),
    )
    password = forms.CharField(
        label=_("Mot de passe"),
        max_length=1024,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    code = forms.CharField(
        label=_("Code de l’application d’authentification"),
        help_text=_("6 chiffres, renouvelés toutes les 30 secondes."),
        max_length=8,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class EnrolmentForm(PasswordPairMixin, BaseForm):
    code = forms.CharField(
        label=_("Code affiché par votre application"),
        help_text=_(
            "Après avoir ajouté le compte dans l’application, saisissez les 6 chiffres qu’elle affiche."
        ),
        max_length=8,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._password_fields()
        for name in ("password", "password2"):
            self._decorate(name, self.fields[name])

    def clean(self):
        cleaned = super().clean()
        return self.check_passwords(cleaned, None)


class MemberSearchForm(BaseForm):
    nir = NirField(
        require_key=False,
        label=_("Numéro de sécurité sociale de l’assuré"),
        help_text=_("13 chiffres, avec ou sans la clé. Recherche exacte uniquement."),
    )


class IdentityCheckForm(BaseForm):
    birth_date = AsciiDateField(
        label=_("Date de naissance"),
        required=True,
        widget=DateInput(format="%Y-%m-%d"),
        input_formats=["%Y-%m-%d", "%d/%m/%Y"],
    )
    postal_code = forms.CharField(label=_("Code postal"), max_length=10, required=True)
    first_name = forms.CharField(label=_("Prénom"), max_length=100, required=True)
    iban_last4 = forms.CharField(
        label=_("4 derniers caractères de l’IBAN"),
        max_length=10,
        required=True,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )


class DeleteAccountForm(BaseForm):
    reason = forms.CharField(
        label=_("Motif de la suppression"), max_length=500, widget=forms.Textarea(attrs={"rows": 3})
    )
    confirm = forms.BooleanField(
        label=_(
            "Je confirme la suppression du compte en ligne (les données de l’assuré sont conservées)"
        )
    )


class VisitForm(BaseForm):
    document_type = forms.ChoiceField(
        label=_("Pièce d’identité présentée"), choices=DeskVisit.Document.choices
    )
    last_chars = forms.CharField(
        label=_("4 derniers caractères du numéro de la pièce"), max_length=12
    )

    def clean_last_chars(self):
        value = "".join(self.cleaned_data["last_chars"].split()).upper()
        if len(value) < 4 or not value.isalnum():
            raise forms.ValidationError(
                _("Saisissez les 4 derniers caractères (lettres ou chiffres).")
            )
        return value[-4:]


class CodeRedeemForm(BaseForm):
    nir = NirField(
        require_key=False,
        label=_("Numéro de sécurité sociale"),
        help_text=_("13 chiffres, avec ou sans la clé."),
    )
    code = forms.CharField(
        label=_("Code reçu"),
        max_length=12,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class ActivationForm(NewPasswordForm):
    def clean_mobile_phone(self):
        from portal.www.forms import validate_sms_mobile

        phone = self.cleaned_data.get("mobile_phone")
        validate_sms_mobile(phone)
        return phone

    email = forms.EmailField(
        label=_("Nouvelle adresse électronique"),
        required=False,
        help_text=_("Facultatif : laissez vide pour garder l’adresse actuelle."),
    )
    mobile_phone = PhoneNumberField(
        label=_("Nouveau téléphone mobile"),
        region="FR",
        required=False,
        help_text=_("Facultatif. Format attendu : 06 12 34 56 78."),
    )
