"""The .ics invitation of an appointment (RFC 5545, iTIP REQUEST / CANCEL).

One UID per appointment and a SEQUENCE bumped at each change, so that a
calendar updates the event when it is moved and removes it when it is
cancelled, instead of piling up copies.
"""

from datetime import datetime
from datetime import timezone as dt_timezone
from email.utils import parseaddr
from urllib.parse import urlsplit

from django.conf import settings
from icalendar import Calendar, Event, vCalAddress, vText

from .models import Appointment, Channel

UTC = dt_timezone.utc  # datetime.UTC needs Python 3.11

CONTENT_TYPE_REQUEST = "text/calendar; charset=utf-8; method=REQUEST"
CONTENT_TYPE_CANCEL = "text/calendar; charset=utf-8; method=CANCEL"
FILENAME = "rendez-vous.ics"


def appointment_uid(appointment: Appointment) -> str:
    host = urlsplit(settings.SITE_URL).hostname or "localhost"
    return f"rdv-{appointment.public_id}@{host}"


def appointment_ics(appointment: Appointment, *, cancel: bool = False, email: str = "") -> str:
    cal = Calendar()
    cal.add("prodid", f"-//{settings.SERVICE_NAME}//Mon agenda//FR")
    cal.add("version", "2.0")
    cal.add("method", "CANCEL" if cancel else "REQUEST")
    event = Event()
    event.add("uid", appointment_uid(appointment))
    event.add("sequence", appointment.sequence + (1 if cancel else 0))
    event.add("dtstamp", datetime.now(UTC))
    event.add("dtstart", appointment.starts_at.astimezone(UTC))
    event.add("dtend", appointment.ends_at.astimezone(UTC))
    event.add("summary", f"Rendez-vous Assurance Maladie : {appointment.motive.label}")
    if appointment.channel == Channel.RELAY:
        mode = appointment.get_communication_mode_display()
        event.add("location", appointment.video_url or "Visio (lien envoyé par courriel)")
        how = f"Entretien en visio avec interprétation / transcription ({mode})."
        if appointment.video_url:
            how += f" Lien : {appointment.video_url}"
    elif appointment.channel == Channel.PHONE:
        event.add("location", "Entretien téléphonique : un conseiller vous appellera")
        how = "Un conseiller vous appellera au numéro de téléphone de votre compte."
    else:
        site = appointment.site
        event.add("location", f"{site.name}, {site.full_address}")
        how = f"Présentez-vous à l’accueil : {site.name}, {site.full_address}."
    event.add(
        "description",
        f"Motif : {appointment.motive.label}\n{how}\n"
        f"Pour annuler ou déplacer ce rendez-vous : {settings.SITE_URL}/agenda/",
    )
    event.add("status", "CANCELLED" if cancel else "CONFIRMED")
    organizer = vCalAddress(f"mailto:{parseaddr(settings.DEFAULT_FROM_EMAIL)[1]}")
    organizer.params["cn"] = vText(settings.SERVICE_NAME)
    event.add("organizer", organizer)
    if email:
        attendee = vCalAddress(f"mailto:{email}")
        attendee.params["role"] = vText("REQ-PARTICIPANT")
        attendee.params["partstat"] = vText("ACCEPTED")
        event.add("attendee", attendee, encode=0)
    cal.add_component(event)
    return cal.to_ical().decode()
