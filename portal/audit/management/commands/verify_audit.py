from django.core.management.base import BaseCommand, CommandError

from portal.audit.verification import audit_chain_verify


class Command(BaseCommand):
    help = (
        "Check the audit trail's hash chain: recompute every entry's hash and follow every "
        "link. Exits 0 when intact, 1 with one 'seq N: reason' line per problem otherwise."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--since-seq",
            type=int,
            default=None,
            help="Start at this entry (linked to the one before it) instead of the first one.",
        )
        parser.add_argument(
            "--batch-size", type=int, default=1000, help="Entries read per query (memory bound)."
        )
        parser.add_argument(
            "--max-problems", type=int, default=100, help="Problems printed at most."
        )

    def handle(self, *args, since_seq, batch_size, max_problems, **options):
        if batch_size < 1 or max_problems < 1:
            raise CommandError("--batch-size and --max-problems must be positive")
        report = audit_chain_verify(
            since_seq=since_seq, batch_size=batch_size, max_problems=max_problems
        )
        scope = f" from seq {since_seq}" if since_seq and since_seq > 1 else ""
        if report.intact:
            self.stdout.write(f"{report.entries} entries{scope}, chain intact")
            if report.last_seq is not None:
                # Worth keeping outside the database: a later head that does
                # not extend this one means the end of the chain was rewritten.
                self.stdout.write(f"head: seq {report.last_seq} {report.last_hash}")
            if report.keyed_from is not None:
                self.stdout.write(f"keyed with AUDIT_CHAIN_KEY from seq {report.keyed_from}")
            return
        for problem in report.problems:
            self.stdout.write(str(problem))
        hidden = report.problem_count - len(report.problems)
        if hidden:
            self.stdout.write(f"... and {hidden} more")
        raise CommandError(
            f"audit chain broken: {report.problem_count} problem(s) "
            f"in {report.entries} entries{scope}"
        )
