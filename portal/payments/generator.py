"""Realistic payment data: the feed files of `manage.py generate_payments`, and the demo's.

Everything here is made up but follows the fund's rules, so that the files
import without a single rejection:

- valid NIRs (key included), consistent with the sex and birth month, unique
  for up to 24 million members; valid IBANs (RIB key and IBAN check digits);
- real act codes, bases and rates (consultation G at 30.00 € and 70 %,
  medicines PH7/PH4/PH2 at 65/30/15 % with a 1 € deductible per box, nursing
  and physiotherapy with 1 € per act, taxis with 4 € per trip…), the flat
  contribution of 2 € per consultation or act, neither for minors, both
  capped at 50 € a year; third-party payment where it is the rule
  (pharmacies, taxis, nurses) and sometimes elsewhere;
- work stoppages with their waiting days and daily allowances paid every 14
  days, CSG 6.2 % and CRDS 0.5 % deducted.

Rows are produced one member at a time, so files of any size are written in
bounded memory. Amounts are rounded half up to the cent.
"""

import csv
import random
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from stdnum import iban as stdnum_iban

from portal.members.nir import key_for
from portal.members.services import FEED_COLUMNS as MEMBER_COLUMNS

from .imports import ALLOWANCE_COLUMNS, CRDS_RATE, CSG_RATE, REIMBURSEMENT_COLUMNS
from .models import WorkStoppage

CENT = Decimal("0.01")
FLAT_CONTRIBUTION = Decimal("2.00")
YEARLY_CAP = Decimal("50.00")  # for the flat contributions, and for the deductibles
ALLOWANCE_PERIOD_DAYS = 14
MAX_MEMBERS = 2 * 12 * 1_000_000  # sex × birth month × 6 serial digits of the NIR


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def money(value: Decimal) -> str:
    return f"{value:.2f}"


@dataclass(frozen=True)
class Act:
    """A kind of care as the fund pays it back."""

    code: str
    label: str
    professionals: tuple[str, ...]
    base: tuple[str, str]  # tariff per unit: fixed (same bounds) or a range of prices
    rate: int  # percent
    flat_contribution: bool  # the 2 € participation forfaitaire applies
    deductible: Decimal  # franchise médicale per unit
    units: tuple[int, int] = (1, 1)  # boxes, acts, trips
    third_party: float = 0.0  # share paid directly to the professional
    overbilling: float = 0.0  # share of fees above the tariff (secteur 2)
    weight: int = 1


GP = ("Dr Claire Lefèvre (médecin généraliste)", "Dr Karim Haddad (médecin généraliste)")
ACTS = (
    Act("G", "Consultation du médecin généraliste", GP, ("30.00", "30.00"), 70, True, Decimal(0),
        third_party=0.15, overbilling=0.05, weight=30),
    Act("APC", "Avis ponctuel de consultant (spécialiste)",
        ("Dr Sophie Marchand (cardiologue)", "Dr Hugo Perrin (dermatologue)",
         "Dr Inès Benali (ophtalmologiste)"),
        ("60.00", "60.00"), 70, True, Decimal(0), overbilling=0.4, weight=5),
    Act("K", "Acte technique médical", ("Dr Hugo Perrin (dermatologue)",),
        ("19.20", "19.20"), 70, True, Decimal(0), weight=2),
    Act("PH7", "Médicaments remboursés à 65 % (vignette blanche)",
        ("Pharmacie du Marché", "Pharmacie de la Gare"), ("1.90", "24.90"), 65, False,
        Decimal("1.00"), units=(1, 4), third_party=0.92, weight=25),
    Act("PH4", "Médicaments remboursés à 30 % (vignette bleue)",
        ("Pharmacie du Marché", "Pharmacie de la Gare"), ("2.10", "15.80"), 30, False,
        Decimal("1.00"), units=(1, 3), third_party=0.92, weight=8),
    Act("PH2", "Médicaments remboursés à 15 % (vignette orange)", ("Pharmacie du Marché",),
        ("3.20", "12.40"), 15, False, Decimal("1.00"), units=(1, 2), third_party=0.9, weight=3),
    Act("B", "Analyses de biologie médicale", ("Laboratoire Bioanalyses Centre",),
        ("8.10", "62.10"), 60, True, Decimal(0), third_party=0.6, weight=6),
    Act("KMB", "Prélèvement sanguin par le laboratoire", ("Laboratoire Bioanalyses Centre",),
        ("2.52", "2.52"), 60, False, Decimal(0), third_party=0.6, weight=4),
    Act("AMI", "Soins infirmiers (AMI 4)", ("Cabinet infirmier Rousseau",), ("12.60", "12.60"),
        60, False, Decimal("1.00"), units=(1, 3), third_party=0.9, weight=4),
    Act("AMK", "Séance de masso-kinésithérapie (AMK 8)", ("Thomas Girard (masseur-kinésithérapeute)",),
        ("17.20", "17.20"), 60, False, Decimal("1.00"), third_party=0.3, weight=4),
    Act("TAX", "Transport en taxi conventionné", ("Taxi conventionné Allo Santé",),
        ("24.00", "118.00"), 55, False, Decimal("4.00"), third_party=1.0, weight=2),
    Act("HBJD001", "Détartrage et polissage des dents", ("Dr Anne Caron (chirurgien-dentiste)",),
        ("28.92", "28.92"), 60, True, Decimal(0), weight=2),
)  # fmt: skip
_ACT_WEIGHTS = [act.weight for act in ACTS]

FIRST_NAMES = {
    "1": ("Jean", "Lucas", "Hugo", "Louis", "Karim", "Thomas", "Nicolas", "Julien", "Mamadou"),
    "2": ("Marie", "Léa", "Camille", "Chloé", "Inès", "Sophie", "Nathalie", "Aïcha", "Manon"),
}
LAST_NAMES = (
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
    "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "Nguyen", "Da Silva", "Benali",
)  # fmt: skip
# (postal code, CPAM code): import the members file with --create-cpams.
PLACES = (
    ("75011", "751"), ("75015", "751"), ("13001", "131"), ("69003", "691"), ("33000", "331"),
    ("59000", "595"), ("31000", "311"), ("44000", "441"), ("67000", "671"), ("97400", "974"),
)  # fmt: skip
# Two-character departments only (2A/2B for Corsica, 99 for born abroad), so
# that the 6 serial digits fit in commune + order.
BIRTH_DEPARTMENTS = ("75", "13", "69", "33", "59", "31", "44", "67", "93", "2A", "99")


@dataclass
class Person:
    """A member or a beneficiary, with what their lines depend on."""

    nir: str
    birth_date: date
    # As the reimbursements feed names them: "" for the member themself.
    beneficiary_nir: str = ""
    # Flat contributions and deductibles charged so far, by calendar year.
    charged: dict[tuple[int, str], Decimal] = field(default_factory=dict)

    def minor_on(self, day: date) -> bool:
        born = self.birth_date
        return day.year - born.year - ((day.month, day.day) < (born.month, born.day)) < 18

    def charge(self, day: date, what: str, amount: Decimal) -> Decimal:
        """What can still be charged this year, up to the yearly cap."""
        spent = self.charged.get((day.year, what), Decimal(0))
        amount = min(amount, YEARLY_CAP - spent)
        self.charged[(day.year, what)] = spent + amount
        return amount


# Members


def nir_for(index: int, *, sex: str, birth_date: date, department: str) -> str:
    """A valid 15-character NIR; the 6 serial digits make it unique per (sex, month, index)."""
    if len(department) != 2:
        raise ValueError("a 2-character department")
    number = f"{sex}{birth_date:%y}{birth_date:%m}{department}{index % 1_000_000:06d}"
    return number + key_for(number)


def iban_for(rng: random.Random) -> str:
    """A French IBAN with a correct RIB key and check digits."""
    bank, branch = f"{rng.randint(10000, 99999)}", f"{rng.randint(10000, 99999)}"
    account = f"{rng.randint(0, 10**11 - 1):011d}"
    rib_key = 97 - (89 * int(bank) + 15 * int(branch) + 3 * int(account)) % 97
    bban = f"{bank}{branch}{account}{rib_key:02d}"
    return "FR" + stdnum_iban.calc_check_digits("FR00" + bban) + bban


def _ascii(text: str) -> str:
    return "".join(
        char for char in unicodedata.normalize("NFKD", text) if not unicodedata.combining(char)
    )


class PaymentsGenerator:
    """Members and their payments, deterministic for a seed and a day."""

    # An affine bijection of [0, MAX_MEMBERS) spreads consecutive members over
    # both sexes and all birth months while keeping their NIRs unique.
    _SPREAD = 15_485_863  # prime, coprime with MAX_MEMBERS

    def __init__(self, *, seed: int = 0, today: date, lines_per_member: int = 20):
        self.seed = seed
        self.today = today
        self.lines_per_member = lines_per_member
        self._offset = random.Random(seed).randrange(MAX_MEMBERS)

    def rng(self, index: int, purpose: str) -> random.Random:
        return random.Random(f"{self.seed}:{index}:{purpose}")

    def member(self, index: int) -> tuple[Person, list[str]]:
        """The member number `index`: the person, and their row of the register feed."""
        if not 0 <= index < MAX_MEMBERS:
            raise ValueError(f"at most {MAX_MEMBERS} members")
        rng = self.rng(index, "member")
        spread = (index * self._SPREAD + self._offset) % MAX_MEMBERS
        sex = "12"[spread % 2]
        month = spread // 2 % 12 + 1
        born = date(rng.randint(self.today.year - 80, self.today.year - 19), month, 1)
        born += timedelta(days=rng.randrange(28))
        nir = nir_for(
            spread // 24, sex=sex, birth_date=born, department=rng.choice(BIRTH_DEPARTMENTS)
        )
        first, last = rng.choice(FIRST_NAMES[sex]), rng.choice(LAST_NAMES)
        postal_code, cpam_code = rng.choice(PLACES)
        email = f"{_ascii(first)}.{_ascii(last)}.{index}@example.org".lower().replace(" ", "")
        row = [
            nir,
            born.isoformat(),
            last,
            first,
            sex,
            email if rng.random() < 0.9 else "",
            f"0612{rng.randrange(10**6):06d}" if rng.random() < 0.8 else "",
            postal_code,
            iban_for(rng),
            cpam_code,
        ]
        return Person(nir=nir, birth_date=born), row

    # Reimbursements

    def reimbursement_rows(
        self,
        rng: random.Random,
        *,
        prefix: str,
        member: Person,
        beneficiaries: list[Person] = (),
        count: int,
    ) -> list[list[str]]:
        """`count` lines over the last 12 months, for the member and their beneficiaries."""
        people = [member, *beneficiaries]
        weights = [6, *[4 / len(beneficiaries)] * len(beneficiaries)] if beneficiaries else [1]
        cares = [
            (self.today - timedelta(days=rng.randint(1, 365)), rng.choices(people, weights)[0])
            for _ in range(count)
        ]
        # In date order, so that the yearly caps are reached by the last cares of the year.
        cares.sort(key=lambda care: care[0])
        rows = []
        for number, (care_date, person) in enumerate(cares, start=1):
            act = rng.choices(ACTS, _ACT_WEIGHTS)[0]
            rows.append(self._line(rng, f"{prefix}-{number:04d}", member, person, act, care_date))
        return rows

    def _line(self, rng, line_id, member, person, act, care_date) -> list[str]:
        low, high = Decimal(act.base[0]), Decimal(act.base[1])
        price = low if low == high else cents(low + (high - low) * Decimal(rng.random()))
        units = rng.randint(*act.units)
        base = price * units
        amount_paid = base
        if rng.random() < act.overbilling:
            amount_paid += Decimal(rng.choice((10, 15, 20, 25, 40)))
        gross = cents(base * act.rate / 100)
        minor = person.minor_on(care_date)
        flat = FLAT_CONTRIBUTION if act.flat_contribution and not minor else Decimal(0)
        flat = person.charge(care_date, "flat", min(flat, gross))
        deductible = act.deductible * units if not minor else Decimal(0)
        deductible = person.charge(care_date, "deductible", min(deductible, gross - flat))
        net = gross - flat - deductible
        third_party = rng.random() < act.third_party
        payment_date = care_date + timedelta(days=rng.randint(2, 9 if third_party else 6))
        paid = payment_date <= self.today
        payee = "professional" if third_party else "member"
        reference = ""
        if paid:
            # One transfer per day and payee: the lines it pays share its reference.
            reference = f"VIR{payment_date:%Y%m%d}{member.nir[5:13]}{payee[0].upper()}"
        return [
            line_id,
            member.nir,
            person.beneficiary_nir,
            care_date.isoformat(),
            act.code,
            act.label,
            rng.choice(act.professionals),
            money(amount_paid),
            money(base),
            str(act.rate),
            money(gross),
            money(flat),
            money(deductible),
            money(net),
            payee,
            payment_date.isoformat() if paid else "",
            reference,
            "yes" if rng.random() < 0.75 else "no",
            "paid" if paid else "in_progress",
        ]

    # Daily allowances

    def allowance_rows(
        self,
        rng: random.Random,
        *,
        prefix: str,
        member: Person,
        kind: str,
        start: date,
        end: date | None,
        daily_gross: Decimal,
    ) -> list[list[str]]:
        """The payments of one stoppage: every 14 days from the end of the
        waiting days, for the days gone by (up to yesterday while it is open)."""
        last_day = min(end, self.today - timedelta(days=1)) if end else self.today - timedelta(1)
        period_start = start + timedelta(days=WorkStoppage.WAITING_DAYS[kind])
        rows = []
        number = 0
        while period_start <= last_day:
            period_end = period_start + timedelta(days=ALLOWANCE_PERIOD_DAYS - 1)
            if period_end > last_day:
                if end is None or end > last_day:
                    break  # this period is not over yet: paid at its end
                period_end = last_day
            number += 1
            days = (period_end - period_start).days + 1
            gross = daily_gross * days
            csg, crds = cents(gross * CSG_RATE), cents(gross * CRDS_RATE)
            payment_date = period_end + timedelta(days=rng.randint(2, 5))
            paid = payment_date <= self.today
            rows.append(
                [
                    f"{prefix}-{number:03d}",
                    member.nir,
                    prefix,
                    kind,
                    start.isoformat(),
                    end.isoformat() if end else "",
                    period_start.isoformat(),
                    period_end.isoformat(),
                    str(days),
                    money(daily_gross),
                    money(gross),
                    money(csg),
                    money(crds),
                    money(gross - csg - crds),
                    payment_date.isoformat() if paid else "",
                    "paid" if paid else "in_progress",
                ]
            )
            period_start = period_end + timedelta(days=1)
        return rows

    def stoppage_for(self, rng: random.Random, *, sex: str, age: int) -> tuple:
        """(kind, start, end or None, daily gross) of a plausible stoppage in the last year."""
        kinds = ["maladie", "at_mp"]
        weights = [70, 15]
        if sex == "2" and age < 43:
            kinds.append("maternite")
            weights.append(10)
        if sex == "1" and age < 55:
            kinds.append("paternite")
            weights.append(5)
        kind = rng.choices(kinds, weights)[0]
        wage = Decimal(rng.randint(4500, 11000)) / 100  # daily basic wage
        if kind == "maternite":
            duration, daily = 112, min(cents(wage * Decimal("0.79")), Decimal("101.94"))
        elif kind == "paternite":
            duration, daily = 25, min(cents(wage * Decimal("0.79")), Decimal("101.94"))
        elif kind == "at_mp":
            duration, daily = rng.randint(10, 90), cents(wage * Decimal("0.60"))
        else:
            duration, daily = rng.randint(7, 120), min(cents(wage / 2), Decimal("41.47"))
        if kind == "maladie" and rng.random() < 0.5:  # still off work
            return kind, self.today - timedelta(days=rng.randint(20, 90)), None, daily
        start = self.today - timedelta(days=rng.randint(duration + 10, 360))
        return kind, start, start + timedelta(days=duration - 1), daily

    # Whole files

    def files_write(self, *, out: Path, members: int, stoppage_share: float = 0.05) -> dict:
        """Write members.csv, reimbursements.csv and allowances.csv in `out`; return row counts."""
        out.mkdir(parents=True, exist_ok=True)
        counts = {"members": 0, "reimbursements": 0, "allowances": 0}
        with (
            (out / "members.csv").open("w", newline="", encoding="utf-8") as members_file,
            (out / "reimbursements.csv").open("w", newline="", encoding="utf-8") as lines_file,
            (out / "allowances.csv").open("w", newline="", encoding="utf-8") as allowances_file,
        ):
            writers = {
                "members": csv.writer(members_file, lineterminator="\n"),
                "reimbursements": csv.writer(lines_file, lineterminator="\n"),
                "allowances": csv.writer(allowances_file, lineterminator="\n"),
            }
            writers["members"].writerow(MEMBER_COLUMNS)
            writers["reimbursements"].writerow(REIMBURSEMENT_COLUMNS)
            writers["allowances"].writerow(ALLOWANCE_COLUMNS)
            for index in range(members):
                for name, rows in self.member_files_rows(index, stoppage_share=stoppage_share):
                    writers[name].writerows(rows)
                    counts[name] += len(rows)
        return counts

    def member_files_rows(self, index: int, *, stoppage_share: float) -> Iterator[tuple]:
        person, row = self.member(index)
        yield "members", [row]
        rng = self.rng(index, "payments")
        yield (
            "reimbursements",
            self.reimbursement_rows(
                rng, prefix=f"R{index:08d}", member=person, count=self.lines_per_member
            ),
        )
        if rng.random() < stoppage_share:
            age = self.today.year - person.birth_date.year
            kind, start, end, daily = self.stoppage_for(rng, sex=row[4], age=age)
            yield (
                "allowances",
                self.allowance_rows(
                    rng,
                    prefix=f"AT{index:08d}",
                    member=person,
                    kind=kind,
                    start=start,
                    end=end,
                    daily_gross=daily,
                ),
            )
