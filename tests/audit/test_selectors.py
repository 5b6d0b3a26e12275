"""The reads behind the supervisor's audit pages: filters and the CSV export."""

import csv
import io
import json
from datetime import date, datetime, timezone

import pytest
import time_machine

from portal.audit.selectors import CSV_HEADER, audit_csv_lines, audit_csv_rows, audit_entries
from portal.audit.services import record
from tests.factories import MemberFactory

PARIS_SUMMER = datetime(2026, 6, 30, 21, 59, 59, tzinfo=timezone.utc)  # 23:59:59 in Paris


@pytest.fixture
def trail(db):
    alice, bob = MemberFactory(first_names="Alice"), MemberFactory(first_names="Bob")
    with time_machine.travel(PARIS_SUMMER, tick=False):
        record(action="console.member.searched", actor="staff:3", member=alice, outcome="found")
        record(
            action="console.identity_check.run",
            actor="staff:3",
            member=alice,
            ip="10.0.0.1",
            data={"outcome": "failed", "answers": {"birth_date": False}},
        )
    with time_machine.travel(datetime(2026, 6, 30, 22, 0, 1, tzinfo=timezone.utc), tick=False):
        record(action="console.identity_check.run", actor="staff:4", member=bob, outcome="passed")
        record(action="account.login.succeeded", actor="member:8", member=bob, ip="10.0.0.2")
        record(action="notification.sms.sent", actor="system")
    return {"alice": alice, "bob": bob}


def actions(entries) -> list[tuple[int, str]]:
    return [(e.seq, e.action) for e in entries]


def test_newest_first_with_the_member_in_the_same_query(trail, django_assert_num_queries):
    with django_assert_num_queries(1):
        entries = list(audit_entries())
        names = [e.member.first_names if e.member else None for e in entries]
    assert [e.seq for e in entries] == [5, 4, 3, 2, 1]
    assert names == [None, "Bob", "Bob", "Alice", "Alice"]


def test_filters(trail):
    alice, bob = trail["alice"], trail["bob"]
    assert actions(audit_entries(member=alice)) == [
        (2, "console.identity_check.run"),
        (1, "console.member.searched"),
    ]
    assert [e.seq for e in audit_entries(member=bob.pk)] == [4, 3]
    assert [e.seq for e in audit_entries(actor="staff:3")] == [2, 1]
    assert [e.seq for e in audit_entries(action_prefix="console.")] == [3, 2, 1]
    assert [e.seq for e in audit_entries(action_prefix="console.identity_check.")] == [3, 2]
    assert [e.seq for e in audit_entries(outcome="failed")] == [2]
    assert [e.seq for e in audit_entries(outcome="passed", member=bob)] == [3]
    assert [e.seq for e in audit_entries(member=alice, outcome="passed")] == []


def test_dates_are_whole_days_in_paris_and_datetimes_are_exact(trail):
    # 2026-06-30 23:59:59 and 2026-07-01 00:00:01 in Paris.
    assert [e.seq for e in audit_entries(since=date(2026, 7, 1))] == [5, 4, 3]
    assert [e.seq for e in audit_entries(until=date(2026, 6, 30))] == [2, 1]
    both = audit_entries(since=date(2026, 6, 30), until=date(2026, 7, 1))
    assert [e.seq for e in both] == [5, 4, 3, 2, 1]
    assert [e.seq for e in audit_entries(until=PARIS_SUMMER)] == []  # exclusive
    assert [e.seq for e in audit_entries(since=PARIS_SUMMER)] == [5, 4, 3, 2, 1]


def test_csv_export_columns_and_content(trail):
    rows = list(audit_csv_rows(audit_entries(member=trail["alice"])))
    assert rows == [
        CSV_HEADER,
        [
            "2",
            "2026-06-30T23:59:59+02:00",
            "staff:3",
            "console.identity_check.run",
            "failed",
            str(trail["alice"].pk),
            "10.0.0.1",
            '{"answers": {"birth_date": false}, "outcome": "failed"}',
        ],
        [
            "1",
            "2026-06-30T23:59:59+02:00",
            "staff:3",
            "console.member.searched",
            "found",
            str(trail["alice"].pk),
            "",
            "{}",
        ],
    ]
    assert CSV_HEADER == [
        "seq",
        "created_at",
        "actor",
        "action",
        "outcome",
        "member_id",
        "ip",
        "data",
    ]


def test_csv_export_holds_no_secret_nor_identity(db):
    member = MemberFactory(first_names="Séraphine", last_name="Lenormand")
    nir_spaced = " ".join([member.nir[0], member.nir[1:3], member.nir[3:5], member.nir[5:]])
    record(
        action="console.account.deleted",
        actor="staff:3",
        member=member,
        # An advisor typing the member's NIR into the free-text reason.
        data={"outcome": "deleted", "reason": f"Demande de l'assuré {nir_spaced}"},
    )
    record(action="account.email.changed", actor="member:1", member=member)
    text = "".join(audit_csv_lines(audit_csv_rows(audit_entries())))
    for secret in (member.nir, member.nir[:13], nir_spaced, member.iban, member.email):
        assert secret not in text
    for name in ("Séraphine", "Lenormand"):
        assert name not in text
    assert "[NIR]" in text
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[0] == CSV_HEADER
    assert json.loads(parsed[2][7]) == {"outcome": "deleted", "reason": "Demande de l'assuré [NIR]"}


def test_csv_cells_never_start_a_formula(db):
    record(
        action="console.account.deleted",
        actor="staff:3",
        outcome='=HYPERLINK("http://evil.example")',
    )
    row = list(audit_csv_rows(audit_entries()))[1]
    assert row[4] == '\'=HYPERLINK("http://evil.example")'


def test_csv_export_streams_in_one_query(trail, django_assert_num_queries):
    with django_assert_num_queries(1):
        lines = list(audit_csv_lines(audit_csv_rows(audit_entries())))
    assert len(lines) == 6
    assert lines[0] == "seq,created_at,actor,action,outcome,member_id,ip,data\r\n"
