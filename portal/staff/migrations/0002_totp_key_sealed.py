"""The staff's TOTP secrets, kept in clear until now, encrypted (portal/core/sealing.py)."""

from django.db import migrations, models

# Frozen here: the migration must keep working if the model's constant moves.
TOTP_SEALING = "staff totp"


def seal_all(apps, schema_editor):
    from portal.core import sealing

    Staff = apps.get_model("staff", "Staff")
    for staff in Staff.objects.exclude(totp_key="").only("pk", "totp_key").iterator():
        if not staff.totp_key.startswith(f"{sealing.VERSION}$"):
            staff.totp_key = sealing.seal(staff.totp_key, purpose=TOTP_SEALING)
            staff.save(update_fields=["totp_key"])


def unseal_all(apps, schema_editor):
    from portal.core import sealing

    Staff = apps.get_model("staff", "Staff")
    for staff in Staff.objects.exclude(totp_key="").only("pk", "totp_key").iterator():
        if staff.totp_key.startswith(f"{sealing.VERSION}$"):
            staff.totp_key = sealing.unseal(staff.totp_key, purpose=TOTP_SEALING)
            staff.save(update_fields=["totp_key"])


class Migration(migrations.Migration):
    dependencies = [
        ("staff", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="staff",
            name="totp_key",
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.RunPython(seal_all, unseal_all),
    ]
