"""The member's downloadable documents: accessible, tagged PDFs (PDF/UA-1) in French.

Each document is a Django template rendered to HTML, then laid out by
WeasyPrint. Nothing remote is fetched (`base_url=None`, system fonts): a
document depends only on the database, and a hostile string in a feed cannot
make the server load a URL.
"""

import re
from datetime import date, timedelta

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import translation

from . import selectors

# The relevé mensuel is available for the current month and the 26 before it.
STATEMENT_MONTHS = 27
# An attestation de paiement des IJ covers at most this many months.
ALLOWANCE_CERTIFICATE_MAX_MONTHS = 12

_MONTH = re.compile(r"(\d{4})-(\d{2})")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class PeriodError(ValueError):
    """A period the attestation cannot cover: `code` is missing, format, order or too_long."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


def _add_months(day: date, months: int) -> date:
    """The same day `months` later (or earlier), clamped to the end of a shorter month."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    following = date(year + (month == 12), month % 12 + 1, 1)
    return date(year, month, min(day.day, (following - timedelta(days=1)).day))


def statement_months(*, today: date) -> list[date]:
    """The first days of the months a statement is available for, newest first."""
    first = today.replace(day=1)
    return [_add_months(first, -n) for n in range(STATEMENT_MONTHS)]


def parse_statement_month(value: str) -> date | None:
    """`YYYY-MM` → the first day of that month, or None when malformed."""
    match = _MONTH.fullmatch(value or "")
    if not match:
        return None
    try:
        return date(int(match[1]), int(match[2]), 1)
    except ValueError:
        return None


def statement_available(month: date, *, today: date) -> bool:
    return month in statement_months(today=today)


def default_period(*, today: date) -> tuple[date, date]:
    """The longest period an attestation may cover, ending today."""
    return _add_months(today, -ALLOWANCE_CERTIFICATE_MAX_MONTHS) + timedelta(days=1), today


def parse_period(since: str | None, until: str | None) -> tuple[date, date]:
    """`YYYY-MM-DD` bounds of an attestation period. Raises `PeriodError`."""
    if not since or not until:
        raise PeriodError("missing")
    try:
        if not (_DAY.fullmatch(since) and _DAY.fullmatch(until)):
            raise ValueError
        start, end = date.fromisoformat(since), date.fromisoformat(until)
    except ValueError:
        raise PeriodError("format") from None
    if end < start:
        raise PeriodError("order")
    try:
        limit = _add_months(start, ALLOWANCE_CERTIFICATE_MAX_MONTHS)
    except ValueError:  # beyond year 9999: any end is within the limit
        limit = None
    if limit is not None and end >= limit:
        raise PeriodError("too_long")
    return start, end


def _pdf(template: str, context: dict) -> bytes:
    from weasyprint import HTML  # heavy: loaded on the first download only

    with translation.override("fr"):
        html = render_to_string(
            template,
            {"FUND_NAME": settings.FUND_NAME, "SERVICE_NAME": settings.SERVICE_NAME, **context},
        )
    return HTML(string=html, base_url=None).write_pdf(pdf_variant="pdf/ua-1")


def format_nir(nir: str) -> str:
    """The full NIR grouped as printed on a carte Vitale: `1 85 05 78 006 084 42`."""
    parts = (nir[0:1], nir[1:3], nir[3:5], nir[5:7], nir[7:10], nir[10:13], nir[13:15])
    return " ".join(part for part in parts if part)


def monthly_statement_pdf(*, account, month: date, today: date) -> bytes:
    """The relevé mensuel of `month`: paid reimbursement lines and allowance payments."""
    member = account.member
    return _pdf(
        "documents/monthly_statement.html",
        {
            "member": member,
            "nir": format_nir(member.nir),
            "month": month,
            "statement": selectors.monthly_statement(account=account, month=month),
            "today": today,
        },
    )


def monthly_statement_filename(month: date) -> str:
    return f"releve-mensuel-{month:%Y-%m}.pdf"


def entitlement_certificate_pdf(*, account, today: date) -> bytes:
    """The attestation de droits: the member, their CPAM and beneficiaries, valid on `today`."""
    member = selectors.entitled_member(account=account)
    return _pdf(
        "documents/entitlement_certificate.html",
        {
            "member": member,
            "nir": format_nir(member.nir),
            "beneficiaries": [
                {"person": b, "nir": format_nir(b.nir) if b.nir else ""}
                for b in member.beneficiaries.all()
            ],
            "today": today,
        },
    )


def entitlement_certificate_filename(today: date) -> str:
    return f"attestation-droits-{today:%Y-%m-%d}.pdf"


def allowance_certificate_pdf(*, account, since: date, until: date, today: date) -> bytes:
    """The attestation de paiement des indemnités journalières paid from `since` to `until`."""
    member = account.member
    return _pdf(
        "documents/allowance_certificate.html",
        {
            "member": member,
            "nir": format_nir(member.nir),
            "since": since,
            "until": until,
            "totals": selectors.allowance_payments_paid_between(
                account=account, since=since, until=until
            ),
            "today": today,
        },
    )


def allowance_certificate_filename(since: date, until: date) -> str:
    return f"attestation-indemnites-journalieres-{since:%Y-%m-%d}-{until:%Y-%m-%d}.pdf"
