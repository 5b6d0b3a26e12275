"""Forms of the self-service password reset."""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from portal.accounts.passwords import personal_data_of

from .forms import BaseForm, DateInput, NirField, PasswordPairMixin


class AsciiDateField(forms.DateField):
    """A date typed with ASCII digits only: look-alike digits (fullwidth, Arabic-Indic…) are refused."""

    def to_python(self, value):
        if isinstance(value, str) and not value.isascii():
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


class ResetRequestForm(BaseForm):
    nir = NirField(
        require_key=False,
        label=_("Numéro de sécurité sociale"),
        help_text=_("13 chiffres, avec ou sans la clé. Il figure sur votre carte Vitale."),
    )
    birth_date = AsciiDateField(
        label=_("Date de naissance"),
        help_text=_("Format : jj/mm/aaaa"),
        widget=DateInput(format="%Y-%m-%d", attrs={"autocomplete": "bday"}),
        input_formats=["%Y-%m-%d", "%d/%m/%Y"],
        error_messages={
            "invalid": _("Saisissez une date de naissance valide, par exemple 12/05/1985.")
        },
    )


class NewPasswordForm(PasswordPairMixin, BaseForm):
    def __init__(self, *args, account, **kwargs):
        self.account = account
        super().__init__(*args, **kwargs)
        self._password_fields()
        for name in ("password", "password2"):
            self._decorate(name, self.fields[name])

    def clean(self):
        cleaned = super().clean()
        personal = personal_data_of(self.account.member, self.account.email)
        return self.check_passwords(cleaned, personal)
