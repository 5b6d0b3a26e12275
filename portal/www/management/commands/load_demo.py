"""Demo data for `make run`: a CPAM, members, one active account. Idempotent."""

from datetime import date

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from portal.accounts.models import Account
from portal.appointments.demo import demo_agenda_load, demo_appointment_today
from portal.audit.services import record
from portal.members.models import Beneficiary, Cpam, Member
from portal.members.nir import key_for
from portal.payments.demo import demo_payments_load
from portal.staff.models import Staff

DEMO_PASSWORD = "Demo-Compte-Sante-2026"
# Léa Martin, born in March 2015, Paul Martin's daughter (ayant droit).
LEA_NIR13 = "2150375111042"
DEMO_STAFF_PASSWORD = "Demo-Conseiller-2026"
# (email, role, fixed TOTP key for the demo only: `manage.py demo_totp EMAIL` prints its code)
DEMO_STAFF = [
    ("conseiller@example.org", "phone_advisor", "3132333435363738393031323334353637383930"),
    ("accueil@example.org", "front_desk", "4142434445464748494a4b4c4d4e4f5051525354"),
    ("superviseur@example.org", "supervisor", "6162636465666768696a6b6c6d6e6f7071727374"),
]

# (13 digits, birth date, last name, first names, sex, email, mobile, postal code, IBAN, account?)
MEMBERS = [
    (
        "1850578006084",
        date(1985, 5, 12),
        "Martin",
        "Paul",
        "1",
        "paul.martin@example.org",
        "+33612345678",
        "75011",
        "FR7630006000011234567890189",
        True,
    ),
    (
        "2920675112233",
        date(1992, 6, 3),
        "Bernard",
        "Camille",
        "2",
        "camille.bernard@example.org",
        "+33698765432",
        "75015",
        "FR7630004000031234567890143",
        False,
    ),
    (
        "1671199350012",
        date(1967, 11, 24),
        "Nguyen",
        "Antoine",
        "1",
        "",
        "",
        "75020",
        "FR1420041010050500013M02606",
        False,
    ),
]


class Command(BaseCommand):
    help = "Load the demo data (CPAM 751, members, one active account). Safe to run again."

    def handle(self, *args, **options):
        if not settings.DEMO:
            raise CommandError("DEMO is off: demo data is not loaded.")
        with transaction.atomic():
            cpam, _ = Cpam.objects.update_or_create(code="751", defaults={"name": "Paris"})
            for nir13, born, last, first, sex, email, mobile, postal, iban, with_account in MEMBERS:
                member, _ = Member.objects.update_or_create(
                    nir=nir13 + key_for(nir13),
                    defaults={
                        "birth_date": born,
                        "last_name": last,
                        "first_names": first,
                        "sex": sex,
                        "email": email,
                        "mobile_phone": mobile,
                        "postal_address": "1 rue de la Santé",
                        "postal_code": postal,
                        "iban": iban,
                        "cpam": cpam,
                    },
                )
                if (
                    with_account
                    and not member.accounts.exclude(state=Account.State.DELETED).exists()
                ):
                    account = Account(
                        member=member,
                        nir=nir13,
                        email=email,
                        mobile_phone=mobile,
                        state=Account.State.ACTIVE,
                        activated_at=timezone.now(),
                    )
                    account.set_password(DEMO_PASSWORD)
                    account.save()
                    record(action="account.created.demo", actor="demo", member=member)
            for email, role, key in DEMO_STAFF:
                staff, created = Staff.objects.get_or_create(
                    email=email, defaults={"role": role, "cpam": cpam, "first_name": role}
                )
                if created:
                    staff.password = make_password(DEMO_STAFF_PASSWORD)
                    staff.totp_secret_set(key)
                    staff.totp_confirmed_at = timezone.now()
                    staff.save()
                    record(action="staff.created.demo", actor="demo", data={"staff_id": staff.pk})
            first = Member.objects.get(nir__startswith="1850578006084")
            Beneficiary.objects.update_or_create(
                member=first,
                first_names="Léa",
                defaults={
                    "last_name": "Martin",
                    "birth_date": date(2015, 3, 8),
                    "nir": LEA_NIR13 + key_for(LEA_NIR13),
                },
            )
            # A year of reimbursements (Paul and Léa) and daily allowances
            # (an open sick leave), through the real imports, without emails.
            payments = demo_payments_load()
            # Mon agenda: two sites, eight advisors over the coming weeks, and
            # one appointment later today in the demo advisor's planning.
            advisors = demo_agenda_load(cpam, DEMO_STAFF_PASSWORD)
            demo_appointment_today(first)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data loaded ({payments['reimbursements']} reimbursement lines, "
                f"{payments['allowances']} daily-allowance payments, {advisors} advisors)."
            )
        )
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "  Demo logins (member site):",
                    f"    NIR 1 85 05 78 006 084 / password {DEMO_PASSWORD}   (active account)",
                    "  To create an account, use a member without one:",
                    "    NIR 2 92 06 75 112 233, born 03/06/1992, IBAN ending 7890143",
                    "    NIR 1 67 11 99 350 012, born 24/11/1967, IBAN ending 3M02606",
                    f"  Demo mailbox: {settings.SITE_URL}/demo/boite-mail/",
                    "",
                    f"  Advisor console: {settings.SITE_URL}/conseiller/ (password {DEMO_STAFF_PASSWORD})",
                    *(f"    {email} ({role})" for email, role, _ in DEMO_STAFF),
                    "    TOTP code: .venv/bin/python manage.py demo_totp EMAIL",
                    "",
                ]
            )
        )
