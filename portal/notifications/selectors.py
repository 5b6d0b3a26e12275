from .models import OutboundMessage


def demo_mailbox():
    return OutboundMessage.objects.only(
        "id", "channel", "recipient", "subject", "status", "created_at"
    )[:200]
