"""`manage.py import_members FILE.csv`: the register feed. Format: docs/formats.md.

Exit codes: 0 everything imported; 1 at least one row rejected (the others
are imported, or none with --strict); 2 the file cannot be used (unreadable,
missing or wrong header) and nothing was imported.
"""

import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, OutputWrapper

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
        try:
            source = file.open("rb")
        except OSError as exc:
            message = f"Impossible d’ouvrir {file} : {exc.strerror}."
            raise CommandError(message, returncode=2) from exc
        with source:
            try:
                rows = services.member_feed_read(source)
            except services.FeedError as exc:
                raise CommandError(str(exc), returncode=2) from exc
            bar = None
            if self.stderr.isatty():
                bar = ProgressBar(self.stderr, total=os.fstat(source.fileno()).st_size)

            def on_error(error: services.RowError) -> None:
                if bar:
                    bar.clear()
                self.stderr.write(str(error))

            def on_progress(rows_read: int) -> None:
                if bar:
                    bar.show(done=source.tell(), rows=rows_read)

            report = services.members_import(
                rows=rows,
                strict=strict,
                create_cpams=create_cpams,
                source_name=file.name,
                on_error=on_error,
                on_progress=on_progress,
                batch_size=batch_size,
            )
            if bar:
                bar.clear()
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


class ProgressBar:
    """A one-line bar redrawn in place on a terminal; bytes read out of the file size."""

    WIDTH = 30

    def __init__(self, out: OutputWrapper, *, total: int):
        self.out = out
        self.total = max(total, 1)

    def show(self, *, done: int, rows: int) -> None:
        ratio = min(done / self.total, 1)
        filled = round(ratio * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self._write(f"\r[{bar}] {ratio:4.0%} {rows} lignes")

    def clear(self) -> None:
        self._write("\r\x1b[K")

    def _write(self, text: str) -> None:
        # No ending and no error colour: this is not a message.
        self.out.write(text, style_func=str, ending="")
        self.out.flush()
