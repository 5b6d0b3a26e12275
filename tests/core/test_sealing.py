"""Secrets encrypted at rest (portal/core/sealing.py): the staff's TOTP secrets."""

import importlib
import io

import pytest
from django.apps import apps
from django.core.management import call_command
from django.test import override_settings

from portal.core import sealing
from portal.core.checks import production_settings
from portal.staff import totp
from portal.staff.models import TOTP_SEALING, Staff
from tests.console.conftest import make_staff

SECRET = "3132333435363738393031323334353637383930"


@override_settings(TOTP_ENCRYPTION_KEYS=["key A"])
def test_sealed_then_unsealed_and_never_twice_the_same():
    one, two = sealing.seal(SECRET, purpose="p"), sealing.seal(SECRET, purpose="p")
    assert one != two  # a fresh nonce each time
    assert SECRET not in one and one.startswith("v1$")
    assert sealing.unseal(one, purpose="p") == sealing.unseal(two, purpose="p") == SECRET


@override_settings(TOTP_ENCRYPTION_KEYS=["key A"])
def test_altered_or_misused_values_are_refused():
    sealed = sealing.seal(SECRET, purpose="p")
    version, key_id, payload = sealed.split("$")
    flipped = payload[:-6] + ("A" if payload[-6] != "A" else "B") + payload[-5:]
    for bad in (f"{version}${key_id}${flipped}", SECRET, "v2$x$y", "v1$zz$!!"):
        with pytest.raises(sealing.UnsealError):
            sealing.unseal(bad, purpose="p")
    with pytest.raises(sealing.UnsealError):  # its own key, derived for its purpose
        sealing.unseal(sealed, purpose="other")
    with (
        override_settings(TOTP_ENCRYPTION_KEYS=["key B"]),
        pytest.raises(sealing.UnsealError, match="not configured"),
    ):
        sealing.unseal(sealed, purpose="p")


def test_without_keys_of_its_own_secret_key_and_its_fallbacks_serve():
    with override_settings(TOTP_ENCRYPTION_KEYS=[], SECRET_KEY="old-" + "x" * 50):
        sealed = sealing.seal(SECRET, purpose="p")
    with override_settings(
        TOTP_ENCRYPTION_KEYS=[],
        SECRET_KEY="new-" + "y" * 50,
        SECRET_KEY_FALLBACKS=["old-" + "x" * 50],
    ):
        assert sealing.unseal(sealed, purpose="p") == SECRET
        assert not sealing.sealed_with_current_key(sealed, purpose="p")


@pytest.mark.django_db
@override_settings(TOTP_ENCRYPTION_KEYS=["key A"])
def test_the_database_holds_no_totp_secret_in_clear():
    staff = make_staff(Staff.Role.PHONE_ADVISOR)
    stored = Staff.objects.values_list("totp_key", flat=True).get(pk=staff.pk)
    secret = Staff.objects.get(pk=staff.pk).totp_secret
    assert len(secret) == 40 and secret not in stored
    assert totp.verify(key_hex=secret, code=totp.current_code(secret), last_t=-1) is not None


@pytest.mark.django_db
def test_rotation_seals_every_secret_again_with_the_new_key():
    with override_settings(TOTP_ENCRYPTION_KEYS=["key A"]):
        staff = make_staff(Staff.Role.PHONE_ADVISOR)
        secret = staff.totp_secret
    with override_settings(TOTP_ENCRYPTION_KEYS=["key B", "key A"]):
        out = io.StringIO()
        call_command("totp_keys_rotate", stdout=out)
        assert out.getvalue() == "1 TOTP secret(s) encrypted again with the current key.\n"
        call_command("totp_keys_rotate", stdout=out)  # nothing left to do
        assert "0 TOTP secret(s)" in out.getvalue()
    with override_settings(TOTP_ENCRYPTION_KEYS=["key B"]):  # key A dropped
        assert Staff.objects.get(pk=staff.pk).totp_secret == secret


@pytest.mark.django_db
@override_settings(TOTP_ENCRYPTION_KEYS=["key A"])
def test_the_migration_encrypts_the_secrets_kept_in_clear_and_back():
    migration = importlib.import_module("portal.staff.migrations.0002_totp_key_sealed")
    staff = make_staff(Staff.Role.PHONE_ADVISOR)
    Staff.objects.filter(pk=staff.pk).update(totp_key=SECRET)  # as before the migration
    migration.seal_all(apps, None)
    stored = Staff.objects.values_list("totp_key", flat=True).get(pk=staff.pk)
    assert stored.startswith("v1$") and sealing.unseal(stored, purpose=TOTP_SEALING) == SECRET
    migration.seal_all(apps, None)  # run twice: sealed once
    assert Staff.objects.values_list("totp_key", flat=True).get(pk=staff.pk) == stored
    migration.unseal_all(apps, None)
    assert Staff.objects.values_list("totp_key", flat=True).get(pk=staff.pk) == SECRET


def test_the_deploy_check_asks_for_keys_of_their_own():
    with override_settings(TOTP_ENCRYPTION_KEYS=[]):
        assert "portal.W003" in [w.id for w in production_settings(None)]
    with override_settings(TOTP_ENCRYPTION_KEYS=["key A"]):
        assert "portal.W003" not in [w.id for w in production_settings(None)]


@pytest.mark.django_db
def test_a_secret_that_cannot_be_decrypted_matches_no_code_and_is_logged(caplog):
    with override_settings(TOTP_ENCRYPTION_KEYS=["key A"]):
        staff = make_staff(Staff.Role.PHONE_ADVISOR)
        code = totp.current_code(staff.totp_secret)
    with override_settings(TOTP_ENCRYPTION_KEYS=["key B"]):  # key A lost
        assert Staff.objects.get(pk=staff.pk).totp_secret == ""
        assert totp.verify(key_hex="", code=code, last_t=-1) is None
    assert f"TOTP secret of staff {staff.pk} cannot be decrypted" in caplog.text
