"""`import_reimbursements --writers N`: the checked batches written on other
database connections give exactly what one connection gives, and a writer
that fails stops the import.

The writers themselves (`parallel.Writers`) run everywhere; the imports with
writers need PostgreSQL (the bulk path), run by `make test-postgres`.
"""

import threading
import time
from contextlib import contextmanager

import pytest
from django.db import connection, connections, transaction
from django.db.models import ProtectedError

from portal.audit.models import AuditEntry
from portal.payments import imports, parallel
from portal.payments.models import NewPaymentNotice, ReimbursementLine

from .helpers import NIR_CHILD, reimbursement, reimbursements_feed, run
from .test_import_parallel import clear_lines, messy_reimbursements, stored_lines


def _import(path, *args):
    return run("import_reimbursements", path, "--batch-size", "7", *args)


def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("writers need the bulk path (PostgreSQL)")


# The writer threads


def test_writers_write_every_job_and_stop():
    written = []
    threads = set()

    def write(job):
        threads.add(threading.current_thread().name)
        time.sleep(0.001)
        written.append(job)

    with parallel.Writers(3, write=write) as writers:
        for job in range(50):
            writers.submit(job)
        writers.close()

    assert sorted(written) == list(range(50))
    assert len(threads) > 1
    assert not any(thread.name.startswith("payments-writer") for thread in threading.enumerate())


def test_a_failing_writer_stops_the_others_and_raises_in_the_importing_thread():
    written, torn_down = [], []

    def write(job):
        if job == 5:
            raise RuntimeError("writer failed")
        time.sleep(0.002)
        written.append(job)

    writers = parallel.Writers(2, write=write, teardown=torn_down.append)
    with pytest.raises(RuntimeError, match="writer failed"), writers:  # noqa: PT012
        for job in range(1000):
            writers.submit(job)

    assert 5 not in written
    assert len(written) < 999  # stopped early, not after the whole queue
    assert len(torn_down) == 2
    assert any(isinstance(error, RuntimeError) for error in torn_down)


def test_an_error_of_the_importing_thread_stops_the_writers_without_hanging():
    writers = parallel.Writers(2, write=lambda job: time.sleep(0.01))
    with pytest.raises(KeyError), writers:  # noqa: PT012
        for job in range(10):
            writers.submit(job)
        raise KeyError("checking failed")

    assert not any(thread.name.startswith("payments-writer") for thread in threading.enumerate())


def test_the_default_number_of_writers_follows_the_size_of_the_file():
    assert parallel.default_writers(1024) == 0
    assert parallel.default_writers(parallel.PARALLEL_MIN_BYTES) == parallel.DEFAULT_WRITERS


def test_a_negative_number_of_writers_is_refused(tmp_path, paul):
    result = _import(reimbursements_feed(tmp_path, [reimbursement()]), "--writers", "-1")

    assert result.exit_code == 2
    assert not ReimbursementLine.objects.exists()


def test_writers_are_not_used_inside_a_transaction(tmp_path, paul):
    """Other connections could not see the caller's transaction, nor be rolled
    back with it: the import writes on the caller's connection (any database)."""
    path = reimbursements_feed(tmp_path, [reimbursement(line_id=f"W{n}") for n in range(20)])

    with transaction.atomic():
        with path.open("rb") as source:
            report = imports.reimbursements_import(
                rows=imports.reimbursement_feed_read(source),
                source_name="feed.csv",
                batch_size=3,
                writers=2,
                notify=False,
            )
        assert ReimbursementLine.objects.count() == report.created == 20
        transaction.set_rollback(True)

    assert not ReimbursementLine.objects.exists()


# Imports with writers (PostgreSQL)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("workers", ["0", "2"])
def test_writers_give_the_same_rows_counts_report_and_emails(
    tmp_path, paul, camille, outbox, workers
):
    _postgres_only()
    path = messy_reimbursements(tmp_path)

    single = _import(path, "--workers", workers, "--writers", "0")
    single_rows = stored_lines()
    single_emails = sorted(
        (message.recipient, message.body_text) for message in outbox(template="new_payment")
    )
    clear_lines()
    several = _import(path, "--workers", workers, "--writers", "3")

    assert single.exit_code == 1
    assert len(single.errors) > 10
    # Rejected lines of batches written by the writers are reported, in file order.
    assert (several.exit_code, several.stdout, several.stderr) == (
        single.exit_code,
        single.stdout,
        single.stderr,
    )
    assert stored_lines() == single_rows
    emails = sorted(
        (message.recipient, message.body_text) for message in outbox(template="new_payment")
    )
    assert emails == sorted(single_emails * 2)
    assert not NewPaymentNotice.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_importing_again_with_writers_changes_nothing(tmp_path, paul, camille, outbox):
    _postgres_only()
    path = messy_reimbursements(tmp_path)
    first = _import(path, "--writers", "2")
    before = {line.line_id: line.updated_at for line in ReimbursementLine.objects.all()}
    emails = len(outbox(template="new_payment"))

    again = _import(path, "--writers", "2")

    assert again.counts["created"] == again.counts["updated"] == 0
    assert again.counts["unchanged"] == first.counts["created"] > 0
    assert again.stderr == first.stderr
    assert {line.line_id: line.updated_at for line in ReimbursementLine.objects.all()} == before
    assert len(outbox(template="new_payment")) == emails > 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_writers_update_changed_lines_and_announce_new_payments_once(
    tmp_path, paul, outbox, time_machine
):
    _postgres_only()

    def line(number, **values):
        return reimbursement(
            **{"line_id": f"L{number}", "payment_reference": f"V{number}", **values}
        )

    pending = {"status": "in_progress", "payment_date": "", "payment_reference": ""}
    first = _import(
        reimbursements_feed(tmp_path, [line(n, **pending) for n in range(30)]), "--writers", "3"
    )
    before = ReimbursementLine.objects.get(line_id="L3")
    time_machine.move_to("2026-03-16 13:00:00+01:00", tick=False)

    # Every line paid, one of them for the child too; two new lines.
    rows = [line(n) for n in range(32)]
    rows[3]["beneficiary_nir"] = NIR_CHILD
    second = _import(reimbursements_feed(tmp_path, rows), "--writers", "3")

    assert first.counts == {"created": 30, "updated": 0, "unchanged": 0, "rejected": 0, "emails": 0}
    assert second.counts == {
        "created": 2,
        "updated": 30,
        "unchanged": 0,
        "rejected": 0,
        "emails": 1,
    }
    after = ReimbursementLine.objects.get(line_id="L3")
    assert after.status == "paid"
    assert after.beneficiary == paul.beneficiaries.get()
    assert after.imported_at == before.imported_at
    assert after.updated_at > before.updated_at
    [email] = outbox(template="new_payment")
    assert "32 nouveaux paiements" in email.body_text
    assert "608,00" in email.body_text  # 32 × 19.00


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_failing_writer_stops_the_import_and_a_new_run_completes_it(
    tmp_path, paul, camille, outbox, monkeypatch
):
    _postgres_only()
    path = messy_reimbursements(tmp_path)
    upsert = imports._lines_upsert
    calls = []

    def failing(*args, **kwargs):
        calls.append(threading.current_thread().name)
        if len(calls) == 4:
            raise RuntimeError("the writer's connection failed")
        return upsert(*args, **kwargs)

    monkeypatch.setattr(imports, "_lines_upsert", failing)

    with pytest.raises(RuntimeError, match="connection failed"):
        _import(path, "--writers", "2")

    assert all(name.startswith("payments-writer") for name in calls)
    # Neither counted nor announced: no audit entry, no email yet.
    assert not AuditEntry.objects.filter(action__startswith="payments").exists()
    assert not outbox(template="new_payment")
    monkeypatch.setattr(imports, "_lines_upsert", upsert)

    again = _import(path, "--writers", "2")
    rows = stored_lines()
    clear_lines()
    NewPaymentNotice.objects.all().delete()
    single = _import(path, "--writers", "0")

    assert again.stderr == single.stderr
    assert stored_lines() == rows
    # The notices of the batches written before the failure are sent once, by the next run.
    assert len(outbox(template="new_payment")) == 2 * 2


@contextmanager
def _line_inserted_by_another_import(line_id):
    """Another connection inserts `line_id` and keeps its transaction open until
    the import waits for it; then commits."""
    other = connections.create_connection("default")
    other.ensure_connection()
    # The psycopg connection itself: it may be used from another thread.
    raw = other.connection
    try:
        raw.execute("BEGIN")
        raw.execute(
            "INSERT INTO payments_reimbursementline (line_id, member_id, care_date, "
            "act_code, act_label, professional, amount_paid, base_amount, rate, "
            "gross_reimbursed, participation_forfaitaire, franchise, net_reimbursed, payee, "
            "payment_reference, transmitted_to_complementary, status, imported_at, "
            "updated_at) SELECT %s, id, '2026-03-01', 'G', 'Autre', 'Autre', 1, 1, 70, 0.70, "
            "0, 0, 0.70, 'member', '', false, 'in_progress', now(), now() "
            "FROM members_member LIMIT 1",
            [line_id],
        )
        pid = raw.info.backend_pid
        waited = []

        def commit_when_blocking():
            try:
                watcher = connections.create_connection("default")
                try:
                    deadline = time.monotonic() + 20
                    while time.monotonic() < deadline and not waited:
                        with watcher.cursor() as watch:
                            watch.execute(
                                "SELECT count(*) FROM pg_locks l JOIN pg_locks held "
                                "ON held.transactionid = l.transactionid AND held.granted "
                                "WHERE NOT l.granted AND held.pid = %s",
                                [pid],
                            )
                            if watch.fetchone()[0]:
                                waited.append(True)
                                break
                        time.sleep(0.02)
                finally:
                    watcher.close()
            finally:
                raw.execute("COMMIT")

        committer = threading.Thread(target=commit_when_blocking)
        committer.start()
        try:
            yield waited
        finally:
            committer.join()
    finally:
        other.close()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_line_inserted_meanwhile_by_another_import_is_updated_not_lost(
    tmp_path, paul, monkeypatch
):
    """The plain INSERT of new lines meets a line another import inserted after
    this batch looked: the batch is done again as an upsert."""
    _postgres_only()
    path = reimbursements_feed(
        tmp_path,
        [reimbursement(line_id=f"R{n}", payment_reference=f"V{n}") for n in range(10)],
    )
    fallbacks = []
    upsert = imports._Staging.upsert

    def counting(self, **kwargs):
        fallbacks.append(kwargs["target"])
        return upsert(self, **kwargs)

    monkeypatch.setattr(imports._Staging, "upsert", counting)

    with _line_inserted_by_another_import("R4") as waited:
        result = _import(path, "--writers", "2")

    assert waited == [True]  # the import did wait for the other one
    assert result.exit_code == 0
    assert fallbacks == ["payments_reimbursementline"]
    assert result.counts["created"] + result.counts["updated"] == 10
    assert result.counts["updated"] == 1
    line = ReimbursementLine.objects.get(line_id="R4")
    assert (line.act_label, line.status) == ("Consultation du médecin généraliste", "paid")
    assert ReimbursementLine.objects.count() == 10


# Indexes


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_imports_maintain_no_index_that_no_read_needs():
    _postgres_only()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes "
            "WHERE tablename = 'payments_reimbursementline' ORDER BY indexname"
        )
        indexes = dict(cursor.fetchall())

    assert set(indexes) == {
        "payments_reimbursementline_pkey",
        "reimb_beneficiary",
        "reimb_line_id_unique",
        "reimb_member_care",
        "reimb_member_paydate",
    }
    assert indexes["reimb_beneficiary"].endswith("WHERE (beneficiary_id IS NOT NULL)")


def test_a_beneficiary_with_lines_is_still_protected(tmp_path, paul):
    assert _import(
        reimbursements_feed(tmp_path, [reimbursement(beneficiary_nir=NIR_CHILD)])
    ).exit_code == (0)
    child = paul.beneficiaries.get()

    with pytest.raises(ProtectedError):
        child.delete()
    with pytest.raises(ProtectedError):
        paul.delete()
