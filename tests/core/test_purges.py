"""The periodic purges: what goes, what stays (everything a rule still counts)."""

import secrets
from datetime import datetime, timedelta

import pytest
import time_machine
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from portal.accounts import reset
from portal.accounts.models import AccountToken, ApiToken, OneTimeCode, Session
from portal.accounts.sessions import SessionStore
from portal.appointments.models import AdvisorTimeLock, Appointment, Motive, RelayTimeLock
from portal.core import jobs
from portal.staff.models import StaffEnrolment
from tests.appointments.conftest import NOW, ensure_motives, make_advisor
from tests.appointments.test_services import book, free
from tests.console.conftest import make_staff
from tests.factories import AccountFactory, CpamFactory, MemberFactory

pytestmark = pytest.mark.django_db

T0 = timezone.make_aware(datetime(2026, 11, 20, 4, 0))


def _hash() -> str:
    return secrets.token_hex(32)


def make_credentials(account, staff, expires_at, **extra):
    """One of each kind, expiring at `expires_at`."""
    return [
        AccountToken.objects.create(
            account=account,
            purpose=AccountToken.Purpose.PASSWORD_RESET,
            token_hash=_hash(),
            expires_at=expires_at,
            **extra,
        ),
        ApiToken.objects.create(account=account, token_hash=_hash(), expires_at=expires_at),
        OneTimeCode.objects.create(
            account=account,
            purpose=OneTimeCode.Purpose.MOBILE_CHANGE,
            code_hash=_hash(),
            target="+33612345678",
            expires_at=expires_at,
            max_attempts=3,
        ),
        StaffEnrolment.objects.create(staff=staff, token_hash=_hash(), expires_at=expires_at),
    ]


def test_credentials_expired_for_a_week_are_purged_and_no_others():
    account = AccountFactory()
    staff = make_staff("phone_advisor")
    with time_machine.travel(T0 - timedelta(days=9), tick=False):
        old = make_credentials(account, staff, T0 - timedelta(days=8), used_at=timezone.now())
        recent = make_credentials(account, staff, T0 - timedelta(days=6))
    live = make_credentials(account, staff, T0 + timedelta(minutes=30))
    with time_machine.travel(T0, tick=False):
        assert jobs.credentials_purge() == {
            "account_tokens": 1,
            "api_tokens": 1,
            "one_time_codes": 1,
            "staff_enrolments": 1,
        }
        assert jobs.credentials_purge() == dict.fromkeys(
            ["account_tokens", "api_tokens", "one_time_codes", "staff_enrolments"], 0
        )
    for row in old:
        assert not type(row).objects.filter(pk=row.pk).exists()
    for row in recent + live:
        assert type(row).objects.filter(pk=row.pk).exists()


def test_the_purge_keeps_what_the_daily_reset_limit_counts(settings):
    """Reset links expire after 30 minutes but count against the account for
    24 hours: a purge in between must not give the account new links."""
    settings.PASSWORD_RESET_LIMIT_PER_ACCOUNT_DAY = 2
    settings.PASSWORD_RESET_LIMIT_PER_ACCOUNT_HOUR = 10
    account = AccountFactory(email="titulaire@example.org")
    birth = account.member.birth_date
    for hours in (0, 2):
        with time_machine.travel(T0 + timedelta(hours=hours), tick=False):
            assert reset.password_reset_process(
                nir13=account.nir, birth_date=birth, ip="192.0.2.1"
            ) == ("matched")
    with time_machine.travel(T0 + timedelta(hours=20), tick=False):
        jobs.credentials_purge()
        assert reset.password_reset_process(
            nir13=account.nir, birth_date=birth, ip="192.0.2.1"
        ) == ("throttled_account")


def test_batches_cover_every_row(monkeypatch):
    monkeypatch.setattr(jobs, "BATCH", 2)
    account = AccountFactory()
    for _ in range(5):
        ApiToken.objects.create(
            account=account, token_hash=_hash(), expires_at=T0 - timedelta(days=30)
        )
    with time_machine.travel(T0, tick=False):
        assert jobs.credentials_purge()["api_tokens"] == 5
    assert not ApiToken.objects.exists()


def test_expired_sessions_are_purged():
    with time_machine.travel(T0 - timedelta(hours=2), tick=False):
        old = SessionStore()
        old["x"] = 1
        old.set_expiry(1800)
        old.create()
    live = SessionStore()
    live["x"] = 1
    live.set_expiry(3600 * 24 * 365)  # far beyond T0 whatever the real date
    live.create()
    with time_machine.travel(T0, tick=False):
        assert jobs.sessions_purge() == {"sessions": 1}
    assert list(Session.objects.values_list("session_key", flat=True)) == [live.session_key]


def test_time_locks_go_a_day_after_their_appointment_ends():
    ensure_motives()
    motive = Motive.objects.get(code="arret-travail-ij")
    cpam = CpamFactory()
    make_advisor(cpam)
    account = AccountFactory(member=MemberFactory(cpam=cpam))
    with time_machine.travel(NOW, tick=False):
        first, second = free(cpam, motive)[:2]
        done = book(account, first, motive)
        later = book(AccountFactory(member=MemberFactory(cpam=cpam)), second, motive)
    Appointment.objects.filter(pk=later.pk).update(ends_at=done.ends_at + timedelta(hours=2))
    locks = AdvisorTimeLock.objects.filter(appointment=done).count()
    assert locks == 4  # 20 minutes: four 5-minute cells
    with time_machine.travel(done.ends_at + timedelta(hours=23), tick=False):
        assert jobs.time_locks_purge() == {"advisor_time_locks": 0, "relay_time_locks": 0}
    with time_machine.travel(done.ends_at + timedelta(days=1, minutes=1), tick=False):
        assert jobs.time_locks_purge() == {"advisor_time_locks": 4, "relay_time_locks": 0}
    assert not AdvisorTimeLock.objects.filter(appointment=done).exists()
    assert AdvisorTimeLock.objects.filter(appointment=later).exists()
    assert Appointment.objects.count() == 2  # the appointments themselves stay
    assert RelayTimeLock.objects.count() == 0


def _result(status: str, finished_days_ago: int | None) -> DBTaskResult:
    finished = T0 - timedelta(days=finished_days_ago) if finished_days_ago is not None else None
    return DBTaskResult.objects.create(
        status=status,
        args_kwargs={"args": [], "kwargs": {}},
        task_path="portal.core.tasks.sessions_purge",
        backend_name="default",
        run_after=T0,
        finished_at=finished,
    )


def test_old_task_results_are_pruned():
    gone = [_result("SUCCESSFUL", 15), _result("FAILED", 31)]
    kept = [_result("SUCCESSFUL", 13), _result("FAILED", 20), _result("READY", None)]
    with time_machine.travel(T0, tick=False):
        jobs.task_results_prune()
    remaining = set(DBTaskResult.objects.values_list("id", flat=True))
    assert remaining == {row.id for row in kept}
    assert not remaining & {row.id for row in gone}


def test_the_sms_usage_check_reports_its_outcome():
    assert jobs.sms_usage_check() == {
        "outcome": "too_few_codes",
        "sent": 0,
        "used": 0,
        "pending": 0,
        "ratio": None,
    }
