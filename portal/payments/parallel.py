"""Checking a payment feed in several processes (`import_reimbursements --workers N`).

Checking a row (`*_row_parse`) is pure Python and needs no database, so it
can run in worker processes while the importing process talks to the
database. The importing process only cuts the file into chunks of whole
lines, without decoding them; each worker turns a chunk into rows exactly as
`portal.core.feeds.feed_read` would (same line numbers, same problems for a
line that is too long, not UTF-8 or badly quoted), checks them, and sends
back the checked batch. Results come back in file order, so the per-line
report and the batches written are the same as with one process; at most a
few chunks per worker are in flight, so memory stays bounded whatever the
size of the file.

Workers are started with "spawn": a forked child would share the parent's
database connection, and a stray use of it (or its finalizer) would corrupt
the import's session, temporary tables included.
"""

import multiprocessing
import os
import queue
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import IO, Any, TypeVar

from portal.core.feeds import LINE_MAX_BYTES, FeedRow, feed_read
from portal.core.feeds import _rows as feed_rows  # the same row rules as feed_read

# Below this size a file is checked in the importing process: starting the
# workers (Django set up in each) costs more than it saves.
PARALLEL_MIN_BYTES = 32 * 1024 * 1024
MAX_WORKERS = 8
# Chunks in flight per worker: enough to keep the workers busy while the
# importing process writes, few enough to keep memory flat.
AHEAD_PER_WORKER = 2

# Database connections writing the checked batches of a large file
# (`import_reimbursements --writers`), besides the one that checks them.
DEFAULT_WRITERS = 2

Result = TypeVar("Result")


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_workers(size: int) -> int:
    """Worker processes for a file of `size` bytes: none (check in the importing
    process) for a small file, else one per usable core, up to MAX_WORKERS."""
    if size < PARALLEL_MIN_BYTES or usable_cores() < 2:
        return 0
    return min(usable_cores(), MAX_WORKERS)


def default_writers(size: int) -> int:
    """Connections writing for a file of `size` bytes besides the checking one:
    none for a small file (one connection does it all), else DEFAULT_WRITERS."""
    return 0 if size < PARALLEL_MIN_BYTES else DEFAULT_WRITERS


# Where the file stands after its header


class FeedFile(Iterator[FeedRow]):
    """The rows of a feed file whose header was checked (an iterator, as
    `feed_read` returns), plus what the parallel path needs to read the rest
    of the file itself: the file and the number of the line after the header."""

    def __init__(self, source: IO[bytes], *, columns: Sequence[str]):
        counting = _LineCountingSource(source)
        self._rows = feed_read(counting, columns=columns)
        self.source = source
        self.width = len(columns)
        # Every physical line before (and including) the header ends with "\n".
        self.next_line = counting.lines + 1
        self.started = False

    def __next__(self) -> FeedRow:
        self.started = True
        return next(self._rows)


class _LineCountingSource:
    """Counts the lines `feed_read` reads (it reads with `readline` only)."""

    def __init__(self, source: IO[bytes]):
        self.source = source
        self.lines = 0

    def readline(self, size: int = -1) -> bytes:
        line = self.source.readline(size)
        if line.endswith(b"\n"):
            self.lines += 1
        return line


# Chunks of lines


@dataclass(frozen=True)
class Chunk:
    """Whole physical lines of a feed, undecoded; `first_line` is the number of the first."""

    first_line: int
    data: bytes


def chunks_read(
    source: IO[bytes],
    *,
    first_line: int,
    lines: int,
    line_max_bytes: int = LINE_MAX_BYTES,
) -> Iterator[Chunk]:
    """Cut the rest of `source` into chunks of `lines` physical lines (the last
    may have fewer).

    Lines are read as `feed_read` reads them, `line_max_bytes` at most: a
    longer line is cut down to that many bytes followed by "\\n" (and the rest
    skipped), which `chunk_rows` reports as too long, so that one huge line
    cannot exhaust memory.
    """
    if lines < 1:
        raise ValueError("lines must be positive")
    pieces: list[bytes] = []
    number = first_line
    readline = source.readline
    while line := readline(line_max_bytes):
        if len(line) == line_max_bytes and not line.endswith(b"\n"):
            while (rest := readline(line_max_bytes)) and not rest.endswith(b"\n"):
                pass
            line += b"\n"
        pieces.append(line)
        if len(pieces) == lines:
            yield Chunk(number, b"".join(pieces))
            number += lines
            pieces = []
    if pieces:
        yield Chunk(number, b"".join(pieces))


def chunk_rows(
    chunk: Chunk, *, width: int, line_max_bytes: int = LINE_MAX_BYTES
) -> Iterator[FeedRow]:
    """The rows of `chunk`, as `feed_read` gives the rows of the same lines."""
    return feed_rows(chunk_lines(chunk, line_max_bytes=line_max_bytes), width)


def chunk_line_rows(number: int, line: str | None, *, width: int) -> Iterator[FeedRow]:
    """The row of one line of `chunk_lines` (none for a blank line), as `feed_read` gives it."""
    return feed_rows(iter([(number, line)]), width)


def chunk_lines(
    chunk: Chunk, *, line_max_bytes: int = LINE_MAX_BYTES
) -> Iterator[tuple[int, str | None]]:
    """(line number, decoded line with its end) for each line of `chunk`, as
    `feed_read` reads them; None for a line too long."""
    lines = chunk.data.split(b"\n")
    # The file's last line may have no end; every other line has one.
    last = lines.pop()
    for offset, line in enumerate(lines):
        if len(line) >= line_max_bytes:
            yield chunk.first_line + offset, None
        else:
            yield chunk.first_line + offset, (line + b"\n").decode("utf-8", "surrogateescape")
    if last:
        number = chunk.first_line + len(lines)
        if len(last) >= line_max_bytes:
            yield number, None
        else:
            yield number, last.decode("utf-8", "surrogateescape")


# The workers


def ordered_map(
    function: Callable[[Any], Result], items: Iterable[Any], *, workers: int
) -> Iterator[Result]:
    """`function(item)` for each item, computed by `workers` processes, yielded
    in the order of `items`; at most AHEAD_PER_WORKER items per worker are read
    ahead. `function` and the items must pickle.

    An error of `function` is raised here, and a worker that dies (killed,
    out of memory) raises `BrokenProcessPool`; the workers stop when the
    iterator is exhausted or closed (what is pending is cancelled).
    """
    if workers < 1:
        raise ValueError("workers must be positive")
    executor = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init
    )
    in_flight: deque[Future] = deque()
    try:
        for item in items:
            in_flight.append(executor.submit(function, item))
            if len(in_flight) >= workers * AHEAD_PER_WORKER:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _worker_init() -> None:
    # Ctrl-C reaches the whole process group: the importing process stops the
    # workers itself, and rolls back what it must.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()


# Writing on several database connections


class Writers:
    """Threads that each write on their own database connection (`import_reimbursements
    --writers N`): the importing process checks the batches in file order on its
    connection, and hands the checked ones to these threads, which write them
    concurrently, each batch in its own transaction.

    `write(job)` runs in a writer thread (Django gives each thread its own
    connection, closed when the thread ends); `setup()` and `teardown(error)` run
    in each thread around its jobs (temporary tables of that connection).
    At most `count` jobs wait, so memory stays bounded. The first error of a
    writer stops them all: no job is started after it, the jobs already
    started finish (each one commits or rolls back whole), and `submit` or
    `close` raise it in the importing process, so that the import stops
    instead of reporting counts that miss a batch.
    """

    def __init__(
        self,
        count: int,
        *,
        write: Callable[[Any], None],
        setup: Callable[[], None] = lambda: None,
        teardown: Callable[[BaseException | None], None] = lambda error: None,
    ):
        if count < 1:
            raise ValueError("count must be positive")
        self.count = count
        self._write, self._setup, self._teardown = write, setup, teardown
        self._jobs: queue.Queue = queue.Queue(maxsize=count)
        self._error: BaseException | None = None
        self._aborted = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> "Writers":
        for number in range(self.count):
            thread = threading.Thread(
                target=self._run, name=f"payments-writer-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, exc_type, exc, traceback) -> bool:
        if exc_type is not None:
            self._aborted.set()
        self._stop()
        if exc_type is None:
            self._raise()
        return False

    def submit(self, job: Any) -> None:
        """Queue `job` for the next free writer (waits while `count` jobs wait)."""
        while True:
            self._raise()
            try:
                self._jobs.put(job, timeout=0.2)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Wait for every job to be written; raise the first error of a writer."""
        self._stop()
        self._raise()

    def _stop(self) -> None:
        for thread in self._threads:
            while thread.is_alive():
                try:
                    self._jobs.put(_STOP, timeout=0.2)
                    break
                except queue.Full:
                    continue
        for thread in self._threads:
            thread.join()
        self._threads = []

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self._aborted.set()
            raise error

    def _run(self) -> None:
        from django.db import connection

        error: BaseException | None = None
        job: Any = None
        try:
            self._setup()
            while (job := self._jobs.get()) is not _STOP:
                if not self._aborted.is_set():
                    self._write(job)
        except BaseException as exc:  # noqa: BLE001 (handed to the importing process)
            error = exc
        try:
            self._teardown(error)
        except BaseException as exc:  # noqa: BLE001
            error = error or exc
        finally:
            try:
                connection.close()
            except BaseException as exc:  # noqa: BLE001
                error = error or exc
        if error is None:
            return
        if self._error is None and not self._aborted.is_set():
            self._error = error
        self._aborted.set()
        if job is not _STOP:
            # Keep taking jobs until told to stop, so that `submit` never waits forever.
            while self._jobs.get() is not _STOP:
                pass


_STOP = object()
