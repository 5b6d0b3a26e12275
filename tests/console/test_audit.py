"""Every console action leaves an audit entry naming the staff member; no secret ever enters it."""

import json
import re

import pytest
import time_machine
from django.test import Client

from portal.audit.models import AuditEntry
from portal.recovery.models import ConsoleBlock
from portal.staff import totp
from tests.console.conftest import (
    MEMBER_NIR13,
    NEW_PASSWORD,
    RIGHT_ANSWERS,
    STAFF_PASSWORD,
    WRONG_ANSWERS,
    identity_check,
    make_member_account,
    make_staff,
    member_path,
    open_with_check,
    search,
    sms_codes,
)
from tests.factories import CpamFactory

T0 = "2026-03-02 10:00:00+01:00"
OTHER_NIR13 = "1850575111222"


def login(client, staff, used_codes):
    code = totp.current_code(staff.totp_secret)
    used_codes.append(code)
    response = client.post(
        "/conseiller/connexion/",
        {"email": staff.email, "password": STAFF_PASSWORD, "code": code},
    )
    assert response.status_code == 302


def entries(action, **filters):
    return list(AuditEntry.objects.filter(action=action, **filters).order_by("id"))


@pytest.mark.django_db
def test_every_console_action_is_audited_without_secrets():
    cpam = CpamFactory()
    account = make_member_account(cpam)
    member = account.member
    blocked = make_member_account(cpam, nir13=OTHER_NIR13, mobile="").member
    phone = make_staff("phone_advisor", cpam=cpam)
    desk = make_staff("front_desk", cpam=cpam)
    supervisor = make_staff("supervisor", cpam=cpam)
    totp_codes: list[str] = []
    actor = {s: f"staff:{s.pk}" for s in (phone, desk, supervisor)}

    with time_machine.travel(T0, tick=False):
        pc, dc, sc = Client(), Client(), Client()
        login(pc, phone, totp_codes)
        login(dc, desk, totp_codes)
        login(sc, supervisor, totp_codes)
        # Search: found, and not found.
        pc.post("/conseiller/recherche/", {"nir": "2920675112233"})
        search(pc, member)
        # Checks: failed, then passed.
        identity_check(pc, member, WRONG_ANSWERS)
        identity_check(pc, member, RIGHT_ANSWERS)
        # Three codes, the fourth refused.
        for _ in range(4):
            pc.post(member_path(member) + "code-sms/")
        # The front desk: visit and printed code.
        open_with_check(dc, member)
        slip = dc.post(
            member_path(member) + "visite/", {"document_type": "id_card", "last_chars": "4X2Z"}
        ).content.decode()
        activation_code = re.search(r'<p class="fr-h2">(\d{8})</p>', slip).group(1)
        # The member uses the last SMS code.
        sms = sms_codes(member)
        assert len(sms) == 3
        Client().post(
            "/api/v1/password-reset/sms-code",
            {"nir": MEMBER_NIR13, "code": sms[-1], "new_password": NEW_PASSWORD},
            content_type="application/json",
        )
        # Another member: three failures, blocked, a refused check, lifted by the supervisor.
        search(pc, blocked)
        for _ in range(4):
            identity_check(pc, blocked, WRONG_ANSWERS)
        block_id = ConsoleBlock.objects.get(member=blocked).pk
        sc.post(f"/conseiller/blocages/{block_id}/lever/")
        # Deletion of the first member's account.
        open_with_check(pc, member)
        pc.post(
            member_path(member) + "suppression/",
            {"reason": "Plus d’accès au courriel", "confirm": "on"},
        )

    # Who did what, on whom, from where.
    expected = [
        ("staff.login.succeeded", phone, None, 1),
        ("staff.login.succeeded", desk, None, 1),
        ("staff.login.succeeded", supervisor, None, 1),
        ("console.member.searched", phone, member, 2),
        ("console.member.searched", phone, blocked, 1),
        ("console.member.searched", desk, member, 1),
        ("console.identity_check", phone, member, 3),
        ("console.identity_check", desk, member, 1),
        ("console.identity_check", phone, blocked, 3),
        ("console.identity_check.refused", phone, blocked, 1),
        ("console.recovery_code.sent", phone, member, 3),
        ("console.recovery_code.refused", phone, member, 1),
        ("console.visit.recorded", desk, member, 1),
        ("console.activation_code.issued", desk, member, 1),
        ("console.block.lifted", supervisor, blocked, 1),
        ("console.account.deleted", phone, member, 1),
    ]
    for action, staff, who, count in expected:
        found = (
            entries(action, actor=actor[staff], member=who)
            if who
            else entries(action, actor=actor[staff])
        )
        assert len(found) == count, action
        assert all(entry.ip == "127.0.0.1" for entry in found), action
    not_found = entries("console.member.searched", member=None)
    assert [(e.actor, e.data) for e in not_found] == [(actor[phone], {"outcome": "not_found"})]
    outcomes = [e.data["outcome"] for e in entries("console.identity_check", member=member)]
    assert outcomes == ["failed", "passed", "passed", "passed"]
    (flag,) = entries("console.member.blocked")
    assert flag.member == blocked and flag.actor == "system"
    # Every entry of the console is written by a named staff member (or the system's flag).
    console = AuditEntry.objects.filter(action__startswith="console.")
    assert {e.actor for e in console} <= {*actor.values(), "system"}

    # No secret in any entry's data: codes, passwords, NIR, identity facts.
    secrets = [
        *sms,
        activation_code,
        *totp_codes,
        STAFF_PASSWORD,
        NEW_PASSWORD,
        MEMBER_NIR13,
        member.nir,
        OTHER_NIR13,
        blocked.nir,
        "2920675112233",
        member.iban,
        "7890143",
        "0143",
        "1979-11-23",
        "13008",
        "Marie",
        "Hélène",
        "4X2Z",
        "+33645871242",
        "mh.quenardel",
    ]
    for entry in AuditEntry.objects.all():
        text = json.dumps(entry.data, ensure_ascii=False) + entry.actor + entry.action
        leaked = [s for s in secrets if s.lower() in text.lower()]
        assert leaked == [], (entry.action, entry.data)
