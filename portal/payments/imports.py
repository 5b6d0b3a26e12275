"""Writes of the payment feeds: `manage.py import_reimbursements` and `import_allowances`.

The formats are described in docs/formats.md. As for the register feed
(`portal.members.services`), reading the file (`*_feed_read`), checking one
row (`*_row_parse`, pure, no database) and writing (`*_import`) are separate.

Every row is checked in Python, field by field and then across fields
(amounts that add up, coherent dates); the checks that need the database
(member and beneficiary known, a stoppage not moved to another member,
duplicates in the file) are made once per batch. The good rows of a batch
are then written in one transaction:

- on PostgreSQL ("bulk" path), copied with `COPY` into a temporary staging
  table and upserted by one `INSERT … ON CONFLICT … DO UPDATE … WHERE`
  statement that only touches rows that changed;
- elsewhere (SQLite in development and tests), through the ORM.

Both paths count created / updated / unchanged rows the same way, and both
leave a `NewPaymentNotice` for each member with a payment that this import
made "paid" (created paid, or moved from in progress to paid), in the
batch's transaction. At the end, `portal.payments.notifications` turns the
notices into one "Nouveau paiement" email per member.

The reimbursements feed is the big one (tens of millions of lines), so its
bulk path goes further: a fast path (`reimbursement_row_precheck`) vouches
for the rows that are valid as they stand without building Decimals or
dates, their text is copied as it is, and the database checks of a batch
(duplicates, members, beneficiaries) are one SQL statement over the staging
table rather than Python over each row. Checking the rows can also be
spread over worker processes (`workers`, `portal.payments.parallel`) while
this process writes: same batches, same report, in the same order.

Memory stays bounded whatever the size of the file: lines are read one at a
time, rows go by batches, and the keys already seen (duplicates, stoppages
described on several lines) are kept in temporary tables.
"""

import abc
import itertools
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, nullcontext
from dataclasses import dataclass, fields
from datetime import date
from decimal import Decimal
from functools import lru_cache
from itertools import islice
from typing import IO, Any, NamedTuple

from django.db import DatabaseError, IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from portal.audit.services import record
from portal.core.feeds import (
    CONTROL,
    FeedRow,
    FieldError,
    InvalidValue,
    Pending,
    RowError,
    SeenKeys,
    duplicates_mark,
)
from portal.members import nir as nir_rules
from portal.members.models import Beneficiary, Member
from portal.members.services import NIR_REASONS

from . import notifications, parallel
from .models import AllowancePayment, NewPaymentNotice, ReimbursementLine, WorkStoppage
from .parallel import Chunk, FeedFile, chunk_line_rows, chunk_lines, chunk_rows

REIMBURSEMENT_COLUMNS = (
    "line_id",
    "nir",
    "beneficiary_nir",
    "care_date",
    "act_code",
    "act_label",
    "professional",
    "amount_paid",
    "base_amount",
    "rate",
    "gross_reimbursed",
    "participation_forfaitaire",
    "franchise",
    "net_reimbursed",
    "payee",
    "payment_date",
    "payment_reference",
    "transmitted_to_complementary",
    "status",
)
ALLOWANCE_COLUMNS = (
    "payment_id",
    "nir",
    "stoppage_id",
    "stoppage_kind",
    "stoppage_start",
    "stoppage_end",
    "period_start",
    "period_end",
    "days",
    "daily_gross",
    "gross",
    "csg",
    "crds",
    "net",
    "payment_date",
    "status",
)
BATCH_SIZE = 5000

CENT = Decimal("0.01")
CSG_RATE = Decimal("0.062")
CRDS_RATE = Decimal("0.005")
PAID = "paid"

_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]*")
_AMOUNT = re.compile(r"[0-9]{1,10}\.[0-9]{2}")
_RATE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,2})?")
_DAYS = re.compile(r"[0-9]{1,4}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


# Reading the files


def reimbursement_feed_read(source: IO[bytes]) -> FeedFile:
    """Check the header of a reimbursements feed; rows follow (see `feed_read`).

    The rows can also be checked in worker processes (`workers` of
    `reimbursements_import`), which then read the rest of `source` themselves.
    """
    return FeedFile(source, columns=REIMBURSEMENT_COLUMNS)


def allowance_feed_read(source: IO[bytes]) -> FeedFile:
    """Check the header of a daily-allowances feed; rows follow (see `feed_read`)."""
    return FeedFile(source, columns=ALLOWANCE_COLUMNS)


# Checking one row


@dataclass(frozen=True, slots=True)
class ReimbursementRow:
    """A valid reimbursement row; `beneficiary_nir` is "" for the member."""

    line_id: str
    nir: str
    beneficiary_nir: str
    care_date: date
    act_code: str
    act_label: str
    professional: str
    amount_paid: Decimal
    base_amount: Decimal
    rate: Decimal
    gross_reimbursed: Decimal
    participation_forfaitaire: Decimal
    franchise: Decimal
    net_reimbursed: Decimal
    payee: str
    payment_date: date | None
    payment_reference: str
    transmitted_to_complementary: bool
    status: str


@dataclass(frozen=True, slots=True)
class AllowanceRow:
    """A valid daily-allowance row; `stoppage_end` is None while the stoppage is open."""

    payment_id: str
    nir: str
    stoppage_id: str
    stoppage_kind: str
    stoppage_start: date
    stoppage_end: date | None
    period_start: date
    period_end: date
    days: int
    daily_gross: Decimal
    gross: Decimal
    csg: Decimal
    crds: Decimal
    net: Decimal
    payment_date: date | None
    status: str

    @property
    def stoppage(self) -> str:
        """What every row of one stoppage must repeat identically."""
        return stoppage_signature(
            self.nir, self.stoppage_kind, self.stoppage_start, self.stoppage_end
        )


def stoppage_signature(nir: str, kind: str, start: date, end: date | None) -> str:
    return f"{nir}|{kind}|{start.isoformat()}|{end.isoformat() if end else ''}"


@dataclass(frozen=True)
class RowParse:
    """What a `*_row_parse` found. `key` (the row's id), `nir`, `beneficiary_nir`
    and `stoppage` (the stoppage's signature) are set whenever their fields
    are valid, even when others are not, so that duplicates and unknown
    members are reported on invalid rows too."""

    row: Any
    errors: tuple[FieldError, ...]
    key: str | None = None
    nir: str | None = None
    beneficiary_nir: str | None = None
    stoppage_id: str | None = None
    stoppage: str | None = None


def _identifier(max_length: int) -> Callable[[str], str]:
    def clean(value: str) -> str:
        if not value:
            raise InvalidValue("obligatoire")
        if len(value) > max_length or not _IDENTIFIER.fullmatch(value):
            raise InvalidValue(
                f"identifiant attendu : {max_length} caractères au plus, "
                "lettres, chiffres et . _ : / -"
            )
        return value

    return clean


def _text(max_length: int, *, required: bool = True) -> Callable[[str], str]:
    def clean(value: str) -> str:
        value = " ".join(value.split())
        if not value and required:
            raise InvalidValue("obligatoire")
        if len(value) > max_length:
            raise InvalidValue(f"{max_length} caractères au plus")
        return value

    return clean


# A member has many lines in a row, and care dates fall in one year: the
# results of these two cleaners are cached (bounded, errors are not cached).
@lru_cache(maxsize=65_536)
def _nir(value: str) -> str:
    try:
        return nir_rules.parse(value, require_key=True).full
    except nir_rules.NirError as exc:
        raise InvalidValue(NIR_REASONS[exc.code]) from exc


def _optional_nir(value: str) -> str:
    return _nir(value) if value else ""


@lru_cache(maxsize=4096)
def _date(value: str) -> date:
    if not value:
        raise InvalidValue("obligatoire")
    if not _DATE.fullmatch(value):
        raise InvalidValue("date AAAA-MM-JJ attendue")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidValue("date inexistante") from exc


def _optional_date(value: str) -> date | None:
    return _date(value) if value else None


def _amount(value: str) -> Decimal:
    if _AMOUNT.fullmatch(value):
        return Decimal(value)
    if not value:
        raise InvalidValue("obligatoire")
    if value.startswith("-"):
        raise InvalidValue("montant négatif interdit")
    raise InvalidValue("montant en euros attendu, avec un point et 2 décimales (ex. 12.50)")


def _rate(value: str) -> Decimal:
    if not value:
        raise InvalidValue("obligatoire")
    if not _RATE.fullmatch(value) or Decimal(value) > 100:
        raise InvalidValue("taux en pourcentage attendu, de 0 à 100 (ex. 70 ou 65.5)")
    return Decimal(value)


def _days(value: str) -> int:
    if not value:
        raise InvalidValue("obligatoire")
    if not _DAYS.fullmatch(value) or int(value) < 1:
        raise InvalidValue("nombre entier de jours attendu (1 ou plus)")
    return int(value)


def _choice(choices: Sequence[str]) -> Callable[[str], str]:
    allowed = frozenset(choices)
    reason = " ou ".join(", ".join(choices).rsplit(", ", 1)) + " attendu"

    def clean(value: str) -> str:
        if value not in allowed:
            raise InvalidValue(reason)
        return value

    return clean


def _yes_no(value: str) -> bool:
    if value == "yes":
        return True
    if value == "no":
        return False
    raise InvalidValue("yes ou no attendu")


_REIMBURSEMENT_CLEANERS: dict[str, Callable[[str], Any]] = {
    "line_id": _identifier(ReimbursementLine._meta.get_field("line_id").max_length),
    "nir": _nir,
    "beneficiary_nir": _optional_nir,
    "care_date": _date,
    "act_code": _identifier(ReimbursementLine._meta.get_field("act_code").max_length),
    "act_label": _text(ReimbursementLine._meta.get_field("act_label").max_length),
    "professional": _text(ReimbursementLine._meta.get_field("professional").max_length),
    "amount_paid": _amount,
    "base_amount": _amount,
    "rate": _rate,
    "gross_reimbursed": _amount,
    "participation_forfaitaire": _amount,
    "franchise": _amount,
    "net_reimbursed": _amount,
    "payee": _choice(ReimbursementLine.Payee.values),
    "payment_date": _optional_date,
    "payment_reference": _text(
        ReimbursementLine._meta.get_field("payment_reference").max_length, required=False
    ),
    "transmitted_to_complementary": _yes_no,
    "status": _choice(ReimbursementLine.Status.values),
}
_ALLOWANCE_CLEANERS: dict[str, Callable[[str], Any]] = {
    "payment_id": _identifier(AllowancePayment._meta.get_field("payment_id").max_length),
    "nir": _nir,
    "stoppage_id": _identifier(WorkStoppage._meta.get_field("stoppage_id").max_length),
    "stoppage_kind": _choice(WorkStoppage.Kind.values),
    "stoppage_start": _date,
    "stoppage_end": _optional_date,
    "period_start": _date,
    "period_end": _date,
    "days": _days,
    "daily_gross": _amount,
    "gross": _amount,
    "csg": _amount,
    "crds": _amount,
    "net": _amount,
    "payment_date": _optional_date,
    "status": _choice(AllowancePayment.Status.values),
}


def _clean(
    values: Sequence[str], cleaners: dict[str, Callable[[str], Any]]
) -> tuple[dict[str, Any], list[FieldError]]:
    if len(values) != len(cleaners):
        raise ValueError(f"expected {len(cleaners)} values, got {len(values)}")
    cleaned: dict[str, Any] = {}
    errors: list[FieldError] = []
    # One search over the whole row; field by field only when it found something.
    controls = CONTROL.search("".join(values)) is not None
    for (name, cleaner), value in zip(cleaners.items(), values, strict=True):
        value = value.strip()
        try:
            if controls and CONTROL.search(value):
                raise InvalidValue("caractère de contrôle interdit")
            cleaned[name] = cleaner(value)
        except InvalidValue as exc:
            errors.append(FieldError(name, str(exc)))
    return cleaned, errors


def _off_by_more_than_a_cent(expected: Decimal, actual: Decimal) -> bool:
    return abs(expected - actual) > CENT


def _fail(cleaned: dict, errors: list[FieldError], name: str, reason: str) -> None:
    cleaned.pop(name, None)
    errors.append(FieldError(name, reason))


def _paid_date_check(cleaned: dict, errors: list[FieldError], *, today: date) -> None:
    """A paid row has a payment date, not after today; an in-progress row may
    carry the planned date, or none."""
    if cleaned.get("status") != PAID or "payment_date" not in cleaned:
        return
    paid_on = cleaned["payment_date"]
    if paid_on is None:
        _fail(cleaned, errors, "payment_date", "obligatoire quand status vaut paid")
    elif paid_on > today:
        _fail(cleaned, errors, "payment_date", "date dans le futur pour un paiement effectué")


def reimbursement_row_parse(values: Sequence[str], *, today: date) -> RowParse:
    """Check and normalise the 19 values of a reimbursements row. Never raises on bad data.

    Errors come back in column order, one per faulty field: first each field
    on its own, then the rules across fields (checked only when the fields
    they involve are valid):

    - `gross_reimbursed` = `base_amount` × `rate` / 100, within a cent;
    - `net_reimbursed` = `gross_reimbursed` − `participation_forfaitaire` −
      `franchise`, within a cent;
    - `care_date` not after today; `payment_date` not before `care_date`;
    - a paid line (`status` = paid) has a `payment_date`, not after today, and
      a `payment_reference`.
    """
    c, errors = _clean(values, _REIMBURSEMENT_CLEANERS)
    if {"base_amount", "rate", "gross_reimbursed"} <= c.keys() and _off_by_more_than_a_cent(
        c["base_amount"] * c["rate"] / 100, c["gross_reimbursed"]
    ):
        _fail(
            c,
            errors,
            "gross_reimbursed",
            "différent de base_amount × rate / 100 (à 1 centime près)",
        )
    if {"gross_reimbursed", "participation_forfaitaire", "franchise", "net_reimbursed"} <= c.keys():
        net = c["gross_reimbursed"] - c["participation_forfaitaire"] - c["franchise"]
        if _off_by_more_than_a_cent(net, c["net_reimbursed"]):
            _fail(
                c,
                errors,
                "net_reimbursed",
                "différent de gross_reimbursed − participation_forfaitaire − franchise "
                "(à 1 centime près)",
            )
    if "care_date" in c and c["care_date"] > today:
        _fail(c, errors, "care_date", "date dans le futur")
    if c.get("payment_date") and "care_date" in c and c["payment_date"] < c["care_date"]:
        _fail(c, errors, "payment_date", "antérieure à care_date")
    _paid_date_check(c, errors, today=today)
    if c.get("status") == PAID and c.get("payment_reference") == "":
        _fail(c, errors, "payment_reference", "obligatoire quand status vaut paid")
    errors.sort(key=lambda error: REIMBURSEMENT_COLUMNS.index(error.field))
    return RowParse(
        row=None if errors else ReimbursementRow(**c),
        errors=tuple(errors),
        key=c.get("line_id"),
        nir=c.get("nir"),
        beneficiary_nir=c.get("beneficiary_nir"),
    )


# The fast path: nearly every row of a real feed is valid and already in its
# canonical form (no space to trim, NIRs without separators, single spaces in
# texts). `reimbursement_row_precheck` recognises such rows with one regex over
# the whole row, cached NIR and date checks, and integer arithmetic on cents,
# without building a Decimal or a date; the bulk import then copies their text
# as it stands. Any row it does not vouch for goes through
# `reimbursement_row_parse`, which finds and words the errors: the fast path
# may only ever say "valid" where the full parse says so, with the same values
# (a property test holds it to that).

# Single spaces inside, and none of: other whitespace, control characters,
# backslash (COPY's escape), comma and double quote (so that a line of the
# file can be matched as it stands), undecodable bytes (lone surrogates).
_FAST_CHAR = r'[^\s\x00-\x1f\x7f-\x9f\\,"\udc80-\udcff]'
_FAST_TEXT = f"{_FAST_CHAR}+(?: {_FAST_CHAR}+)*"
_FAST_NIR = r"[0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{8}"


def _fast_identifier(field: str) -> str:
    max_length = ReimbursementLine._meta.get_field(field).max_length
    return rf"[A-Za-z0-9][A-Za-z0-9._:/-]{{0,{max_length - 1}}}"


def _fast_choice(choices: Sequence[str]) -> str:
    return "(?:" + "|".join(re.escape(choice) for choice in choices) + ")"


_FAST_FIELDS = [
    _fast_identifier("line_id"),
    _FAST_NIR,
    f"(?:{_FAST_NIR})?",
    _DATE.pattern,
    _fast_identifier("act_code"),
    _FAST_TEXT,
    _FAST_TEXT,
    *[_AMOUNT.pattern] * 2,
    _RATE.pattern,
    *[_AMOUNT.pattern] * 4,
    _fast_choice(ReimbursementLine.Payee.values),
    f"(?:{_DATE.pattern})?",
    f"(?:{_FAST_TEXT})?",
    "(?:yes|no)",
    _fast_choice(ReimbursementLine.Status.values),
]
# The values joined by "\x00", which no field may contain: each part of the
# pattern then matches exactly one value.
_FAST_VALUES = re.compile("\x00".join(_FAST_FIELDS))
# A line of the file as it stands: no quote and no comma inside a field, so
# that splitting it on commas gives what `feed_read` gives.
_FAST_LINE = re.compile(",".join(_FAST_FIELDS) + r"\r?\n?")
_TEXT_MAX = {
    name: ReimbursementLine._meta.get_field(name).max_length
    for name in ("act_label", "professional", "payment_reference")
}


@lru_cache(maxsize=65_536)
def _canonical_nir(value: str) -> bool:
    try:
        return _nir(value) == value
    except InvalidValue:
        return False


@lru_cache(maxsize=4096)
def _real_date(value: str) -> bool:
    try:
        _date(value)
    except InvalidValue:
        return False
    return True


def _cents(amount: str) -> int:
    return int(amount.replace(".", ""))


def reimbursement_row_precheck(values: Sequence[str], *, today: str) -> bool:
    """True when `reimbursement_row_parse` would find no error in these 19
    values and keep each of them as it stands (`today` in ISO form).

    False means "not sure": the row must go through `reimbursement_row_parse`.
    """
    if len(values) != len(REIMBURSEMENT_COLUMNS):
        return False
    if not _FAST_VALUES.fullmatch("\x00".join(values)):
        return False
    return _fast_rules(values, today=today)


def _fast_rules(values: Sequence[str], *, today: str) -> bool:
    """The rules beyond the shape of each value, for values `_FAST_FIELDS` match."""
    (_, nir, beneficiary_nir, care_date, _, label, professional, _, base, rate, gross,
     flat, franchise, net, _, paid_on, reference, _, status) = values  # fmt: skip
    if (
        len(label) > _TEXT_MAX["act_label"]
        or len(professional) > _TEXT_MAX["professional"]
        or len(reference) > _TEXT_MAX["payment_reference"]
        or not _canonical_nir(nir)
        or (beneficiary_nir and not _canonical_nir(beneficiary_nir))
        # Valid ISO dates compare as strings.
        or not _real_date(care_date)
        or care_date > today
        or (paid_on and (not _real_date(paid_on) or paid_on < care_date))
        or (status == PAID and (not paid_on or paid_on > today or not reference))
    ):
        return False
    rate_hundredths = _rate_hundredths(rate)
    if rate_hundredths > 10_000:
        return False
    # gross = base × rate / 100 within a cent, in cents × hundredths of a percent:
    # |base_c × rate_h / 10^4 − gross_c| ≤ 1.
    gross_cents = _cents(gross)
    if abs(_cents(base) * rate_hundredths - gross_cents * 10_000) > 10_000:
        return False
    return abs(gross_cents - _cents(flat) - _cents(franchise) - _cents(net)) <= 1


@lru_cache(maxsize=1024)
def _rate_hundredths(rate: str) -> int:
    """A rate that `_RATE` matches, in hundredths of a percent (a feed has few rates)."""
    whole, _, decimals = rate.partition(".")
    return int(whole) * 100 + (int(decimals.ljust(2, "0")) if decimals else 0)


def allowance_row_parse(values: Sequence[str], *, today: date) -> RowParse:
    """Check and normalise the 16 values of a daily-allowances row. Never raises on bad data.

    Rules across fields (checked when the fields they involve are valid):

    - `stoppage_start` not after today, `stoppage_end` (when given) not before it;
    - `period_start` ≤ `period_end`, both within the stoppage, `period_end`
      not after today (allowances are paid for days gone by);
    - `days` = the number of days from `period_start` to `period_end` inclusive;
    - `gross` = `daily_gross` × `days`, `csg` = 6.2 % and `crds` = 0.5 % of
      `gross`, `net` = `gross` − `csg` − `crds`, each within a cent;
    - `payment_date` not before `period_end`; a paid row has one, not after today.
    """
    c, errors = _clean(values, _ALLOWANCE_CLEANERS)
    start, end = c.get("stoppage_start"), c.get("stoppage_end")
    if start and start > today:
        _fail(c, errors, "stoppage_start", "date dans le futur")
    if start and end and end < start:
        _fail(c, errors, "stoppage_end", "antérieure à stoppage_start")
        end = None
    period_start, period_end = c.get("period_start"), c.get("period_end")
    if period_start and start and period_start < start:
        _fail(c, errors, "period_start", "antérieure au début de l’arrêt (stoppage_start)")
    if period_start and period_end and period_end < period_start:
        _fail(c, errors, "period_end", "antérieure à period_start")
    elif period_end and end and period_end > end:
        _fail(c, errors, "period_end", "postérieure à la fin de l’arrêt (stoppage_end)")
    elif period_end and period_end > today:
        _fail(c, errors, "period_end", "date dans le futur")
    if period_start and period_end and "days" in c and period_end >= period_start:
        expected = (period_end - period_start).days + 1
        if c["days"] != expected:
            _fail(c, errors, "days", f"{expected} attendu (de period_start à period_end inclus)")
    if {"daily_gross", "days", "gross"} <= c.keys() and _off_by_more_than_a_cent(
        c["daily_gross"] * c["days"], c["gross"]
    ):
        _fail(c, errors, "gross", "différent de daily_gross × days (à 1 centime près)")
    if "gross" in c:
        gross = c["gross"]
        if "csg" in c and _off_by_more_than_a_cent(gross * CSG_RATE, c["csg"]):
            _fail(c, errors, "csg", "différente de 6,2 % de gross (à 1 centime près)")
        if "crds" in c and _off_by_more_than_a_cent(gross * CRDS_RATE, c["crds"]):
            _fail(c, errors, "crds", "différente de 0,5 % de gross (à 1 centime près)")
    if {"gross", "csg", "crds", "net"} <= c.keys() and _off_by_more_than_a_cent(
        c["gross"] - c["csg"] - c["crds"], c["net"]
    ):
        _fail(c, errors, "net", "différent de gross − csg − crds (à 1 centime près)")
    if c.get("payment_date") and period_end and c["payment_date"] < period_end:
        _fail(c, errors, "payment_date", "antérieure à la fin de la période (period_end)")
    _paid_date_check(c, errors, today=today)
    errors.sort(key=lambda error: ALLOWANCE_COLUMNS.index(error.field))
    stoppage = None
    if {"nir", "stoppage_kind", "stoppage_start", "stoppage_end"} <= c.keys():
        stoppage = stoppage_signature(c["nir"], c["stoppage_kind"], start, c["stoppage_end"])
    return RowParse(
        row=None if errors else AllowanceRow(**c),
        errors=tuple(errors),
        key=c.get("payment_id"),
        nir=c.get("nir"),
        stoppage_id=c.get("stoppage_id"),
        stoppage=stoppage,
    )


# Importing


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    # Allowances only: the work stoppages the rows describe.
    stoppages_created: int = 0
    stoppages_updated: int = 0
    emails: int = 0
    strict: bool = False
    bulk: bool = False
    # --strict with at least one rejected row: every write was rolled back.
    rolled_back: bool = False


def reimbursements_import(
    *,
    rows: Iterable[FeedRow],
    source_name: str,
    strict: bool = False,
    on_error: Callable[[RowError], None] = lambda error: None,
    on_progress: Callable[[int], None] | None = None,
    batch_size: int = BATCH_SIZE,
    bulk: bool | None = None,
    notify: bool = True,
    actor: str = "import",
    workers: int = 0,
    writers: int = 0,
) -> ImportReport:
    """Upsert reimbursement lines by `line_id`; report and skip the invalid rows.

    Rows are checked and written `batch_size` at a time, each batch in its own
    transaction, so an interrupted import keeps what it wrote and can be run
    again. A row identical to the stored line changes nothing (`unchanged`).
    Each rejected row's errors go to `on_error` in line order; `on_progress`
    gets the number of rows read after each batch.

    `strict`: all or nothing, in one transaction, as for `members_import`.
    `bulk`: the PostgreSQL COPY path; by default on PostgreSQL only.
    `notify`: queue the "Nouveau paiement" emails at the end (off for demo data).
    `workers`: check the rows in that many worker processes while this one
    writes (`portal.payments.parallel`); `rows` must then be the untouched
    result of `reimbursement_feed_read`, and batches are `batch_size` lines.
    0 (the default): check them here. The rows written, the counts and the
    report are the same either way.
    `writers`: on the bulk path, write the checked batches on that many more
    database connections (threads), while this connection checks the next
    batches against the database in file order (duplicates, members); 0 (the
    default): this connection writes too. Ignored (0) with `strict` and inside
    a transaction (other connections could not see it, nor be rolled back
    with it). The rows written, the counts and the report are the same.

    Leaves one audit entry `payments.reimbursements.import.completed`.
    """
    return _import(
        _ReimbursementImporter,
        rows=rows,
        source_name=source_name,
        strict=strict,
        on_error=on_error,
        on_progress=on_progress,
        batch_size=batch_size,
        bulk=bulk,
        notify=notify,
        actor=actor,
        workers=workers,
        writers=writers,
    )


def allowances_import(
    *,
    rows: Iterable[FeedRow],
    source_name: str,
    strict: bool = False,
    on_error: Callable[[RowError], None] = lambda error: None,
    on_progress: Callable[[int], None] | None = None,
    batch_size: int = BATCH_SIZE,
    bulk: bool | None = None,
    notify: bool = True,
    actor: str = "import",
    workers: int = 0,
) -> ImportReport:
    """Upsert daily-allowance payments by `payment_id`, and the work stoppages
    they belong to by `stoppage_id`; otherwise as `reimbursements_import`.

    Every row of one stoppage must describe it identically (member, kind,
    dates); a stoppage already stored for another member is refused.

    Leaves one audit entry `payments.allowances.import.completed`.
    """
    return _import(
        _AllowanceImporter,
        rows=rows,
        source_name=source_name,
        strict=strict,
        on_error=on_error,
        on_progress=on_progress,
        batch_size=batch_size,
        bulk=bulk,
        notify=notify,
        actor=actor,
        workers=workers,
    )


def _import(
    importer_class,
    *,
    rows,
    strict,
    bulk,
    notify,
    source_name,
    actor,
    workers,
    writers=0,
    **options,
):
    batch_size, on_progress = options["batch_size"], options["on_progress"]
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    if workers < 0:
        raise ValueError("workers must be 0 or more")
    if writers < 0:
        raise ValueError("writers must be 0 or more")
    from_file = isinstance(rows, FeedFile) and not rows.started
    if workers and not from_file:
        raise ValueError("workers need the untouched rows of *_feed_read")
    if bulk is None:
        bulk = connection.vendor == "postgresql"
    elif bulk and connection.vendor != "postgresql":
        raise ValueError("the bulk path needs PostgreSQL")
    if not bulk or strict or connection.in_atomic_block:
        # One connection: all or nothing (strict, or the caller's transaction).
        writers = 0
    report = ImportReport(strict=strict, bulk=bulk)
    importer = importer_class(
        report=report,
        strict=strict,
        bulk=bulk,
        notify=notify,
        on_error=options["on_error"],
        writers=writers,
    )
    checker = importer.checker()
    if from_file:
        # Read by chunks of lines, checked by workers or here: the same batches.
        chunks = parallel.chunks_read(rows.source, first_line=rows.next_line, lines=batch_size)
        if workers:
            checked_batches = parallel.ordered_map(checker.chunk, chunks, workers=workers)
        else:
            checked_batches = (checker.chunk(chunk) for chunk in chunks)
    else:
        checked_batches = (checker(batch) for batch in _batches(rows, batch_size))
    with (
        closing(checked_batches),
        importer.scratch_tables(),
        transaction.atomic() if strict else nullcontext(),
    ):
        done = 0
        for checked in checked_batches:
            importer.flush(checked)
            done += checked.rows
            if on_progress:
                on_progress(done)
        # Every batch written (other connections), or the first error of a writer.
        importer.drain()
        if strict and report.rejected:
            transaction.set_rollback(True)
    if strict and report.rejected:
        report.rolled_back = True
        report.created = report.updated = report.unchanged = 0
        report.stoppages_created = report.stoppages_updated = 0
    if notify:
        report.emails = notifications.new_payment_notices_send(kind=importer.notice_kind)
    data = {
        "file_name": source_name,
        "rows": report.rows,
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "rejected": report.rejected,
    }
    if importer_class is _AllowanceImporter:
        data |= {
            "stoppages_created": report.stoppages_created,
            "stoppages_updated": report.stoppages_updated,
        }
    data |= {
        "emails": report.emails,
        "strict": strict,
        "rolled_back": report.rolled_back,
        "bulk": bulk,
    }
    record(action=importer.audit_action, actor=actor, data=data)
    return report


def _batches(rows: Iterable[FeedRow], size: int) -> Iterator[list[FeedRow]]:
    """Lists of `size` rows (the last may be shorter), read as they are needed."""
    rows = iter(rows)
    while batch := list(islice(rows, size)):
        yield batch


# Checking a batch without the database: in the importing process, or in a
# worker process (`portal.payments.parallel`), hence plain picklable data.


@dataclass
class _Pendings:
    """A checked batch on its way to `_Importer.flush`."""

    pending: list[Pending]

    @property
    def rows(self) -> int:
        return len(self.pending)


class _Reject(NamedTuple):
    """A row found invalid without the database, with what the database
    checks still need of it (the fields that were valid, else None)."""

    line: int
    errors: list[FieldError]
    key: str | None = None
    nir: str | None = None
    beneficiary_nir: str | None = None


@dataclass
class _Staged:
    """A checked batch of reimbursements for the bulk path: the valid rows as
    COPY text (in `_CHECKED_LINE_STAGED` order), and the others."""

    rows: int
    valid: int
    copy: str
    rejects: list[_Reject]
    # With separate writers (`_Checker.keys`): what the checks against the
    # database need of each valid row, as COPY text (`_KEYS_STAGED` order).
    keys: str = ""


@dataclass(frozen=True)
class _Checker:
    """The checks of a batch that need no database. `staged`: the bulk path of
    reimbursements (`_Staged`), else `_Pendings`."""

    feed: str  # "reimbursements" or "allowances"
    staged: bool
    today: date
    keys: bool = False

    @property
    def width(self) -> int:
        return len(REIMBURSEMENT_COLUMNS if self.feed == "reimbursements" else ALLOWANCE_COLUMNS)

    def __call__(self, rows: Iterable[FeedRow]) -> "_Pendings | _Staged":
        """Check rows read by `feed_read` (or given by a caller)."""
        if self.staged:
            staged = _Staged(rows=0, valid=0, copy="", rejects=[])
            copy: list[str] = []
            keys: list[str] = []
            for row in rows:
                self._stage(row, copy, staged, keys)
            staged.copy = "".join(copy)
            staged.keys = "".join(keys)
            return staged
        parse = reimbursement_row_parse if self.feed == "reimbursements" else allowance_row_parse
        return _Pendings([_pending(row, parse, today=self.today) for row in rows])

    def chunk(self, chunk: Chunk) -> "_Pendings | _Staged":
        """Check the lines of a chunk of the file (in a worker process, or here)."""
        if not self.staged:
            return self(chunk_rows(chunk, width=self.width))
        # A line that `_FAST_LINE` matches is one row of 19 values, split on
        # commas, which `_fast_rules` may vouch for without building the row;
        # any other line goes the way of `feed_read` and `__call__`.
        today = self.today.isoformat()
        staged = _Staged(rows=0, valid=0, copy="", rejects=[])
        copy: list[str] = []
        keys: list[str] | None = [] if self.keys else None
        fast_line = _FAST_LINE.fullmatch
        for number, line in chunk_lines(chunk):
            if line is not None and fast_line(line):
                text = line.rstrip("\r\n")
                values = text.split(",")
                if _fast_rules(values, today=today):
                    copy.append(f"{number}\t" + text.replace(",", "\t") + "\n")
                    if keys is not None:
                        keys.append(f"{number}\t{values[0]}\t{values[1]}\t{values[2]}\n")
                    staged.rows += 1
                    continue
            for row in chunk_line_rows(number, line, width=self.width):
                self._stage(row, copy, staged, keys)
        staged.copy = "".join(copy)
        staged.keys = "".join(keys) if keys else ""
        staged.valid = len(copy)
        return staged

    def _stage(
        self, row: FeedRow, copy: list[str], staged: "_Staged", keys: list[str] | None
    ) -> None:
        """Add a row to `copy` (COPY text, `_CHECKED_LINE_STAGED` order) or to the
        rejects; and its keys to `keys` (`_KEYS_STAGED` order) when asked."""
        staged.rows += 1
        values = row.values
        if row.problem:
            staged.rejects.append(_Reject(row.line, [row.problem]))
        elif reimbursement_row_precheck(values, today=self.today.isoformat()):
            # Valid and canonical: the text of the file is the text to copy.
            copy.append(f"{row.line}\t" + "\t".join(values) + "\n")
            if self.keys:
                keys.append(f"{row.line}\t{values[0]}\t{values[1]}\t{values[2]}\n")
        else:
            parsed = reimbursement_row_parse(values, today=self.today)
            if parsed.errors:
                staged.rejects.append(
                    _Reject(
                        row.line,
                        list(parsed.errors),
                        parsed.key,
                        parsed.nir,
                        parsed.beneficiary_nir,
                    )
                )
            else:
                copy.append(_staged_text(row.line, parsed.row))
                if self.keys:
                    valid = parsed.row
                    keys.append(
                        f"{row.line}\t{valid.line_id}\t{valid.nir}\t{valid.beneficiary_nir}\n"
                    )
        staged.valid = len(copy)


def _pending(row: FeedRow, parse: Callable[..., RowParse], *, today: date) -> Pending:
    if row.problem:
        return Pending(row.line, [row.problem])
    parsed = parse(row.values, today=today)
    return Pending(row.line, list(parsed.errors), key=parsed.key, row=parsed)


def _staged_text(line: int, row: ReimbursementRow) -> str:
    """A valid row as `_Checker` copies it: each value as the file would
    give it in canonical form (an empty payment date, yes or no)."""
    values = [
        str(line),
        row.line_id,
        row.nir,
        row.beneficiary_nir,
        *(getattr(row, name) for name in _LINE_VALUES),
    ]
    for index, value in enumerate(values):
        if value is None:
            values[index] = ""  # payment_date
        elif isinstance(value, bool):
            values[index] = "yes" if value else "no"
        elif isinstance(value, str):
            # COPY's text format escapes; texts have no tab or line break left.
            values[index] = value.replace("\\", "\\\\")
        else:
            values[index] = str(value)  # Decimal, date (ISO)
    return "\t".join(values) + "\n"


# Writing


class _Importer(abc.ABC):
    """What both feeds share: checking batches, reporting, choosing the write path."""

    feed: str
    columns: tuple[str, ...]
    key_field: str
    net_field: str
    notice_kind: str
    audit_action: str

    def __init__(
        self,
        *,
        report: ImportReport,
        strict: bool,
        bulk: bool,
        notify: bool,
        on_error,
        writers: int = 0,
    ):
        self.report = report
        self.strict = strict
        self.bulk = bulk
        self.notify = notify
        self.on_error = on_error
        self.today = timezone.localdate()
        self.seen = SeenKeys(f"payments_import_seen_{self.key_field}", key_length=64)
        self.staging: _Staging | None = None

    def scratch_tables(self) -> "_Tables":
        return _Tables(self.seen, self.staging)

    def drain(self) -> None:  # noqa: B027 (a hook)
        """Wait until every batch handed to other connections is written (none here)."""

    def checker(self) -> _Checker:
        return _Checker(feed=self.feed, staged=False, today=self.today)

    def flush(self, checked: "_Pendings | _Staged") -> None:
        """Check a batch against the database, report its bad rows, write the good ones."""
        batch = checked.pending
        duplicates_mark(batch, seen=self.seen, field=self.key_field, what="identifiant")
        members = self._members_known(batch)
        self.check_batch(batch, members)
        self.report_errors({pending.line: pending.errors for pending in batch if pending.errors})
        self.report.rows += len(batch)
        if self.strict and self.report.rejected:
            return  # everything will be rolled back: only checking goes on
        valid = [(pending.row.row, pending.extra) for pending in batch if not pending.errors]
        if valid:
            with transaction.atomic():
                self.write(valid)

    def report_errors(self, errors: dict[int, list[FieldError]]) -> None:
        """Report the errors of the rejected rows of a batch: in line order, and
        for each line in column order."""
        order = {name: index for index, name in enumerate(("row", *self.columns))}
        for line in sorted(errors):
            for error in sorted(errors[line], key=lambda error: order[error.field]):
                self.on_error(RowError(line, error.field, error.reason))
        self.report.rejected += len(errors)

    def _members_known(self, batch: list[Pending]) -> dict[str, int]:
        nirs = {pending.row.nir for pending in batch if pending.row and pending.row.nir}
        members = dict(Member.objects.filter(nir__in=nirs).values_list("nir", "id"))
        for pending in batch:
            if pending.row and pending.row.nir:
                if pending.row.nir in members:
                    pending.extra["member_id"] = members[pending.row.nir]
                else:
                    pending.errors.append(FieldError("nir", "assuré inconnu"))
        return members

    def check_batch(self, batch: list[Pending], members: dict[str, int]) -> None:  # noqa: B027 (a hook)
        """The checks of this feed that need the database (none by default)."""

    @abc.abstractmethod
    def write(self, valid: list[tuple[Any, dict]]) -> None:
        """Write the valid rows of a batch, as (row, extra), in the batch's transaction."""

    def orm_upsert(self, model, *, items: list[tuple[str, dict]]) -> None:
        """Create or update `model` rows from (key, values); count them; note
        the members whose row became paid."""
        key_field = self.key_field
        existing = model.objects.in_bulk([key for key, _ in items], field_name=key_field)
        now = timezone.now()
        created, changed = [], []
        news: dict[int, tuple[int, Decimal]] = {}
        for key, values in items:
            obj = existing.get(key)
            was_paid = obj is not None and obj.status == PAID
            if obj is None:
                created.append(model(**{key_field: key}, **values))
            elif any(getattr(obj, name) != value for name, value in values.items()):
                for name, value in values.items():
                    setattr(obj, name, value)
                obj.updated_at = now  # bulk_update does not apply auto_now
                changed.append(obj)
            else:
                self.report.unchanged += 1
            if values["status"] == PAID and not was_paid:
                count, total = news.get(values["member_id"], (0, Decimal(0)))
                news[values["member_id"]] = (count + 1, total + values[self.net_field])
        model.objects.bulk_create(created)
        if changed:
            model.objects.bulk_update(changed, [*items[0][1], "updated_at"])
        self.report.created += len(created)
        self.report.updated += len(changed)
        if self.notify and news:
            _notices_add(kind=self.notice_kind, news=news)


def _notices_add(*, kind: str, news: dict[int, tuple[int, Decimal]]) -> None:
    """Add to the pending notices of these members (ORM path: exact decimals on SQLite too)."""
    now = timezone.now()
    existing = {
        notice.member_id: notice
        for notice in NewPaymentNotice.objects.select_for_update().filter(
            kind=kind, member_id__in=list(news)
        )
    }
    created, changed = [], []
    for member_id, (count, total) in news.items():
        notice = existing.get(member_id)
        if notice is None:
            created.append(
                NewPaymentNotice(
                    member_id=member_id, kind=kind, payments=count, net_total=total, created_at=now
                )
            )
        else:
            notice.payments += count
            notice.net_total += total
            changed.append(notice)
    NewPaymentNotice.objects.bulk_create(created)
    NewPaymentNotice.objects.bulk_update(changed, ["payments", "net_total"])


# Reimbursements

# The model's columns written from a row, after the key, member and beneficiary.
_LINE_VALUES = [
    f.name for f in fields(ReimbursementRow) if f.name not in ("line_id", "nir", "beneficiary_nir")
]


class _ReimbursementImporter(_Importer):
    """On the ORM path, as the allowances. On the bulk path, batches come
    checked as `_Staged`: the valid rows are copied into the staging table as
    they are, and the checks that need the database (duplicates, unknown
    member or beneficiary) are made by one statement over the staging table
    and the keys of the invalid rows (`_LINES_CHECK`), before the upsert."""

    feed = "reimbursements"
    columns = REIMBURSEMENT_COLUMNS
    key_field = "line_id"
    net_field = "net_reimbursed"
    notice_kind = NewPaymentNotice.Kind.REIMBURSEMENT
    audit_action = "payments.reimbursements.import.completed"

    def __init__(self, *, writers: int = 0, **options):
        super().__init__(**options)
        self.writers: parallel.Writers | None = None
        if self.bulk and writers:
            # This connection checks (narrow staging table of the keys); the
            # writers' connections copy and upsert, each in its own staging table.
            self.staging = _keys_staging()
            self.local = threading.local()
            self.lock = threading.Lock()
            self.writers = parallel.Writers(
                writers, write=self._write_job, setup=self._writer_setup,
                teardown=self._writer_teardown,
            )  # fmt: skip
        elif self.bulk:
            self.staging = _checked_line_staging()

    def checker(self) -> _Checker:
        return _Checker(
            feed=self.feed, staged=self.bulk, today=self.today, keys=self.writers is not None
        )

    def scratch_tables(self) -> "_Tables":
        return _Tables(self.seen, self.staging, self.writers)

    def drain(self) -> None:
        if self.writers is not None:
            self.writers.close()

    def flush(self, checked):
        if not self.bulk:
            super().flush(checked)
            return
        self.staging.load_text(checked.keys if self.writers else checked.copy)
        rejects = checked.rejects
        with transaction.atomic(), connection.cursor() as cursor:
            _jit_off(cursor)
            cursor.execute(
                _LINES_CHECK.format(seen=self.seen.table, staging=self.staging.table),
                {
                    "lines": [reject.line for reject in rejects],
                    "keys": [reject.key for reject in rejects],
                    "nirs": [reject.nir for reject in rejects],
                    "beneficiaries": [reject.beneficiary_nir for reject in rejects],
                },
            )
            found = cursor.fetchall()
        errors = {reject.line: reject.errors for reject in rejects}
        refused: list[int] = []  # valid rows, staged, that the database checks refuse
        for line, first_line, unknown_member, unknown_beneficiary in found:
            if line not in errors:
                errors[line] = []
                refused.append(line)
            if first_line != line:
                errors[line].insert(
                    0, FieldError("line_id", f"identifiant en double (déjà ligne {first_line})")
                )
            if unknown_member:
                errors[line].append(FieldError("nir", "assuré inconnu"))
            if unknown_beneficiary:
                errors[line].append(
                    FieldError("beneficiary_nir", "ayant droit inconnu pour cet assuré")
                )
        self.report_errors(errors)
        self.report.rows += checked.rows
        valid = checked.valid - len(refused)
        if (self.strict and self.report.rejected) or not valid:
            return
        if self.writers is not None:
            # Checked: any writer may write it, in any order (its keys are
            # unique in the file, and its members known).
            self.writers.submit((checked.copy, refused, valid))
            return
        created, updated = self._upsert(self.staging, refused)
        self._count(valid, created, updated)

    def _upsert(self, staging: "_Staging", refused: list[int]) -> tuple[int, int]:
        """Upsert the rows of `staging` but the `refused` ones, in one transaction."""
        notice_kind = self.notice_kind if self.notify else None
        with transaction.atomic():
            if refused:
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"DELETE FROM {staging.table} WHERE feed_line = ANY(%s)",  # noqa: S608
                        [refused],
                    )
            try:
                with transaction.atomic():
                    return _lines_upsert(staging.table, notice_kind=notice_kind)
            except IntegrityError as exc:
                # A line of this batch inserted meanwhile by another import.
                if getattr(exc.__cause__, "sqlstate", None) != "23505":  # unique_violation
                    raise
            return staging.upsert(
                target="payments_reimbursementline",
                key="line_id",
                columns=_LINE_STAGED,
                source=_lines_source(staging.table),
                notice_kind=notice_kind,
            )

    def _count(self, valid: int, created: int, updated: int) -> None:
        self.report.created += created
        self.report.updated += updated
        self.report.unchanged += valid - created - updated

    # In the writer threads, each on its own connection.

    def _writer_setup(self) -> None:
        self.local.staging = _checked_line_staging().__enter__()

    def _writer_teardown(self, error: BaseException | None) -> None:
        staging = getattr(self.local, "staging", None)
        if staging is not None:
            staging.__exit__(type(error) if error else None, error, None)

    def _write_job(self, job: tuple[str, list[int], int]) -> None:
        copy, refused, valid = job
        staging = self.local.staging
        staging.load_text(copy)
        for attempt in itertools.count(1):
            try:
                created, updated = self._upsert(staging, refused)
                break
            except OperationalError as exc:
                # Two writers adding to the notices of the same members may
                # deadlock; PostgreSQL rolls one back, which is done again.
                if attempt >= _WRITE_ATTEMPTS or not _is_deadlock(exc):
                    raise
        with self.lock:
            self._count(valid, created, updated)

    def check_batch(self, batch, members):
        """The beneficiary, when given, is one of the member's."""
        wanted = {
            (pending.extra["member_id"], pending.row.beneficiary_nir)
            for pending in batch
            if "member_id" in pending.extra and pending.row.beneficiary_nir
        }
        beneficiaries: dict[tuple[int, str], int] = {}
        if wanted:
            for member_id, nir, pk in Beneficiary.objects.filter(
                member_id__in={member_id for member_id, _ in wanted},
                nir__in={nir for _, nir in wanted},
            ).values_list("member_id", "nir", "id"):
                beneficiaries.setdefault((member_id, nir), pk)
        member_nirs = {member_id: nir for nir, member_id in members.items()}
        for pending in batch:
            beneficiary_nir = pending.row.beneficiary_nir if pending.row else None
            member_id = pending.extra.get("member_id")
            if not beneficiary_nir or member_id is None:
                pending.extra["beneficiary_id"] = None
            elif beneficiary_nir == member_nirs[member_id]:
                pending.extra["beneficiary_id"] = None  # the member's own NIR: the member
            elif (member_id, beneficiary_nir) in beneficiaries:
                pending.extra["beneficiary_id"] = beneficiaries[(member_id, beneficiary_nir)]
            else:
                pending.errors.append(
                    FieldError("beneficiary_nir", "ayant droit inconnu pour cet assuré")
                )

    @staticmethod
    def _values(row: ReimbursementRow, extra: dict) -> dict:
        return {
            "member_id": extra["member_id"],
            "beneficiary_id": extra["beneficiary_id"],
            **{name: getattr(row, name) for name in _LINE_VALUES},
        }

    def write(self, valid):
        # The ORM path only: the bulk path writes in `flush`.
        items = [(row.line_id, self._values(row, extra)) for row, extra in valid]
        self.orm_upsert(ReimbursementLine, items=items)


_WRITE_ATTEMPTS = 5


def _is_deadlock(exc: Exception) -> bool:
    # deadlock_detected, serialization_failure
    return getattr(exc.__cause__, "sqlstate", None) in ("40P01", "40001")


# Daily allowances

# The model's columns of a payment written from a row, after the key, stoppage and member.
_PAYMENT_FIELDS = [
    "period_start",
    "period_end",
    "days",
    "daily_gross",
    "gross",
    "csg",
    "crds",
    "net",
    "payment_date",
    "status",
]


class _AllowanceImporter(_Importer):
    feed = "allowances"
    columns = ALLOWANCE_COLUMNS
    key_field = "payment_id"
    net_field = "net"
    notice_kind = NewPaymentNotice.Kind.ALLOWANCE
    audit_action = "payments.allowances.import.completed"

    def __init__(self, **options):
        super().__init__(**options)
        self.stoppages_seen = SeenKeys("payments_import_seen_stoppage", key_length=64)
        if self.bulk:
            self.staging = _payment_staging()

    def scratch_tables(self):
        return _Tables(self.seen, self.stoppages_seen, self.staging)

    def write(self, valid):
        if self.bulk:
            self.write_bulk(valid)
        else:
            self.write_orm(valid)

    def check_batch(self, batch, members):
        """Each stoppage is described the same on all its rows, and stays with its member."""
        described = [p for p in batch if p.row and p.row.stoppage_id and p.row.stoppage]
        keys = list({pending.row.stoppage_id for pending in described})
        earlier = self.stoppages_seen.lookup(keys)
        stored = dict(
            WorkStoppage.objects.filter(stoppage_id__in=keys).values_list(
                "stoppage_id", "member_id"
            )
        )
        first: dict[str, tuple[int, str]] = {}
        for pending in described:
            key, signature = pending.row.stoppage_id, pending.row.stoppage
            line, expected = earlier.get(key) or first.setdefault(key, (pending.line, signature))
            member_id = pending.extra.get("member_id")
            if signature != expected:
                pending.errors.append(
                    FieldError(
                        "stoppage_id",
                        f"arrêt décrit autrement à la ligne {line} (assuré, nature ou dates)",
                    )
                )
            elif member_id is not None and stored.get(key, member_id) != member_id:
                pending.errors.append(FieldError("stoppage_id", "arrêt d’un autre assuré"))
        self.stoppages_seen.add(first)

    def write_orm(self, valid):
        stoppages: dict[str, dict] = {}
        for row, extra in valid:
            stoppages.setdefault(row.stoppage_id, _stoppage_values(row, extra))
        existing = WorkStoppage.objects.in_bulk(list(stoppages), field_name="stoppage_id")
        created, changed = [], []
        for key, values in stoppages.items():
            stoppage = existing.get(key)
            if stoppage is None:
                created.append(WorkStoppage(stoppage_id=key, **values))
            elif any(getattr(stoppage, name) != value for name, value in values.items()):
                for name, value in values.items():
                    setattr(stoppage, name, value)
                changed.append(stoppage)
        WorkStoppage.objects.bulk_create(created)
        if changed:
            WorkStoppage.objects.bulk_update(changed, list(_stoppage_values(*valid[0])))
        self.report.stoppages_created += len(created)
        self.report.stoppages_updated += len(changed)
        ids = dict(
            WorkStoppage.objects.filter(stoppage_id__in=list(stoppages)).values_list(
                "stoppage_id", "id"
            )
        )
        items = [
            (
                row.payment_id,
                {
                    "stoppage_id": ids[row.stoppage_id],
                    "member_id": extra["member_id"],
                    **{name: getattr(row, name) for name in _PAYMENT_FIELDS},
                },
            )
            for row, extra in valid
        ]
        self.orm_upsert(AllowancePayment, items=items)

    def write_bulk(self, valid):
        self.staging.load(
            [
                row.payment_id,
                extra["member_id"],
                row.stoppage_id,
                row.stoppage_kind,
                row.stoppage_start,
                row.stoppage_end,
                WorkStoppage.WAITING_DAYS[row.stoppage_kind],
                *(getattr(row, name) for name in _PAYMENT_FIELDS),
            ]
            for row, extra in valid
        )
        created, updated = _stoppages_upsert(self.staging)
        self.report.stoppages_created += created
        self.report.stoppages_updated += updated
        created, updated = _payments_upsert(
            self.staging, notice_kind=self.notice_kind if self.notify else None
        )
        self.report.created += created
        self.report.updated += updated
        self.report.unchanged += len(valid) - created - updated


def _stoppage_values(row: AllowanceRow, extra: dict) -> dict:
    return {
        "member_id": extra["member_id"],
        "kind": row.stoppage_kind,
        "start": row.stoppage_start,
        "end": row.stoppage_end,
        "waiting_days": WorkStoppage.WAITING_DAYS[row.stoppage_kind],
    }


# The PostgreSQL bulk path


class _Tables:
    """The temporary tables of one import, created and dropped together."""

    def __init__(self, *tables):
        self.tables = [table for table in tables if table is not None]

    def __enter__(self) -> "_Tables":
        entered = []
        try:
            for table in self.tables:
                table.__enter__()
                entered.append(table)
        except BaseException:
            for table in reversed(entered):
                table.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info) -> bool:
        for table in reversed(self.tables):
            table.__exit__(*exc_info)
        return False


class _Staging:
    """A temporary table that each batch is copied into, then upserted from.

    Its columns take their types from the real tables (`CREATE TABLE … AS
    SELECT … WITH NO DATA`): a valid row always fits, and the comparison with
    the stored rows is type for type. All SQL here is built from this
    module's constants; values go through COPY or parameters.
    """

    def __init__(self, *, table: str, create: str, columns: list[str]):
        self.table, self.create, self.columns = table, create, columns
        self.analyzed = False

    def __enter__(self) -> "_Staging":
        with connection.cursor() as cursor:
            cursor.execute(self.create)
        return self

    def __exit__(self, exc_type, exc, traceback) -> bool:
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE {self.table}")
        except DatabaseError:
            if exc is None:
                raise
        return False

    def load(self, rows: Iterable[Sequence[Any]]) -> None:
        """Empty the table and COPY `rows` (in `self.columns` order) into it."""

        def write(copy):
            for row in rows:
                copy.write_row(row)

        self._load(write)

    def load_text(self, text: str) -> None:
        """Empty the table and COPY `text` (COPY's text format, `self.columns` order) into it."""
        self._load(lambda copy: copy.write(text) if text else None)

    def _load(self, write: Callable[[Any], Any]) -> None:
        columns = ", ".join(self.columns)
        with connection.cursor() as cursor:
            # TRUNCATE rather than DELETE: temporary tables are never vacuumed.
            cursor.execute(f"TRUNCATE {self.table}")
            with cursor.copy(f"COPY {self.table} ({columns}) FROM STDIN") as copy:
                write(copy)
            if not self.analyzed:
                # Statistics for the planner, once: later batches look alike, and
                # the planner reads the size of the table itself.
                cursor.execute(f"ANALYZE {self.table}")
                self.analyzed = True

    def upsert(
        self, *, target: str, key: str, columns: list[str], source: str, notice_kind: str | None
    ) -> tuple[int, int]:
        """Insert the rows of `source` (giving `columns`) into `target`, or
        update the stored ones that differ; add to the notices of the members
        whose row became paid. Returns (created, updated)."""
        net = "net" if target == "payments_allowancepayment" else "net_reimbursed"
        changing = [name for name in columns if name != key]
        news = ""
        # Python's clock, as on the ORM path (and under a test's frozen time).
        params = {"kind": notice_kind, "now": timezone.now()}
        if notice_kind:
            news = f"""
            , news AS (
                INSERT INTO payments_newpaymentnotice AS n
                    (member_id, kind, payments, net_total, created_at)
                SELECT up.member_id, %(kind)s, count(*), sum(up.{net}), %(now)s
                FROM up JOIN old ON old.{key} = up.{key}
                WHERE up.status = 'paid' AND old.status IS DISTINCT FROM 'paid'
                GROUP BY up.member_id
                ON CONFLICT (member_id, kind) DO UPDATE
                SET payments = n.payments + EXCLUDED.payments,
                    net_total = n.net_total + EXCLUDED.net_total
            )"""  # noqa: S608
        sql = f"""
            WITH old AS MATERIALIZED (
                -- One index probe per staged row (status NULL: a new row), whatever
                -- the planner would guess of a join with a table of millions.
                SELECT s.{key}, (SELECT t.status FROM {target} t WHERE t.{key} = s.{key}) AS status
                FROM {self.table} s
            ), up AS (
                INSERT INTO {target} AS t ({", ".join(columns)}, imported_at, updated_at)
                SELECT incoming.*, %(now)s, %(now)s FROM ({source}) AS incoming
                ON CONFLICT ({key}) DO UPDATE
                SET {", ".join(f"{name} = EXCLUDED.{name}" for name in changing)},
                    updated_at = EXCLUDED.updated_at
                WHERE ({", ".join(f"t.{name}" for name in changing)})
                    IS DISTINCT FROM ({", ".join(f"EXCLUDED.{name}" for name in changing)})
                RETURNING t.{key}, t.member_id, t.{net}, t.status
            ){news}
            SELECT count(*) FILTER (WHERE old.status IS NULL),
                   count(*) FILTER (WHERE old.status IS NOT NULL)
            FROM up JOIN old ON old.{key} = up.{key}
        """  # noqa: S608
        with connection.cursor() as cursor:
            _jit_off(cursor)
            cursor.execute(sql, params)
            created, updated = cursor.fetchone()
        return created, updated


# The columns of a reimbursement line that the upsert writes.
_LINE_STAGED = ["line_id", "member_id", "beneficiary_id", *_LINE_VALUES]
# What a checked batch copies: the line of the file, then the 19 values in
# the file's order and canonical form (the NIRs instead of the member and
# the beneficiary, looked up by the statements below). The payment date
# ("" when none) and transmitted_to_complementary (yes, no) are converted
# by `_lines_source`, so that a line of the file can be copied as it stands.
_CHECKED_LINE_STAGED = ["feed_line", "line_id", "nir", "beneficiary_nir", *_LINE_VALUES]
_AS_IN_FILE = ("payment_date", "transmitted_to_complementary")


# What the checks of a batch need of its valid rows, with separate writers.
_KEYS_STAGED = ["feed_line", "line_id", "nir", "beneficiary_nir"]


def _keys_staging() -> _Staging:
    return _Staging(
        table="payments_staging_keys",
        create="CREATE TEMPORARY TABLE payments_staging_keys AS "
        "SELECT 0::bigint AS feed_line, line_id, ''::varchar(15) AS nir, "
        "''::varchar(15) AS beneficiary_nir FROM payments_reimbursementline WITH NO DATA",
        columns=_KEYS_STAGED,
    )


def _checked_line_staging() -> _Staging:
    values = ", ".join(
        f"''::text AS {name}" if name in _AS_IN_FILE else name for name in _LINE_VALUES
    )
    return _Staging(
        table="payments_staging_line",
        create="CREATE TEMPORARY TABLE payments_staging_line AS "  # noqa: S608
        "SELECT 0::bigint AS feed_line, line_id, ''::varchar(15) AS nir, "
        f"''::varchar(15) AS beneficiary_nir, {values} "
        "FROM payments_reimbursementline WITH NO DATA",
        columns=_CHECKED_LINE_STAGED,
    )


# The database checks of a batch of reimbursements, in one statement: the
# staged (valid) rows and the keys of the invalid ones (parameters) are checked
# together, as `duplicates_mark`, `_members_known` and `check_batch` do on the
# ORM path. Gives (line, first line with this key, unknown member, unknown
# beneficiary) for each row with a problem, and records the batch's new keys.
# Members and keys are looked up by one index probe each, whatever the
# planner would guess of a join with tables of millions of rows.
_LINES_CHECK = """
    WITH batch AS (
        SELECT feed_line, line_id::text, nir::text, beneficiary_nir::text FROM {staging}
        UNION ALL
        SELECT * FROM unnest(%(lines)s::bigint[], %(keys)s::text[], %(nirs)s::text[],
                             %(beneficiaries)s::text[])
    ), firsts AS MATERIALIZED (
        SELECT f.line_id, f.feed_line,
               (SELECT seen.line FROM {seen} seen WHERE seen.key = f.line_id) AS seen_line
        FROM (SELECT line_id, min(feed_line) AS feed_line FROM batch
              WHERE line_id IS NOT NULL GROUP BY line_id) f
    ), added AS (
        INSERT INTO {seen} (key, line, value)
        SELECT line_id, feed_line, '' FROM firsts WHERE seen_line IS NULL
    ), members AS MATERIALIZED (
        SELECT d.nir, (SELECT m.id FROM members_member m WHERE m.nir = d.nir) AS id
        FROM (SELECT DISTINCT nir FROM batch WHERE nir IS NOT NULL) d
    ), checked AS (
        SELECT b.feed_line, coalesce(f.seen_line, f.feed_line, b.feed_line) AS first_line,
               b.nir IS NOT NULL AND m.id IS NULL AS unknown_member,
               coalesce(b.beneficiary_nir <> '' AND b.beneficiary_nir <> b.nir
                        AND m.id IS NOT NULL AND NOT EXISTS (
                            SELECT FROM members_beneficiary ben
                            WHERE ben.member_id = m.id AND ben.nir = b.beneficiary_nir
                        ), false) AS unknown_beneficiary
        FROM batch b
        LEFT JOIN firsts f ON f.line_id = b.line_id
        LEFT JOIN members m ON m.nir = b.nir
    )
    SELECT * FROM checked
    WHERE first_line <> feed_line OR unknown_member OR unknown_beneficiary
    ORDER BY feed_line
"""  # noqa: S608 (only this module's table names are formatted in)


def _lines_source(staging: str) -> str:
    """The staged rows as the upsert writes them (`_LINE_STAGED`), once the
    refused ones are deleted: every member is known. A beneficiary given by
    the member's own NIR is the member; several beneficiaries with one NIR:
    the eldest, as on the ORM path."""
    converted = {
        "payment_date": "nullif(s.payment_date, '')::date",
        "transmitted_to_complementary": "s.transmitted_to_complementary = 'yes'",
    }
    values = ", ".join(f"{converted.get(name, f's.{name}')} AS {name}" for name in _LINE_VALUES)
    return f"""
        WITH members AS MATERIALIZED (
            -- One probe per member of the batch, not one per row.
            SELECT d.nir, (SELECT m.id FROM members_member m WHERE m.nir = d.nir) AS id
            FROM (SELECT DISTINCT nir FROM {staging}) d
        )
        SELECT s.line_id, m.id AS member_id,
               CASE WHEN s.beneficiary_nir = '' OR s.beneficiary_nir = s.nir THEN NULL
               ELSE (SELECT b.id FROM members_beneficiary b
                     WHERE b.member_id = m.id AND b.nir = s.beneficiary_nir
                     ORDER BY b.birth_date LIMIT 1)
               END AS beneficiary_id,
               {values}
        FROM {staging} s JOIN members m ON m.nir = s.nir
    """  # noqa: S608 (only this module's names are formatted in)


def _lines_upsert(staging: str, *, notice_kind: str | None) -> tuple[int, int]:
    """Insert the staged lines that are new, update the stored ones that differ,
    leave the identical ones alone; add to the notices of the members whose
    line became paid. Returns (created, updated).

    Cheaper than `_Staging.upsert`'s `INSERT … ON CONFLICT DO UPDATE` for
    the same result: one index probe per line finds the stored line (and
    compares it), new lines go through a plain INSERT, and an unchanged line
    costs nothing more. A line inserted meanwhile by another import of the
    same id makes the INSERT fail (unique constraint): the caller then does
    the batch again with `_Staging.upsert`.
    """
    changing = [name for name in _LINE_STAGED if name != "line_id"]
    stored = ", ".join(f"t.{name}" for name in changing)
    incoming = ", ".join(f"s.{name}" for name in changing)
    columns = ", ".join(_LINE_STAGED)
    params = {"kind": notice_kind, "now": timezone.now()}
    news = ""
    if notice_kind:
        # Members in order, so that writers adding to the same notices lock
        # them in the same order.
        news = """
        , news AS (
            INSERT INTO payments_newpaymentnotice AS n
                (member_id, kind, payments, net_total, created_at)
            SELECT member_id, %(kind)s, count(*), sum(net_reimbursed), %(now)s
            FROM (SELECT member_id, net_reimbursed FROM ins WHERE status = 'paid'
                  UNION ALL
                  SELECT member_id, net_reimbursed FROM upd
                  WHERE status = 'paid' AND was IS DISTINCT FROM 'paid') paid
            GROUP BY member_id ORDER BY member_id
            ON CONFLICT (member_id, kind) DO UPDATE
            SET payments = n.payments + EXCLUDED.payments,
                net_total = n.net_total + EXCLUDED.net_total
        )"""
    sql = f"""
        WITH src AS MATERIALIZED (
            -- Each line with the stored one: one index probe per line, whatever
            -- the planner would guess of a join with a table of millions.
            SELECT s.*, o.id AS stored_id, o.status AS stored_status,
                   coalesce(o.changed, false) AS changed
            FROM ({_lines_source(staging)}) s
            LEFT JOIN LATERAL (
                SELECT t.id, t.status, ({stored}) IS DISTINCT FROM ({incoming}) AS changed
                FROM payments_reimbursementline t WHERE t.line_id = s.line_id
            ) o ON true
        ), ins AS (
            INSERT INTO payments_reimbursementline ({columns}, imported_at, updated_at)
            SELECT {columns}, %(now)s, %(now)s FROM src WHERE stored_id IS NULL
            RETURNING member_id, net_reimbursed, status
        ), upd AS (
            UPDATE payments_reimbursementline t
            SET {", ".join(f"{name} = s.{name}" for name in changing)}, updated_at = %(now)s
            FROM src s
            WHERE s.changed AND t.id = s.stored_id
            RETURNING t.member_id, t.net_reimbursed, t.status, s.stored_status AS was
        ){news}
        SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM upd)
    """  # noqa: S608 (only this module's names are formatted in)
    with connection.cursor() as cursor:
        _jit_off(cursor)
        cursor.execute(sql, params)
        created, updated = cursor.fetchone()
    return created, updated


_PAYMENT_STAGED = [
    "payment_id",
    "member_id",
    "stoppage_key",
    "stoppage_kind",
    "stoppage_start",
    "stoppage_end",
    "waiting_days",
    *_PAYMENT_FIELDS,
]


def _payment_staging() -> _Staging:
    fields_sql = ", ".join(f"p.{name}" for name in _PAYMENT_FIELDS)
    return _Staging(
        table="payments_staging_payment",
        create=(
            "CREATE TEMPORARY TABLE payments_staging_payment AS "  # noqa: S608
            "SELECT p.payment_id, p.member_id, s.stoppage_id AS stoppage_key, "
            's.kind AS stoppage_kind, s.start AS stoppage_start, s."end" AS stoppage_end, '
            f"s.waiting_days, {fields_sql} "
            "FROM payments_allowancepayment p, payments_workstoppage s WITH NO DATA"
        ),
        columns=_PAYMENT_STAGED,
    )


def _payments_upsert(staging: _Staging, *, notice_kind: str | None) -> tuple[int, int]:
    fields_sql = ", ".join(f"p.{name}" for name in _PAYMENT_FIELDS)
    return staging.upsert(
        target="payments_allowancepayment",
        key="payment_id",
        columns=["payment_id", "stoppage_id", "member_id", *_PAYMENT_FIELDS],
        source=(
            "SELECT p.payment_id, "  # noqa: S608
            "(SELECT s.id FROM payments_workstoppage s WHERE s.stoppage_id = p.stoppage_key), "
            f"p.member_id, {fields_sql} FROM {staging.table} p"
        ),
        notice_kind=notice_kind,
    )


def _stoppages_upsert(staging: _Staging) -> tuple[int, int]:
    """Insert or update the stoppages of the staged payments. Returns (created, updated)."""
    sql = f"""
        WITH keys AS MATERIALIZED (
            SELECT DISTINCT stoppage_key FROM {staging.table}
        ), old AS MATERIALIZED (
            SELECT k.stoppage_key AS stoppage_id,
                   (SELECT s.id FROM payments_workstoppage s WHERE s.stoppage_id = k.stoppage_key)
                   AS id
            FROM keys k
        ), up AS (
            INSERT INTO payments_workstoppage AS t
                (stoppage_id, member_id, kind, start, "end", waiting_days)
            SELECT DISTINCT ON (stoppage_key) stoppage_key, member_id, stoppage_kind,
                   stoppage_start, stoppage_end, waiting_days
            FROM {staging.table} ORDER BY stoppage_key
            ON CONFLICT (stoppage_id) DO UPDATE
            SET member_id = EXCLUDED.member_id, kind = EXCLUDED.kind,
                start = EXCLUDED.start, "end" = EXCLUDED."end",
                waiting_days = EXCLUDED.waiting_days
            WHERE (t.member_id, t.kind, t.start, t."end", t.waiting_days)
                IS DISTINCT FROM (EXCLUDED.member_id, EXCLUDED.kind, EXCLUDED.start,
                                  EXCLUDED."end", EXCLUDED.waiting_days)
            RETURNING t.stoppage_id
        )
        SELECT count(*) FILTER (WHERE old.id IS NULL),
               count(*) FILTER (WHERE old.id IS NOT NULL)
        FROM up JOIN old ON old.stoppage_id = up.stoppage_id
    """  # noqa: S608
    with connection.cursor() as cursor:
        _jit_off(cursor)
        cursor.execute(sql)
        created, updated = cursor.fetchone()
    return created, updated


def _jit_off(cursor) -> None:
    """No JIT compilation for the statements of a batch (this transaction only).

    On tables of millions of rows their estimated cost crosses
    `jit_above_cost`, and compiling them takes longer (about 0.1 s) than
    running them on a batch of a few thousand rows.
    """
    cursor.execute("SET LOCAL jit = off")
