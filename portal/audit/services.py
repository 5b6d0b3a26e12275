import ipaddress
import json
import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.ipv6 import clean_ipv6_address

from portal.core.request_id import current_request_id

from . import chain
from .models import AuditChainHead, AuditEntry

logger = logging.getLogger(__name__)

# Data keys that would carry a secret or an identifier that must stay out of the log.
FORBIDDEN_WORDS = ("password", "token", "secret", "nir", "iban", "otp")
# Codes that are public reference data, not one-time secrets.
REFERENCE_CODES = {"postal_code", "cpam_code", "status_code", "act_code", "error_code"}


def record(
    *,
    action: str,
    actor: str,
    member=None,
    ip: str | None = None,
    data: dict[str, Any] | None = None,
    outcome: str = "",
) -> AuditEntry:
    """Append one entry to the audit chain and return it.

    `data` must not carry secrets; keys that look like one are refused
    (`ValueError`). `outcome` is what came of the action ("passed",
    "failed"…); when not given, a string `data["outcome"]` is used.

    Runs in the caller's transaction when there is one (a rolled-back change
    leaves no entry and no gap), in its own otherwise. It locks the chain's
    head row until that transaction ends, so concurrent appends queue up
    behind each other: call it after the transaction's other row locks and
    keep slow work (network calls) out of the transaction after it.
    """
    data = data or {}
    leaked = {
        key
        for key in data
        if any(word in key.lower() for word in FORBIDDEN_WORDS)
        or (key.lower().endswith("code") and key.lower() not in REFERENCE_CODES)
    }
    if leaked:
        raise ValueError(f"audit data must not contain secrets: {sorted(leaked)}")
    # What the JSON column gives back (tuples become lists…): the hash must
    # cover what is stored.
    data = json.loads(json.dumps(data))
    if not outcome and isinstance(data.get("outcome"), str):
        outcome = data["outcome"]
    key = getattr(settings, "AUDIT_CHAIN_KEY", "") or ""
    with transaction.atomic(savepoint=False):
        head = _head_locked()
        entry = AuditEntry(
            seq=head.seq + 1,
            # Taken once the lock is held, so that times follow the chain's order.
            created_at=timezone.now(),
            action=action,
            actor=actor,
            outcome=outcome,
            member=member,
            ip=_normalized_ip(ip),
            request_id=current_request_id() or "",
            data=data,
            prev_hash=head.entry_hash,
            key_id=chain.key_id(key),
        )
        entry.entry_hash = chain.entry_hash(entry_fields(entry), key)
        entry.save(force_insert=True)
        AuditChainHead.objects.filter(pk=AuditChainHead.SINGLETON).update(
            seq=entry.seq, entry_hash=entry.entry_hash
        )
    return entry


def entry_fields(entry: AuditEntry) -> dict[str, Any]:
    return chain.entry_fields(
        seq=entry.seq,
        created_at=entry.created_at,
        action=entry.action,
        actor=entry.actor,
        outcome=entry.outcome,
        member_id=entry.member_id,
        ip=entry.ip,
        request_id=entry.request_id,
        data=entry.data,
        prev_hash=entry.prev_hash,
        key_id=entry.key_id,
    )


def _head_locked() -> AuditChainHead:
    """The head row, locked (`SELECT … FOR UPDATE`; SQLite's IMMEDIATE transactions serialize)."""
    try:
        return AuditChainHead.objects.select_for_update().get(pk=AuditChainHead.SINGLETON)
    except AuditChainHead.DoesNotExist:
        pass
    # Only a fresh database or a flushed one (tests) lacks the row. Two first
    # appends racing here both try to insert it: the loser waits for the
    # winner's commit, gets an IntegrityError, and then locks the winner's row.
    last = AuditEntry.objects.order_by("-seq").values_list("seq", "entry_hash").first()
    if last:
        logger.error("audit chain head missing: rebuilt from entry seq %s", last[0])
    seq, entry_hash = last or (0, chain.GENESIS)
    head, _ = AuditChainHead.objects.select_for_update().get_or_create(
        pk=AuditChainHead.SINGLETON, defaults={"seq": seq, "entry_hash": entry_hash}
    )
    return head


def _normalized_ip(value: str | None) -> str | None:
    """The address as the database gives it back (IPv6 compressed, IPv4-mapped dotted)."""
    if not value:
        return None
    address = ipaddress.ip_address(value.strip())
    if address.version == 6:
        return clean_ipv6_address(str(address))
    return str(address)
