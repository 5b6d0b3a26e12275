"""Reads of the audit trail, for the supervisor's pages (filters, CSV export)."""

import json
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import QuerySet

from portal.core.csv_export import csv_lines, safe_cell
from portal.core.logging import mask_secrets

from .models import AuditEntry

PARIS = ZoneInfo("Europe/Paris")
CSV_HEADER = ["seq", "created_at", "actor", "action", "outcome", "member_id", "ip", "data"]


def audit_entries(
    *,
    member=None,
    actor: str | None = None,
    action_prefix: str | None = None,
    since: date | datetime | None = None,
    until: date | datetime | None = None,
    outcome: str | None = None,
) -> QuerySet[AuditEntry]:
    """Entries matching every given filter, newest first (chain order).

    `member`: a member or its id. `actor`: exact ("staff:3"). `action_prefix`:
    "console." matches every console action. `since` is inclusive and
    `until` exclusive for datetimes; dates are whole days in Paris, both
    inclusive (`since=date(2026, 3, 1), until=date(2026, 3, 31)` is March).
    """
    entries = AuditEntry.objects.select_related("member").order_by("-seq")
    if member is not None:
        entries = entries.filter(member=member)
    if actor:
        entries = entries.filter(actor=actor)
    if action_prefix:
        entries = entries.filter(action__startswith=action_prefix)
    if since is not None:
        entries = entries.filter(created_at__gte=_instant(since))
    if until is not None:
        if not isinstance(until, datetime):
            until = until + timedelta(days=1)
        entries = entries.filter(created_at__lt=_instant(until))
    if outcome:
        entries = entries.filter(outcome=outcome)
    return entries


def audit_csv_rows(queryset: QuerySet[AuditEntry]) -> Iterator[list[str]]:
    """The header, then one row per entry, streamed (bounded memory whatever the size).

    Only the columns of `CSV_HEADER` are read, whatever the queryset selects:
    never a member's NIR or name. `data` was checked for secret keys when
    recorded; its JSON is masked once more with the log filter (a NIR typed
    into a free-text reason). Cells a spreadsheet would run as a formula
    are neutralised. Times are Paris time, ISO 8601.
    """
    yield list(CSV_HEADER)
    rows = queryset.values_list(
        "seq", "created_at", "actor", "action", "outcome", "member_id", "ip", "data"
    )
    for seq, created_at, actor, action, outcome, member_id, ip, data in rows.iterator(
        chunk_size=2000
    ):
        yield [
            str(seq),
            created_at.astimezone(PARIS).isoformat(timespec="seconds"),
            _cell(actor),
            _cell(action),
            _cell(outcome),
            "" if member_id is None else str(member_id),
            ip or "",
            _cell(mask_secrets(json.dumps(data, sort_keys=True, ensure_ascii=False))),
        ]


def audit_csv_lines(rows: Iterable[list[str]]) -> Iterator[str]:
    """`audit_csv_rows` as CSV text, one line at a time (for a `StreamingHttpResponse`)."""
    return csv_lines(rows)


def _instant(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, time.min, tzinfo=PARIS)


def _cell(value: str) -> str:
    return safe_cell(value)
