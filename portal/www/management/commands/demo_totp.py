from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from portal.staff import totp
from portal.staff.models import Staff


class Command(BaseCommand):
    help = (
        "DEMO only: print the current TOTP code of a demo staff member (stands in for their phone)."
    )

    def add_arguments(self, parser):
        parser.add_argument("email")

    def handle(self, *args, email, **options):
        if not settings.DEMO:
            raise CommandError("DEMO is off: no demo codes.")
        staff = Staff.objects.filter(
            email=email.strip().lower(), totp_confirmed_at__isnull=False
        ).first()
        if staff is None or not email.endswith("@example.org"):
            raise CommandError("no enrolled demo staff member with this email")
        self.stdout.write(totp.current_code(staff.totp_secret))
