"""`manage.py import_allowances FILE.csv`: the daily-allowances feed. Format: docs/formats.md.

Exit codes: 0 everything imported; 1 at least one row rejected (the others
are imported, or none with --strict); 2 the file cannot be used (unreadable,
missing or wrong header) and nothing was imported.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from portal.core.feeds import feed_command_run
from portal.payments import imports, parallel


class PaymentFeedCommand(BaseCommand):
    """The options, output and exit codes of both payment feeds."""

    read = None
    run = None
    stoppages = False
    # --writers: the reimbursements feed only (the big one).
    writers = False

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="CSV file, UTF-8.")
        parser.add_argument(
            "--strict",
            action="store_true",
            help="Import nothing if any row is rejected (all bad rows are still reported).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=imports.BATCH_SIZE,
            help=f"Rows written per transaction (default {imports.BATCH_SIZE}).",
        )
        parser.add_argument(
            "--no-bulk",
            action="store_true",
            help="On PostgreSQL, write through the ORM instead of COPY (for comparison).",
        )
        parser.add_argument(
            "--workers",
            type=int,
            help=(
                "Processes checking the rows while this one writes; 0: check them here. "
                f"Default: 0 under {parallel.PARALLEL_MIN_BYTES // 2**20} MiB, "
                f"else one per CPU core (at most {parallel.MAX_WORKERS})."
            ),
        )
        if self.writers:
            parser.add_argument(
                "--writers",
                type=int,
                help=(
                    "On PostgreSQL, more database connections that write the checked batches "
                    "while this one checks the next ones; 0: this one writes. Default: 0 under "
                    f"{parallel.PARALLEL_MIN_BYTES // 2**20} MiB, else "
                    f"{parallel.DEFAULT_WRITERS}. Not with --strict (one transaction)."
                ),
            )
        parser.add_argument(
            "--no-email",
            action="store_true",
            help=(
                "Do not announce these payments by email (first load of the history): "
                "nothing is kept to be announced later."
            ),
        )

    def handle(self, *args, file: Path, strict: bool, batch_size: int, **options):
        if batch_size < 1:
            raise CommandError("--batch-size doit être un entier positif.", returncode=2)
        workers = options["workers"]
        if workers is not None and workers < 0:
            raise CommandError("--workers doit être un entier positif ou nul.", returncode=2)
        writers = options.get("writers")
        if writers is not None and writers < 0:
            raise CommandError("--writers doit être un entier positif ou nul.", returncode=2)
        try:
            size = file.stat().st_size
        except OSError:
            size = 0  # reported below, when the file is opened
        if workers is None:
            workers = parallel.default_workers(size)
        extra = {}
        if self.writers:
            extra["writers"] = parallel.default_writers(size) if writers is None else writers
        report = feed_command_run(
            self,
            file=file,
            read=self.read,
            run=lambda **callbacks: self.run(
                strict=strict,
                source_name=file.name,
                batch_size=batch_size,
                bulk=False if options["no_bulk"] else None,
                notify=not options["no_email"],
                workers=workers,
                **extra,
                **callbacks,
            ),
        )
        if options["verbosity"] >= 1:
            summary = (
                f"created={report.created} updated={report.updated} "
                f"unchanged={report.unchanged} rejected={report.rejected}"
            )
            if self.stoppages:
                summary += (
                    f" stoppages_created={report.stoppages_created}"
                    f" stoppages_updated={report.stoppages_updated}"
                )
            self.stdout.write(f"{summary} emails={report.emails}")
        if report.rolled_back:
            raise CommandError(
                f"Mode strict : rien n’a été importé ({report.rejected} ligne(s) rejetée(s)).",
                returncode=1,
            )
        if report.rejected:
            raise CommandError(f"{report.rejected} ligne(s) rejetée(s).", returncode=1)


class Command(PaymentFeedCommand):
    help = (
        "Import the daily-allowances feed (CSV, see docs/formats.md): upsert payments by "
        "payment_id and their work stoppages by stoppage_id, then email the members paid."
    )
    read = staticmethod(imports.allowance_feed_read)
    run = staticmethod(imports.allowances_import)
    stoppages = True
