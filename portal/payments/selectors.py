"""Reads of "Mes paiements" and "Mes indemnités journalières", always scoped to one member.

Every function takes the viewing account and filters on its member first:
there is no way to ask for another member's rows.
"""

import base64
import binascii
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.db import connections, router
from django.db.models import F, Q, Sum
from django.http import Http404

from portal.core.rows import hot_cursor
from portal.members.models import Beneficiary, Member

from .models import AllowancePayment, ReimbursementLine, WorkStoppage
from .perms import can_view_payments, can_view_reimbursement

PAGE_SIZE = 20
NEXT_PAYMENT_EVERY = timedelta(days=14)


@dataclass
class Filters:
    since: date | None = None
    until: date | None = None
    beneficiary: str | None = None  # "" = all, "me" = the member, else a beneficiary id


def _lines(account, filters: Filters):
    if not can_view_payments(account):
        return ReimbursementLine.objects.none()
    lines = ReimbursementLine.objects.filter(member_id=account.member_id)
    if filters.since:
        lines = lines.filter(care_date__gte=filters.since)
    if filters.until:
        lines = lines.filter(care_date__lte=filters.until)
    if filters.beneficiary == "me":
        lines = lines.filter(beneficiary__isnull=True)
    elif filters.beneficiary:
        lines = lines.filter(beneficiary_id=filters.beneficiary)
    return lines


@dataclass
class Transfer:
    payment_date: date | None
    reference: str
    total: Decimal
    payee: str
    lines: list = field(default_factory=list)


def _encode(*parts) -> str:
    return base64.urlsafe_b64encode("|".join(str(p) for p in parts).encode()).decode().rstrip("=")


def _decode(cursor: str, count: int) -> list[str] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    parts = raw.split("|")
    return parts if len(parts) == count else None


def transfers_page(
    *, account, filters: Filters, cursor: str = ""
) -> tuple[list[Transfer], str | None]:
    """Paid lines grouped by bank transfer, newest first, 20 transfers a page.

    Keyset pagination on (payment date, reference): a page never shifts when
    new payments arrive. Lines not paid yet come first, in their own group,
    on the first page only.
    """
    lines = _lines(account, filters).select_related("beneficiary")
    keys = (
        lines.filter(payment_date__isnull=False)
        .values("payment_date", "payment_reference")
        .distinct()
        .order_by("-payment_date", "-payment_reference")
    )
    decoded = _decode(cursor, 2) if cursor else None
    if decoded:
        try:
            after = date.fromisoformat(decoded[0])
        except ValueError:
            after = None
        if after:
            keys = keys.filter(
                Q(payment_date__lt=after) | Q(payment_date=after, payment_reference__lt=decoded[1])
            )
    keys = list(keys[: PAGE_SIZE + 1])
    more = len(keys) > PAGE_SIZE
    keys = keys[:PAGE_SIZE]
    transfers: OrderedDict[tuple, Transfer] = OrderedDict()
    # One query for the lines of the page: those not paid yet (first page
    # only) and those of its transfers, whose totals are summed here.
    wanted = Q(payment_date__isnull=True) if not cursor else Q()
    if not cursor:
        transfers[(None, "")] = Transfer(None, "", Decimal("0"), "", [])
    for key in keys:
        wanted |= Q(payment_date=key["payment_date"], payment_reference=key["payment_reference"])
        transfers[(key["payment_date"], key["payment_reference"])] = Transfer(
            key["payment_date"], key["payment_reference"], Decimal("0"), "", []
        )
    if transfers:
        for line in lines.filter(wanted).order_by("-care_date", "-id"):
            transfer = transfers[
                (line.payment_date, line.payment_reference if line.payment_date else "")
            ]
            transfer.lines.append(line)
            transfer.total += line.net_reimbursed
            if line.payment_date:
                transfer.payee = transfer.payee or line.get_payee_display()
    if not cursor and not transfers[(None, "")].lines:
        del transfers[(None, "")]
    next_cursor = (
        _encode(keys[-1]["payment_date"].isoformat(), keys[-1]["payment_reference"])
        if more
        else None
    )
    return list(transfers.values()), next_cursor


def reimbursement_line(*, account, line_id: str) -> ReimbursementLine:
    """One line of the viewer's; anything else is a 404, whether it exists or not."""
    line = (
        ReimbursementLine.objects.select_related("beneficiary")
        .filter(line_id=line_id, member_id=getattr(account, "member_id", None))
        .first()
    )
    if line is None or not can_view_reimbursement(account, line):
        raise Http404
    return line


def lines_for_export(*, account, filters: Filters):
    return _lines(account, filters).select_related("beneficiary").order_by("-care_date", "-id")


def lines_api_page(*, account, filters: Filters, cursor: str = "", size: int = 50):
    """Lines newest payment first (unpaid last), keyset on (payment date, id)."""
    lines = (
        _lines(account, filters)
        .select_related("beneficiary")
        .order_by(F("payment_date").desc(nulls_last=True), "-id")
    )
    decoded = _decode(cursor, 2) if cursor else None
    if cursor and decoded is None:
        raise ValueError("cursor")
    if decoded:
        when, last_id = decoded
        try:
            last_id = int(last_id)
            when = date.fromisoformat(when) if when else None
        except ValueError:
            raise ValueError("cursor") from None
        if when is None:
            lines = lines.filter(payment_date__isnull=True, id__lt=last_id)
        else:
            lines = lines.filter(
                Q(payment_date__lt=when)
                | Q(payment_date=when, id__lt=last_id)
                | Q(payment_date__isnull=True)
            )
    items = list(lines[: size + 1])
    more = len(items) > size
    items = items[:size]
    next_cursor = None
    if more:
        last = items[-1]
        next_cursor = _encode(last.payment_date.isoformat() if last.payment_date else "", last.pk)
    return items, next_cursor


def monthly_totals(*, account, today: date, months: int = 12):
    """Net reimbursed per month of payment over the last `months`, split by beneficiary.

    Returns (month labels, series: [(name, [amount per month])], max total).
    """
    first = date(today.year, today.month, 1)
    for _ in range(months - 1):
        first = (first - timedelta(days=1)).replace(day=1)
    rows = (
        _lines(account, Filters())
        .filter(payment_date__gte=first, payment_date__lte=today)
        .values("payment_date__year", "payment_date__month", "beneficiary__first_names")
        .annotate(total=Sum("net_reimbursed"))
    )
    months_list = []
    cursor = first
    while len(months_list) < months:
        months_list.append((cursor.year, cursor.month))
        cursor = (cursor + timedelta(days=32)).replace(day=1)
    series: OrderedDict[str, list[Decimal]] = OrderedDict()
    for row in rows:
        name = row["beneficiary__first_names"] or account.member.first_names
        series.setdefault(name, [Decimal("0")] * months)
        index = months_list.index((row["payment_date__year"], row["payment_date__month"]))
        series[name][index] += row["total"]
    totals = (
        [sum(values[i] for values in series.values()) for i in range(months)]
        if series
        else [0] * months
    )
    return months_list, list(series.items()), totals


def has_stoppages(*, account) -> bool:
    """Whether the member has a work stoppage (Mes paiements links to them)."""
    return can_view_payments(account) and (
        WorkStoppage.objects.filter(member_id=account.member_id).exists()
    )


class FirstPageVersion(NamedTuple):
    lines: int
    last_update: object  # a datetime (a string on SQLite)
    last_id: int | None
    stoppages: int
    beneficiaries: object  # a string, or rows when read apart


def first_page_version(*, account) -> FirstPageVersion | None:
    """What the first page of Mes paiements, or of the API's reimbursements,
    shows from the database, in brief (portal/payments/kept_pages.py).

    The number, newest update and highest id of the member's reimbursement
    lines (an import that adds or changes one changes `updated_at` or the
    count), the number of their work stoppages (the page only links to them)
    and their beneficiaries (ids, birth dates, first names, NIRs: the filter
    and the chart name them, the API gives their NIR), read where the pages
    read them: one query, or two when
    the payment tables are read from a replica (the members' stay on the
    primary). None when the viewer may not see payments.
    """
    if not can_view_payments(account):
        return None
    database = router.db_for_read(ReimbursementLine)
    connection = connections[database]
    name = connection.ops.quote_name
    lines = name(ReimbursementLine._meta.db_table)
    stoppages = name(WorkStoppage._meta.db_table)
    beneficiaries = name(Beneficiary._meta.db_table)
    same_database = router.db_for_read(Beneficiary) == database
    named = _BENEFICIARIES_SQL.get(connection.vendor) if same_database else None
    select = [
        "COUNT(*)",
        "MAX(updated_at)",
        "MAX(id)",
        f"(SELECT COUNT(*) FROM {stoppages} WHERE member_id = %s)",  # noqa: S608 (quoted names)
    ]
    params = [account.member_id]
    if named:
        select.append(f"(SELECT {named} FROM {beneficiaries} WHERE member_id = %s)")  # noqa: S608
        params.append(account.member_id)
    with hot_cursor(connection) as cursor:  # every first page: prepared
        cursor.execute(
            f"SELECT {', '.join(select)} FROM {lines} WHERE member_id = %s",  # noqa: S608 (quoted names)
            [*params, account.member_id],
        )
        row = cursor.fetchone()
    if not named:
        row = (
            *row,
            tuple(
                Beneficiary.objects.filter(member_id=account.member_id)
                .order_by("id")
                .values_list("id", "birth_date", "first_names", "nir")
            ),
        )
    return FirstPageVersion(*row)


# The member's beneficiaries as one string, by database (others: a second query).
_BENEFICIARIES_SQL = {
    "postgresql": (
        "string_agg(CONCAT(id, ':', birth_date, ':', first_names, ':', nir), '|' ORDER BY id)"
    ),
    "sqlite": "group_concat(id || ':' || birth_date || ':' || first_names || ':' || nir, '|')",
}


def stoppages(*, account):
    """The member's stoppages, newest first, each with its payments, total and next expected date."""
    if not can_view_payments(account):
        return []
    result = []
    for stoppage in (
        WorkStoppage.objects.filter(member_id=account.member_id)
        .prefetch_related("payments")
        .order_by("-start")
    ):
        payments = sorted(stoppage.payments.all(), key=lambda p: p.period_start)
        paid = [p for p in payments if p.status == AllowancePayment.Status.PAID]
        total = sum((p.net for p in paid), Decimal("0"))
        next_date = None
        if stoppage.end is None and paid:
            last = max((p.payment_date for p in paid if p.payment_date), default=None)
            next_date = last + NEXT_PAYMENT_EVERY if last else None
        result.append(
            {"stoppage": stoppage, "payments": payments, "total": total, "next_date": next_date}
        )
    return result


@dataclass
class MonthlyStatement:
    lines: list
    allowances: list
    reimbursed_total: Decimal
    allowances_total: Decimal

    @property
    def total(self) -> Decimal:
        return self.reimbursed_total + self.allowances_total


def monthly_statement(*, account, month: date) -> MonthlyStatement:
    """What was paid to or for the member in the month of `month` (by payment date)."""
    if not can_view_payments(account):
        return MonthlyStatement([], [], Decimal("0"), Decimal("0"))
    first = month.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    lines = list(
        ReimbursementLine.objects.filter(
            member_id=account.member_id,
            status=ReimbursementLine.Status.PAID,
            payment_date__gte=first,
            payment_date__lt=following,
        )
        .select_related("beneficiary")
        .order_by("payment_date", "payment_reference", "care_date", "id")
    )
    allowances = list(
        AllowancePayment.objects.filter(
            member_id=account.member_id,
            status=AllowancePayment.Status.PAID,
            payment_date__gte=first,
            payment_date__lt=following,
        )
        .select_related("stoppage")
        .order_by("payment_date", "period_start", "id")
    )
    return MonthlyStatement(
        lines=lines,
        allowances=allowances,
        reimbursed_total=sum((line.net_reimbursed for line in lines), Decimal("0")),
        allowances_total=sum((payment.net for payment in allowances), Decimal("0")),
    )


def entitled_member(*, account):
    """The viewer's member with their CPAM and beneficiaries, for the attestation de droits."""
    if not can_view_payments(account):
        raise Http404
    return (
        Member.objects.select_related("cpam")
        .prefetch_related("beneficiaries")
        .get(pk=account.member_id)
    )


@dataclass
class AllowanceTotals:
    payments: list
    gross: Decimal
    csg: Decimal
    crds: Decimal
    net: Decimal


def allowance_payments_paid_between(*, account, since: date, until: date) -> AllowanceTotals:
    """Daily-allowance payments paid (by payment date) from `since` to `until` included."""
    payments = []
    if can_view_payments(account):
        payments = list(
            AllowancePayment.objects.filter(
                member_id=account.member_id,
                status=AllowancePayment.Status.PAID,
                payment_date__gte=since,
                payment_date__lte=until,
            )
            .select_related("stoppage")
            .order_by("payment_date", "period_start", "id")
        )
    return AllowanceTotals(
        payments=payments,
        **{
            name: sum((getattr(p, name) for p in payments), Decimal("0"))
            for name in ("gross", "csg", "crds", "net")
        },
    )
