"""The identity check: it gates every action for 15 minutes, per advisor, never shows a
stored value, and three failures in 24 hours close the console path for the member."""

import re

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from portal.accounts.models import Account
from portal.audit.models import AuditEntry
from portal.recovery.models import ConsoleBlock, DeskVisit, IdentityCheck
from tests.console.conftest import (
    MEMBER_NIR13,
    RIGHT_ANSWERS,
    WRONG_ANSWERS,
    block_member,
    identity_check,
    make_member_account,
    make_staff,
    member_path,
    open_with_check,
    search,
    sms_codes,
    staff_login,
    without_csrf,
)
from tests.factories import CpamFactory

T0 = "2026-03-02 10:00:00+01:00"
NEED_CHECK = "Vérifiez d’abord l’identité de l’assuré (valable 15 minutes)."


@pytest.fixture
def cpam(db):
    return CpamFactory()


@pytest.fixture
def account(cpam):
    return make_member_account(cpam)


def advisor_client(role, cpam) -> tuple[Client, object]:
    staff = make_staff(role, cpam=cpam)
    client = Client()
    staff_login(client, staff)
    return client, staff


def send_code(client, member):
    return client.post(member_path(member) + "code-sms/", follow=True)


def delete(client, member):
    return client.post(
        member_path(member) + "suppression/",
        {"reason": "Plus d’accès au courriel", "confirm": "on"},
        follow=True,
    )


def visit(client, member):
    return client.post(
        member_path(member) + "visite/",
        {"document_type": "passport", "last_chars": "12AB"},
        follow=True,
    )


# Each action, the role that may do it, and whether it happened.
ACTIONS = {
    "send_code": ("phone_advisor", send_code, lambda account: bool(sms_codes(account.member))),
    "delete": (
        "phone_advisor",
        delete,
        lambda account: Account.objects.get(pk=account.pk).state == Account.State.DELETED,
    ),
    "visit": (
        "front_desk",
        visit,
        lambda account: DeskVisit.objects.filter(member=account.member).exists(),
    ),
}


def refused(response) -> bool:
    """Sent back to the member page with the "check first" message (nothing done)."""
    return bool(response.redirect_chain) and NEED_CHECK in response.content.decode()


# --- the window ------------------------------------------------------------------


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_actions_refused_without_a_check(account, action):
    role, do, happened = ACTIONS[action]
    with time_machine.travel(T0, tick=False):
        client, _ = advisor_client(role, account.member.cpam)
        search(client, account.member)
        response = do(client, account.member)
        assert refused(response)
        assert not happened(account)


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_actions_refused_after_a_failed_check(account, action):
    role, do, happened = ACTIONS[action]
    with time_machine.travel(T0, tick=False):
        client, _ = advisor_client(role, account.member.cpam)
        open_with_check(client, account.member, WRONG_ANSWERS)
        response = do(client, account.member)
        assert refused(response)
        assert not happened(account)


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_window_open_at_14_59(account, action):
    role, do, happened = ACTIONS[action]
    with time_machine.travel(T0, tick=False) as clock:
        client, _ = advisor_client(role, account.member.cpam)
        open_with_check(client, account.member)
        clock.shift(14 * 60 + 59)
        response = do(client, account.member)
        assert not refused(response)
        assert happened(account)


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_window_closed_at_15_01(account, action):
    role, do, happened = ACTIONS[action]
    with time_machine.travel(T0, tick=False) as clock:
        client, _ = advisor_client(role, account.member.cpam)
        open_with_check(client, account.member)
        clock.shift(15 * 60 + 1)
        response = do(client, account.member)
        assert refused(response)
        assert not happened(account)
        # The page asks for a new check.
        page = client.get(member_path(account.member)).content.decode()
        assert "Vérifier l’identité de l’appelant" in page


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_a_check_by_another_advisor_opens_no_window(account, action):
    role, do, happened = ACTIONS[action]
    with time_machine.travel(T0, tick=False):
        first, _ = advisor_client(role, account.member.cpam)
        open_with_check(first, account.member)
        check = IdentityCheck.objects.get(passed=True)
        second, _ = advisor_client(role, account.member.cpam)
        search(second, account.member)
        assert (
            "Vérifier l’identité de l’appelant"
            in second.get(member_path(account.member)).content.decode()
        )
        assert refused(do(second, account.member))
        # Even holding the first advisor's check in its session.
        session = second.session
        session["console_checks"] = {str(account.member.pk): check.pk}
        session.save()
        assert refused(do(second, account.member))
        assert not happened(account)


def test_a_shared_browser_keeps_nothing_of_the_previous_advisor(account):
    """Advisor A logs out, B logs in on the same computer: A's member and check are gone."""
    with time_machine.travel(T0, tick=False):
        client, _ = advisor_client("phone_advisor", account.member.cpam)
        open_with_check(client, account.member)
        client.post("/conseiller/deconnexion/")
        other = make_staff("phone_advisor", cpam=account.member.cpam)
        staff_login(client, other)
        # B must search the member themselves (and be audited doing so).
        assert client.get(member_path(account.member)).status_code == 404
        assert client.post(member_path(account.member) + "code-sms/").status_code == 404
        search(client, account.member)
        assert refused(send_code(client, account.member))
        assert not sms_codes(account.member)


def test_member_cannot_be_opened_by_id_without_a_search(account):
    client, _ = advisor_client("phone_advisor", account.member.cpam)
    assert client.get(member_path(account.member)).status_code == 404
    assert identity_check(client, account.member).status_code == 404
    assert not IdentityCheck.objects.exists()


def test_search_is_by_exact_nir_only(account):
    client, _ = advisor_client("phone_advisor", account.member.cpam)
    for query in ("Quenardel", MEMBER_NIR13[:12], MEMBER_NIR13[:-1] + "8", "13008"):
        response = client.post("/conseiller/recherche/", {"nir": query})
        assert response.status_code in (400, 404)
        assert "/conseiller/assure/" not in response.content.decode()
        assert "Marie" not in response.content.decode()
    # With or without the key, with spaces.
    spaced = " ".join(re.findall(r".{1,3}", account.member.nir))
    assert client.post("/conseiller/recherche/", {"nir": spaced}).status_code == 302
    assert client.post("/conseiller/recherche/", {"nir": MEMBER_NIR13}).status_code == 302


# --- nothing stored is ever shown ------------------------------------------------

FORBIDDEN = [
    # birth date, however written
    "1979-11-23",
    "23/11/1979",
    "23.11.1979",
    "23-11-1979",
    "23 novembre 1979",
    "23 nov. 1979",
    "19791123",
    "23111979",
    "231179",
    "23/11/79",
    "11/23/1979",
    "november 23, 1979",
    # postal code
    "13008",
    # first names, whole and each
    "marie-hélène",
    "marie",
    "hélène",
    "helene",
    "louise",
    # IBAN, whole and its ends
    "fr7630004000031234567890143",
    "fr76 3000 4000 0312 3456 7890 143",
    "7890143",
    "0143",
    # mobile in clear
    "+33645871242",
    "0645871242",
    "06 45 87 12 42",
    "06.45.87.12.42",
    "645871242",
    # email, and the full NIR
    "mh.quenardel@example.net",
    "quenardel@",
    MEMBER_NIR13,
]
# Always allowed: the last name, the masked NIR. After a passed check only: the first
# names (the caller just said them) and the masked mobile.
MASKED_NIR = "•" * 9 + MEMBER_NIR13[-4:]
MASKED_MOBILE = "06 •• •• •• 42"


def leaks(page: str, allowed=()) -> list[str]:
    scanned = without_csrf(page).lower()
    for text in allowed:
        scanned = scanned.replace(text.lower(), "")
    return [value for value in FORBIDDEN if value.lower() in scanned]


def heading(page: str) -> str:
    return re.search(r"<h1>(.*?)</h1>", page, re.S).group(1).strip()


@pytest.mark.parametrize("role", ["phone_advisor", "front_desk"])
def test_the_check_never_shows_a_stored_value(account, role):
    with time_machine.travel(T0, tick=False):
        client, _ = advisor_client(role, account.member.cpam)
        response = search(client, account.member)
        before = client.get(response["Location"]).content.decode()
        assert heading(before) == "Quenardel"
        assert MASKED_NIR in before and MASKED_MOBILE not in before
        assert leaks(before) == []

        # Each answer wrong, one at a time; then all wrong: outcomes per question, no value.
        failed = client.post(
            member_path(account.member) + "verification/",
            {**RIGHT_ANSWERS, "postal_code": "13009", "iban_last4": "0144"},
            follow=True,
        ).content.decode()
        assert (
            "Vérification échouée. Ces réponses ne correspondent pas : Code postal, IBAN." in failed
        )
        assert heading(failed) == "Quenardel"
        assert MASKED_MOBILE not in failed
        assert leaks(failed) == []

        passed = identity_check(client, account.member, RIGHT_ANSWERS)
        after = client.get(passed["Location"]).content.decode()
        assert "Identité vérifiée" in after
        assert heading(after) == "Marie-Hélène Louise Quenardel"
        assert leaks(after, allowed=["Marie-Hélène Louise"]) == []
        assert (MASKED_MOBILE in after) is (role == "phone_advisor")


def test_no_stored_value_when_no_mobile_either(cpam):
    account = make_member_account(cpam, mobile="")
    client, _ = advisor_client("phone_advisor", cpam)
    open_with_check(client, account.member)
    page = client.get(member_path(account.member)).content.decode()
    assert "Aucun mobile enregistré" in page
    assert leaks(page, allowed=["Marie-Hélène Louise"]) == []


def test_answers_are_matched_loosely_but_all_must_match(account):
    client, _ = advisor_client("phone_advisor", account.member.cpam)
    search(client, account.member)
    for first_name in ("marie-helene", "MARIE HÉLÈNE", "Louise"):
        answers = {
            **RIGHT_ANSWERS,
            "first_name": first_name,
            "birth_date": "23/11/1979",
            "iban_last4": "0 143",
        }
        identity_check(client, account.member, answers)
    assert list(IdentityCheck.objects.values_list("passed", flat=True)) == [True] * 3
    identity_check(client, account.member, {**RIGHT_ANSWERS, "first_name": "Marie-Claire"})
    check = IdentityCheck.objects.latest("id")
    assert check.passed is False
    assert check.outcomes == {
        "birth_date": True,
        "postal_code": True,
        "first_name": False,
        "iban_last4": True,
    }


# --- the 3-failure block ----------------------------------------------------------


def test_three_failures_by_any_advisors_block_the_member(account):
    cpam = account.member.cpam
    with time_machine.travel(T0, tick=False) as clock:
        first, _ = advisor_client("phone_advisor", cpam)
        open_with_check(first, account.member)  # a passed check: the window is open
        second, _ = advisor_client("phone_advisor", cpam)
        desk, _ = advisor_client("front_desk", cpam)
        search(second, account.member)
        search(desk, account.member)
        identity_check(second, account.member, WRONG_ANSWERS)
        clock.shift(5 * 60)
        identity_check(desk, account.member, WRONG_ANSWERS)
        assert not ConsoleBlock.objects.exists()
        clock.shift(5 * 60)
        identity_check(second, account.member, WRONG_ANSWERS)

        block = ConsoleBlock.objects.get(member=account.member, lifted_at__isnull=True)
        (flag,) = AuditEntry.objects.filter(action="console.member.blocked")
        assert flag.member == account.member
        assert flag.data == {"outcome": "flagged", "failed_checks_24h": 3}

        # No further check, by anyone, right answers included; the open window closes too.
        checks = IdentityCheck.objects.count()
        for client in (first, second, desk):
            response = identity_check(client, account.member, RIGHT_ANSWERS)
            assert response.status_code == 302
            page = client.get(response["Location"]).content.decode()
            assert "Parcours bloqué" in page
            assert 'action="/conseiller/assure/' not in page  # no form at all
        assert IdentityCheck.objects.count() == checks
        assert AuditEntry.objects.filter(action="console.identity_check.refused").count() == 3
        assert "Parcours bloqué" in send_code(first, account.member).content.decode()
        assert not sms_codes(account.member)
        assert block.lifted_at is None


def test_failures_older_than_24_hours_do_not_count(account):
    cpam = account.member.cpam
    with time_machine.travel(T0, tick=False) as clock:
        client, _ = advisor_client("phone_advisor", cpam)
        search(client, account.member)
        identity_check(client, account.member, WRONG_ANSWERS)  # day 1, 10:00
        clock.shift(5 * 60)
        identity_check(client, account.member, WRONG_ANSWERS)  # day 1, 10:05
        clock.shift(24 * 3600 - 4 * 60)
        client, _ = advisor_client("phone_advisor", cpam)  # next day, 10:01
        search(client, account.member)
        identity_check(client, account.member, WRONG_ANSWERS)
        assert not ConsoleBlock.objects.exists()  # 10:00 yesterday is out of the 24 hours
        clock.shift(3 * 60)
        identity_check(client, account.member, WRONG_ANSWERS)  # 10:04: 10:05, 10:01, 10:04
        assert ConsoleBlock.objects.filter(lifted_at__isnull=True).count() == 1


def test_a_passed_check_does_not_wipe_earlier_failures(account):
    client, _ = advisor_client("phone_advisor", account.member.cpam)
    search(client, account.member)
    identity_check(client, account.member, WRONG_ANSWERS)
    identity_check(client, account.member, WRONG_ANSWERS)
    identity_check(client, account.member, RIGHT_ANSWERS)
    assert not ConsoleBlock.objects.exists()
    identity_check(client, account.member, WRONG_ANSWERS)
    assert ConsoleBlock.objects.filter(lifted_at__isnull=True).exists()


def test_a_supervisor_of_the_cpam_sees_and_lifts_the_block(account):
    cpam = account.member.cpam
    other_cpam = CpamFactory(code="131", name="Bouches-du-Rhône")
    with time_machine.travel(T0, tick=False) as clock:
        advisor, _ = advisor_client("phone_advisor", cpam)
        search(advisor, account.member)
        for _ in range(3):
            identity_check(advisor, account.member, WRONG_ANSWERS)
        block = ConsoleBlock.objects.get()

        outsider, _ = advisor_client("supervisor", other_cpam)
        home = outsider.get("/conseiller/").content.decode()
        assert "Quenardel" not in home and "Aucun assuré bloqué." in home
        assert outsider.post(f"/conseiller/blocages/{block.pk}/lever/").status_code == 404
        block.refresh_from_db()
        assert block.lifted_at is None

        supervisor_client, supervisor = advisor_client("supervisor", cpam)
        home = supervisor_client.get("/conseiller/").content.decode()
        assert "Quenardel" in home and f"/conseiller/blocages/{block.pk}/lever/" in home
        assert "Rechercher un assuré" not in home  # a supervisor does not search members
        assert leaks(home, allowed=["Marie-Hélène Louise"]) == []
        clock.shift(60)
        response = supervisor_client.post(f"/conseiller/blocages/{block.pk}/lever/")
        assert response.status_code == 302 and response["Location"] == "/conseiller/"
        block.refresh_from_db()
        assert block.lifted_at is not None and block.lifted_by == supervisor
        assert "Aucun assuré bloqué." in supervisor_client.get("/conseiller/").content.decode()
        lifted = AuditEntry.objects.get(action="console.block.lifted")
        assert lifted.actor == f"staff:{supervisor.pk}" and lifted.member == account.member
        # Lifting twice does nothing more.
        assert supervisor_client.post(f"/conseiller/blocages/{block.pk}/lever/").status_code == 404

        # Checks are possible again; the failures before the lift no longer count.
        clock.shift(60)
        identity_check(advisor, account.member, WRONG_ANSWERS)
        assert not ConsoleBlock.objects.filter(lifted_at__isnull=True).exists()
        identity_check(advisor, account.member, RIGHT_ANSWERS)
        assert send_code(advisor, account.member).redirect_chain
        assert len(sms_codes(account.member)) == 1


def test_the_supervisor_list_of_blocks_costs_the_same_for_any_number(cpam):
    supervisor_client, _ = advisor_client("supervisor", cpam)
    block_member(make_member_account(cpam).member)
    with CaptureQueriesContext(connection) as one:
        assert "Quenardel" in supervisor_client.get("/conseiller/").content.decode()
    for nir13 in ("1850575111222", "1850575111333"):
        block_member(make_member_account(cpam, nir13=nir13).member)
    with CaptureQueriesContext(connection) as three:
        page = supervisor_client.get("/conseiller/").content.decode()
    assert page.count("Lever le blocage") == 3
    assert len(three) == len(one)
