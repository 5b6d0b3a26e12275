"""`manage.py generate_payments`: files that the three imports take without a rejection."""

import csv
import io
from datetime import date, timedelta
from decimal import Decimal

from django.core.management import call_command
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.members.models import Member
from portal.members.nir import parse
from portal.payments import imports
from portal.payments.generator import PaymentsGenerator, Person
from portal.payments.models import AllowancePayment, ReimbursementLine, WorkStoppage

from .helpers import TODAY, run


def generate(out, *args):
    stdout = io.StringIO()
    call_command("generate_payments", "--out", str(out), *args, stdout=stdout)
    return stdout.getvalue()


def read(path):
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def test_generated_files_import_with_no_rejection(tmp_path, db, today):
    output = generate(
        tmp_path, "--members", "40", "--lines-per-member", "12", "--stoppage-share", "0.5"
    )

    assert f"{tmp_path}/reimbursements.csv: 480 rows" in output
    members = run("import_members", tmp_path / "members.csv", "--create-cpams")
    lines = run("import_reimbursements", tmp_path / "reimbursements.csv", "--batch-size", "100")
    allowances = run("import_allowances", tmp_path / "allowances.csv", "--batch-size", "50")

    assert (members.exit_code, members.stderr) == (0, "")
    assert (lines.exit_code, lines.stderr) == (0, "")
    assert (allowances.exit_code, allowances.stderr) == (0, "")
    assert Member.objects.count() == 40
    assert ReimbursementLine.objects.count() == 480
    payments = read(tmp_path / "allowances.csv")
    assert AllowancePayment.objects.count() == len(payments) > 0
    assert WorkStoppage.objects.count() == len({row["stoppage_id"] for row in payments})
    # Again: nothing changes.
    again = run("import_reimbursements", tmp_path / "reimbursements.csv")
    assert again.counts["unchanged"] == 480


def test_generated_data_looks_like_the_real_thing(tmp_path, db, today):
    generate(tmp_path, "--members", "300", "--lines-per-member", "20", "--stoppage-share", "0.3")
    lines = read(tmp_path / "reimbursements.csv")
    payments = read(tmp_path / "allowances.csv")

    codes = {row["act_code"] for row in lines}
    assert {"G", "PH7", "PH4", "B", "AMI"} <= codes
    consultations = [row for row in lines if row["act_code"] == "G"]
    assert {(row["base_amount"], row["rate"]) for row in consultations} == {("30.00", "70")}
    assert {row["participation_forfaitaire"] for row in consultations} <= {"2.00", "0.00"}
    medicines = [row for row in lines if row["act_code"] == "PH4"]
    assert {row["rate"] for row in medicines} == {"30"}
    # 1 € a box, never more than what is paid back (the rest is recovered later).
    assert "1.00" in {row["franchise"] for row in medicines}
    assert all(Decimal(row["franchise"]) <= Decimal(row["gross_reimbursed"]) for row in medicines)
    assert {row["payee"] for row in lines} == {"member", "professional"}
    assert {row["status"] for row in lines} == {"paid", "in_progress"}
    care_dates = [date.fromisoformat(row["care_date"]) for row in lines]
    assert TODAY - timedelta(days=366) < min(care_dates) and max(care_dates) < TODAY
    # A payment transfer groups lines: some references come back.
    references = [row["payment_reference"] for row in lines if row["payment_reference"]]
    assert len(set(references)) < len(references)
    # Sick leaves still open, paid every 14 days after 3 waiting days.
    open_leaves = [row for row in payments if not row["stoppage_end"]]
    assert open_leaves
    assert {row["stoppage_kind"] for row in open_leaves} == {"maladie"}
    assert {row["days"] for row in open_leaves} == {"14"}
    first = min(open_leaves, key=lambda row: row["period_start"])
    assert date.fromisoformat(first["period_start"]) - date.fromisoformat(
        first["stoppage_start"]
    ) == timedelta(days=3)
    members = read(tmp_path / "members.csv")
    nirs = [row["nir"] for row in members]
    assert len(set(nirs)) == len(nirs)
    assert {row["sex"] for row in members} == {"1", "2"}


def test_same_seed_same_files_other_seed_other_files(tmp_path, db, today):
    generate(tmp_path / "a", "--members", "5", "--seed", "7")
    generate(tmp_path / "b", "--members", "5", "--seed", "7")
    generate(tmp_path / "c", "--members", "5", "--seed", "8")

    for name in ("members.csv", "reimbursements.csv", "allowances.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "members.csv").read_bytes() != (
        tmp_path / "c" / "members.csv"
    ).read_bytes()


def test_nirs_are_valid_and_unique_across_many_members():
    generator = PaymentsGenerator(seed=3, today=TODAY)
    seen = set()
    for index in range(0, 24_000_000, 4_001):
        person, row = generator.member(index)
        parsed = parse(person.nir, require_key=True)
        assert parsed.sex == row[4]
        assert person.nir[3:5] == row[1][5:7]  # birth month
        seen.add(person.nir)
    assert len(seen) == len(range(0, 24_000_000, 4_001))


def test_minors_pay_neither_flat_contribution_nor_deductible():
    generator = PaymentsGenerator(seed=1, today=TODAY)
    parent = Person(nir="185057500000147", birth_date=date(1985, 5, 12))
    child = Person(nir="x", birth_date=date(2015, 3, 8), beneficiary_nir="215037511104224")
    rng = generator.rng(0, "test")

    rows = generator.reimbursement_rows(
        rng, prefix="T", member=parent, beneficiaries=[child], count=300
    )

    for_child = [row for row in rows if row[2]]
    assert for_child
    assert {(row[11], row[12]) for row in for_child} == {("0.00", "0.00")}
    # The parent's flat contributions stop at 50 € a year.
    by_year: dict[int, Decimal] = {}
    for row in rows:
        if not row[2]:
            year = int(row[3][:4])
            by_year[year] = by_year.get(year, Decimal(0)) + Decimal(row[11])
    assert max(by_year.values()) <= 50


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), index=st.integers(0, 23_999_999))
def test_any_generated_member_gives_valid_rows(seed, index):
    generator = PaymentsGenerator(seed=seed, today=TODAY, lines_per_member=10)

    for name, rows in generator.member_files_rows(index, stoppage_share=1):
        parse_row = {
            "reimbursements": imports.reimbursement_row_parse,
            "allowances": imports.allowance_row_parse,
        }.get(name)
        for row in rows:
            if parse_row:
                assert parse_row(row, today=TODAY).errors == (), row
