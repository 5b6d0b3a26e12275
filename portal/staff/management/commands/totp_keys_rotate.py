"""`manage.py totp_keys_rotate`: encrypt every staff TOTP secret again with the current key.

Rotation of `TOTP_ENCRYPTION_KEYS` (docs/operations.md): put the new key
first, keep the old one after it, deploy, run this, then drop the old key.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from portal.audit.services import record
from portal.core import sealing
from portal.staff.models import TOTP_SEALING, Staff


class Command(BaseCommand):
    help = "Encrypt every staff TOTP secret again with the first key of TOTP_ENCRYPTION_KEYS."

    def handle(self, *args, **options):
        done = 0
        for pk in Staff.objects.exclude(totp_key="").values_list("pk", flat=True).iterator():
            with transaction.atomic():
                staff = Staff.objects.select_for_update().get(pk=pk)
                if sealing.sealed_with_current_key(staff.totp_key, purpose=TOTP_SEALING):
                    continue
                staff.totp_secret_set(staff.totp_secret)
                staff.save(update_fields=["totp_key"])
                done += 1
        record(action="staff.totp_keys.rotated", actor="system", data={"staff_count": done})
        self.stdout.write(f"{done} TOTP secret(s) encrypted again with the current key.")
