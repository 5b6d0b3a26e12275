"""The NIR (numéro de sécurité sociale): parsing and the fund's business rules.

`stdnum.fr.nir` checks the format and the key of the 15-character form; the
rules about what a NIR may contain for an online account are ours:

- sex digit 1 or 2 (7 and 8 are temporary numbers, NIA/NNP: refused with
  their own message);
- month 01–12, 20–42 or 50–99 (the last two ranges exist for people whose
  month of birth is unknown);
- department 01–95, 2A, 2B, 97x (overseas, three digits) or 99 (born abroad).

Login uses the first 13 characters; account creation and the register use
the 15. Spaces (and dots) are accepted in input.
"""

import re
from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.fr import nir as stdnum_nir


class NirError(ValueError):
    """`code` is stable (used by the API and tests); `message` is for pages, as a plain
    `str` in the language active when the error is raised (French by default)."""

    MESSAGES = {
        "required": _("Saisissez votre numéro de sécurité sociale."),
        "format": _(
            "Le numéro de sécurité sociale comporte 13 chiffres, suivis d’une clé de 2 chiffres."
        ),
        "key": _(
            "Le numéro de sécurité sociale et sa clé ne correspondent pas. Vérifiez votre saisie."
        ),
        "sex": _("Le premier chiffre du numéro de sécurité sociale doit être 1 ou 2."),
        "month": _("Le mois de naissance contenu dans le numéro n’est pas valide."),
        "department": _("Le département de naissance contenu dans le numéro n’est pas valide."),
        "temporary": _(
            "Ce numéro est un numéro provisoire : il ne permet pas encore de créer un compte "
            "en ligne. Contactez votre caisse au 36 46."
        ),
    }

    def __init__(self, code: str):
        self.code = code
        self.message = str(self.MESSAGES[code])
        super().__init__(code)


_SEPARATORS = re.compile(r"[\s.\-]")
_SHAPE = re.compile(r"^[0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{6}(?:[0-9]{2})?$")


@dataclass(frozen=True)
class Nir:
    number: str  # the 13 characters (login identifier)
    key: str | None  # the 2-digit key, when given

    @property
    def full(self) -> str:
        return self.number + (self.key or "")

    @property
    def sex(self) -> str:
        return self.number[0]


def compact(value: str) -> str:
    return _SEPARATORS.sub("", value or "").upper()


def _check_rules(number: str) -> None:
    sex, month, department = number[0], int(number[3:5]), number[5:7]
    if sex in "78":
        raise NirError("temporary")
    if sex not in "12":
        raise NirError("sex")
    if not (1 <= month <= 12 or 20 <= month <= 42 or 50 <= month <= 99):
        raise NirError("month")
    if department in ("2A", "2B", "99") or department == "97":
        return
    if not department.isdigit() or not 1 <= int(department) <= 95:
        raise NirError("department")


def parse(value: str, *, require_key: bool) -> Nir:
    """Parse a NIR typed by a person or read from a feed. Raises `NirError`."""
    number = compact(value)
    if not number:
        raise NirError("required")
    if not _SHAPE.match(number) or (require_key and len(number) != 15):
        raise NirError("format")
    _check_rules(number[:13])
    if len(number) == 15:
        try:
            stdnum_nir.validate(number)
        except StdnumError as exc:
            raise NirError("key") from exc
        return Nir(number[:13], number[13:])
    return Nir(number, None)


def parse_login(value: str) -> Nir:
    """The login form: 13 characters, or 15 with a key that must then be right."""
    return parse(value, require_key=False)


def key_for(number13: str) -> str:
    return stdnum_nir.calc_check_digits(number13 + "00")


def mask(number: str) -> str:
    """All but the last 4 characters of the 13 hidden: `•••••••••1234`."""
    number = compact(number)[:13]
    return "•" * (len(number) - 4) + number[-4:]
