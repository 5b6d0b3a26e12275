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

Memory stays bounded whatever the size of the file: lines are read one at a
time, rows go by batches, and the keys already seen (duplicates, stoppages
described on several lines) are kept in temporary tables.
"""

import abc
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, fields
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import IO, Any

from django.db import DatabaseError, connection, transaction
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
    batches_process,
    duplicates_mark,
    feed_read,
)
from portal.members import nir as nir_rules
from portal.members.models import Beneficiary, Member
from portal.members.services import NIR_REASONS

from . import notifications
from .models import AllowancePayment, NewPaymentNotice, ReimbursementLine, WorkStoppage

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


def reimbursement_feed_read(source: IO[bytes]) -> Iterator[FeedRow]:
    """Check the header of a reimbursements feed; rows follow (see `feed_read`)."""
    return feed_read(source, columns=REIMBURSEMENT_COLUMNS)


def allowance_feed_read(source: IO[bytes]) -> Iterator[FeedRow]:
    """Check the header of a daily-allowances feed; rows follow (see `feed_read`)."""
    return feed_read(source, columns=ALLOWANCE_COLUMNS)


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
    )


def _import(importer_class, *, strict, bulk, notify, source_name, actor, **options):
    if options["batch_size"] < 1:
        raise ValueError("batch_size must be positive")
    if bulk is None:
        bulk = connection.vendor == "postgresql"
    elif bulk and connection.vendor != "postgresql":
        raise ValueError("the bulk path needs PostgreSQL")
    report = ImportReport(strict=strict, bulk=bulk)
    importer = importer_class(
        report=report, strict=strict, bulk=bulk, notify=notify, on_error=options["on_error"]
    )
    with importer.scratch_tables(), transaction.atomic() if strict else nullcontext():
        batches_process(
            options["rows"],
            check=importer.check,
            flush=importer.flush,
            batch_size=options["batch_size"],
            on_progress=options["on_progress"],
        )
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


class _Importer(abc.ABC):
    """What both feeds share: checking batches, reporting, choosing the write path."""

    columns: tuple[str, ...]
    key_field: str
    net_field: str
    notice_kind: str
    audit_action: str

    def __init__(self, *, report: ImportReport, strict: bool, bulk: bool, notify: bool, on_error):
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

    @abc.abstractmethod
    def parse(self, values: Sequence[str]) -> RowParse: ...

    def check(self, row: FeedRow) -> Pending:
        if row.problem:
            return Pending(row.line, [row.problem])
        parsed = self.parse(row.values)
        return Pending(row.line, list(parsed.errors), key=parsed.key, row=parsed)

    def flush(self, batch: list[Pending]) -> None:
        duplicates_mark(batch, seen=self.seen, field=self.key_field, what="identifiant")
        members = self._members_known(batch)
        self.check_batch(batch, members)
        rejected = [pending for pending in batch if pending.errors]
        order = {name: index for index, name in enumerate(("row", *self.columns))}
        for pending in rejected:
            pending.errors.sort(key=lambda error: order[error.field])
            for error in pending.errors:
                self.on_error(RowError(pending.line, error.field, error.reason))
        self.report.rejected += len(rejected)
        self.report.rows += len(batch)
        if self.strict and self.report.rejected:
            return  # everything will be rolled back: only checking goes on
        valid = [(pending.row.row, pending.extra) for pending in batch if not pending.errors]
        if valid:
            with transaction.atomic():
                if self.bulk:
                    self.write_bulk(valid)
                else:
                    self.write_orm(valid)

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
    def write_orm(self, valid: list[tuple[Any, dict]]) -> None: ...

    @abc.abstractmethod
    def write_bulk(self, valid: list[tuple[Any, dict]]) -> None: ...

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
    columns = REIMBURSEMENT_COLUMNS
    key_field = "line_id"
    net_field = "net_reimbursed"
    notice_kind = NewPaymentNotice.Kind.REIMBURSEMENT
    audit_action = "payments.reimbursements.import.completed"

    def __init__(self, **options):
        super().__init__(**options)
        if self.bulk:
            self.staging = _line_staging()

    def parse(self, values):
        return reimbursement_row_parse(values, today=self.today)

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

    def write_orm(self, valid):
        items = [(row.line_id, self._values(row, extra)) for row, extra in valid]
        self.orm_upsert(ReimbursementLine, items=items)

    def write_bulk(self, valid):
        self.staging.load([row.line_id, *self._values(row, extra).values()] for row, extra in valid)
        created, updated = _lines_upsert(
            self.staging, notice_kind=self.notice_kind if self.notify else None
        )
        self.report.created += created
        self.report.updated += updated
        self.report.unchanged += len(valid) - created - updated


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

    def parse(self, values):
        return allowance_row_parse(values, today=self.today)

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
        columns = ", ".join(self.columns)
        with connection.cursor() as cursor:
            # TRUNCATE rather than DELETE: temporary tables are never vacuumed.
            cursor.execute(f"TRUNCATE {self.table}")
            with cursor.copy(f"COPY {self.table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
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
            cursor.execute(sql, params)
            created, updated = cursor.fetchone()
        return created, updated


_LINE_STAGED = ["line_id", "member_id", "beneficiary_id", *_LINE_VALUES]


def _line_staging() -> _Staging:
    columns = ", ".join(_LINE_STAGED)
    return _Staging(
        table="payments_staging_line",
        create=f"CREATE TEMPORARY TABLE payments_staging_line AS "  # noqa: S608
        f"SELECT {columns} FROM payments_reimbursementline WITH NO DATA",
        columns=_LINE_STAGED,
    )


def _lines_upsert(staging: _Staging, *, notice_kind: str | None) -> tuple[int, int]:
    return staging.upsert(
        target="payments_reimbursementline",
        key="line_id",
        columns=_LINE_STAGED,
        source=f"SELECT {', '.join(_LINE_STAGED)} FROM {staging.table}",  # noqa: S608
        notice_kind=notice_kind,
    )


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
        cursor.execute(sql)
        created, updated = cursor.fetchone()
    return created, updated
