"""Demo payments for `manage.py load_demo`: a year of history for the demo members.

The rows are made by `portal.payments.generator` with a fixed seed and dates
relative to today, and go through the real imports (no email), so the demo
shows exactly what a feed would give. Ids are fixed: loading again the same
day changes nothing, another day moves the same rows to the new dates.
"""

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.utils import timezone

from portal.core.feeds import FeedRow
from portal.members.models import Member

from .generator import PaymentsGenerator, Person
from .imports import allowances_import, reimbursements_import

SEED = 2026


@dataclass(frozen=True)
class DemoStoppage:
    prefix: str
    kind: str
    started_days_ago: int
    duration_days: int | None  # None: still open
    daily_gross: Decimal


@dataclass(frozen=True)
class DemoMember:
    nir13: str
    prefix: str
    lines: int
    stoppages: tuple[DemoStoppage, ...] = ()


DEMO_MEMBERS = (
    # Paul Martin, with his daughter Léa: an open sick leave, and a short one last winter.
    DemoMember(
        "1850578006084",
        "DEMO-PM",
        lines=40,
        stoppages=(
            DemoStoppage("DEMO-AT-PM-2", "maladie", 45, None, Decimal("38.62")),
            DemoStoppage("DEMO-AT-PM-1", "maladie", 240, 12, Decimal("38.62")),
        ),
    ),
    # Camille Bernard: a maternity leave, over.
    DemoMember(
        "2920675112233",
        "DEMO-CB",
        lines=24,
        stoppages=(DemoStoppage("DEMO-AT-CB-1", "maternite", 330, 112, Decimal("74.30")),),
    ),
    # Antoine Nguyen: a work accident, over.
    DemoMember(
        "1671199350012",
        "DEMO-AN",
        lines=30,
        stoppages=(DemoStoppage("DEMO-AT-AN-1", "at_mp", 150, 36, Decimal("52.80")),),
    ),
)


class DemoDataError(Exception):
    """A demo row was rejected: the demo members are missing, or a rule changed."""


def demo_payments_load(*, today: date | None = None) -> dict[str, int]:
    """Load (or refresh) the reimbursements and daily allowances of the demo members.

    The members must exist (`load_demo` creates them first); members missing
    are skipped. Beneficiaries with a NIR get lines too. Returns the number of
    rows of each kind; raises `DemoDataError` if any row was rejected.
    """
    today = today or timezone.localdate()
    generator = PaymentsGenerator(seed=SEED, today=today)
    lines: list[list[str]] = []
    allowances: list[list[str]] = []
    for demo in DEMO_MEMBERS:
        member = (
            Member.objects.filter(nir__startswith=demo.nir13)
            .prefetch_related("beneficiaries")
            .first()
        )
        if member is None:
            continue
        person = Person(nir=member.nir, birth_date=member.birth_date)
        beneficiaries = [
            Person(nir=b.nir, birth_date=b.birth_date, beneficiary_nir=b.nir)
            for b in member.beneficiaries.all()
            if b.nir
        ]
        rng = generator.rng(0, demo.prefix)
        lines += generator.reimbursement_rows(
            rng, prefix=demo.prefix, member=person, beneficiaries=beneficiaries, count=demo.lines
        )
        for stoppage in demo.stoppages:
            start = today - timedelta(days=stoppage.started_days_ago)
            end = None
            if stoppage.duration_days:
                end = start + timedelta(days=stoppage.duration_days - 1)
            allowances += generator.allowance_rows(
                rng,
                prefix=stoppage.prefix,
                member=person,
                kind=stoppage.kind,
                start=start,
                end=end,
                daily_gross=stoppage.daily_gross,
            )
    errors = []
    for rows, load in ((lines, reimbursements_import), (allowances, allowances_import)):
        load(
            rows=[FeedRow(number, tuple(row)) for number, row in enumerate(rows, start=2)],
            source_name="demo",
            strict=True,
            notify=False,
            actor="demo",
            on_error=errors.append,
        )
    if errors:
        raise DemoDataError("; ".join(str(error) for error in errors))
    return {"reimbursements": len(lines), "allowances": len(allowances)}
