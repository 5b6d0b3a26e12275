from django.db import models
from django.utils import timezone

from .chain import GENESIS


class AppendOnlyError(Exception):
    """Raised on any attempt to change or remove an audit entry through the ORM."""


class AuditEntryQuerySet(models.QuerySet):
    """Refuses bulk changes; the database triggers refuse them too (see the 0004 migration)."""

    def update(self, **kwargs):
        raise AppendOnlyError("audit entries are never updated")

    def delete(self):
        raise AppendOnlyError("audit entries are never deleted")

    def bulk_create(self, *args, **kwargs):
        raise AppendOnlyError("audit entries are written one by one by audit.services.record()")

    def bulk_update(self, *args, **kwargs):
        raise AppendOnlyError("audit entries are never updated")


class AuditEntry(models.Model):
    """One state change, with who did it. Append-only and hash-chained; never holds a secret.

    Written only by `portal.audit.services.record()`, which gives each entry
    the next `seq` and chains it to the previous one (`portal.audit.chain`).
    """

    seq = models.BigIntegerField(unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True, editable=False)
    action = models.CharField(max_length=100, db_index=True)
    # "member:<account id>", "system", "import", "staff:<id>", "anonymous"…
    actor = models.CharField(max_length=100)
    # What came of the action ("matched", "failed", "sent"…); empty when it says it all.
    outcome = models.CharField(max_length=64, blank=True, default="")
    member = models.ForeignKey(
        "members.Member", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=32, blank=True)
    data = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64, editable=False)
    entry_hash = models.CharField(max_length=64, editable=False)
    # Public name of the AUDIT_CHAIN_KEY that keyed `entry_hash`; empty: plain SHA-256.
    key_id = models.CharField(max_length=16, blank=True, default="", editable=False)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        indexes = [models.Index(fields=["member", "-created_at"])]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"#{self.seq} {self.created_at:%Y-%m-%d %H:%M:%S} {self.action} by {self.actor}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("audit entries are never updated")
        if not self.entry_hash:
            raise AppendOnlyError("audit entries are written by audit.services.record()")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("audit entries are never deleted")


class AuditChainHead(models.Model):
    """The end of the chain: a single row that every append locks, then moves one step.

    Holding its lock until the appending transaction ends is what keeps
    concurrent appends in one line (no two entries with the same
    predecessor); it also records how long the chain is, so that entries
    deleted from the end show up.
    """

    SINGLETON = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON)
    seq = models.BigIntegerField(default=0)
    entry_hash = models.CharField(max_length=64, default=GENESIS)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="audit_chain_head_single_row")
        ]

    def __str__(self) -> str:
        return f"audit chain head at #{self.seq}"
