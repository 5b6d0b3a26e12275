"""Checking the audit chain: every hash recomputed, every link followed (`manage.py verify_audit`)."""

from collections.abc import Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

from . import chain
from .models import AuditChainHead, AuditEntry

# The append-only triggers of the 0004 migration, per engine and table.
TRIGGERS = {
    "postgresql": {
        "audit_auditentry": ["audit_auditentry_append_only"],
        "audit_auditchainhead": ["audit_auditchainhead_forward_only"],
    },
    "sqlite": {
        "audit_auditentry": ["audit_auditentry_no_update", "audit_auditentry_no_delete"],
        "audit_auditchainhead": [
            "audit_auditchainhead_forward_only",
            "audit_auditchainhead_no_delete",
        ],
    },
}
_COLUMNS = (
    "seq",
    "created_at",
    "action",
    "actor",
    "outcome",
    "member_id",
    "ip",
    "request_id",
    "data",
    "prev_hash",
    "entry_hash",
    "key_id",
)


@dataclass(frozen=True)
class Problem:
    where: str  # "seq 12", "chain head", "database"
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass
class ChainReport:
    entries: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    last_hash: str = ""
    keyed_from: int | None = None  # first seq keyed with the configured key
    problem_count: int = 0
    problems: list[Problem] = field(default_factory=list)  # the first `max_problems`

    @property
    def intact(self) -> bool:
        return self.problem_count == 0


def audit_chain_verify(
    *, since_seq: int | None = None, batch_size: int = 1000, max_problems: int = 100
) -> ChainReport:
    """Walk the chain in `seq` order, `batch_size` entries at a time, and report what is broken.

    Finds edited entries (content no longer matches its hash), deleted ones
    (a gap in `seq`, or a chain head ahead of the last entry), inserted,
    replaced or moved ones (`prev_hash` not the previous entry's hash), and
    entries written without the chain key once it is in use. Each problem is
    reported where it shows; the walk goes on from the stored hashes so that
    one edit is one problem, not a cascade.
    """
    report = ChainReport()

    def problem(where: str, reason: str) -> None:
        report.problem_count += 1
        if len(report.problems) < max_problems:
            report.problems.append(Problem(where, reason))

    for where, reason in _chain_problems(report, since_seq=since_seq, batch_size=batch_size):
        problem(where, reason)
    for where, reason in _head_problems(report, since_seq=since_seq):
        problem(where, reason)
    for reason in _trigger_problems():
        problem("database", reason)
    return report


def _chain_problems(
    report: ChainReport, *, since_seq: int | None, batch_size: int
) -> Iterator[tuple[str, str]]:
    key = getattr(settings, "AUDIT_CHAIN_KEY", "") or ""
    configured_key_id = chain.key_id(key)
    expected_seq = max(since_seq or 1, 1)
    prev_hash: str | None = chain.GENESIS
    seen_keyed = False
    if expected_seq > 1:
        anchor = (
            AuditEntry.objects.filter(seq=expected_seq - 1)
            .values_list("entry_hash", "key_id")
            .first()
        )
        if anchor is None:
            prev_hash = None
            yield f"seq {expected_seq - 1}", "missing: the check cannot link to it"
        else:
            prev_hash, anchor_key_id = anchor
            seen_keyed = bool(anchor_key_id)
    entries = AuditEntry.objects.order_by("seq").values(*_COLUMNS)
    after = expected_seq - 1
    while True:
        batch = list(entries.filter(seq__gt=after)[:batch_size])
        if not batch:
            break
        for row in batch:
            seq = row["seq"]
            where = f"seq {seq}"
            report.entries += 1
            if report.first_seq is None:
                report.first_seq = seq
            if seq > expected_seq:
                missing = (
                    f"entry {expected_seq} is"
                    if seq == expected_seq + 1
                    else f"entries {expected_seq} to {seq - 1} are"
                )
                yield where, f"{missing} missing before this one (deleted)"
            elif prev_hash is not None and row["prev_hash"] != prev_hash:
                if seq == 1:
                    yield where, "prev_hash is not the start of the chain (replaced or inserted)"
                else:
                    yield (
                        where,
                        f"prev_hash is not the hash of entry {seq - 1}: one of the two "
                        "was replaced, inserted or moved",
                    )
            if row["key_id"] == "":
                if key and seen_keyed:
                    yield (
                        where,
                        "not keyed although earlier entries are (rewritten without AUDIT_CHAIN_KEY)",
                    )
                entry_key: str | None = ""
            elif row["key_id"] == configured_key_id:
                entry_key = key
                seen_keyed = True
                if report.keyed_from is None:
                    report.keyed_from = seq
            else:
                entry_key = None
                seen_keyed = True
                yield (
                    where,
                    f"keyed with key {row['key_id']}, not with the configured AUDIT_CHAIN_KEY "
                    f"({configured_key_id or 'none set'}): cannot be checked",
                )
            if entry_key is not None and _recomputed(row, entry_key) != row["entry_hash"]:
                yield where, "content does not match its hash (edited)"
            prev_hash = row["entry_hash"]
            expected_seq = seq + 1
            report.last_seq, report.last_hash = seq, row["entry_hash"]
        if len(batch) < batch_size:
            break
        after = batch[-1]["seq"]
    if key and report.last_seq is not None and not seen_keyed:
        yield (
            f"seq {report.last_seq}",
            "newest entry not keyed although AUDIT_CHAIN_KEY is set: the chain was rewritten "
            "without the key, or nothing was recorded since the key was set",
        )


def _recomputed(row: dict, key: str) -> str:
    fields = chain.entry_fields(
        seq=row["seq"],
        created_at=row["created_at"],
        action=row["action"],
        actor=row["actor"],
        outcome=row["outcome"],
        member_id=row["member_id"],
        ip=row["ip"],
        request_id=row["request_id"],
        data=row["data"],
        prev_hash=row["prev_hash"],
        key_id=row["key_id"],
    )
    return chain.entry_hash(fields, key)


def _head_problems(report: ChainReport, *, since_seq: int | None) -> Iterator[tuple[str, str]]:
    head = AuditChainHead.objects.filter(pk=AuditChainHead.SINGLETON).first()
    where = "chain head"
    if head is None:
        if report.last_seq is not None:
            yield where, "missing (deleted)"
        return
    last_seq = report.last_seq
    if last_seq is None and since_seq and since_seq > 1:
        # Nothing from `since_seq` on: the head may rightly point before it.
        last_seq = (
            AuditEntry.objects.filter(seq__lt=since_seq)
            .order_by("-seq")
            .values_list("seq", flat=True)
            .first()
        )
        if head.seq < since_seq:
            return
    last_seq = last_seq or 0
    if head.seq > last_seq:
        missing = (
            f"entry {head.seq} is"
            if head.seq == last_seq + 1
            else (f"entries {last_seq + 1} to {head.seq} are")
        )
        yield where, f"at seq {head.seq}: {missing} missing at the end (deleted)"
    elif head.seq < last_seq:
        yield (
            where,
            f"at seq {head.seq} but entries go on to seq {last_seq}: "
            "written without going through the chain (inserted)",
        )
    elif report.last_seq is not None and head.entry_hash != report.last_hash:
        yield where, f"hash differs from entry {last_seq}'s (head or entry tampered with)"


def _trigger_problems() -> Iterator[str]:
    expected = TRIGGERS.get(connection.vendor)
    if not expected:
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT c.relname, t.tgname, t.tgenabled FROM pg_trigger t "
                "JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE NOT t.tgisinternal AND pg_table_is_visible(c.oid) AND c.relname = ANY(%s)",
                [list(expected)],
            )
            found = {(table, name): enabled in ("O", "A") for table, name, enabled in cursor}
        else:
            cursor.execute("SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'")
            found = {(table, name): True for table, name in cursor}
    for table, names in expected.items():
        for name in names:
            state = found.get((table, name))
            if state is None:
                yield f"trigger {name} on {table} is missing: the append-only rule is not enforced"
            elif not state:
                yield f"trigger {name} on {table} is disabled: the append-only rule is not enforced"
