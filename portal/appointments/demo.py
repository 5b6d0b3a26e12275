"""Demo agenda for `make run`: CPAM 751 with two sites and eight advisors. Idempotent."""

from datetime import time, timedelta

from django.contrib.auth.hashers import make_password
from django.utils import timezone

from portal.members.models import Cpam
from portal.staff.models import Staff

from . import calendar
from .models import Advisor, Appointment, Motive, OpeningRange, RelayProfessional, RelayRange, Site

SITES = [
    (
        "Accueil Paris 11e",
        "21 rue Georges Auric",
        "75019",
        "Paris",
        "Du lundi au vendredi, 8 h 30 – 17 h",
    ),
    (
        "Accueil Paris 15e",
        "173 rue de Vaugirard",
        "75015",
        "Paris",
        "Du lundi au vendredi, 8 h 30 – 16 h 30",
    ),
]
MORNING = (time(9, 0), time(12, 0))
AFTERNOON = (time(13, 30), time(16, 30))
# Advisors who also hold relay appointments (video with the relay service).
RELAY_ADVISORS = {
    "sophie.leroy@example.org",
    "nadia.haddad@example.org",
    "marc.fontaine@example.org",
}
# The relay service's professionals: (name, modes).
RELAY_PROFESSIONALS = [
    ("Interprète LSF — Élise Marchand", ["lsf"]),
    ("Interprète LSF — Hugo Lambert", ["lsf"]),
    ("Transcriptrice TTRP — Amélie Roux", ["ttrp"]),
    ("Codeur LfPC — Samuel Girard", ["lfpc", "ttrp"]),
]
# (email, first name, last name, site index, phone?, on site?, motive codes or None for all)
ADVISORS = [
    ("conseiller@example.org", "Claire", "Durand", 0, True, False, None),
    ("accueil@example.org", "Karim", "Benali", 0, False, True, None),
    (
        "sophie.leroy@example.org",
        "Sophie",
        "Leroy",
        0,
        True,
        True,
        ["arret-travail-ij", "maternite-paternite", "at-mp"],
    ),
    (
        "julien.moreau@example.org",
        "Julien",
        "Moreau",
        0,
        True,
        True,
        ["css", "capital-deces", "pension-invalidite"],
    ),
    ("nadia.haddad@example.org", "Nadia", "Haddad", 1, True, True, None),
    (
        "thomas.petit@example.org",
        "Thomas",
        "Petit",
        1,
        True,
        False,
        ["soins-etranger", "frontaliers-suisses", "artistes-auteurs"],
    ),
    (
        "ines.garcia@example.org",
        "Inès",
        "Garcia",
        1,
        False,
        True,
        ["cures-thermales", "arret-travail-ij", "css"],
    ),
    (
        "marc.fontaine@example.org",
        "Marc",
        "Fontaine",
        1,
        True,
        True,
        ["at-mp", "pension-invalidite", "capital-deces"],
    ),
]


def demo_agenda_load(cpam: Cpam, staff_password: str) -> int:
    """Create the sites, advisors and weekly ranges; returns the number of advisors."""
    sites = []
    for name, address, postal, city, hours in SITES:
        site, _ = Site.objects.update_or_create(
            cpam=cpam,
            name=name,
            defaults={
                "address": address,
                "postal_code": postal,
                "city": city,
                "opening_hours": hours,
            },
        )
        sites.append(site)
    motives = list(Motive.objects.filter(is_active=True))
    for email, first, last, site_index, phone, on_site, codes in ADVISORS:
        staff, created = Staff.objects.get_or_create(
            email=email,
            defaults={
                "role": Staff.Role.FRONT_DESK
                if on_site and not phone
                else Staff.Role.PHONE_ADVISOR,
                "cpam": cpam,
            },
        )
        staff.first_name, staff.last_name = first, last
        if created:
            # Not enrolled (no TOTP): they hold appointments but cannot log in.
            staff.password = make_password(staff_password)
        staff.save()
        advisor, _ = Advisor.objects.update_or_create(
            staff=staff,
            defaults={
                "site": sites[site_index],
                "phone": phone,
                "on_site": on_site,
                "relay": email in RELAY_ADVISORS,
            },
        )
        advisor.motives.set([m for m in motives if codes is None or m.code in codes])
        if not advisor.ranges.exists():
            for weekday in range(5):
                for start, end in (MORNING, AFTERNOON):
                    OpeningRange.objects.create(
                        advisor=advisor, weekday=weekday, start_time=start, end_time=end
                    )
    for name, modes in RELAY_PROFESSIONALS:
        professional, created = RelayProfessional.objects.update_or_create(
            name=name, defaults={mode: mode in modes for mode in ("lsf", "ttrp", "lfpc")}
        )
        if created:
            for weekday in range(5):
                RelayRange.objects.create(
                    professional=professional,
                    weekday=weekday,
                    start_time=time(8, 30),
                    end_time=time(17, 0),
                )
    return len(ADVISORS)


def demo_appointment_today(member, advisor_email: str = "conseiller@example.org") -> None:
    """One appointment later today for the demo advisor's planning (no notice applies)."""
    advisor = Advisor.objects.get(staff__email=advisor_email)
    tz = calendar.zone(member.cpam)
    now = timezone.now().astimezone(tz)
    start = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    if Appointment.objects.filter(
        advisor=advisor, member=member, starts_at__date=start.date()
    ).exists():
        return
    from .services import _locks_take

    motive = Motive.objects.get(code="arret-travail-ij")
    appointment = Appointment.objects.create(
        member=member,
        motive=motive,
        channel="phone",
        advisor=advisor,
        site=advisor.site,
        starts_at=start,
        ends_at=start + timedelta(minutes=motive.duration_minutes),
        message="Je voudrais savoir quand sera versé le prochain paiement de mes indemnités.",
    )
    _locks_take(appointment)
