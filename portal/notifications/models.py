from django.db import models


class OutboundMessage(models.Model):
    """An email or SMS the portal promised to send: the outbox, and the demo mailbox.

    Created in the same transaction as the change that causes it, with the
    task that delivers it, so a rolled-back change sends nothing and a
    committed one is never lost. Once delivered by a real channel its body
    is wiped (it may hold a one-time link); in demo mode it is kept so the
    demo mailbox can show it.
    """

    class Channel(models.TextChoices):
        EMAIL = "email", "Courriel"
        SMS = "sms", "SMS"

    class Status(models.TextChoices):
        PENDING = "pending", "À envoyer"
        SENT = "sent", "Envoyé"
        FAILED = "failed", "Abandonné"

    channel = models.CharField(max_length=5, choices=Channel.choices)
    member = models.ForeignKey(
        "members.Member", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    template = models.CharField(max_length=100)
    recipient = models.CharField(max_length=254)
    # Who asked for an SMS to be sent on a member's behalf ("staff:3"); blank
    # when the member or the system did. Counted by the per-sender daily cap.
    sent_by = models.CharField(max_length=100, blank=True, default="")
    subject = models.CharField(max_length=200, blank=True)
    body_text = models.TextField()
    body_html = models.TextField(blank=True)
    # One text attachment at most (an appointment's .ics invitation).
    attachment_name = models.CharField(max_length=100, blank=True)
    attachment_type = models.CharField(max_length=100, blank=True)
    attachment_body = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Past this moment the message is pointless (its link has expired): retries stop.
    expires_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # The daily SMS caps count the last 24 hours per channel, per sender.
        indexes = [
            models.Index(fields=["channel", "created_at"], name="notif_channel_created"),
            models.Index(fields=["sent_by", "created_at"], name="notif_sent_by_created"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.template} ({self.status})"
