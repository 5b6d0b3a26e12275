"""Any change to an office's availability invalidates its cached slot searches."""

from functools import lru_cache

from django.db.models.signals import m2m_changed, post_delete, post_save

from .models import Absence, Advisor, Appointment, OpeningRange, RelayProfessional, RelayRange, Site
from .slots import availability_changed, relay_availability_changed


@lru_cache(maxsize=4096)
def _site_cpam(site_id: int) -> int | None:
    # A site never moves to another office.
    return Site.objects.filter(pk=site_id).values_list("cpam_id", flat=True).first()


def _advisor_cpam(advisor_id: int) -> int | None:
    site_id = Advisor.objects.filter(pk=advisor_id).values_list("site_id", flat=True).first()
    return _site_cpam(site_id) if site_id else None


def _appointment_changed(sender, instance, **kwargs):
    availability_changed(_site_cpam(instance.site_id))
    if instance.relay_professional_id:
        relay_availability_changed()


def _relay_changed(sender, instance, **kwargs):
    relay_availability_changed()


def _advisor_time_changed(sender, instance, **kwargs):
    availability_changed(_advisor_cpam(instance.advisor_id))


def _advisor_changed(sender, instance, **kwargs):
    availability_changed(_site_cpam(instance.site_id))


def _advisor_motives_changed(sender, instance, action, **kwargs):
    if action.startswith("post_") and isinstance(instance, Advisor):
        availability_changed(_site_cpam(instance.site_id))


def connect() -> None:
    for signal in (post_save, post_delete):
        signal.connect(_appointment_changed, sender=Appointment, dispatch_uid="agenda-appointment")
        signal.connect(_advisor_time_changed, sender=Absence, dispatch_uid="agenda-absence")
        signal.connect(_advisor_time_changed, sender=OpeningRange, dispatch_uid="agenda-range")
        signal.connect(_advisor_changed, sender=Advisor, dispatch_uid="agenda-advisor")
        signal.connect(_relay_changed, sender=RelayProfessional, dispatch_uid="agenda-relay-pro")
        signal.connect(_relay_changed, sender=RelayRange, dispatch_uid="agenda-relay-range")
    m2m_changed.connect(
        _advisor_motives_changed, sender=Advisor.motives.through, dispatch_uid="agenda-motives"
    )
