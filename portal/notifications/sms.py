"""SMS: who may receive one, and the gateways that carry them.

The gateway is chosen by the `SMS_BACKEND` setting, by name:

- `outbox` (default): nothing leaves, the message stays in the outbox and the
  demo mailbox (/demo/boite-mail/) shows it;
- `webhook`: a signed JSON POST to `SMS_WEBHOOK_URL`;
- `console`: the text is printed on the worker's standard output, for a
  developer; never in production (`manage.py check --deploy` refuses it).

A backend is a class with a `send(message)` method that returns once the
gateway has accepted the message and raises otherwise: the delivery task then
retries with backoff (`services.message_deliver`). Adding one means writing
such a class and naming it in `BACKENDS`, or setting `SMS_BACKEND` to its
dotted path.
"""

import abc
import hashlib
import hmac
import json
import logging
import sys
import urllib.request
from typing import TYPE_CHECKING, ClassVar, TextIO

import phonenumbers
from django.conf import settings
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from .models import OutboundMessage

logger = logging.getLogger(__name__)

# Metropolitan France, its overseas departments and regions (Guadeloupe,
# Martinique, Guyane, La Réunion, Mayotte) and the overseas collectivities of
# Saint-Pierre-et-Miquelon, Saint-Barthélemy and Saint-Martin; then the other
# member states of the European Union (Åland is Finnish; the Canaries, Azores
# and Madeira share their state's code).
# Mayotte is +262 (YT), like La Réunion; +269 is the Comoros, refused.
FRENCH_REGIONS = frozenset({"FR", "GP", "MQ", "GF", "RE", "YT", "PM", "BL", "MF"})
EU_REGIONS = frozenset(
    {
        "AT", "AX", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "GR", "HR",
        "HU", "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
    }
)  # fmt: skip
ALLOWED_REGIONS = FRENCH_REGIONS | EU_REGIONS
MOBILE_TYPES = frozenset(
    {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
)


class SmsError(Exception):
    """An SMS the portal refuses to queue. Nothing was queued."""

    code = "sms_refused"


class SmsRecipientRefused(SmsError):
    """The number is not a valid mobile number of France or of another EU member state."""

    code = "sms_recipient_refused"

    def __init__(self, reason: str, region: str | None = None):
        self.reason = reason  # "invalid", "region" or "not_mobile"
        self.region = region
        super().__init__(f"SMS recipient refused: {reason} (region {region or 'unknown'})")


class SmsCapReached(SmsError):
    """A daily SMS cap (per member, per sender or global) is reached: see `services.sms_send`."""

    code = "sms_cap_reached"

    def __init__(self, scope: str, cap: int):
        self.scope = scope  # "member", "sender" or "global"
        self.cap = cap
        super().__init__(f"daily SMS cap reached: {scope} ({cap} in 24 h)")


def sms_recipient_normalize(to) -> str:
    """The number in E.164 (`+33612345678`), or `SmsRecipientRefused`.

    Accepts a string (international form, or French national form such as
    `06 12 34 56 78`) or a parsed phone number. Only mobile numbers of the
    allowed regions pass: an SMS elsewhere is either a mistake or a premium
    number someone wants the fund to pay for (SMS pumping).
    """
    if isinstance(to, phonenumbers.PhoneNumber):
        number = to
    else:
        try:
            number = phonenumbers.parse(str(to), "FR")
        except phonenumbers.NumberParseException:
            raise SmsRecipientRefused("invalid") from None
    if not phonenumbers.is_valid_number(number):
        raise SmsRecipientRefused("invalid")
    region = phonenumbers.region_code_for_number(number)
    if region not in ALLOWED_REGIONS:
        raise SmsRecipientRefused("region", region)
    if phonenumbers.number_type(number) not in MOBILE_TYPES:
        raise SmsRecipientRefused("not_mobile", region)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# --- gateways --------------------------------------------------------------------------------


class SmsBackend(abc.ABC):
    """Carries one SMS. `send` returns once the gateway accepted it, raises otherwise."""

    name: ClassVar[str]
    # False: nothing leaves the portal (a real deployment must not use it).
    delivers: ClassVar[bool] = True

    @abc.abstractmethod
    def send(self, message: "OutboundMessage") -> None:
        """Hand the message to the gateway; raise if it was not accepted."""


class OutboxBackend(SmsBackend):
    """Nothing leaves: the message stays in the outbox, where the demo mailbox shows it."""

    name = "outbox"
    delivers = False

    def send(self, message: "OutboundMessage") -> None:
        pass


class ConsoleBackend(SmsBackend):
    """Prints the SMS, code included, on standard output: for a developer's machine only.

    Written to the stream rather than logged, on purpose: the logging filter
    would mask the code, which is what the developer needs to read. A
    production start refuses this backend (`manage.py check --deploy`).
    """

    name = "console"

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream

    def send(self, message: "OutboundMessage") -> None:
        stream = self.stream or sys.stdout
        stream.write(
            f"----- SMS {message.pk} to {message.recipient} -----\n{message.body_text}\n"
            f"{'-' * 40}\n"
        )
        stream.flush()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is a failure: urllib would replay the POST as a bodiless GET."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class WebhookBackend(SmsBackend):
    """POST `{"id", "to", "text"}` as JSON to `SMS_WEBHOOK_URL`, signed with HMAC-SHA256.

    The signature (hex, header `X-Signature-SHA256`, key `SMS_WEBHOOK_SECRET`)
    covers the exact body, so the gateway can refuse anything that did not
    come from the portal. A non-2xx answer, a redirect, a connection error or
    no answer within `SMS_WEBHOOK_TIMEOUT` seconds raises, and the delivery is
    retried with backoff; after a timeout the gateway may have received the
    message, so the same `id` lets it drop the duplicate.
    """

    name = "webhook"

    def send(self, message: "OutboundMessage") -> None:
        url = getattr(settings, "SMS_WEBHOOK_URL", "")
        if not url:
            raise RuntimeError("SMS_BACKEND=webhook needs SMS_WEBHOOK_URL")
        body = json.dumps(
            {"id": message.pk, "to": message.recipient, "text": message.body_text}
        ).encode()
        secret = getattr(settings, "SMS_WEBHOOK_SECRET", "")
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(  # noqa: S310 (the URL is the operator's setting)
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "X-Signature-SHA256": signature},
        )
        opener = urllib.request.build_opener(_NoRedirect)
        timeout = float(getattr(settings, "SMS_WEBHOOK_TIMEOUT", 10))
        # HTTPError (4xx, 5xx, refused redirect), URLError and timeouts propagate.
        with opener.open(request, timeout=timeout) as response:
            if not 200 <= response.status < 300:
                raise RuntimeError(f"SMS gateway answered {response.status}")


BACKENDS: dict[str, type[SmsBackend]] = {
    backend.name: backend for backend in (OutboxBackend, WebhookBackend, ConsoleBackend)
}


def backend_name() -> str:
    return getattr(settings, "SMS_BACKEND", "") or "outbox"


def backend_class(name: str | None = None) -> type[SmsBackend]:
    """The class named by `SMS_BACKEND`: a name from `BACKENDS` or a dotted path."""
    name = name or backend_name()
    if name in BACKENDS:
        return BACKENDS[name]
    if "." in name:
        return import_string(name)
    raise ValueError(f"unknown SMS_BACKEND {name!r}: one of {sorted(BACKENDS)} or a dotted path")


def backend() -> SmsBackend:
    return backend_class()()
