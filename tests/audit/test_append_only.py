"""Audit entries are never changed or removed: the ORM refuses, the database refuses, appends never fork."""

import threading
import time

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.db.models import ProtectedError

from portal.audit.models import AppendOnlyError, AuditChainHead, AuditEntry
from portal.audit.services import record
from portal.audit.verification import audit_chain_verify
from tests.factories import MemberFactory

from .helpers import sql


@pytest.fixture
def entry(db):
    return record(action="console.member.searched", actor="staff:3", member=MemberFactory())


def test_the_orm_refuses_to_update_or_delete_entries(entry):
    entry.action = "console.nothing"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    entries = AuditEntry.objects.filter(pk=entry.pk)
    with pytest.raises(AppendOnlyError):
        entries.update(action="console.nothing")
    with pytest.raises(AppendOnlyError):
        entries.delete()
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.bulk_update([entry], ["action"])
    stored = AuditEntry.objects.get()
    assert (stored.action, stored.entry_hash) == ("console.member.searched", entry.entry_hash)


def test_entries_are_only_written_through_record(db):
    with pytest.raises(AppendOnlyError, match="record"):
        AuditEntry.objects.create(action="x", actor="system", seq=99)
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.bulk_create([AuditEntry(action="x", actor="system")])
    assert not AuditEntry.objects.exists()


def test_a_member_with_audit_entries_cannot_be_deleted(entry):
    with pytest.raises(ProtectedError):
        entry.member.delete()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditentry SET action = 'console.nothing'",
        "UPDATE audit_auditentry SET seq = seq + 10",
        # The head only ever moves one step forward: no rewinding over deleted entries.
        "UPDATE audit_auditchainhead SET seq = seq - 1",
        "UPDATE audit_auditchainhead SET seq = seq + 2",
    ],
    ids=["edit-entry", "renumber-entries", "rewind-head", "skip-head"],
)
def test_the_database_refuses_a_raw_update(entry, statement):
    with pytest.raises(IntegrityError, match="append-only|one step forward"), transaction.atomic():
        sql(statement)
    assert AuditEntry.objects.get().entry_hash == entry.entry_hash
    assert AuditChainHead.objects.get().seq == 1


def test_the_database_refuses_a_raw_delete(entry):
    if connection.vendor != "postgresql":
        pytest.skip(
            "SQLite refuses DELETE on on-disk databases only "
            "(test_sqlite_refuses_deletes_when_a_database_is_on_disk)"
        )
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        sql("DELETE FROM audit_auditentry")
    with pytest.raises(IntegrityError, match="one step forward"), transaction.atomic():
        sql("DELETE FROM audit_auditchainhead")
    assert AuditEntry.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_sqlite_refuses_deletes_when_a_database_is_on_disk(tmp_path):
    """The rule of the development database; the in-memory test database may be flushed."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's rule (PostgreSQL: test_the_database_refuses_a_raw_delete)")
    record(action="console.member.searched", actor="staff:3")
    # ATTACH is refused inside a transaction: hence a transactional test.
    sql("ATTACH DATABASE %s AS on_disk", [str(tmp_path / "on-disk.sqlite3")])
    try:
        with pytest.raises(IntegrityError, match="append-only"):
            sql("DELETE FROM audit_auditentry")
        with pytest.raises(IntegrityError, match="one step forward"):
            sql("DELETE FROM audit_auditchainhead")
        assert AuditEntry.objects.count() == 1
    finally:
        sql("DETACH DATABASE on_disk")
    # In memory only, as Django's flush between transactional tests needs.
    assert sql("DELETE FROM audit_auditentry") == 1


def _at_once(count: int, append) -> list[Exception]:
    barrier = threading.Barrier(count)
    errors: list[Exception] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        try:
            barrier.wait()
            append(i)
        except Exception as error:
            with lock:
                errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def _append(i: int) -> None:
    if i % 2:
        record(action="test.concurrent", actor=f"staff:{i}", data={"i": i})
        return
    # Half of them inside a caller's transaction that goes on after recording.
    with transaction.atomic():
        record(action="test.concurrent", actor=f"staff:{i}", data={"i": i})
        time.sleep(0.005)


def _assert_one_chain(count: int) -> None:
    entries = list(AuditEntry.objects.order_by("seq"))
    assert len(entries) == count
    assert [e.seq for e in entries] == list(range(1, count + 1))
    assert sorted(e.data["i"] for e in entries) == list(range(count))
    # Every entry has a different predecessor: the chain did not fork.
    assert len({e.prev_hash for e in entries}) == count
    assert AuditChainHead.objects.get().seq == count
    report = audit_chain_verify()
    assert report.problems == []
    assert report.entries == count


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_simultaneous_appends_form_one_chain():
    if connection.vendor != "postgresql":
        pytest.skip(
            "needs PostgreSQL's concurrent transactions (SQLite's IMMEDIATE transactions "
            "serialize appends; run by make test-postgres)"
        )
    assert not AuditEntry.objects.exists()
    assert _at_once(20, _append) == []
    _assert_one_chain(20)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_simultaneous_first_appends_create_one_head():
    """On a fresh or flushed database the head row does not exist yet: one of them creates it."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL's concurrent transactions (run by make test-postgres)")
    sql("TRUNCATE audit_auditchainhead")  # TRUNCATE is not a row event: the trigger lets it be
    assert not AuditChainHead.objects.exists()
    assert _at_once(20, _append) == []
    _assert_one_chain(20)
