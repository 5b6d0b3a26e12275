from django.conf import settings
from django.db import migrations

# The chain format is frozen (portal/audit/chain.py, version 1): importing it
# here keeps these hashes and the verifier's identical.
from portal.audit import chain

BATCH = 1000


def chain_existing_entries(apps, schema_editor):
    """Give the entries written before the chain a `seq` and hashes, oldest first."""
    AuditEntry = apps.get_model("audit", "AuditEntry")
    AuditChainHead = apps.get_model("audit", "AuditChainHead")
    key = getattr(settings, "AUDIT_CHAIN_KEY", "") or ""
    kid = chain.key_id(key)
    seq, prev_hash, last_id = 0, chain.GENESIS, 0
    while True:
        batch = list(AuditEntry.objects.filter(id__gt=last_id).order_by("id")[:BATCH])
        if not batch:
            break
        for entry in batch:
            seq += 1
            entry.seq = seq
            if not entry.outcome and isinstance(entry.data, dict):
                outcome = entry.data.get("outcome")
                entry.outcome = outcome if isinstance(outcome, str) else ""
            entry.prev_hash = prev_hash
            entry.key_id = kid
            fields = chain.entry_fields(
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
            entry.entry_hash = prev_hash = chain.entry_hash(fields, key)
        AuditEntry.objects.bulk_update(
            batch, ["seq", "outcome", "prev_hash", "entry_hash", "key_id"]
        )
        last_id = batch[-1].id
    AuditChainHead.objects.update_or_create(
        id=1, defaults={"seq": seq, "entry_hash": prev_hash}
    )


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_chain_fields"),
    ]

    operations = [
        migrations.RunPython(chain_existing_entries, migrations.RunPython.noop, elidable=False),
    ]
