"""Who may do what in the console: every kind of visitor × every console action, over HTTP.

Outcomes: "ok" (the action happens), "login" (redirected to the console's login
form), 403 (logged-in staff whose role may not do it), 404 (a member outside the
staff's CPAM: the console does not even confirm it exists).
"""

import pytest
from django.test import Client

from portal.accounts.models import Account
from portal.recovery.models import ConsoleBlock, DeskVisit, IdentityCheck
from portal.staff import totp
from tests.console.conftest import (
    RIGHT_ANSWERS,
    STAFF_PASSWORD,
    block_member,
    identity_check,
    make_member_account,
    make_staff,
    member_path,
    search,
    sms_codes,
    staff_login,
)
from tests.factories import CpamFactory

LOGIN = "/conseiller/connexion/"

ACTORS = [
    "anonymous",
    "member",
    "phone_advisor",
    "front_desk",
    "supervisor",
    "other_cpam_phone_advisor",
    "other_cpam_front_desk",
    "other_cpam_supervisor",
]
ACTIONS = [
    "home",
    "search",
    "member_page",
    "identity_check",
    "send_code",
    "visit",
    "delete",
    "lift_block",
]

_ANY_STAFF_HOME = dict.fromkeys(ACTORS[2:], "ok")
_MEMBER_ACTION = {
    "other_cpam_phone_advisor": 404,
    "other_cpam_front_desk": 404,
    "supervisor": 403,
    "other_cpam_supervisor": 403,
}
EXPECTED = {
    "home": _ANY_STAFF_HOME,
    "search": {**_MEMBER_ACTION, "phone_advisor": "ok", "front_desk": "ok"},
    "member_page": {**_MEMBER_ACTION, "phone_advisor": "ok", "front_desk": "ok"},
    "identity_check": {**_MEMBER_ACTION, "phone_advisor": "ok", "front_desk": "ok"},
    "send_code": {**_MEMBER_ACTION, "phone_advisor": "ok", "front_desk": 403},
    "visit": {**_MEMBER_ACTION, "phone_advisor": 403, "front_desk": "ok"},
    "delete": {**_MEMBER_ACTION, "phone_advisor": "ok", "front_desk": "ok"},
    "lift_block": {
        "phone_advisor": 403,
        "front_desk": 403,
        "supervisor": "ok",
        "other_cpam_phone_advisor": 403,
        "other_cpam_front_desk": 403,
        "other_cpam_supervisor": 404,
    },
}
CASES = [
    (action, actor, EXPECTED[action].get(actor, "login")) for action in ACTIONS for actor in ACTORS
]


def test_every_cell_is_decided():
    assert len(CASES) == len(ACTIONS) * len(ACTORS) == 64


def _become(client, actor, account, own_cpam, other_cpam):
    """Log the client in as `actor`; staff who may search find the member and pass the check."""
    if actor == "anonymous":
        return None
    if actor == "member":
        client.force_login(account, backend="portal.accounts.backends.NirBackend")
        return None
    role = actor.removeprefix("other_cpam_")
    staff = make_staff(role, cpam=other_cpam if actor.startswith("other_cpam") else own_cpam)
    staff_login(client, staff)
    if actor in ("phone_advisor", "front_desk"):
        search(client, account.member)
        assert identity_check(client, account.member).status_code == 302
    elif actor.startswith("other_cpam"):
        # Even with the member's id slipped into the session, the CPAM guard holds.
        session = client.session
        session["console_members"] = [account.member.pk]
        session.save()
    return staff


def _do(client, action, member, block):
    page = member_path(member)
    if action == "home":
        return client.get("/conseiller/")
    if action == "search":
        return search(client, member)
    if action == "member_page":
        return client.get(page)
    if action == "identity_check":
        return identity_check(client, member)
    if action == "send_code":
        return client.post(page + "code-sms/")
    if action == "visit":
        return client.post(page + "visite/", {"document_type": "id_card", "last_chars": "7X42"})
    if action == "delete":
        return client.post(
            page + "suppression/", {"reason": "Plus d’accès au courriel", "confirm": "on"}
        )
    if action == "lift_block":
        return client.post(f"/conseiller/blocages/{block.pk}/lever/")
    raise AssertionError(action)


def _happened(action, account, block, staff, checks_before) -> bool:
    member = account.member
    account.refresh_from_db()
    if action == "identity_check":
        return IdentityCheck.objects.filter(member=member).count() > checks_before
    if action == "send_code":
        return bool(sms_codes(member))
    if action == "visit":
        return DeskVisit.objects.filter(member=member).exists()
    if action == "delete":
        return account.state == Account.State.DELETED
    if action == "lift_block":
        block.refresh_from_db()
        return block.lifted_at is not None
    return False


@pytest.mark.django_db
@pytest.mark.parametrize(("action", "actor", "expected"), CASES)
def test_permission_matrix(client, action, actor, expected):
    own_cpam = CpamFactory(code="751", name="Paris")
    other_cpam = CpamFactory(code="131", name="Bouches-du-Rhône")
    account = make_member_account(own_cpam)
    member = account.member
    block = None
    if action == "lift_block":
        # A blocked member (another one, so that the identity check above stays possible).
        block = block_member(make_member_account(own_cpam, nir13="1850575111222").member)
    staff = _become(client, actor, account, own_cpam, other_cpam)
    checks_before = IdentityCheck.objects.filter(member=member).count()

    response = _do(client, action, member, block)

    if expected == "login":
        assert response.status_code == 302 and response["Location"] == LOGIN
    elif expected == "ok":
        assert response.status_code in (200, 302)
        if response.status_code == 302:
            assert response["Location"] != LOGIN
    else:
        assert response.status_code == expected
    if action in ("identity_check", "send_code", "visit", "delete", "lift_block"):
        assert _happened(action, account, block, staff, checks_before) is (expected == "ok")
    if action == "search" and expected == "ok":
        assert response["Location"] == member_path(member)
    if action == "member_page" and expected == "ok":
        assert "Quenardel" in response.content.decode()
    if expected == "ok" and action == "lift_block":
        assert not ConsoleBlock.objects.filter(lifted_at__isnull=True).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "verification/",
        "code-sms/",
        "visite/",
        "suppression/",
    ],
)
def test_console_posts_need_the_csrf_token(path):
    cpam = CpamFactory()
    account = make_member_account(cpam)
    client = Client(enforce_csrf_checks=True)
    staff = make_staff("front_desk" if path == "visite/" else "phone_advisor", cpam=cpam)
    # Log in and search through the forms, with their tokens.
    page = client.get(LOGIN)
    token = page.cookies["csrftoken"].value
    with_token = {"csrfmiddlewaretoken": token}
    client.post(
        LOGIN,
        {
            **with_token,
            "email": staff.email,
            "password": STAFF_PASSWORD,
            "code": totp.current_code(staff.totp_secret),
        },
    )
    token = client.cookies["csrftoken"].value  # rotated at login
    with_token = {"csrfmiddlewaretoken": token}
    assert (
        client.post("/conseiller/recherche/", {**with_token, "nir": account.member.nir}).status_code
        == 302
    )
    assert (
        identity_check(client, account.member, {**RIGHT_ANSWERS, **with_token}).status_code == 302
    )
    data = {"reason": "Motif", "confirm": "on", "document_type": "id_card", "last_chars": "1234"}
    response = client.post(member_path(account.member) + path, data)
    assert response.status_code == 403
    assert IdentityCheck.objects.filter(member=account.member).count() == 1
    assert not sms_codes(account.member) and not DeskVisit.objects.exists()
    assert Account.objects.get(pk=account.pk).state == Account.State.ACTIVE
