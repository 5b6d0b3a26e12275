from django.conf import settings
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.translation import gettext as _

from portal.notifications.models import OutboundMessage
from portal.notifications.selectors import demo_mailbox


def _demo_only():
    if not settings.DEMO:
        raise Http404


def mailbox(request):
    _demo_only()
    return render(
        request,
        "www/demo/mailbox.html",
        {"title": _("Boîte mail de démonstration"), "messages_list": demo_mailbox()},
    )


def message(request, message_id: int):
    _demo_only()
    item = get_object_or_404(OutboundMessage, pk=message_id)
    return render(
        request, "www/demo/message.html", {"title": item.subject or _("SMS"), "item": item}
    )


def attachment(request, message_id: int):
    """The message's attachment (an appointment's .ics), as the mail client would get it."""
    _demo_only()
    item = get_object_or_404(OutboundMessage, pk=message_id)
    if not item.attachment_name:
        raise Http404
    response = HttpResponse(item.attachment_body, content_type=item.attachment_type)
    response["Content-Disposition"] = f'attachment; filename="{item.attachment_name}"'
    return response
