"""Writes on the member register: the register feed (`manage.py import_members`).

The feed format is described in docs/formats.md. Reading the file
(`member_feed_read`), checking one row (`member_row_parse`) and writing the
register (`members_import`) are separate so that the row rules can be tested
on their own and the command stays thin.

Memory stays bounded whatever the size of the file: the file is read one
physical line at a time (with a cap on the line length), rows are written in
batches, rejected rows are handed to `on_error` as soon as their batch is
checked, and the NIRs already seen (for duplicate detection) are kept in a
temporary database table rather than in a Python set.
"""

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date
from typing import IO

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import transaction
from django.utils import timezone
from stdnum import iban as stdnum_iban
from stdnum.exceptions import ValidationError as StdnumError

from portal.audit.services import record
from portal.core.feeds import (
    CONTROL,
    LINE_MAX_BYTES,
    FeedError,  # noqa: F401 (part of this module's interface: raised by member_feed_read)
    FeedRow,
    FieldError,
    InvalidValue,
    Pending,
    RowError,
    SeenKeys,
    batches_process,
    duplicates_mark,
    feed_read,
)

from . import nir as nir_rules
from .models import Cpam, Member

FEED_COLUMNS = (
    "nir",
    "birth_date",
    "last_name",
    "first_names",
    "sex",
    "email",
    "mobile_phone",
    "postal_code",
    "iban",
    "cpam_code",
)
BATCH_SIZE = 1000

LAST_NAME_MAX = Member._meta.get_field("last_name").max_length
FIRST_NAMES_MAX = Member._meta.get_field("first_names").max_length
EMAIL_MAX = 254

# Short reasons for the import report (NirError.message is written for pages).
NIR_REASONS = {
    "required": "obligatoire",
    "format": "13 chiffres et une clé de 2 chiffres attendus",
    "key": "clé incorrecte",
    "sex": "premier chiffre 1 ou 2 attendu",
    "month": "mois de naissance invalide",
    "department": "département de naissance invalide",
    "temporary": "numéro provisoire (NIA/NNP) refusé",
}

# National mobile numbers of the overseas departments (0692…, 0690…) are only
# valid in their own region; a member living there may still have a 06/07
# number from mainland France, so FR is tried first.
OVERSEAS_PHONE_REGIONS = {
    "971": "GP",
    "972": "MQ",
    "973": "GF",
    "974": "RE",
    "975": "PM",
    "976": "YT",
    "977": "BL",
    "978": "MF",
}
MOBILE_TYPES = {
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
}

_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_POSTAL_CODE = re.compile(r"^(?:(?:0[1-9]|[1-8][0-9]|9[0-5])[0-9]{3}|97[1-8][0-9]{2})$")
_CPAM_CODE = re.compile(r"^[0-9A-Z]{3}$")
_SEXES = frozenset(Member.Sex.values)
_email_validator = EmailValidator()

# Model fields written by the feed; postal_address and the rest are left alone.
_UPDATED_FIELDS = (
    "birth_date",
    "last_name",
    "first_names",
    "sex",
    "email",
    "mobile_phone",
    "postal_code",
    "iban",
    "cpam",
)


@dataclass(frozen=True)
class MemberRow:
    """A valid row, normalised: NIR and IBAN compact, phone in E.164."""

    nir: str
    birth_date: date
    last_name: str
    first_names: str
    sex: str
    email: str
    mobile_phone: str
    postal_code: str
    iban: str
    cpam_code: str


@dataclass(frozen=True)
class RowParse:
    """What `member_row_parse` found. `nir` and `cpam_code` are set whenever
    those fields are valid, even if others are not (duplicates and unknown
    CPAMs are reported on invalid rows too)."""

    member: MemberRow | None
    errors: tuple[FieldError, ...]
    nir: str | None
    cpam_code: str | None


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    cpams_created: int = 0
    rows: int = 0
    strict: bool = False
    # --strict with at least one rejected row: every write was rolled back.
    rolled_back: bool = False


# Reading the file


def member_feed_read(source: IO[bytes]) -> Iterator[FeedRow]:
    """Check the header of a register feed and return an iterator over its rows.

    See `portal.core.feeds.feed_read`: raises `FeedError` at once when the
    header is missing or wrong, before anything is imported.
    """
    return feed_read(source, columns=FEED_COLUMNS, line_max_bytes=LINE_MAX_BYTES)


# Checking a row


def member_row_parse(values: Sequence[str], *, today: date) -> RowParse:
    """Check and normalise the 10 values of a feed row. Never raises on bad data.

    Errors come back in column order, one per faulty field, plus the
    cross-field check (sex against the NIR's first digit).
    """
    if len(values) != len(FEED_COLUMNS):
        raise ValueError(f"expected {len(FEED_COLUMNS)} values, got {len(values)}")
    raw = dict(zip(FEED_COLUMNS, (value.strip() for value in values), strict=True))
    cleaners: dict[str, Callable[[str], object]] = {
        "nir": _nir,
        "birth_date": lambda value: _birth_date(value, today=today),
        "last_name": lambda value: _name(value, max_length=LAST_NAME_MAX),
        "first_names": lambda value: _name(value, max_length=FIRST_NAMES_MAX),
        "sex": _sex,
        "email": _email,
        "mobile_phone": lambda value: _mobile_phone(value, postal_code=raw["postal_code"]),
        "postal_code": _postal_code,
        "iban": _iban,
        "cpam_code": _cpam_code,
    }
    cleaned: dict[str, object] = {}
    errors: list[FieldError] = []
    for name, cleaner in cleaners.items():
        value = raw[name]
        try:
            if CONTROL.search(value):
                raise InvalidValue("caractère de contrôle interdit")
            cleaned[name] = cleaner(value)
        except InvalidValue as exc:
            errors.append(FieldError(name, str(exc)))
    if "nir" in cleaned and "sex" in cleaned and cleaned["nir"][0] != cleaned["sex"]:
        cleaned.pop("sex")
        errors.append(FieldError("sex", "ne correspond pas au premier chiffre du NIR"))
    errors.sort(key=lambda error: FEED_COLUMNS.index(error.field))
    member = None if errors else MemberRow(**cleaned)
    return RowParse(
        member=member,
        errors=tuple(errors),
        nir=cleaned.get("nir"),
        cpam_code=cleaned.get("cpam_code"),
    )


def _nir(value: str) -> str:
    try:
        return nir_rules.parse(value, require_key=True).full
    except nir_rules.NirError as exc:
        raise InvalidValue(NIR_REASONS[exc.code]) from exc


def _birth_date(value: str, *, today: date) -> date:
    if not value:
        raise InvalidValue("obligatoire")
    if not _DATE.match(value):
        raise InvalidValue("date AAAA-MM-JJ attendue")
    try:
        parsed = date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidValue("date inexistante") from exc
    if parsed > today:
        raise InvalidValue("date dans le futur")
    return parsed


def _name(value: str, *, max_length: int) -> str:
    value = " ".join(value.split())
    if not value:
        raise InvalidValue("obligatoire")
    if len(value) > max_length:
        raise InvalidValue(f"{max_length} caractères au plus")
    return value


def _sex(value: str) -> str:
    if value not in _SEXES:
        raise InvalidValue("1 (homme) ou 2 (femme) attendu")
    return value


def _email(value: str) -> str:
    if not value:
        return ""
    try:
        if len(value) > EMAIL_MAX:
            raise ValidationError("too long")
        _email_validator(value)
    except ValidationError as exc:
        raise InvalidValue("adresse e-mail invalide") from exc
    return value


def _mobile_phone(value: str, *, postal_code: str) -> str:
    if not value:
        return ""
    regions = ["FR"]
    if _POSTAL_CODE.match(postal_code) and postal_code[:3] in OVERSEAS_PHONE_REGIONS:
        regions.append(OVERSEAS_PHONE_REGIONS[postal_code[:3]])
    reason = "numéro de téléphone invalide"
    for region in regions:
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            continue
        if not phonenumbers.is_valid_number(number):
            continue
        if phonenumbers.number_type(number) not in MOBILE_TYPES:
            reason = "numéro de mobile attendu"
            continue
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    raise InvalidValue(reason)


def _postal_code(value: str) -> str:
    if not _POSTAL_CODE.match(value):
        raise InvalidValue("code postal français à 5 chiffres attendu")
    return value


def _iban(value: str) -> str:
    if not value:
        raise InvalidValue("obligatoire")
    try:
        return stdnum_iban.validate(value)
    except StdnumError as exc:
        raise InvalidValue("IBAN invalide") from exc


def _cpam_code(value: str) -> str:
    value = value.upper()
    if not _CPAM_CODE.match(value):
        raise InvalidValue("code à 3 caractères attendu")
    return value


# Writing the register


def members_import(
    *,
    rows: Iterable[FeedRow],
    strict: bool,
    source_name: str,
    create_cpams: bool = False,
    on_error: Callable[[RowError], None] = lambda error: None,
    on_progress: Callable[[int], None] | None = None,
    batch_size: int = BATCH_SIZE,
) -> ImportReport:
    """Upsert members by NIR from feed rows; report and skip the invalid ones.

    Rows are checked and written `batch_size` at a time, each batch in its own
    transaction, so an interrupted import keeps what it wrote and can simply
    be run again (the upsert is idempotent). Each rejected row's errors go to
    `on_error` in line order; `on_progress` gets the number of rows read after
    each batch.

    `strict`: everything runs in one transaction, rolled back at the end if
    any row was rejected; writes stop at the first rejection but checking goes
    on so that every bad row is reported. One pass, so memory stays bounded
    and the input need not be read twice (the cost is one long transaction,
    which is what "all or nothing" asks for).

    `create_cpams`: an unknown CPAM code creates the CPAM (name = code) instead
    of rejecting the row; for demo and benchmark data, never for the real feed.

    Leaves one audit entry `members.import.completed` with the counts and the
    file name.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    importer = _Importer(
        report=ImportReport(strict=strict),
        strict=strict,
        create_cpams=create_cpams,
        on_error=on_error,
        today=timezone.localdate(),
    )
    with SeenKeys("members_import_seen_nir", key_length=15) as seen:
        importer.seen = seen
        with transaction.atomic() if strict else nullcontext():
            batches_process(
                rows,
                check=importer.check,
                flush=importer.flush,
                batch_size=batch_size,
                on_progress=on_progress,
            )
            if strict and importer.report.rejected:
                transaction.set_rollback(True)
    report = importer.report
    if strict and report.rejected:
        report.rolled_back = True
        report.created = report.updated = report.unchanged = report.cpams_created = 0
    record(
        action="members.import.completed",
        actor="import",
        data={
            "file_name": source_name,
            "rows": report.rows,
            "created": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "rejected": report.rejected,
            "cpams_created": report.cpams_created,
            "strict": strict,
            "rolled_back": report.rolled_back,
        },
    )
    return report


@dataclass
class _Importer:
    report: ImportReport
    strict: bool
    create_cpams: bool
    on_error: Callable[[RowError], None]
    today: date
    seen: SeenKeys | None = None
    # CPAMs are reference data (about a hundred): loaded once.
    cpams: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cpams = dict(Cpam.objects.values_list("code", "id"))

    def check(self, row: FeedRow) -> Pending:
        if row.problem:
            return Pending(row.line, [row.problem])
        parsed = member_row_parse(row.values, today=self.today)
        errors = list(parsed.errors)
        if parsed.cpam_code and parsed.cpam_code not in self.cpams and not self.create_cpams:
            errors.append(FieldError("cpam_code", "CPAM inconnue"))
        return Pending(row.line, errors, key=parsed.nir, row=parsed.member)

    def flush(self, batch: list[Pending]) -> None:
        duplicates_mark(batch, seen=self.seen, field="nir", what="NIR")
        rejected = [pending for pending in batch if pending.errors]
        for pending in rejected:
            for error in pending.errors:
                self.on_error(RowError(pending.line, error.field, error.reason))
        self.report.rejected += len(rejected)
        self.report.rows += len(batch)
        valid = [pending.row for pending in batch if not pending.errors]
        if self.strict and self.report.rejected:
            return  # everything will be rolled back: only checking goes on
        if valid:
            with transaction.atomic():
                self._write(valid)

    def _write(self, rows: list[MemberRow]) -> None:
        missing = {row.cpam_code for row in rows} - self.cpams.keys()
        if missing:  # only with create_cpams: otherwise such rows were rejected
            Cpam.objects.bulk_create(
                [Cpam(code=code, name=code) for code in sorted(missing)], ignore_conflicts=True
            )
            self.cpams.update(Cpam.objects.filter(code__in=missing).values_list("code", "id"))
            self.report.cpams_created += len(missing)
        existing = {
            member.nir: member for member in Member.objects.filter(nir__in=[r.nir for r in rows])
        }
        now = timezone.now()
        created: list[Member] = []
        changed: list[Member] = []
        for row in rows:
            values = _member_values(row, cpam_id=self.cpams[row.cpam_code])
            member = existing.get(row.nir)
            if member is None:
                created.append(Member(nir=row.nir, **values))
            elif _member_differs(member, values):
                for name, value in values.items():
                    setattr(member, name, value)
                member.updated_at = now  # bulk_update does not apply auto_now
                changed.append(member)
            else:
                self.report.unchanged += 1
        Member.objects.bulk_create(created)
        Member.objects.bulk_update(changed, [*_UPDATED_FIELDS, "updated_at"])
        self.report.created += len(created)
        self.report.updated += len(changed)


def _member_values(row: MemberRow, *, cpam_id: int) -> dict[str, object]:
    return {
        "birth_date": row.birth_date,
        "last_name": row.last_name,
        "first_names": row.first_names,
        "sex": row.sex,
        "email": row.email,
        "mobile_phone": row.mobile_phone,
        "postal_code": row.postal_code,
        "iban": row.iban,
        "cpam_id": cpam_id,
    }


def _member_differs(member: Member, values: dict[str, object]) -> bool:
    for name, value in values.items():
        current = getattr(member, name)
        if name == "mobile_phone":
            current = current.as_e164 if current else ""
        if current != value:
            return True
    return False
