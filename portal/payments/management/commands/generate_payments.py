"""`manage.py generate_payments --members N --lines-per-member K`: realistic feed files.

Writes, in --out (default var/generated):

- members.csv, for `import_members --create-cpams`;
- reimbursements.csv (K lines per member over the last 12 months), for
  `import_reimbursements`;
- allowances.csv (a work stoppage for about 5 % of the members, paid every
  14 days), for `import_allowances`.

Import them in that order: the payments need their members. The rules are in
`portal.payments.generator`; memory stays flat for any N (one member at a time).
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from portal.payments.generator import MAX_MEMBERS, PaymentsGenerator


class Command(BaseCommand):
    help = "Write realistic members, reimbursements and daily-allowances feed files (CSV)."

    def add_arguments(self, parser):
        parser.add_argument("--members", type=int, required=True, help="Number of members.")
        parser.add_argument(
            "--lines-per-member", type=int, default=20, help="Reimbursement lines per member."
        )
        parser.add_argument(
            "--out", type=Path, default=Path("var/generated"), help="Directory of the files."
        )
        parser.add_argument("--seed", type=int, default=0, help="Same seed, same files.")
        parser.add_argument(
            "--stoppage-share",
            type=float,
            default=0.05,
            help="Share of the members with a work stoppage (default 0.05).",
        )

    def handle(self, *args, members, lines_per_member, out, seed, stoppage_share, **options):
        if not 1 <= members <= MAX_MEMBERS:
            raise CommandError(f"--members doit être compris entre 1 et {MAX_MEMBERS}.")
        if lines_per_member < 0:
            raise CommandError("--lines-per-member doit être positif ou nul.")
        if not 0 <= stoppage_share <= 1:
            raise CommandError("--stoppage-share doit être compris entre 0 et 1.")
        generator = PaymentsGenerator(
            seed=seed, today=timezone.localdate(), lines_per_member=lines_per_member
        )
        counts = generator.files_write(out=out, members=members, stoppage_share=stoppage_share)
        if options["verbosity"] >= 1:
            self.stdout.write(
                f"{out}/members.csv: {counts['members']} rows\n"
                f"{out}/reimbursements.csv: {counts['reimbursements']} rows\n"
                f"{out}/allowances.csv: {counts['allowances']} rows"
            )
