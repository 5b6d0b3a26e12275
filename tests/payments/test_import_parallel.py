"""The fast path and the parallel path of the payment imports give exactly what the
plain path gives: the same rows written, the same counts, the same report.

On SQLite (ORM path) and on PostgreSQL (bulk path, `make test-postgres`).
"""

import io
import os
from concurrent.futures.process import BrokenProcessPool
from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from hypothesis import example, given, settings
from hypothesis import strategies as st

from portal.core.feeds import FeedRow, feed_read
from portal.members.models import Member
from portal.payments import imports, parallel
from portal.payments.generator import PaymentsGenerator
from portal.payments.models import AllowancePayment, ReimbursementLine, WorkStoppage
from tests.factories import AccountFactory

from .helpers import (
    NIR_A,
    NIR_B,
    NIR_CHILD,
    NIR_UNKNOWN,
    TODAY,
    allowance,
    allowances_feed,
    csv_line,
    reimbursement,
    reimbursements_feed,
    run,
)

# The fast path of a row


def _as_parsed(name: str, value: str):
    """What `reimbursement_row_parse` keeps of a canonical value."""
    if name in ("care_date", "payment_date"):
        return date.fromisoformat(value) if value else None
    if name in imports._LINE_VALUES and name not in (
        "act_code",
        "act_label",
        "professional",
        "payee",
        "payment_reference",
        "transmitted_to_complementary",
        "status",
    ):
        return Decimal(value)
    if name == "transmitted_to_complementary":
        return value == "yes"
    return value


def assert_fast_path_agrees(values):
    """Where the fast path vouches for a row, the full parse accepts it unchanged."""
    if not imports.reimbursement_row_precheck(values, today=TODAY.isoformat()):
        return False
    parsed = imports.reimbursement_row_parse(values, today=TODAY)
    assert parsed.errors == ()
    for name, value in zip(imports.REIMBURSEMENT_COLUMNS, values, strict=True):
        assert getattr(parsed.row, name) == _as_parsed(name, value), name
    return True


TRICKY = [
    "",
    " ",
    "  ",
    "\xa0",
    "\t",
    ",",
    '"',
    "\\",
    "\x00",
    "\x85",
    "\udc80",
    "\ufeff",
    "a",
    "A",
    "é",
    "0",
    "9",
    ".",
    "-",
    "2A",
    "1",
    "00",
    "99",
    "100",
    "100.01",
    "yes",
    "paid",
]


@st.composite
def mutated_rows(draw):
    """A valid row with a few values replaced or altered, often in ways that matter."""
    values = list(reimbursement().values())
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(values) - 1))
        how = draw(st.sampled_from(["replace", "prefix", "suffix", "text"]))
        piece = draw(st.sampled_from(TRICKY))
        if how == "replace":
            values[index] = piece
        elif how == "prefix":
            values[index] = piece + values[index]
        elif how == "suffix":
            values[index] = values[index] + piece
        else:
            values[index] = draw(st.text(max_size=6))
    return values


@settings(max_examples=500)
@given(mutated_rows())
@example(list(reimbursement(act_label="Consultation  double espace").values()))
@example(list(reimbursement(nir=NIR_A.lower() + " ").values()))
@example(list(reimbursement(rate="100.01").values()))
def test_the_fast_path_only_vouches_for_rows_the_full_parse_accepts_as_they_are(values):
    assert_fast_path_agrees(values)


@given(
    base=st.integers(0, 10**6),
    rate=st.sampled_from(["0", "15", "30", "60", "65", "65.5", "70", "70.25", "100"]),
    gross_offset=st.integers(-3, 3),
    net_offset=st.integers(-3, 3),
)
def test_the_fast_path_checks_the_amounts_as_the_full_parse(base, rate, gross_offset, net_offset):
    gross = max(0, round(base * Decimal(rate) / 100) + gross_offset)
    net = max(0, gross - 200 + net_offset)
    values = list(
        reimbursement(
            amount_paid=f"{base / 100:.2f}",
            base_amount=f"{base / 100:.2f}",
            rate=rate,
            gross_reimbursed=f"{gross / 100:.2f}",
            net_reimbursed=f"{net / 100:.2f}",
        ).values()
    )

    fast = imports.reimbursement_row_precheck(values, today=TODAY.isoformat())

    assert fast == (imports.reimbursement_row_parse(values, today=TODAY).errors == ())
    assert_fast_path_agrees(values)


def test_realistic_rows_take_the_fast_path():
    generator = PaymentsGenerator(seed=3, today=TODAY, lines_per_member=30)
    rows = [
        row
        for index in range(40)
        for name, rows in generator.member_files_rows(index, stoppage_share=0)
        if name == "reimbursements"
        for row in rows
    ]

    assert all(assert_fast_path_agrees(row) for row in rows)


# Chunks of a file read as feed_read reads it


def _feed_rows(data: bytes, line_max_bytes: int) -> list[FeedRow]:
    return list(feed_read(io.BytesIO(data), columns=("a", "b"), line_max_bytes=line_max_bytes))


def _chunked_rows(data: bytes, line_max_bytes: int, lines: int) -> list[FeedRow]:
    source = io.BytesIO(data)
    counting = parallel._LineCountingSource(source)
    feed_read(counting, columns=("a", "b"), line_max_bytes=line_max_bytes)  # the header only
    chunks = parallel.chunks_read(
        source, first_line=counting.lines + 1, lines=lines, line_max_bytes=line_max_bytes
    )
    return [
        row
        for chunk in chunks
        for row in parallel.chunk_rows(chunk, width=2, line_max_bytes=line_max_bytes)
    ]


LINE_PIECES = st.sampled_from(
    [b"x", b"1,2", b",", b'"', b'"a,b",c', b"\r", b"\n", b"\r\n", b"\xff", b"\xc3\xa9", b" "]
)


@settings(max_examples=300)
@given(
    header=st.sampled_from([b"a,b\n", b"\xef\xbb\xbfa,b\r\n", b"\n\na,b\n", b"  \na,b\n"]),
    body=st.lists(LINE_PIECES, max_size=40).map(b"".join),
    line_max_bytes=st.integers(9, 14),
    lines=st.integers(1, 4),
)
@example(header=b"a,b\n", body=b"1,2\n" + b"x" * 30 + b"\n3,4", line_max_bytes=9, lines=1)
@example(header=b"a,b\n", body=b"1,2\n123456789", line_max_bytes=9, lines=2)
def test_chunks_give_the_rows_feed_read_gives(header, body, line_max_bytes, lines):
    data = header + body

    assert _chunked_rows(data, line_max_bytes, lines) == _feed_rows(data, line_max_bytes)


def test_chunks_are_read_as_needed():
    class Counting(io.BytesIO):
        def readline(self, size=-1):
            line = super().readline(size)
            self.lines_read = getattr(self, "lines_read", 0) + 1
            return line

    source = Counting(b"".join(b"%d,x\n" % i for i in range(1000)))

    chunks = parallel.chunks_read(source, first_line=1, lines=10)
    first = next(chunks)

    assert first.first_line == 1
    assert first.data.count(b"\n") == 10
    assert source.lines_read == 10
    assert next(chunks).first_line == 11


def test_workers_read_ahead_a_bounded_number_of_chunks():
    pulled = 0

    def items():
        nonlocal pulled
        for number in range(50):
            pulled += 1
            yield number

    results = parallel.ordered_map(abs, items(), workers=1)
    try:
        assert next(results) == 0
        assert pulled <= 1 * parallel.AHEAD_PER_WORKER
        assert list(results) == list(range(1, 50))
    finally:
        results.close()


def test_a_failing_worker_stops_the_import_with_its_error():
    with pytest.raises(ValueError, match="invalid literal"):
        list(parallel.ordered_map(int, ["1", "2", "x", "4"], workers=2))


def test_a_dead_worker_stops_the_import_instead_of_hanging_it():
    with pytest.raises(BrokenProcessPool):
        list(parallel.ordered_map(os._exit, [1, 2, 3], workers=1))


def test_small_files_are_checked_in_the_importing_process():
    cores = parallel.usable_cores()

    assert parallel.default_workers(1024) == 0
    assert parallel.default_workers(10**10) == (
        min(cores, parallel.MAX_WORKERS) if cores > 1 else 0
    )


# Whole imports: workers or not, the same result


def _lines(count: int, *, first: int = 0, nir: str = NIR_A) -> list[str]:
    return [
        csv_line(reimbursement(line_id=f"P{number:05d}", nir=nir, payment_reference=f"V{number}"))
        for number in range(first, first + count)
    ]


def messy_reimbursements(tmp_path):
    """Good lines in bulk, and every kind of bad line, duplicates across batches included."""
    rows = [
        *_lines(40),
        "",
        csv_line(reimbursement(line_id="P00003")),  # duplicate of an earlier batch
        csv_line(reimbursement(line_id="B1", beneficiary_nir=NIR_CHILD)),
        csv_line(reimbursement(line_id="B2", beneficiary_nir=NIR_B)),  # not Paul's
        csv_line(reimbursement(line_id="B3", beneficiary_nir=NIR_A)),  # Paul himself
        csv_line(reimbursement(line_id="U1", nir=NIR_UNKNOWN)),
        csv_line(reimbursement(line_id="U2", nir=NIR_UNKNOWN, rate="x", beneficiary_nir="1")),
        csv_line(reimbursement(line_id="T1", act_label="Consultation  chez   le médecin")),
        csv_line(reimbursement(line_id="T2", professional="Dr Martin, cardiologue")),
        csv_line(reimbursement(line_id="T3", professional="Dr Back\\slash")),
        csv_line(reimbursement(line_id="T4", nir=" ".join([NIR_A[:1], NIR_A[1:5], NIR_A[5:]]))),
        csv_line(reimbursement(line_id="C1", nir=NIR_B, payment_reference="VB1")),
        "L9,too,few",
        "R1," + "x" * 5000,
        'Q1,"unclosed,quote',
        csv_line(reimbursement(line_id="P00041", net_reimbursed="1.00")),
        csv_line(reimbursement(line_id="P00041")),  # the first one claimed the key
        csv_line(reimbursement(line_id="D1", status="in_progress", payment_date="")),
        *_lines(30, first=100, nir=NIR_B),
        csv_line(reimbursement(line_id="P00105", nir=NIR_B)),  # duplicate in the same batch
        csv_line(reimbursement(line_id="P00010")) + "\r",
    ]
    path = reimbursements_feed(tmp_path, rows)
    with path.open("ab") as file:
        file.write(b"E1,\xff\xfe,bad utf-8\n")
        file.write(csv_line(reimbursement(line_id="LAST")).encode())  # no final newline
    return path


def stored_lines():
    return list(
        ReimbursementLine.objects.order_by("line_id").values(
            *(
                f.attname
                for f in ReimbursementLine._meta.concrete_fields
                if f.name not in ("id", "imported_at", "updated_at")
            )
        )
    )


def clear_lines():
    ReimbursementLine.objects.all().delete()


def _import(path, *args):
    return run("import_reimbursements", path, "--batch-size", "7", *args)


@pytest.mark.django_db(transaction=True)
def test_workers_give_the_same_rows_counts_and_report(tmp_path, paul, camille, outbox):
    path = messy_reimbursements(tmp_path)

    serial = _import(path, "--workers", "0")
    serial_rows, serial_emails = stored_lines(), len(outbox(template="new_payment"))
    clear_lines()
    parallel_ = _import(path, "--workers", "2")

    assert serial.exit_code == 1
    assert len(serial.errors) > 10
    assert (parallel_.exit_code, parallel_.stdout, parallel_.stderr) == (
        serial.exit_code,
        serial.stdout,
        serial.stderr,
    )
    assert stored_lines() == serial_rows
    assert len(outbox(template="new_payment")) == 2 * serial_emails > 0
    assert {"B1", "B3", "T1", "T2", "T3", "T4", "C1", "D1", "LAST"} <= {
        row["line_id"] for row in serial_rows
    }

    assert ReimbursementLine.objects.get(line_id="T1").act_label == "Consultation chez le médecin"
    assert ReimbursementLine.objects.get(line_id="T3").professional == "Dr Back\\slash"
    assert ReimbursementLine.objects.get(line_id="B1").beneficiary == paul.beneficiaries.get()
    assert ReimbursementLine.objects.get(line_id="B3").beneficiary is None

    again = _import(path, "--workers", "2")

    assert again.counts["created"] == again.counts["updated"] == 0
    assert again.counts["unchanged"] == serial.counts["created"]
    assert again.stderr == serial.stderr


@pytest.mark.skipif("connection.vendor != 'postgresql'")
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_bulk_path_checks_and_writes_as_the_orm_path(tmp_path, paul, camille, outbox):
    """The bulk path checks duplicates, members and beneficiaries in SQL: the
    same verdicts, values and emails as the ORM path's checks in Python."""
    path = messy_reimbursements(tmp_path)

    orm = _import(path, "--no-bulk")
    orm_rows, orm_emails = stored_lines(), len(outbox(template="new_payment"))
    clear_lines()
    bulk = _import(path)

    assert (bulk.exit_code, bulk.stdout, bulk.stderr) == (orm.exit_code, orm.stdout, orm.stderr)
    assert stored_lines() == orm_rows
    assert len(outbox(template="new_payment")) == 2 * orm_emails


@pytest.mark.django_db(transaction=True)
def test_the_file_path_and_the_rows_path_agree(tmp_path, paul, camille):
    """Rows given one by one (as the demo does) and a file read by chunks: the same import."""
    path = messy_reimbursements(tmp_path)
    errors = []
    with path.open("rb") as source:
        rows = list(imports.reimbursement_feed_read(source))
    report = imports.reimbursements_import(
        rows=rows, source_name="rows", batch_size=7, on_error=errors.append, notify=False
    )
    from_rows = stored_lines()
    clear_lines()

    from_file = _import(path, "--workers", "0", "--no-email")

    assert from_file.errors == [str(error) for error in errors]
    assert from_file.counts["created"] == report.created
    assert from_file.counts["rejected"] == report.rejected
    assert stored_lines() == from_rows


@pytest.mark.django_db(transaction=True)
def test_strict_with_workers_imports_nothing_and_reports_everything(tmp_path, paul, camille):
    path = messy_reimbursements(tmp_path)

    serial = _import(path, "--strict", "--workers", "0")
    parallel_ = _import(path, "--strict", "--workers", "2")

    assert parallel_.exit_code == serial.exit_code == 1
    assert parallel_.stderr == serial.stderr
    assert not ReimbursementLine.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_allowances_with_workers(tmp_path, paul, outbox):
    rows = [
        allowance(),
        allowance(payment_id="IJ0002", period_start="2026-02-18", period_end="2026-03-03"),
        allowance(payment_id="IJ0003", stoppage_start="2026-02-02"),  # described otherwise
        allowance(payment_id="IJ0001"),  # duplicate
        allowance(payment_id="IJ0004", nir=NIR_UNKNOWN, stoppage_id="AT02"),
    ]
    rows[1].update(gross="580.58", csg="36.00", crds="2.90", net="541.68", payment_date="")
    rows[1]["status"] = "in_progress"
    path = allowances_feed(tmp_path, rows)

    serial = run("import_allowances", path, "--batch-size", "2", "--workers", "0")
    stored = list(AllowancePayment.objects.order_by("payment_id").values("payment_id", "net"))
    AllowancePayment.objects.all().delete()
    WorkStoppage.objects.all().delete()
    parallel_ = run("import_allowances", path, "--batch-size", "2", "--workers", "2")

    assert serial.exit_code == 1
    assert (parallel_.stdout, parallel_.stderr) == (serial.stdout, serial.stderr)
    assert list(AllowancePayment.objects.order_by("payment_id").values("payment_id", "net")) == (
        stored
    )


@pytest.mark.django_db(transaction=True)
def test_a_generated_feed_with_workers(tmp_path, today):
    call_command(
        "generate_payments",
        "--members", "30",
        "--lines-per-member", "12",
        "--out", str(tmp_path),
        verbosity=0,
    )  # fmt: skip
    assert run("import_members", tmp_path / "members.csv", "--create-cpams").exit_code == 0
    for member in Member.objects.all()[:5]:
        AccountFactory(member=member, email=f"m{member.pk}@example.org")

    result = run(
        "import_reimbursements", tmp_path / "reimbursements.csv", "--workers", "2", "--no-email"
    )

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.counts["created"] == ReimbursementLine.objects.count() == 360


def test_workers_need_a_file(paul):
    rows = [FeedRow(2, tuple(reimbursement().values()))]

    with pytest.raises(ValueError, match="workers"):
        imports.reimbursements_import(rows=rows, source_name="x", workers=2)


def test_a_negative_number_of_workers_is_refused(tmp_path, paul):
    result = _import(reimbursements_feed(tmp_path, [reimbursement()]), "--workers", "-1")

    assert result.exit_code == 2
    assert not ReimbursementLine.objects.exists()


@pytest.mark.skipif("connection.vendor != 'postgresql'")
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_line_id_has_a_single_index():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'payments_reimbursementline' "
            "AND indexdef LIKE '%%(line_id%%'"
        )
        indexes = [row[0] for row in cursor.fetchall()]

    assert len(indexes) == 1
    assert "UNIQUE" in indexes[0]
