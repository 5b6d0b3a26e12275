from django_tasks import task

from . import services


@task()
def appointment_reminder(appointment_id: int, sequence: int) -> None:
    """The reminder 24 hours before (or right away when booked later than that)."""
    services.appointment_remind(appointment_id=appointment_id, sequence=sequence)


@task()
def relay_notify(appointment_id: int, event: str, sequence: int, attempt: int) -> None:
    """Tell the relay provider (webhook) of a booking, a move or a cancellation."""
    services.relay_notify_run(
        appointment_id=appointment_id, event=event, sequence=sequence, attempt=attempt
    )
