"""The purges and checks that the scheduler queues periodically (`portal.core.scheduler`).

Each is idempotent and deletes in bounded batches, each batch its own short
transaction, so that a run at national scale holds no long lock and may be
interrupted and run again. They return what they did, for the task's result
and the log.
"""

from datetime import datetime, timedelta
from importlib import import_module

from django.conf import settings
from django.contrib.sessions.backends import db
from django.core.management import call_command
from django.db.models import QuerySet
from django.utils import timezone

# Expired one-time secrets are kept a week after their expiry: every rule
# that counts them looks back 24 hours at most (reset links per day, SMS
# codes per day and their usage ratio), and a week leaves time to answer a
# member who asks about a link or a code. Then they are noise that only
# grows with the number of members.
EXPIRED_KEPT = timedelta(days=7)
# The time-lock rows of an appointment stop anyone booking its time; once it
# has ended (and its outcome has had a day to be recorded) they serve nothing.
TIME_LOCKS_KEPT = timedelta(days=1)
# Finished task results: kept two weeks, failed ones a month for diagnosis.
TASK_RESULTS_KEPT_DAYS = 14
FAILED_TASK_RESULTS_KEPT_DAYS = 30
BATCH = 5000


def _batches_delete(queryset: QuerySet) -> int:
    """Delete the rows of `queryset` BATCH at a time; the number of rows deleted."""
    model = queryset.model
    total = 0
    while True:
        ids = list(queryset.order_by().values_list("pk", flat=True)[:BATCH])
        if not ids:
            return total
        _, per_model = model.objects.filter(pk__in=ids).delete()
        total += per_model.get(model._meta.label, 0)


def credentials_purge(*, now: datetime | None = None) -> dict:
    """Delete link tokens, API tokens, SMS or printed codes and staff enrolment
    links that expired more than `EXPIRED_KEPT` ago (used and revoked ones included)."""
    from portal.accounts.models import AccountToken, ApiToken, OneTimeCode
    from portal.staff.models import StaffEnrolment

    cutoff = (now or timezone.now()) - EXPIRED_KEPT
    return {
        "account_tokens": _batches_delete(AccountToken.objects.filter(expires_at__lt=cutoff)),
        "api_tokens": _batches_delete(ApiToken.objects.filter(expires_at__lt=cutoff)),
        "one_time_codes": _batches_delete(OneTimeCode.objects.filter(expires_at__lt=cutoff)),
        "staff_enrolments": _batches_delete(StaffEnrolment.objects.filter(expires_at__lt=cutoff)),
    }


def sessions_purge(*, now: datetime | None = None) -> dict:
    """Delete the expired sessions (they live in the database: docs/operations.md)."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    if not issubclass(store, db.SessionStore):
        store.clear_expired()
        return {"sessions": None}
    expired = store.get_model_class().objects.filter(expire_date__lt=now or timezone.now())
    return {"sessions": _batches_delete(expired)}


def task_results_prune() -> dict:
    """Delete finished task results (django-tasks-db's `prune_db_task_results`)."""
    call_command(
        "prune_db_task_results",
        queue_name="*",
        min_age_days=TASK_RESULTS_KEPT_DAYS,
        failed_min_age_days=FAILED_TASK_RESULTS_KEPT_DAYS,
        verbosity=0,
    )
    return {
        "successful_older_than_days": TASK_RESULTS_KEPT_DAYS,
        "failed_older_than_days": FAILED_TASK_RESULTS_KEPT_DAYS,
    }


def time_locks_purge(*, now: datetime | None = None) -> dict:
    """Delete the advisor and relay time locks of appointments that ended more
    than `TIME_LOCKS_KEPT` ago, whatever their status."""
    from portal.appointments.models import AdvisorTimeLock, RelayTimeLock

    cutoff = (now or timezone.now()) - TIME_LOCKS_KEPT
    return {
        "advisor_time_locks": _batches_delete(
            AdvisorTimeLock.objects.filter(appointment__ends_at__lt=cutoff)
        ),
        "relay_time_locks": _batches_delete(
            RelayTimeLock.objects.filter(appointment__ends_at__lt=cutoff)
        ),
    }


def sms_usage_check() -> dict:
    """The daily SMS-code usage check (`manage.py check_sms_usage`)."""
    from portal.notifications.services import sms_code_usage_alert

    result = sms_code_usage_alert()
    ratio = result["ratio"]
    return {
        "outcome": result["outcome"],
        "sent": result["sent"],
        "used": result["used"],
        "pending": result["pending"],
        "ratio": None if ratio is None else round(ratio, 3),
    }
