"""The assisted recovery (36 46 and reception sites): identity checks, blocks, visits."""

from django.db import models


class IdentityCheck(models.Model):
    """One run of the identity script by an advisor. Stores outcomes, never the answers."""

    staff = models.ForeignKey("staff.Staff", on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey("members.Member", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    passed = models.BooleanField()
    # {"birth_date": true, "postal_code": false, ...}: match or not, per question.
    outcomes = models.JSONField(default=dict)

    class Meta:
        indexes = [models.Index(fields=["member", "created_at"])]

    def __str__(self) -> str:
        return (
            f"check {self.pk} of member {self.member_id} ({'passed' if self.passed else 'failed'})"
        )


class ConsoleBlock(models.Model):
    """The console path is closed for a member after 3 failed checks in 24 h.

    Only a supervisor of the member's CPAM can lift it.
    """

    member = models.ForeignKey("members.Member", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        "staff.Staff", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["member"],
                condition=models.Q(lifted_at__isnull=True),
                name="one_open_block_per_member",
            )
        ]

    def __str__(self) -> str:
        return f"block {self.pk} of member {self.member_id}"


class DeskVisit(models.Model):
    """A member seen at a reception site: the identity document was checked (never scanned)."""

    class Document(models.TextChoices):
        ID_CARD = "id_card", "Carte nationale d’identité"
        PASSPORT = "passport", "Passeport"
        RESIDENCE_PERMIT = "residence_permit", "Titre de séjour"
        DRIVING_LICENCE = "driving_licence", "Permis de conduire"

    staff = models.ForeignKey("staff.Staff", on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey("members.Member", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    document_type = models.CharField(max_length=20, choices=Document.choices)
    # The last 4 characters of the document number: enough to trace, not to reuse.
    document_last_chars = models.CharField(max_length=4)

    def __str__(self) -> str:
        return f"visit {self.pk} of member {self.member_id}"
