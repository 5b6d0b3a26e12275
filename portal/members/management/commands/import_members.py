"""`manage.py import_members FILE.csv`: the register feed. Format: docs/formats.md.

Exit codes: 0 everything imported; 1 at least one row rejected (the others
are imported, or none with --strict); 2 the file cannot be used (unreadable,
missing or wrong header) and nothing was imported.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from portal.core.feeds import feed_command_run
from portal.members import services


class Command(BaseCommand):
    help = "Import the members register feed (CSV, see docs/formats.md): upsert by NIR."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="CSV file, UTF-8.")
        parser.add_argument(
            "--strict",
            action="store_true",
            help="Import nothing if any row is rejected (all bad rows are still reported).",
        )
        parser.add_argument(
            "--create-cpams",
            action="store_true",
            help="Create unknown CPAMs (name = code) instead of rejecting the row (demo, bench).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=services.BATCH_SIZE,
            help=f"Rows written per transaction (default {services.BATCH_SIZE}).",
        )

    def handle(
        self, *args, file: Path, strict: bool, create_cpams: bool, batch_size: int, **options
    ):
        if batch_size < 1:
            raise CommandError("--batch-size doit être un entier positif.", returncode=2)
        report = feed_command_run(
            self,
            file=file,
            read=services.member_feed_read,
            run=lambda **callbacks: services.members_import(
                strict=strict,
                create_cpams=create_cpams,
                source_name=file.name,
                batch_size=batch_size,
                **callbacks,
            ),
        )
        if options["verbosity"] >= 1:
            self.stdout.write(
                f"created={report.created} updated={report.updated} "
                f"unchanged={report.unchanged} rejected={report.rejected}"
                + (f" cpams_created={report.cpams_created}" if create_cpams else "")
            )
        if report.rolled_back:
            raise CommandError(
                f"Mode strict : rien n’a été importé ({report.rejected} ligne(s) rejetée(s)).",
                returncode=1,
            )
        if report.rejected:
            raise CommandError(f"{report.rejected} ligne(s) rejetée(s).", returncode=1)
