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

import codecs
import csv
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date
from typing import IO, NamedTuple

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from stdnum import iban as stdnum_iban
from stdnum.exceptions import ValidationError as StdnumError

from portal.audit.services import record

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
# A register line is about 200 characters; anything far longer is not a row,
# and reading it whole would let one bad line exhaust memory.
LINE_MAX_BYTES = 4096

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
# Bytes that are not UTF-8 are decoded as lone surrogates (surrogateescape),
# so that one bad line is reported instead of stopping the whole file.
_UNDECODABLE = re.compile("[\udc80-\udcff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc
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


class FeedError(Exception):
    """The file as a whole cannot be read (missing or wrong header). Message in French."""


class FieldError(NamedTuple):
    field: str
    reason: str


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


@dataclass(frozen=True)
class FeedRow:
    """One non-empty line of the feed: its values, or why it could not be split."""

    line: int
    values: tuple[str, ...] = ()
    problem: FieldError | None = None


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
    """Check the header of a feed and return an iterator over its rows.

    `source` is a binary file; it is read one line at a time and each line is
    decoded on its own, so a line that is not UTF-8 is reported as such
    instead of stopping the file. Raises `FeedError` at once when the header
    is missing or wrong, before anything is imported. A BOM and CRLF line
    ends are accepted, empty lines are skipped; line numbers are those of the
    file (header = 1).
    """
    lines = _physical_lines(source)
    for number, line in lines:
        if line is None:
            raise FeedError(f"Ligne {number} trop longue : ce n’est pas un en-tête.")
        if _UNDECODABLE.search(line):
            raise FeedError("En-tête illisible : le fichier doit être encodé en UTF-8.")
        try:
            header = _split(line)
        except csv.Error as exc:
            raise FeedError("En-tête illisible : ligne CSV mal formée.") from exc
        if _is_blank(header):
            continue
        _check_header(header)
        return _rows(lines)
    raise FeedError("Fichier vide : la ligne d’en-tête est absente.")


def _physical_lines(source: IO[bytes]) -> Iterator[tuple[int, str | None]]:
    """(line number, decoded line) for each line; None when over LINE_MAX_BYTES."""
    number = 0
    while line := source.readline(LINE_MAX_BYTES):
        number += 1
        if len(line) == LINE_MAX_BYTES and not line.endswith(b"\n"):
            while (rest := source.readline(LINE_MAX_BYTES)) and not rest.endswith(b"\n"):
                pass
            yield number, None
            continue
        if number == 1:
            line = line.removeprefix(codecs.BOM_UTF8)
        yield number, line.decode("utf-8", errors="surrogateescape")


def _split(line: str) -> list[str]:
    # One reader per line: a stray quote then spoils this line only, instead
    # of swallowing the rest of the file into one field.
    return next(csv.reader([line], strict=True), [])


def _is_blank(values: Sequence[str]) -> bool:
    return not any(value.strip() for value in values)


def _check_header(header: list[str]) -> None:
    names = [name.strip() for name in header]
    if tuple(names) == FEED_COLUMNS:
        return
    expected = ",".join(FEED_COLUMNS)
    # Echo what was found only when it looks like column names: a missing
    # header means the first line is a member's row, which must not be logged.
    if all(re.fullmatch(r"[a-z_]{1,30}", name) for name in names):
        found = ",".join(names)
        raise FeedError(f"En-tête incorrect : attendu « {expected} », trouvé « {found} ».")
    raise FeedError(f"En-tête manquant ou incorrect : la ligne 1 doit être « {expected} ».")


def _rows(lines: Iterator[tuple[int, str | None]]) -> Iterator[FeedRow]:
    for number, line in lines:
        if line is None:
            yield FeedRow(number, problem=FieldError("row", "ligne trop longue"))
            continue
        if _UNDECODABLE.search(line):
            yield FeedRow(number, problem=FieldError("row", "encodage invalide (UTF-8 attendu)"))
            continue
        try:
            values = _split(line)
        except csv.Error:
            yield FeedRow(number, problem=FieldError("row", "ligne CSV mal formée (guillemets)"))
            continue
        if _is_blank(values):
            continue
        if len(values) != len(FEED_COLUMNS):
            reason = f"{len(values)} colonnes au lieu de {len(FEED_COLUMNS)}"
            yield FeedRow(number, problem=FieldError("row", reason))
            continue
        yield FeedRow(number, values=tuple(values))


# Checking a row


class _Invalid(ValueError):
    pass


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
            if _CONTROL.search(value):
                raise _Invalid("caractère de contrôle interdit")
            cleaned[name] = cleaner(value)
        except _Invalid as exc:
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
        raise _Invalid(NIR_REASONS[exc.code]) from exc


def _birth_date(value: str, *, today: date) -> date:
    if not value:
        raise _Invalid("obligatoire")
    if not _DATE.match(value):
        raise _Invalid("date AAAA-MM-JJ attendue")
    try:
        parsed = date.fromisoformat(value)
    except ValueError as exc:
        raise _Invalid("date inexistante") from exc
    if parsed > today:
        raise _Invalid("date dans le futur")
    return parsed


def _name(value: str, *, max_length: int) -> str:
    value = " ".join(value.split())
    if not value:
        raise _Invalid("obligatoire")
    if len(value) > max_length:
        raise _Invalid(f"{max_length} caractères au plus")
    return value


def _sex(value: str) -> str:
    if value not in _SEXES:
        raise _Invalid("1 (homme) ou 2 (femme) attendu")
    return value


def _email(value: str) -> str:
    if not value:
        return ""
    try:
        if len(value) > EMAIL_MAX:
            raise ValidationError("too long")
        _email_validator(value)
    except ValidationError as exc:
        raise _Invalid("adresse e-mail invalide") from exc
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
    raise _Invalid(reason)


def _postal_code(value: str) -> str:
    if not _POSTAL_CODE.match(value):
        raise _Invalid("code postal français à 5 chiffres attendu")
    return value


def _iban(value: str) -> str:
    if not value:
        raise _Invalid("obligatoire")
    try:
        return stdnum_iban.validate(value)
    except StdnumError as exc:
        raise _Invalid("IBAN invalide") from exc


def _cpam_code(value: str) -> str:
    value = value.upper()
    if not _CPAM_CODE.match(value):
        raise _Invalid("code à 3 caractères attendu")
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
    with _SeenNirs() as seen:
        importer.seen = seen
        with transaction.atomic() if strict else nullcontext():
            batch: list[_Pending] = []
            for row in rows:
                batch.append(importer.check(row))
                if len(batch) >= batch_size:
                    importer.flush(batch)
                    batch = []
                    if on_progress:
                        on_progress(importer.report.rows)
            if batch:
                importer.flush(batch)
                if on_progress:
                    on_progress(importer.report.rows)
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
class _Pending:
    line: int
    errors: list[FieldError]
    nir: str | None = None
    member: MemberRow | None = None


class _SeenNirs:
    """The NIRs read so far in this file, with their line, for duplicate detection.

    A temporary table (private to this connection, dropped at the end) keeps
    Python memory flat: a million NIRs in a set would take about 100 MB. It
    needs the same connection for the whole import, which Django gives a
    management command.
    """

    _CREATE = (
        "CREATE TEMPORARY TABLE members_import_seen_nir "
        "(nir VARCHAR(15) PRIMARY KEY, line BIGINT NOT NULL)"
    )
    _DROP = "DROP TABLE members_import_seen_nir"
    _INSERT = "INSERT INTO members_import_seen_nir (nir, line) VALUES (%s, %s)"
    _SELECT = "SELECT nir, line FROM members_import_seen_nir WHERE nir IN ({})"

    def __enter__(self) -> "_SeenNirs":
        with connection.cursor() as cursor:
            cursor.execute(self._CREATE)
        return self

    def __exit__(self, exc_type, exc, traceback) -> bool:
        try:
            with connection.cursor() as cursor:
                cursor.execute(self._DROP)
        except DatabaseError:
            # After a database error the connection may refuse any statement;
            # the original error matters more than the cleanup.
            if exc is None:
                raise
        return False

    def lines_of(self, nirs: Sequence[str]) -> dict[str, int]:
        if not nirs:
            return {}
        # Only placeholders are formatted in; the NIRs go as parameters.
        sql = self._SELECT.format(", ".join(["%s"] * len(nirs)))
        with connection.cursor() as cursor:
            cursor.execute(sql, list(nirs))
            return dict(cursor.fetchall())

    def add(self, lines: dict[str, int]) -> None:
        with connection.cursor() as cursor:
            cursor.executemany(self._INSERT, list(lines.items()))


@dataclass
class _Importer:
    report: ImportReport
    strict: bool
    create_cpams: bool
    on_error: Callable[[RowError], None]
    today: date
    seen: _SeenNirs | None = None
    # CPAMs are reference data (about a hundred): loaded once.
    cpams: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cpams = dict(Cpam.objects.values_list("code", "id"))

    def check(self, row: FeedRow) -> "_Pending":
        if row.problem:
            return _Pending(row.line, [row.problem])
        parsed = member_row_parse(row.values, today=self.today)
        errors = list(parsed.errors)
        if parsed.cpam_code and parsed.cpam_code not in self.cpams and not self.create_cpams:
            errors.append(FieldError("cpam_code", "CPAM inconnue"))
        return _Pending(row.line, errors, nir=parsed.nir, member=parsed.member)

    def flush(self, batch: list[_Pending]) -> None:
        self._mark_duplicates(batch)
        rejected = [pending for pending in batch if pending.errors]
        for pending in rejected:
            for error in pending.errors:
                self.on_error(RowError(pending.line, error.field, error.reason))
        self.report.rejected += len(rejected)
        self.report.rows += len(batch)
        valid = [pending.member for pending in batch if not pending.errors]
        if self.strict and self.report.rejected:
            return  # everything will be rolled back: only checking goes on
        if valid:
            with transaction.atomic():
                self._write(valid)

    def _mark_duplicates(self, batch: list[_Pending]) -> None:
        """The second and later rows with the same NIR are rejected, in this
        batch or across batches; the first one is kept (if valid)."""
        first_line: dict[str, int] = {}
        for pending in batch:
            if pending.nir:
                first_line.setdefault(pending.nir, pending.line)
        earlier = self.seen.lines_of(list(first_line))
        for pending in batch:
            if not pending.nir:
                continue
            line = earlier.get(pending.nir, first_line[pending.nir])
            if line != pending.line:
                pending.errors.insert(0, FieldError("nir", f"NIR en double (déjà ligne {line})"))
        self.seen.add({nir: line for nir, line in first_line.items() if nir not in earlier})

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
