"""The password policy: one rule set for creation, change and every reset path.

The fund's rule (at least one uppercase and one lowercase letter) plus ours:
length 12–128 (configurable minimum, no truncation), NFKC-normalised Unicode,
not a common password, not too close to the member's own data. Each unmet
rule has a stable name, returned by the API and shown by the forms.
"""

import re
from dataclasses import dataclass
from datetime import date
from difflib import SequenceMatcher

from django.conf import settings
from django.contrib.auth.password_validation import CommonPasswordValidator
from django.core.exceptions import ValidationError
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext_lazy as _

from .models import normalize_password

# Lazy: translated in the language active when `rule_message` formats them.
RULE_MESSAGES = {
    "min_length": _("Au moins {min_length} caractères."),
    "max_length": _("Au plus {max_length} caractères."),
    "uppercase": _("Au moins une lettre majuscule."),
    "lowercase": _("Au moins une lettre minuscule."),
    "common": _("Pas un mot de passe trop courant."),
    "personal_data": _(
        "Sans votre numéro de sécurité sociale, date de naissance, nom, prénom ou adresse "
        "électronique."
    ),
    "mismatch": _("Les deux mots de passe saisis ne sont pas identiques."),
}

# Shown to the member as the list of rules, in this order.
RULES = ["min_length", "uppercase", "lowercase", "common", "personal_data"]

_COMMON = SimpleLazyObject(lambda: CommonPasswordValidator().passwords)


@dataclass(frozen=True)
class PersonalData:
    nir: str = ""
    birth_date: date | None = None
    last_name: str = ""
    first_names: str = ""
    email: str = ""

    def fragments(self) -> list[str]:
        items: list[str] = []
        if self.nir:
            items += [self.nir, self.nir[:13]]
        if self.birth_date:
            d = self.birth_date
            items += [
                d.strftime("%d%m%Y"),
                d.strftime("%Y%m%d"),
                d.strftime("%d%m%y"),
                d.strftime("%d/%m/%Y"),
                d.isoformat(),
            ]
        items += re.split(r"[\s\-']+", self.last_name) + [self.last_name]
        items += re.split(r"[\s\-']+", self.first_names)
        if self.email:
            local = self.email.split("@", 1)[0]
            items += [self.email, local, *re.split(r"[._+\-]+", local)]
        return sorted({item.lower() for item in items if len(item) >= 4})


def rule_message(code: str) -> str:
    """The rule's text in the active language, with the configured lengths filled in."""
    return str(RULE_MESSAGES[code]).format(
        min_length=settings.PASSWORD_MIN_LENGTH, max_length=settings.PASSWORD_MAX_LENGTH
    )


def unmet_rules(password: str, personal: PersonalData | None = None) -> list[str]:
    """The names of the rules `password` breaks, in a stable order; [] when it is acceptable."""
    password = normalize_password(password or "")
    lowered = password.lower()
    unmet = []
    if len(password) < settings.PASSWORD_MIN_LENGTH:
        unmet.append("min_length")
    if len(password) > settings.PASSWORD_MAX_LENGTH:
        unmet.append("max_length")
    if not any(ch.isupper() for ch in password):
        unmet.append("uppercase")
    if not any(ch.islower() for ch in password):
        unmet.append("lowercase")
    if lowered.strip() in _COMMON:
        unmet.append("common")
    if personal and _too_close(lowered, personal.fragments()):
        unmet.append("personal_data")
    return unmet


def _too_close(lowered: str, fragments: list[str]) -> bool:
    compact = re.sub(r"[\s.\-_/]", "", lowered)
    for fragment in fragments:
        plain = re.sub(r"[\s.\-_/]", "", fragment)
        if fragment in lowered or (len(plain) >= 4 and plain in compact):
            return True
        if SequenceMatcher(a=lowered, b=fragment).quick_ratio() >= 0.7 and (
            SequenceMatcher(a=lowered, b=fragment).ratio() >= 0.7
        ):
            return True
    return False


def personal_data_of(member, email: str = "") -> PersonalData:
    return PersonalData(
        nir=member.nir,
        birth_date=member.birth_date,
        last_name=member.last_name,
        first_names=member.first_names,
        email=email or member.email,
    )


class PolicyValidator:
    """Django's validator interface over `unmet_rules`, for forms and `validate_password`."""

    def validate(self, password, user=None):
        personal = None
        if user is not None and getattr(user, "member_id", None):
            personal = personal_data_of(user.member, user.email)
        unmet = unmet_rules(password, personal)
        if unmet:
            raise ValidationError(
                [ValidationError(rule_message(code), code=code) for code in unmet]
            )

    def get_help_text(self):
        return " ".join(rule_message(code) for code in RULES)
