"""`JoinedRow` returns what its queryset returns (portal/core/rows.py).

Each hot read written out in SQL is compared, on the database the suite runs
on (SQLite, or PostgreSQL through DATABASE_URL), with the ORM queryset it
stands for: the same instance, field by field and type by type, its related
objects cached as `select_related` caches them, None where the queryset finds
nothing, and one query each time.
"""

from datetime import date, datetime, timedelta
from decimal import Decimal
from importlib import import_module

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends import db as django_db_sessions
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from phonenumber_field.phonenumber import PhoneNumber

from portal.accounts import services
from portal.accounts.backends import _ACTIVE_ACCOUNT, NirBackend
from portal.accounts.models import Account, ApiToken
from portal.accounts.services import _LIVE_API_TOKEN, api_token_issue, api_token_resolve
from portal.accounts.sessions import _LIVE_SESSION, SessionStore
from portal.appointments.models import Advisor
from portal.core.rows import JoinedRow
from portal.members.models import Beneficiary, Cpam, Member
from portal.payments.models import ReimbursementLine
from tests.appointments.conftest import make_advisor
from tests.factories import AccountFactory

IP = "192.0.2.10"
ISSUED = "2026-03-16 12:00:00.250000+01:00"  # a fractional second, on purpose


def values(instance) -> dict:
    """Every concrete field of a model instance, by attribute name."""
    return {
        field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields
    }


def assert_same_row(found, expected):
    """Same model, same primary key, every concrete field equal and of the same type."""
    assert expected is not None
    assert found is not None
    assert type(found) is type(expected)
    assert found.pk == expected.pk
    assert found._state.adding is False
    assert found._state.db == expected._state.db == "default"
    got, want = values(found), values(expected)
    assert got == want
    assert {name: type(value) for name, value in got.items()} == {
        name: type(value) for name, value in want.items()
    }


def orm_first(model, related, conditions, condition_values):
    """The queryset `JoinedRow(model, related=…, conditions=…).get(*values)` stands for."""
    given = iter(condition_values)
    lookups = {
        condition: True if condition.endswith("__isnull") else next(given)
        for condition in conditions
    }
    found = model.objects.select_related(*related).filter(**lookups)[:1]
    return found[0] if found else None


def reimbursement_line(member, *, beneficiary=None, **fields) -> ReimbursementLine:
    defaults = {
        "line_id": f"L{ReimbursementLine.objects.count() + 1:04d}",
        "care_date": date(2026, 3, 2),
        "act_code": "G",
        "act_label": "Consultation du médecin généraliste",
        "professional": "Dr Claire Lefèvre",
        "amount_paid": Decimal("30.00"),
        "base_amount": Decimal("30.00"),
        "rate": Decimal("70.00"),
        "gross_reimbursed": Decimal("21.00"),
        "participation_forfaitaire": Decimal("2.00"),
        "franchise": Decimal("0.50"),
        "net_reimbursed": Decimal("18.50"),
        "payee": ReimbursementLine.Payee.MEMBER,
        "payment_date": date(2026, 3, 5),
        "payment_reference": "VIR20260305A",
        "transmitted_to_complementary": True,
        "status": ReimbursementLine.Status.PAID,
    }
    return ReimbursementLine.objects.create(
        member=member, beneficiary=beneficiary, **{**defaults, **fields}
    )


@pytest.fixture
def paul(db):
    """An active account whose every nullable datetime is set, and a child beneficiary."""
    now = timezone.now()
    account = AccountFactory(
        email_confirmed_at=now - timedelta(days=3, microseconds=17),
        email_previous="ancienne@example.org",
        session_epoch=4,
        notify_new_payments=False,
        communication_mode="lsf",
    )
    Beneficiary.objects.create(
        member=account.member,
        nir="215037511104242",
        first_names="Léa",
        last_name="Martin",
        birth_date=date(2015, 3, 8),
    )
    return account


# The logged-in account (portal.accounts.backends._ACTIVE_ACCOUNT)


@pytest.mark.django_db
def test_the_active_account_is_the_querysets_with_its_member_and_office_cached(
    paul, django_assert_num_queries
):
    with django_assert_num_queries(1):
        found = _ACTIVE_ACCOUNT.get(paul.pk, Account.State.ACTIVE)
    expected = Account.objects.select_related("member__cpam").get(pk=paul.pk)
    assert_same_row(found, expected)
    assert Account.member.is_cached(found)
    assert Member.cpam.is_cached(found.member)
    with django_assert_num_queries(0):
        assert_same_row(found.member, expected.member)
        assert_same_row(found.member.cpam, expected.member.cpam)
    # The types the ORM gives, not the database's raw ones.
    assert isinstance(found.mobile_phone, PhoneNumber)
    assert timezone.is_aware(found.created_at)
    assert timezone.is_aware(found.activated_at)
    assert found.email_confirmed_at == paul.email_confirmed_at  # microseconds kept
    assert found.deleted_at is None
    assert found.notify_new_payments is False
    assert type(found.session_epoch) is int
    assert found.session_epoch == 4
    assert type(found.member.birth_date) is date
    assert timezone.is_aware(found.member.updated_at)
    assert isinstance(found.member.cpam, Cpam)
    assert found.member.cpam.code == paul.member.cpam.code


@pytest.mark.django_db
@pytest.mark.parametrize("state", [Account.State.PENDING, Account.State.DELETED])
def test_an_account_in_another_state_is_none_as_with_the_queryset(state, django_assert_num_queries):
    account = AccountFactory(state=state)
    with django_assert_num_queries(1):
        assert _ACTIVE_ACCOUNT.get(account.pk, Account.State.ACTIVE) is None
    assert orm_first(Account, ["member__cpam"], ["pk", "state"], [account.pk, "active"]) is None
    # The same row in its own state is found: the state is what kept it out.
    assert_same_row(
        _ACTIVE_ACCOUNT.get(account.pk, state),
        Account.objects.select_related("member__cpam").get(pk=account.pk),
    )


@pytest.mark.django_db
def test_an_unknown_account_is_none(paul):
    assert _ACTIVE_ACCOUNT.get(paul.pk + 1000, Account.State.ACTIVE) is None


@pytest.mark.django_db
def test_the_session_backend_loads_the_active_account_only(paul, django_assert_num_queries):
    backend = NirBackend()
    with django_assert_num_queries(1):
        user = backend.get_user(paul.pk)
    assert_same_row(user, Account.objects.get(pk=paul.pk))
    with django_assert_num_queries(0):
        assert user.member.cpam.pk == paul.member.cpam_id
    # A session holds the id as a string.
    assert backend.get_user(str(paul.pk)).pk == paul.pk
    assert backend.get_user("not an id") is None
    Account.objects.filter(pk=paul.pk).update(state=Account.State.PENDING)
    assert backend.get_user(paul.pk) is None


# Field types and a nullable foreign key: the payments lines


LINE = JoinedRow(ReimbursementLine, related=["beneficiary", "member__cpam"], conditions=["pk"])


@pytest.mark.django_db
def test_a_line_with_its_beneficiary_is_the_querysets_decimals_dates_booleans_included(
    paul, django_assert_num_queries
):
    line = reimbursement_line(paul.member, beneficiary=paul.member.beneficiaries.get())
    with django_assert_num_queries(1):
        found = LINE.get(line.pk)
    expected = ReimbursementLine.objects.select_related("beneficiary", "member__cpam").get(
        pk=line.pk
    )
    assert_same_row(found, expected)
    with django_assert_num_queries(0):
        assert_same_row(found.beneficiary, expected.beneficiary)
        assert_same_row(found.member, expected.member)
        assert_same_row(found.member.cpam, expected.member.cpam)
    for name in (
        "amount_paid",
        "base_amount",
        "rate",
        "gross_reimbursed",
        "participation_forfaitaire",
        "franchise",
        "net_reimbursed",
    ):
        assert type(getattr(found, name)) is Decimal, name
    assert found.franchise == Decimal("0.50")
    assert str(found.rate) == "70.00"  # quantized to the field's decimal places
    assert type(found.care_date) is date
    assert type(found.payment_date) is date
    assert found.payment_date == date(2026, 3, 5)
    assert found.transmitted_to_complementary is True
    assert type(found.imported_at) is datetime
    assert timezone.is_aware(found.imported_at)
    assert type(found.beneficiary.birth_date) is date


@pytest.mark.django_db
def test_a_line_without_beneficiary_caches_none(paul, django_assert_num_queries):
    line = reimbursement_line(
        paul.member, payment_date=None, transmitted_to_complementary=False, status="in_progress"
    )
    with django_assert_num_queries(1):
        found = LINE.get(line.pk)
    expected = ReimbursementLine.objects.select_related("beneficiary", "member__cpam").get(
        pk=line.pk
    )
    assert_same_row(found, expected)
    assert ReimbursementLine.beneficiary.is_cached(found)
    with django_assert_num_queries(0):
        assert found.beneficiary is None
        assert found.member.cpam.pk == paul.member.cpam_id
    assert found.payment_date is None
    assert found.transmitted_to_complementary is False


@pytest.mark.django_db
def test_a_key_beyond_an_empty_nullable_key_keeps_the_row(paul):
    """Below a LEFT JOIN, a non-null key is LEFT JOINed too, as by select_related:
    an INNER JOIN there would drop the line that has no beneficiary."""
    line = reimbursement_line(paul.member)
    expected = ReimbursementLine.objects.select_related("beneficiary__member").get(pk=line.pk)
    assert expected.beneficiary is None
    found = JoinedRow(ReimbursementLine, related=["beneficiary__member"], conditions=["pk"]).get(
        line.pk
    )
    assert_same_row(found, expected)
    assert found.beneficiary is None


@pytest.mark.django_db
def test_a_key_beyond_a_set_nullable_key_is_joined_and_cached(paul, django_assert_num_queries):
    line = reimbursement_line(paul.member, beneficiary=paul.member.beneficiaries.get())
    found = JoinedRow(ReimbursementLine, related=["beneficiary__member"], conditions=["pk"]).get(
        line.pk
    )
    expected = ReimbursementLine.objects.select_related("beneficiary__member").get(pk=line.pk)
    assert_same_row(found, expected)
    with django_assert_num_queries(0):
        assert_same_row(found.beneficiary.member, expected.beneficiary.member)


@pytest.mark.django_db
def test_a_one_to_one_key_is_cached_both_ways_as_by_select_related(django_assert_num_queries):
    advisor = make_advisor()
    found = JoinedRow(Advisor, related=["staff__cpam", "site"], conditions=["pk"]).get(advisor.pk)
    expected = Advisor.objects.select_related("staff__cpam", "site").get(pk=advisor.pk)
    assert_same_row(found, expected)
    with django_assert_num_queries(0):
        assert_same_row(found.staff, expected.staff)
        assert_same_row(found.staff.cpam, expected.staff.cpam)
        assert_same_row(found.site, expected.site)
        assert expected.staff.advisor is expected  # what select_related does
        assert found.staff.advisor is found
    assert found.staff.totp_last_t == -1


# Conditions: each case against the queryset it stands for


def _conditions_cases():
    monday, friday = date(2026, 3, 2), date(2026, 3, 6)
    return [
        # (conditions, values after the pk, which line: "with"/"without" beneficiary, found?)
        (["pk", "payment_date__gt"], [monday], "with", True),
        (["pk", "payment_date__gt"], [friday], "with", False),
        (["pk", "payment_date__gt"], [date(2026, 3, 5)], "with", False),  # strictly after
        (["pk", "payment_date__gt"], [monday], "without", False),  # NULL: unknown, not true
        (["pk", "payment_date__lt"], [friday], "with", True),
        (["pk", "payment_date__lt"], [monday], "with", False),
        (["pk", "beneficiary__isnull"], [], "with", False),
        (["pk", "beneficiary__isnull"], [], "without", True),
        (["pk", "status"], ["paid"], "with", True),
        (["pk", "status"], ["in_progress"], "with", False),
        (["pk", "member__cpam__code"], ["751"], "with", True),
        (["pk", "member__cpam__code"], ["974"], "with", False),
        (["pk", "beneficiary__first_names"], ["Léa"], "with", True),
        (["pk", "beneficiary__first_names"], ["Léa"], "without", False),
        (["pk", "net_reimbursed__gt"], [Decimal("18.49")], "with", True),
        (["pk", "net_reimbursed__gt"], [Decimal("18.50")], "with", False),
        (["pk", "transmitted_to_complementary"], [True], "with", True),
        (["pk", "transmitted_to_complementary"], [False], "with", False),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(("conditions", "more", "which", "hit"), _conditions_cases())
def test_conditions_select_the_querysets_row(
    paul, conditions, more, which, hit, django_assert_num_queries
):
    child = paul.member.beneficiaries.get()
    lines = {
        "with": reimbursement_line(paul.member, beneficiary=child),
        "without": reimbursement_line(paul.member, payment_date=None),
    }
    related = ["beneficiary", "member__cpam"]
    given = [lines[which].pk, *more]
    row = JoinedRow(ReimbursementLine, related=related, conditions=conditions)
    with django_assert_num_queries(1):
        found = row.get(*given)
    expected = orm_first(ReimbursementLine, related, conditions, given)
    assert (expected is not None) is hit  # the case says what the ORM finds
    if hit:
        assert_same_row(found, expected)
    else:
        assert found is None


# API tokens (portal.accounts.services._LIVE_API_TOKEN)


@pytest.fixture
def issued(paul):
    """A token issued at ISSUED: (raw bearer string, its row)."""
    with time_machine.travel(ISSUED, tick=False):
        raw, _ttl = api_token_issue(account=paul, ip=IP)
    return raw, ApiToken.objects.get(account=paul)


def resolve_at(moment, raw):
    with time_machine.travel(moment, tick=False):
        return api_token_resolve(raw=raw)


@pytest.mark.django_db
def test_a_live_token_resolves_with_its_account_member_and_office(
    issued, django_assert_num_queries
):
    raw, token = issued
    with time_machine.travel(ISSUED, tick=False), django_assert_num_queries(1):
        found = api_token_resolve(raw=raw)
    expected = ApiToken.objects.select_related("account__member__cpam").get(pk=token.pk)
    assert_same_row(found, expected)
    assert timezone.is_aware(found.expires_at)
    assert found.revoked_at is None
    with django_assert_num_queries(0):
        assert_same_row(found.account, expected.account)
        assert_same_row(found.account.member, expected.account.member)
        assert_same_row(found.account.member.cpam, expected.account.member.cpam)


@pytest.mark.django_db
def test_a_token_is_live_until_its_expiry_exactly(issued, django_assert_num_queries):
    raw, token = issued
    expires = token.expires_at
    assert expires - datetime.fromisoformat(ISSUED) == timedelta(seconds=settings.API_TOKEN_TTL)
    assert resolve_at(expires - timedelta(microseconds=1), raw).pk == token.pk
    with django_assert_num_queries(1):
        assert resolve_at(expires, raw) is None  # expires_at > now, strictly
    assert resolve_at(expires + timedelta(days=1), raw) is None
    for moment in (expires - timedelta(microseconds=1), expires):
        assert (resolve_at(moment, raw) is None) is (
            orm_first(
                ApiToken,
                ["account__member__cpam"],
                _LIVE_API_TOKEN.conditions,
                [token.token_hash, moment, Account.State.ACTIVE],
            )
            is None
        )


@pytest.mark.django_db
def test_a_revoked_token_does_not_resolve(issued):
    raw, token = issued
    services.api_token_revoke(token=token, ip=IP)
    assert resolve_at(ISSUED, raw) is None


@pytest.mark.django_db
@pytest.mark.parametrize("state", [Account.State.DELETED, Account.State.PENDING])
def test_a_token_of_an_account_no_longer_active_does_not_resolve(issued, state):
    raw, token = issued
    Account.objects.filter(pk=token.account_id).update(state=state)  # the token is not revoked
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None
    assert resolve_at(ISSUED, raw) is None


@pytest.mark.django_db
def test_an_unknown_bearer_string_does_not_resolve(issued):
    raw, _token = issued
    assert resolve_at(ISSUED, raw + "x") is None
    assert resolve_at(ISSUED, "") is None


# Sessions (portal.accounts.sessions._LIVE_SESSION, SessionStore)

SessionModel = SessionStore.get_model_class()


class OrmSessionStore(django_db_sessions.SessionStore):
    """Django's database sessions, read through the ORM, on the portal's session model."""

    # The data is signed with a salt made of the class's name: the portal's.
    key_salt = "django.contrib.sessions." + SessionStore.__qualname__

    @classmethod
    def get_model_class(cls):
        return SessionModel


def live_session_related() -> list[str]:
    return [table.path for table in _LIVE_SESSION._tables if table.path]


def test_the_session_engine_is_the_portals():
    assert import_module(settings.SESSION_ENGINE).SessionStore is SessionStore
    assert issubclass(SessionStore, django_db_sessions.SessionStore)


def saved_session(**data) -> str:
    store = SessionStore()
    store.update(data)
    store.save()
    return store.session_key


def logged_in_session(account) -> str:
    """A session as `django.contrib.auth.login` leaves it for a member."""
    return saved_session(
        **{
            SESSION_KEY: str(account.pk),
            BACKEND_SESSION_KEY: "portal.accounts.backends.NirBackend",
            HASH_SESSION_KEY: account.get_session_auth_hash(),
        }
    )


@pytest.mark.django_db
def test_a_saved_session_loads_its_data(django_assert_num_queries):
    key = saved_session(panier=[1, 2], nom="Léa")
    store = SessionStore(session_key=key)
    with django_assert_num_queries(1):
        assert store.load() == {"panier": [1, 2], "nom": "Léa"}
    assert store.session_key == key
    # As Django's own database sessions load it.
    assert store.load() == OrmSessionStore(session_key=key).load()
    now = timezone.now()
    found = _LIVE_SESSION.get(key, now)
    expected = SessionModel.objects.select_related(*live_session_related()).get(
        session_key=key, expire_date__gt=now
    )
    assert_same_row(found, expected)
    assert timezone.is_aware(found.expire_date)


@pytest.mark.django_db
def test_a_logged_in_session_loads_with_its_account_in_one_query(paul, django_assert_num_queries):
    key = logged_in_session(paul)
    store = SessionStore(session_key=key)
    with django_assert_num_queries(1):
        data = store.load()
    assert data == OrmSessionStore(session_key=key).load()
    assert data[SESSION_KEY] == str(paul.pk)
    now = timezone.now()
    found = _LIVE_SESSION.get(key, now)
    expected = SessionModel.objects.select_related(*live_session_related()).get(
        session_key=key, expire_date__gt=now
    )
    assert_same_row(found, expected)
    with django_assert_num_queries(0):
        for path in live_session_related():
            got, want = found, expected
            for name in path.split("__"):
                got, want = getattr(got, name), getattr(want, name)
            assert_same_row(got, want)
    # The account read with it, for NirBackend.get_user: no query of its own.
    account = store.account_read_with_it
    assert_same_row(account, Account.objects.get(pk=paul.pk))
    with django_assert_num_queries(0):
        assert account.member.cpam.pk == paul.member.cpam_id


@pytest.mark.django_db
def test_an_anonymous_session_loads_with_no_account(django_assert_num_queries):
    key = saved_session(nom="Léa")
    store = SessionStore(session_key=key)
    assert store.load() == {"nom": "Léa"}
    assert store.account_read_with_it is None
    found = _LIVE_SESSION.get(key, timezone.now())
    with django_assert_num_queries(0):
        assert found.account is None  # cached as None: no query to find out


@pytest.mark.django_db
def test_an_expired_session_loads_empty_and_loses_its_key(django_assert_num_queries):
    key = saved_session(nom="Léa")
    SessionModel.objects.filter(session_key=key).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    store = SessionStore(session_key=key)
    with django_assert_num_queries(1):
        assert store.load() == {}
    assert store.session_key is None
    # Django's own store does the same.
    theirs = OrmSessionStore(session_key=key)
    assert theirs.load() == {}
    assert theirs.session_key is None
    # Reading an item goes through load() too, and the row is left for the purge.
    store = SessionStore(session_key=key)
    assert store.get("nom") is None
    assert store.session_key is None
    assert SessionModel.objects.filter(session_key=key).exists()


@pytest.mark.django_db
def test_an_expired_logged_in_session_gives_no_account(paul):
    key = logged_in_session(paul)
    SessionModel.objects.filter(session_key=key).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    store = SessionStore(session_key=key)
    assert store.load() == {}
    assert store.session_key is None
    assert store.account_read_with_it is None


@pytest.mark.django_db
def test_a_session_expires_at_its_expire_date_exactly():
    key = saved_session(nom="Léa")
    expire = SessionModel.objects.get(session_key=key).expire_date
    assert _LIVE_SESSION.get(key, expire - timedelta(microseconds=1)).session_key == key
    assert _LIVE_SESSION.get(key, expire) is None
    with time_machine.travel(expire + timedelta(seconds=1), tick=False):
        store = SessionStore(session_key=key)
        assert store.load() == {}
        assert store.session_key is None


@pytest.mark.django_db
def test_an_unknown_or_missing_session_key_loads_empty(django_assert_num_queries):
    saved_session(nom="Léa")
    store = SessionStore(session_key="a" * 32)
    assert store.load() == {}
    assert store.session_key is None
    with django_assert_num_queries(0):  # no key: nothing to read
        assert SessionStore().load() == {}


# Misuse


@pytest.mark.django_db
@pytest.mark.parametrize("given", [(), (1,), (1, "active", "extra")])
def test_the_wrong_number_of_values_raises_type_error(paul, given, django_assert_num_queries):
    with django_assert_num_queries(0), pytest.raises(TypeError, match="2 values expected"):
        _ACTIVE_ACCOUNT.get(*given)


@pytest.mark.django_db
def test_isnull_conditions_take_no_value(paul):
    row = JoinedRow(ApiToken, conditions=["account", "revoked_at__isnull"])
    with pytest.raises(TypeError, match="1 values expected, 2 given"):
        row.get(paul.pk, True)


@pytest.mark.parametrize(
    ("model", "related"),
    [
        (Member, ["accounts"]),  # the reverse of Account.member
        (Account, ["member__accounts"]),  # the same, further down
        (Account, ["state"]),  # not a relation
        (Advisor, ["motives"]),  # many-to-many
        (Cpam, ["members"]),
    ],
)
def test_a_related_path_that_is_not_a_forward_foreign_key_raises_value_error(model, related):
    with pytest.raises(ValueError, match="not a forward foreign key"):
        JoinedRow(model, related=related, conditions=["pk"])


# One query each time


@pytest.mark.django_db
def test_each_get_is_one_query_of_sql_built_once(paul):
    row = JoinedRow(Account, related=["member__cpam"], conditions=["pk", "state"])
    assert row._compiled == {}
    with CaptureQueriesContext(connection) as first:
        assert row.get(paul.pk, "active").pk == paul.pk
    compiled = row._compiled["default"]
    with CaptureQueriesContext(connection) as second:
        assert row.get(paul.pk, "pending") is None
    with CaptureQueriesContext(connection) as third:
        assert row.get(paul.pk + 1, "active") is None
    assert [len(first), len(second), len(third)] == [1, 1, 1]
    assert row._compiled == {"default": compiled}  # kept, not built again
    for context in (first, second, third):
        [query] = context.captured_queries
        assert "JOIN" in query["sql"]  # the related rows come with it
        assert query["sql"].count("SELECT") == 1
