"""The chain `record()` builds: one line of entries, each hash covering the entry and its predecessor."""

import hashlib
import hmac
import logging
from datetime import datetime, timezone

import pytest
import time_machine
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.audit import chain
from portal.audit.models import AuditChainHead, AuditEntry
from portal.audit.services import entry_fields, record
from portal.audit.verification import audit_chain_verify
from tests.factories import MemberFactory

from .helpers import sql, tampering

KEY = "a-test-chain-key-kept-outside-the-database"


def entries():
    return list(AuditEntry.objects.order_by("seq"))


@pytest.mark.django_db
def test_each_entry_links_to_the_previous_one_by_its_hash():
    member = MemberFactory()
    with time_machine.travel(
        datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=timezone.utc), tick=False
    ):
        record(action="account.login.succeeded", actor="member:4", member=member, ip="10.0.0.7")
        record(action="console.member.searched", actor="staff:3", data={"outcome": "found"})
        record(action="account.logout", actor="member:4", member=member, outcome="ok")

    first, second, third = entries()
    assert [e.seq for e in (first, second, third)] == [1, 2, 3]
    assert first.prev_hash == chain.GENESIS
    assert second.prev_hash == first.entry_hash
    assert third.prev_hash == second.entry_hash
    head = AuditChainHead.objects.get()
    assert (head.seq, head.entry_hash) == (3, third.entry_hash)
    # The hash is SHA-256 of the documented canonical form, nothing else.
    expected = (
        '{"action":"account.login.succeeded","actor":"member:4",'
        '"created_at":"2026-03-01T09:30:00.123456Z","data":{},"ip":"10.0.0.7","key_id":"",'
        f'"member_id":{member.pk},"outcome":"","prev_hash":"{chain.GENESIS}",'
        '"request_id":"","seq":1,"v":1}'
    )
    assert chain.canonical(entry_fields(first)) == expected.encode()
    assert first.entry_hash == hashlib.sha256(expected.encode()).hexdigest()
    # The outcome is a column of its own, taken from data when not given.
    assert (second.outcome, second.data) == ("found", {"outcome": "found"})
    assert third.outcome == "ok"


@pytest.mark.django_db
def test_a_rolled_back_change_leaves_no_entry_and_no_gap():
    def failing_change():
        with transaction.atomic():
            record(action="b", actor="system")
            raise RuntimeError("the change fails after its audit entry")

    record(action="a", actor="system")
    with pytest.raises(RuntimeError):
        failing_change()
    record(action="c", actor="system")
    assert [(e.seq, e.action) for e in entries()] == [(1, "a"), (2, "c")]
    assert audit_chain_verify().intact


@pytest.mark.django_db
def test_with_a_chain_key_hashes_are_hmac_and_name_the_key(settings):
    settings.AUDIT_CHAIN_KEY = KEY
    entry = record(action="a", actor="system")
    assert entry.key_id == chain.key_id(KEY) != ""
    assert KEY not in entry.key_id
    body = chain.canonical(entry_fields(entry))
    assert entry.entry_hash == hmac.new(KEY.encode(), body, hashlib.sha256).hexdigest()
    assert entry.entry_hash != hashlib.sha256(body).hexdigest()


@pytest.mark.django_db
def test_the_chain_goes_on_after_a_flush_emptied_both_tables(caplog):
    record(action="a", actor="system")
    with tampering():
        sql("DELETE FROM audit_auditentry")
        sql("DELETE FROM audit_auditchainhead")
    with caplog.at_level(logging.ERROR, logger="portal.audit"):
        entry = record(action="b", actor="system")
    assert (entry.seq, entry.prev_hash) == (1, chain.GENESIS)
    assert caplog.records == []


@pytest.mark.django_db
def test_a_missing_head_is_rebuilt_from_the_last_entry_and_logged(caplog):
    record(action="a", actor="system")
    last = record(action="b", actor="system")
    with tampering():
        sql("DELETE FROM audit_auditchainhead")
    with caplog.at_level(logging.ERROR, logger="portal.audit"):
        entry = record(action="c", actor="system")
    assert (entry.seq, entry.prev_hash) == (3, last.entry_hash)
    assert "audit chain head missing" in caplog.text
    assert audit_chain_verify().intact


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("10.0.0.7", "10.0.0.7"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("::ffff:10.0.0.7", "::ffff:10.0.0.7"),
        ("", None),
        (None, None),
    ],
)
def test_ip_addresses_are_stored_as_the_database_gives_them_back(given, stored):
    entry = record(action="a", actor="anonymous", ip=given)
    assert entry.ip == stored
    assert AuditEntry.objects.get().ip == stored
    assert audit_chain_verify().intact


@pytest.mark.django_db
def test_data_is_hashed_as_stored():
    entry = record(action="a", actor="system", data={"answers": (True, False), "n": 2.0})
    assert entry.data == {"answers": [True, False], "n": 2.0}
    assert audit_chain_verify().intact


def test_numbers_are_canonical_by_value_as_jsonb_keeps_them():
    # jsonb gives 1e16 back as 10000000000000000, 2.0 as 2.0, -0.0 as 0.0.
    assert chain.canonical([1e16, 10**16, 2.0, 2, -0.0, 0.1, 1.5e-7]) == (
        b"[10000000000000000,10000000000000000,2,2,0,0.1,0.00000015]"
    )
    assert chain.canonical({"b": 1, "a": "é"}) == b'{"a":"\\u00e9","b":1}'
    with pytest.raises(ValueError):
        chain.canonical(float("nan"))


# Keys from letters that spell none of the words record() refuses.
_keys = st.text(alphabet="abcdefghijklm_é", min_size=1, max_size=6)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    # PostgreSQL's jsonb refuses NUL; lone surrogates are not text.
    | st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"))
)
_json = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_keys, children, max_size=3),
    max_leaves=8,
)


@pytest.mark.django_db
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.dictionaries(_keys, _json, max_size=4))
def test_any_json_data_reads_back_with_the_same_hash(data):
    """The canonical form is stable through the engine's JSON column (jsonb on PostgreSQL)."""
    entry = record(action="a", actor="system", data=data)
    stored = AuditEntry.objects.get(seq=entry.seq)
    assert chain.entry_hash(entry_fields(stored)) == entry.entry_hash
