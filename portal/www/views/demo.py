from django.conf import settings
from django.http import Http404
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
