"""What the CSV feeds from the fund's other systems have in common.

The register feed (`portal.members.services`) and the payment feeds
(`portal.payments.imports`) read their files, report bad rows, detect
duplicates and drive their commands the same way; docs/formats.md describes
the behaviour these pieces give them:

- `feed_read`: header check, then one `FeedRow` per non-empty line, read one
  physical line at a time with a length cap (memory stays bounded, and a
  broken line spoils only itself);
- `FieldError` / `RowError`: `line N: field: reason`, reasons in French;
- `SeenKeys`: the keys already read in this file, kept in a temporary table
  of the connection rather than in a Python set;
- `feed_command_run` and `ProgressBar`: the command side (exit code 2 when
  the file cannot be used, one stderr line per error, a bar on a terminal).
"""

import codecs
import csv
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple, TypeVar

from django.core.management.base import BaseCommand, CommandError, OutputWrapper
from django.db import DatabaseError, connection

# A feed line is a few hundred characters; anything far longer is not a row,
# and reading it whole would let one bad line exhaust memory.
LINE_MAX_BYTES = 4096

# Bytes that are not UTF-8 are decoded as lone surrogates (surrogateescape),
# so that one bad line is reported instead of stopping the whole file.
UNDECODABLE = re.compile("[\udc80-\udcff]")
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc


class FeedError(Exception):
    """The file as a whole cannot be read (missing or wrong header). Message in French."""


class InvalidValue(ValueError):
    """Raised by a field cleaner; the message is the French reason of the report."""


class FieldError(NamedTuple):
    field: str
    reason: str


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


@dataclass(frozen=True)
class FeedRow:
    """One non-empty line of a feed: its values, or why it could not be split."""

    line: int
    values: tuple[str, ...] = ()
    problem: FieldError | None = None


@dataclass
class Pending:
    """A row on its way through an import: its errors so far, its key (for
    duplicates) and whatever the importer parsed from it."""

    line: int
    errors: list[FieldError]
    key: str | None = None
    row: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


# Reading a file


def feed_read(
    source: IO[bytes], *, columns: Sequence[str], line_max_bytes: int = LINE_MAX_BYTES
) -> Iterator[FeedRow]:
    """Check the header of a feed and return an iterator over its rows.

    `source` is a binary file; it is read one line at a time and each line is
    decoded on its own, so a line that is not UTF-8 is reported as such
    instead of stopping the file. Raises `FeedError` at once when the header
    is missing or is not exactly `columns`, before anything is imported. A
    BOM and CRLF line ends are accepted, empty lines are skipped; line
    numbers are those of the file (header = 1).
    """
    columns = tuple(columns)
    lines = _physical_lines(source, line_max_bytes)
    for number, line in lines:
        if line is None:
            raise FeedError(f"Ligne {number} trop longue : ce n’est pas un en-tête.")
        if UNDECODABLE.search(line):
            raise FeedError("En-tête illisible : le fichier doit être encodé en UTF-8.")
        try:
            header = _split(line)
        except csv.Error as exc:
            raise FeedError("En-tête illisible : ligne CSV mal formée.") from exc
        if _is_blank(header):
            continue
        _check_header(header, columns)
        return _rows(lines, len(columns))
    raise FeedError("Fichier vide : la ligne d’en-tête est absente.")


def _physical_lines(source: IO[bytes], line_max_bytes: int) -> Iterator[tuple[int, str | None]]:
    """(line number, decoded line) for each line; None when over the cap."""
    number = 0
    while line := source.readline(line_max_bytes):
        number += 1
        if len(line) == line_max_bytes and not line.endswith(b"\n"):
            while (rest := source.readline(line_max_bytes)) and not rest.endswith(b"\n"):
                pass
            yield number, None
            continue
        if number == 1:
            line = line.removeprefix(codecs.BOM_UTF8)
        yield number, line.decode("utf-8", errors="surrogateescape")


def _split(line: str) -> list[str]:
    if '"' not in line and "\r" not in line[:-2]:
        # No quoting: what the csv module would give, several times faster.
        return line.rstrip("\r\n").split(",") if line.strip("\r\n") else []
    # One reader per line: a stray quote then spoils this line only, instead
    # of swallowing the rest of the file into one field.
    return next(csv.reader([line], strict=True), [])


def _is_blank(values: Sequence[str]) -> bool:
    return not any(value.strip() for value in values)


def _check_header(header: list[str], columns: tuple[str, ...]) -> None:
    names = [name.strip() for name in header]
    if tuple(names) == columns:
        return
    expected = ",".join(columns)
    # Echo what was found only when it looks like column names: a missing
    # header means the first line is a data row, which must not be logged.
    if all(re.fullmatch(r"[a-z_]{1,30}", name) for name in names):
        found = ",".join(names)
        raise FeedError(f"En-tête incorrect : attendu « {expected} », trouvé « {found} ».")
    raise FeedError(f"En-tête manquant ou incorrect : la ligne 1 doit être « {expected} ».")


def _rows(lines: Iterator[tuple[int, str | None]], width: int) -> Iterator[FeedRow]:
    for number, line in lines:
        if line is None:
            yield FeedRow(number, problem=FieldError("row", "ligne trop longue"))
            continue
        if UNDECODABLE.search(line):
            yield FeedRow(number, problem=FieldError("row", "encodage invalide (UTF-8 attendu)"))
            continue
        try:
            values = _split(line)
        except csv.Error:
            yield FeedRow(number, problem=FieldError("row", "ligne CSV mal formée (guillemets)"))
            continue
        if _is_blank(values):
            continue
        if len(values) != width:
            reason = f"{len(values)} colonnes au lieu de {width}"
            yield FeedRow(number, problem=FieldError("row", reason))
            continue
        yield FeedRow(number, values=tuple(values))


# Checking and writing in batches


def batches_process(
    rows: Iterable[FeedRow],
    *,
    check: Callable[[FeedRow], Pending],
    flush: Callable[[list[Pending]], None],
    batch_size: int,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Check each row as it is read and hand them to `flush` `batch_size` at a
    time, so that memory follows the batch size, not the file size. Calls
    `on_progress(rows read)` after each batch; returns the number of rows."""
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    count = 0
    batch: list[Pending] = []
    for row in rows:
        batch.append(check(row))
        if len(batch) >= batch_size:
            flush(batch)
            count += len(batch)
            batch = []
            if on_progress:
                on_progress(count)
    if batch:
        flush(batch)
        count += len(batch)
        if on_progress:
            on_progress(count)
    return count


# Duplicates across a whole file


class SeenKeys:
    """The keys read so far in this file, with their line (and, optionally, a
    short text `value` to compare later occurrences with).

    A temporary table (private to this connection, dropped at the end) keeps
    Python memory flat: a million keys in a set would take about 100 MB. It
    needs the same connection for the whole import, which Django gives a
    management command. `table` is a constant of the caller, never input.
    """

    def __init__(self, table: str, *, key_length: int):
        if not re.fullmatch(r"[a-z_]+", table):
            raise ValueError("table must be a plain identifier")
        self.table = table
        self.key_length = key_length

    def __enter__(self) -> "SeenKeys":
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMPORARY TABLE {self.table} "  # noqa: S608 (constant identifier)
                f"(key VARCHAR({int(self.key_length)}) PRIMARY KEY, line BIGINT NOT NULL, "
                "value TEXT NOT NULL)"
            )
        return self

    def __exit__(self, exc_type, exc, traceback) -> bool:
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE {self.table}")
        except DatabaseError:
            # After a database error the connection may refuse any statement;
            # the original error matters more than the cleanup.
            if exc is None:
                raise
        return False

    def lookup(self, keys: Sequence[str]) -> dict[str, tuple[int, str]]:
        """{key: (line, value)} for the keys of `keys` already added."""
        if not keys:
            return {}
        if connection.vendor == "postgresql":
            sql = f"SELECT key, line, value FROM {self.table} WHERE key = ANY(%s)"  # noqa: S608
            params: list = [list(keys)]
        else:
            # Only placeholders are formatted in; the keys go as parameters.
            placeholders = ", ".join(["%s"] * len(keys))
            sql = f"SELECT key, line, value FROM {self.table} WHERE key IN ({placeholders})"  # noqa: S608
            params = list(keys)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return {key: (line, value) for key, line, value in cursor.fetchall()}

    def lines_of(self, keys: Sequence[str]) -> dict[str, int]:
        return {key: line for key, (line, _) in self.lookup(keys).items()}

    def add(self, items: dict[str, int] | dict[str, tuple[int, str]]) -> None:
        """Add keys with their line, or with (line, value)."""
        if not items:
            return
        rows = [
            (key, *(item if isinstance(item, tuple) else (item, ""))) for key, item in items.items()
        ]
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # One statement for the batch rather than one per key.
                keys, lines, values = zip(*rows, strict=True)
                cursor.execute(
                    f"INSERT INTO {self.table} (key, line, value) "  # noqa: S608
                    "SELECT * FROM unnest(%s::text[], %s::bigint[], %s::text[])",
                    [list(keys), list(lines), list(values)],
                )
            else:
                sql = f"INSERT INTO {self.table} (key, line, value) VALUES (%s, %s, %s)"  # noqa: S608
                cursor.executemany(sql, rows)


def duplicates_mark(batch: Sequence[Pending], *, seen: SeenKeys, field: str, what: str) -> None:
    """Reject the second and later rows with the same `key`, in this batch or
    in an earlier one; the first one is kept (if valid). `what` names the key
    in the reason: `{what} en double (déjà ligne N)`."""
    first_line: dict[str, int] = {}
    for pending in batch:
        if pending.key:
            first_line.setdefault(pending.key, pending.line)
    earlier = seen.lines_of(list(first_line))
    for pending in batch:
        if not pending.key:
            continue
        line = earlier.get(pending.key, first_line[pending.key])
        if line != pending.line:
            pending.errors.insert(0, FieldError(field, f"{what} en double (déjà ligne {line})"))
    seen.add({key: line for key, line in first_line.items() if key not in earlier})


# The command side

Report = TypeVar("Report")


def feed_command_run(
    command: BaseCommand,
    *,
    file: Path,
    read: Callable[[IO[bytes]], Iterator[FeedRow]],
    run: Callable[..., Report],
) -> Report:
    """Open `file`, check its header with `read`, and call `run(rows=…,
    on_error=…, on_progress=…)`; errors go to the command's stderr, one line
    each, and a progress bar is drawn when stderr is a terminal.

    Raises `CommandError` with exit code 2 when the file cannot be opened or
    its header is wrong: nothing was imported.
    """
    try:
        source = file.open("rb")
    except OSError as exc:
        message = f"Impossible d’ouvrir {file} : {exc.strerror}."
        raise CommandError(message, returncode=2) from exc
    with source:
        try:
            rows = read(source)
        except FeedError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        bar = None
        if command.stderr.isatty():
            bar = ProgressBar(command.stderr, total=os.fstat(source.fileno()).st_size)

        def on_error(error: RowError) -> None:
            if bar:
                bar.clear()
            command.stderr.write(str(error))

        def on_progress(rows_read: int) -> None:
            if bar:
                bar.show(done=source.tell(), rows=rows_read)

        report = run(rows=rows, on_error=on_error, on_progress=on_progress)
        if bar:
            bar.clear()
    return report


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
