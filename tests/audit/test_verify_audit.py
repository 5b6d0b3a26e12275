"""`manage.py verify_audit` finds every kind of tampering: edit, deletion, insertion, reordering."""

import io
import json
from unittest import mock

import pytest
from django.core.management import CommandError, ManagementUtility, call_command
from django.db import connection, connections

from portal.audit import chain
from portal.audit.models import AuditEntry
from portal.audit.services import entry_fields, record
from tests.factories import MemberFactory

from .helpers import sql, tampering

KEY = "a-test-chain-key-kept-outside-the-database"


def verify(*args) -> tuple[bool, list[str]]:
    out = io.StringIO()
    try:
        call_command("verify_audit", *args, stdout=out)
    except CommandError as error:
        return False, [*out.getvalue().splitlines(), str(error)]
    return True, out.getvalue().splitlines()


@pytest.fixture
def five(db):
    member = MemberFactory()
    return [
        record(action=f"test.step{i}", actor="staff:3", member=member, ip="10.0.0.1", data={"i": i})
        for i in range(1, 6)
    ]


def forge(seq: int, prev_hash: str, key: str = "", **fields) -> tuple[str, list]:
    """An INSERT of an entry whose own hash is right (computed as record() would)."""
    values = {
        "seq": seq,
        "created_at": AuditEntry.objects.get(seq=1).created_at,
        "action": "console.account.deleted",
        "actor": "staff:3",
        "outcome": "",
        "member_id": None,
        "ip": None,
        "request_id": "",
        "data": {},
        "prev_hash": prev_hash,
        "key_id": chain.key_id(key),
        **fields,
    }
    values["entry_hash"] = chain.entry_hash(chain.entry_fields(**values), key)
    values["data"] = json.dumps(values["data"])
    values["created_at"] = connection.ops.adapt_datetimefield_value(values["created_at"])
    columns = ", ".join(values)
    placeholders = ", ".join(["%s"] * len(values))
    return f"INSERT INTO audit_auditentry ({columns}) VALUES ({placeholders})", list(
        values.values()
    )


def test_an_intact_chain_passes(five):
    ok, lines = verify()
    assert ok
    assert lines[0] == "5 entries, chain intact"
    assert lines[1] == f"head: seq 5 {five[-1].entry_hash}"


def test_an_empty_chain_passes(db):
    assert verify() == (True, ["0 entries, chain intact"])


def test_an_edited_entry_is_found(five):
    with tampering():
        sql(
            "UPDATE audit_auditentry SET data = %s WHERE seq = 3",
            [json.dumps({"i": 3, "note": "rewritten"})],
        )
    ok, lines = verify()
    assert not ok
    assert lines == [
        "seq 3: content does not match its hash (edited)",
        "audit chain broken: 1 problem(s) in 5 entries",
    ]


@pytest.mark.parametrize("column", ["action", "actor", "outcome", "ip", "created_at", "member_id"])
def test_any_edited_column_is_found(five, column):
    value = {
        "action": "test.other",
        "actor": "staff:4",
        "outcome": "passed",
        "ip": "10.0.0.2",
        "created_at": connection.ops.adapt_datetimefield_value(
            five[0].created_at.replace(year=2020)
        ),
        "member_id": None,
    }[column]
    with tampering():
        sql(f"UPDATE audit_auditentry SET {column} = %s WHERE seq = 2", [value])
    assert verify()[1][0] == "seq 2: content does not match its hash (edited)"


def test_an_edited_entry_with_its_hash_recomputed_breaks_the_next_link(five):
    entry = AuditEntry.objects.get(seq=3)
    entry.data = {"i": 3, "note": "rewritten"}
    new_hash = chain.entry_hash(entry_fields(entry))
    with tampering():
        sql(
            "UPDATE audit_auditentry SET data = %s, entry_hash = %s WHERE seq = 3",
            [json.dumps(entry.data), new_hash],
        )
    ok, lines = verify()
    assert lines[0] == (
        "seq 4: prev_hash is not the hash of entry 3: one of the two was replaced, "
        "inserted or moved"
    )


def test_a_deleted_entry_is_found(five):
    with tampering():
        sql("DELETE FROM audit_auditentry WHERE seq = 3")
    ok, lines = verify()
    assert not ok
    assert lines[0] == "seq 4: entry 3 is missing before this one (deleted)"


def test_deleted_first_entries_are_found(five):
    with tampering():
        sql("DELETE FROM audit_auditentry WHERE seq <= 2")
    assert verify()[1][0] == "seq 3: entries 1 to 2 are missing before this one (deleted)"


def test_deleted_last_entries_are_found_by_the_head(five):
    with tampering():
        sql("DELETE FROM audit_auditentry WHERE seq >= 4")
    ok, lines = verify()
    assert not ok
    assert lines[0] == "chain head: at seq 5: entries 4 to 5 are missing at the end (deleted)"


def test_a_wiped_table_is_found_by_the_head(five):
    with tampering():
        sql("DELETE FROM audit_auditentry")
    assert verify()[1][0] == "chain head: at seq 5: entries 1 to 5 are missing at the end (deleted)"


def test_an_entry_inserted_in_the_middle_is_found(five):
    """Room made by moving the later entries one step on, a forged entry in the gap."""
    with tampering():
        for seq in (5, 4, 3):
            sql("UPDATE audit_auditentry SET seq = %s WHERE seq = %s", [seq + 1, seq])
        sql(*forge(3, prev_hash=five[1].entry_hash))
        sql("UPDATE audit_auditchainhead SET seq = 6")
    ok, lines = verify()
    assert not ok
    # The forged entry itself is consistent; the moved ones are not.
    assert lines[:2] == [
        "seq 4: prev_hash is not the hash of entry 3: one of the two was replaced, inserted or moved",
        "seq 4: content does not match its hash (edited)",
    ]


def test_an_entry_appended_behind_the_heads_back_is_found(five):
    with tampering():
        sql(*forge(6, prev_hash=five[-1].entry_hash))
    ok, lines = verify()
    assert lines[0] == (
        "chain head: at seq 5 but entries go on to seq 6: written without going through "
        "the chain (inserted)"
    )


def test_reordered_entries_are_found(five):
    with tampering():
        sql("UPDATE audit_auditentry SET seq = 0 WHERE seq = 2")
        sql("UPDATE audit_auditentry SET seq = 2 WHERE seq = 3")
        sql("UPDATE audit_auditentry SET seq = 3 WHERE seq = 0")
    ok, lines = verify()
    assert not ok
    assert lines[:4] == [
        "seq 2: prev_hash is not the hash of entry 1: one of the two was replaced, inserted or moved",
        "seq 2: content does not match its hash (edited)",
        "seq 3: prev_hash is not the hash of entry 2: one of the two was replaced, inserted or moved",
        "seq 3: content does not match its hash (edited)",
    ]


def test_a_whole_rewritten_chain_passes_without_a_key_but_not_with_one(five, settings):
    """Without AUDIT_CHAIN_KEY, who can write the table can rebuild a consistent chain."""
    settings.AUDIT_CHAIN_KEY = KEY
    keyed = [record(action="test.keyed", actor="system") for _ in range(2)]
    assert verify()[0]

    # The attacker rewrites entry 2 and rebuilds every later hash and the head, without the key.
    with tampering():
        prev = five[0].entry_hash
        for entry in AuditEntry.objects.filter(seq__gte=2).order_by("seq"):
            if entry.seq == 2:
                entry.data = {"i": 2, "note": "rewritten"}
            entry.prev_hash, entry.key_id = prev, ""
            prev = chain.entry_hash(entry_fields(entry))
            sql(
                "UPDATE audit_auditentry SET data = %s, prev_hash = %s, key_id = '', "
                "entry_hash = %s WHERE seq = %s",
                [json.dumps(entry.data), entry.prev_hash, prev, entry.seq],
            )
        sql("UPDATE audit_auditchainhead SET entry_hash = %s", [prev])

    settings.AUDIT_CHAIN_KEY = ""
    assert verify()[0]  # the limit of an unkeyed chain
    settings.AUDIT_CHAIN_KEY = KEY
    ok, lines = verify()
    assert not ok
    assert lines[0] == (
        "seq 7: newest entry not keyed although AUDIT_CHAIN_KEY is set: the chain was "
        "rewritten without the key, or nothing was recorded since the key was set"
    )
    assert keyed[0].seq == 6


def test_a_keyed_entry_cannot_be_forged_without_the_key(five, settings):
    settings.AUDIT_CHAIN_KEY = KEY
    last = record(action="test.keyed", actor="system")
    with tampering():
        # Right key id, but the attacker hashes with a key of their own.
        sql(*forge(7, prev_hash=last.entry_hash, key="guess", key_id=chain.key_id(KEY)))
        sql("UPDATE audit_auditchainhead SET seq = 7")
    ok, lines = verify()
    assert lines[0] == "seq 7: content does not match its hash (edited)"


def test_entries_written_without_the_key_after_keyed_ones_are_found(five, settings):
    settings.AUDIT_CHAIN_KEY = KEY
    record(action="test.keyed", actor="system")
    settings.AUDIT_CHAIN_KEY = ""
    record(action="test.unkeyed", actor="system")
    ok, lines = verify()
    assert lines[0].startswith("seq 6: keyed with key ")
    assert lines[0].endswith(
        "not with the configured AUDIT_CHAIN_KEY (none set): cannot be checked"
    )
    settings.AUDIT_CHAIN_KEY = KEY
    ok, lines = verify()
    assert lines[0] == (
        "seq 7: not keyed although earlier entries are (rewritten without AUDIT_CHAIN_KEY)"
    )


def test_entries_before_the_key_stay_checked_and_the_key_start_is_shown(five, settings):
    settings.AUDIT_CHAIN_KEY = KEY
    record(action="test.keyed", actor="system")
    ok, lines = verify()
    assert ok
    assert lines[0] == "6 entries, chain intact"
    assert lines[2] == "keyed with AUDIT_CHAIN_KEY from seq 6"


def test_since_seq_checks_from_there_linked_to_the_entry_before(five):
    with tampering():
        sql("UPDATE audit_auditentry SET action = 'x' WHERE seq = 1")
    assert not verify()[0]
    ok, lines = verify("--since-seq", "3")
    assert ok
    assert lines[0] == "3 entries from seq 3, chain intact"
    with tampering():
        sql("DELETE FROM audit_auditentry WHERE seq = 2")
    assert verify("--since-seq", "3")[1][0] == "seq 2: missing: the check cannot link to it"


def test_the_walk_reads_in_batches(five, django_assert_num_queries):
    # 5 entries by 2: three batches (the last one short), the head, the triggers.
    with django_assert_num_queries(5):
        ok, lines = verify("--batch-size", "2")
    assert ok


def test_problems_are_capped(five):
    with tampering():
        sql("UPDATE audit_auditentry SET action = 'x'")
    ok, lines = verify("--max-problems", "2")
    assert lines == [
        "seq 1: content does not match its hash (edited)",
        "seq 2: content does not match its hash (edited)",
        "... and 3 more",
        "audit chain broken: 5 problem(s) in 5 entries",
    ]


def test_missing_triggers_are_reported(five):
    with tampering():
        ok, lines = verify()
    assert not ok
    assert any(
        line.startswith("database: trigger ") and "append-only rule is not enforced" in line
        for line in lines
    )


def test_the_command_exits_1_when_broken_and_0_when_intact(five, capsys):
    def run():
        # run_from_argv closes the connections at the end: that would end the test's transaction.
        with mock.patch.object(connections, "close_all"):
            ManagementUtility(["manage.py", "verify_audit"]).execute()

    run()
    assert "5 entries, chain intact" in capsys.readouterr().out
    with tampering():
        sql("UPDATE audit_auditentry SET actor = 'staff:9' WHERE seq = 4")
    with pytest.raises(SystemExit) as exit_:
        run()
    assert exit_.value.code == 1
    captured = capsys.readouterr()
    assert "seq 4: content does not match its hash (edited)" in captured.out
    assert "audit chain broken: 1 problem(s) in 5 entries" in captured.err
