from django.core.management.base import BaseCommand, CommandError

from portal.members.models import Cpam
from portal.staff.models import Staff
from portal.staff.services import staff_create


class Command(BaseCommand):
    help = "Create a back-office user and print their one-time enrolment link (password + TOTP)."

    def add_arguments(self, parser):
        parser.add_argument("--email", required=True)
        parser.add_argument("--role", required=True, choices=Staff.Role.values)
        parser.add_argument("--cpam", required=True, help="CPAM code, e.g. 751")

    def handle(self, *args, email, role, cpam, **options):
        if not Cpam.objects.filter(code=cpam).exists():
            raise CommandError(f"unknown CPAM {cpam!r}")
        if Staff.objects.filter(email=email.strip().lower()).exists():
            raise CommandError(f"a staff member with email {email!r} already exists")
        staff, link = staff_create(
            email=email, role=role, cpam_code=cpam, actor="command:create_staff"
        )
        self.stdout.write(f"Created {staff.email} ({staff.get_role_display()}, CPAM {cpam}).")
        self.stdout.write(f"One-time enrolment link (valid 72 h): {link}")
