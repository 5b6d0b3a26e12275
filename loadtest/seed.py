"""The members the load needs, written straight into the stack's database.

Each run gets fresh members (new NIRs, addresses unique to the run), so
that no limit left by an earlier run (three reset links per account and hour,
one upcoming appointment per motive) changes what this one sees:

- `login`: members who log in on the web with a known password and read
  Mes paiements: a year of reimbursement lines each (two a month, paid by
  monthly transfer) and a closed sick leave with its daily allowances;
- `reset`: members who ask for a reset link, each once, by their NIR and
  birth date, at an address unique to them (the SMTP sink counts per address);
- `book`: members with an API bearer token (stored hashed, as the portal
  issues them) who search slots and book a phone interview, each once.

One office (a CPAM with a site and `--advisors` advisors, weekday ranges,
every motive) is created on the first run and reused. Everything is
bulk-inserted; the password's Argon2id hash is computed once and shared
(each login still verifies it in full). Django must be set up (`stack.django_setup`).
"""

import random
from datetime import date, datetime, time, timedelta
from decimal import Decimal

OFFICE_SITE = "Accueil de charge (make loadtest)"
MOTIVE = "arret-travail-ij"
PASSWORD = "Charge-Compte-Sante-2026"  # noqa: S105 (the load's test members only)


def _nirs(count: int, rng: random.Random) -> list[str]:
    """`count` valid 15-character NIRs that no member has yet."""
    from portal.members.models import Member
    from portal.members.nir import key_for

    found: set[str] = set()
    while len(found) < count:
        batch = set()
        while len(batch) < (count - len(found)) * 2:
            sex = rng.choice("12")
            nir13 = (
                f"{sex}{rng.randint(40, 99):02d}{rng.randint(1, 12):02d}"
                f"{rng.randint(1, 95):02d}{rng.randint(1, 999):03d}{rng.randint(1, 999):03d}"
            )
            if nir13[5:7] != "20":  # Corsica's 2A/2B, not numeric
                batch.add(nir13 + key_for(nir13))
        taken = set(Member.objects.filter(nir__in=batch).values_list("nir", flat=True))
        found |= batch - taken - found
    return sorted(found)[:count]


def office(advisors: int):
    """The load's CPAM, site and advisors (created once)."""
    from portal.appointments.models import Advisor, Motive, OpeningRange, Site
    from portal.members.models import Cpam
    from portal.staff.models import Staff

    cpam, _ = Cpam.objects.get_or_create(code="751", defaults={"name": "Paris"})
    site = Site.objects.filter(cpam=cpam, name=OFFICE_SITE).first()
    if site is not None:
        return cpam, site
    site = Site.objects.create(
        cpam=cpam, name=OFFICE_SITE, address="1 rue de la Charge", postal_code="75011", city="Paris"
    )
    staff = Staff.objects.bulk_create(
        Staff(
            email=f"charge{i:03d}@caisse.example",
            first_name="Conseiller",
            last_name=f"Charge {i:03d}",
            role=Staff.Role.PHONE_ADVISOR,
            cpam=cpam,
            password="!",  # noqa: S106 (an unusable password: nobody logs in)
        )
        for i in range(advisors)
    )
    team = Advisor.objects.bulk_create(
        Advisor(staff=person, site=site, phone=True, on_site=True) for person in staff
    )
    motives = list(Motive.objects.all())
    Advisor.motives.through.objects.bulk_create(
        Advisor.motives.through(advisor_id=advisor.pk, motive_id=motive.pk)
        for advisor in team
        for motive in motives
    )
    OpeningRange.objects.bulk_create(
        OpeningRange(advisor=advisor, weekday=weekday, start_time=time(*start), end_time=time(*end))
        for advisor in team
        for weekday in range(5)
        for start, end in (((8, 30), (12, 0)), ((13, 30), (16, 30)))
    )
    return cpam, site


def _lines(member, run: str, index: int, today: date, rng: random.Random) -> list:
    from portal.payments.models import ReimbursementLine

    lines = []
    for month in range(12):
        paid = today.replace(day=1) - timedelta(days=30 * month + 5)
        for n in range(2):
            net = Decimal(rng.choice(["16.50", "19.00", "26.60", "7.20", "42.10"]))
            lines.append(
                ReimbursementLine(
                    line_id=f"LT{run}-{index}-{month}-{n}",
                    member=member,
                    care_date=paid - timedelta(days=rng.randint(3, 20)),
                    act_code=rng.choice(["G", "GS", "PHA", "C"]),
                    act_label="Consultation",
                    professional="Dr Martin, médecin généraliste",
                    amount_paid=net + Decimal("10.00"),
                    base_amount=net + Decimal("5.00"),
                    rate=Decimal("70.00"),
                    gross_reimbursed=net + Decimal("2.00"),
                    participation_forfaitaire=Decimal("2.00"),
                    franchise=Decimal("0.00"),
                    net_reimbursed=net,
                    payee="member",
                    payment_date=paid,
                    payment_reference=f"VIR{run}{index:05d}{month:02d}",
                    status="paid",
                )
            )
    return lines


def _stoppage(member, run: str, index: int, today: date) -> tuple:
    from portal.payments.models import AllowancePayment, WorkStoppage

    start = today - timedelta(days=90)
    stoppage = WorkStoppage(
        stoppage_id=f"AT{run}-{index}",
        member=member,
        kind="maladie",
        start=start,
        end=start + timedelta(days=27),
        waiting_days=3,
    )
    payments = [
        AllowancePayment(
            payment_id=f"IJ{run}-{index}-{k}",
            stoppage=stoppage,
            member=member,
            period_start=start + timedelta(days=3 + 12 * k),
            period_end=start + timedelta(days=14 + 12 * k),
            days=12,
            daily_gross=Decimal("41.47"),
            gross=Decimal("497.64"),
            csg=Decimal("33.09"),
            crds=Decimal("2.49"),
            net=Decimal("462.06"),
            payment_date=start + timedelta(days=20 + 12 * k),
            status="paid",
        )
        for k in range(2)
    ]
    return stoppage, payments


def seed(
    *, run: str, login: int, reset: int, book: int, advisors: int, seed_value: int = 0
) -> dict:
    """Create the members; return what the Locust scenario needs (NIRs, password, tokens)."""
    from django.contrib.auth.hashers import make_password
    from django.db import connections, transaction
    from django.utils import timezone

    from portal.accounts.models import Account, ApiToken
    from portal.core.tokens import new_token, token_hash
    from portal.members.models import Member
    from portal.payments.models import AllowancePayment, ReimbursementLine, WorkStoppage

    rng = random.Random(seed_value or run)
    cpam, _ = office(advisors)
    encoded = make_password(PASSWORD)  # once: every account shares it
    now = timezone.now()
    today = timezone.localdate()
    total = login + reset + book
    nirs = _nirs(total, rng)
    births = [date(rng.randint(1950, 2000), rng.randint(1, 12), rng.randint(1, 28)) for _ in nirs]
    with transaction.atomic():
        members = Member.objects.bulk_create(
            Member(
                nir=nir,
                birth_date=birth,
                last_name="Charge",
                first_names="Camille",
                sex=nir[0],
                email=f"lt{run}-{i}@charge.example",
                mobile_phone="+33612345678",
                postal_address="1 rue de la Charge",
                postal_code="75011",
                iban="FR7630006000011234567890189",
                cpam=cpam,
            )
            for i, (nir, birth) in enumerate(zip(nirs, births, strict=True))
        )
        accounts = Account.objects.bulk_create(
            Account(
                member=member,
                nir=member.nir[:13],
                email=member.email,
                mobile_phone="+33612345678",
                state=Account.State.ACTIVE,
                activated_at=now,
                password=encoded,
            )
            for member in members
        )
        readers = list(zip(members[:login], accounts[:login], strict=True))
        lines, stoppages, allowances = [], [], []
        for index, (member, _) in enumerate(readers):
            lines += _lines(member, run, index, today, rng)
            stoppage, payments = _stoppage(member, run, index, today)
            stoppages.append(stoppage)
            allowances += payments
        ReimbursementLine.objects.bulk_create(lines, batch_size=5000)
        WorkStoppage.objects.bulk_create(stoppages, batch_size=5000)
        AllowancePayment.objects.bulk_create(allowances, batch_size=5000)
        bookers = accounts[login + reset :]
        tokens = [new_token() for _ in bookers]
        ApiToken.objects.bulk_create(
            ApiToken(
                account=account,
                token_hash=token_hash(token),
                expires_at=now + timedelta(hours=6),
            )
            for account, token in zip(bookers, tokens, strict=True)
        )
    connections.close_all()
    reset_members = list(
        zip(members[login : login + reset], births[login : login + reset], strict=True)
    )
    return {
        "run": run,
        "created_at": datetime.now().isoformat(),
        "password": PASSWORD,
        "motive": MOTIVE,
        "login": [account.nir for _, account in readers],
        "reset": [
            {"nir": member.nir[:13], "birth_date": birth.isoformat(), "email": member.email}
            for member, birth in reset_members
        ],
        "book": [
            {"token": token, "email": account.email}
            for account, token in zip(bookers, tokens, strict=True)
        ],
        "lines": len(lines),
    }
