"""Any change to an office's availability voids its cached slot searches (see `slots`)."""

from datetime import timedelta
from zoneinfo import ZoneInfo

from django.db.models.signals import m2m_changed, post_delete, post_save

from portal.core.cache import agenda as cache
from portal.staff.models import Staff

from .models import Absence, Advisor, Appointment, OpeningRange, RelayProfessional, RelayRange, Site
from .slots import availability_changed, relay_availability_changed

# An absence longer than this voids the office's whole cache rather than each day.
MAX_DAYS_BUMPED = 62


def _site_office(site_id: int) -> tuple[int, str] | None:
    """The office (id, time zone) of a site, through the cache: sites never move."""
    key = f"agenda:site:{site_id}"
    office = cache.get(key)
    if office is None:
        office = Site.objects.filter(pk=site_id).values_list("cpam_id", "cpam__time_zone").first()
        if office is None:
            return None
        cache.set(key, office, 3600)
    return tuple(office)


def _site_cpam(site_id: int) -> int | None:
    office = _site_office(site_id)
    return office[0] if office else None


def _advisor_cpam(advisor_id: int) -> int | None:
    site_id = Advisor.objects.filter(pk=advisor_id).values_list("site_id", flat=True).first()
    return _site_cpam(site_id) if site_id else None


def _local_days(start, end, time_zone: str) -> list:
    """The office-local days from `start` to `end` (inclusive), or None when too many."""
    tz = ZoneInfo(time_zone or "Europe/Paris")
    first, last = start.astimezone(tz).date(), end.astimezone(tz).date()
    if (last - first).days > MAX_DAYS_BUMPED:
        return None
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def appointment_days_changed(appointment) -> None:
    """An appointment's time was taken or freed: void the cached searches of its day(s)."""
    office = _site_office(appointment.site_id)
    if office is None:
        return
    cpam_id, time_zone = office
    availability_changed(
        cpam_id, _local_days(appointment.starts_at, appointment.ends_at, time_zone)
    )
    if appointment.relay_professional_id:
        relay_availability_changed()


def _appointment_changed(sender, instance, **kwargs):
    appointment_days_changed(instance)


def _absence_changed(sender, instance, **kwargs):
    site_id = (
        Advisor.objects.filter(pk=instance.advisor_id).values_list("site_id", flat=True).first()
    )
    office = _site_office(site_id) if site_id else None
    if office is not None:
        availability_changed(
            office[0], _local_days(instance.starts_at, instance.ends_at, office[1])
        )


def _relay_changed(sender, instance, **kwargs):
    relay_availability_changed()


def _advisor_time_changed(sender, instance, **kwargs):
    availability_changed(_advisor_cpam(instance.advisor_id))


def _advisor_changed(sender, instance, **kwargs):
    availability_changed(_site_cpam(instance.site_id))


def _staff_changed(sender, instance, **kwargs):
    """An advisor deactivated (or back) changes who takes appointments."""
    availability_changed(instance.cpam_id)


def _advisor_motives_changed(sender, instance, action, **kwargs):
    if action.startswith("post_") and isinstance(instance, Advisor):
        availability_changed(_site_cpam(instance.site_id))


def connect() -> None:
    for signal in (post_save, post_delete):
        signal.connect(_appointment_changed, sender=Appointment, dispatch_uid="agenda-appointment")
        signal.connect(_absence_changed, sender=Absence, dispatch_uid="agenda-absence")
        signal.connect(_advisor_time_changed, sender=OpeningRange, dispatch_uid="agenda-range")
        signal.connect(_advisor_changed, sender=Advisor, dispatch_uid="agenda-advisor")
        signal.connect(_staff_changed, sender=Staff, dispatch_uid="agenda-staff")
        signal.connect(_relay_changed, sender=RelayProfessional, dispatch_uid="agenda-relay-pro")
        signal.connect(_relay_changed, sender=RelayRange, dispatch_uid="agenda-relay-range")
    m2m_changed.connect(
        _advisor_motives_changed, sender=Advisor.motives.through, dispatch_uid="agenda-motives"
    )
