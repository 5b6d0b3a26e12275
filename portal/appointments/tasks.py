from django_tasks import task

from . import services


@task()
def appointment_reminder(appointment_id: int, sequence: int) -> None:
    """The reminder 24 hours before (or right away when booked later than that)."""
    services.appointment_remind(appointment_id=appointment_id, sequence=sequence)
