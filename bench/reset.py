"""Password-reset request: same latency whatever the details, and throughput
against Django's stock PasswordResetView: `make bench` (after bench/login.py).

Our request (`POST /api/v1/password-reset`, or the form at
/mot-de-passe-oublie/) only counts the attempt against the client IP and
queues a task; the worker matches the details and sends the email later. So:

1. Its answer must take as long for an existing account as for an unknown
   NIR, or the timing tells an attacker which NIRs have an account. One
   client sends, one at a time and in random order within each pair, a
   request for an existing account (its NIR and birth date) and one for a
   valid but unknown NIR, --pairs times through the API and as many through
   the web form. Reported: median and p95 latency of each, and the ratio of
   the medians existing ÷ unknown (goal: within 5 %, 0.95 to 1.05), with the
   ratio of each half of the run to show the noise.
2. Its throughput should be at least that of Django's stock view, which looks
   the account up and sends the email before answering. The stock view
   (`bench/stock_reset_urls.py`, mounted by the bench-only settings
   `bench/settings.py`, never by the portal) runs in the same server, on the
   same database, and sends its mail to a real SMTP server (aiosmtpd, in its
   own process on loopback) as it would in production: each request pays a
   real SMTP round trip, on loopback, so the cheapest there is. C client
   threads post the form of each (CSRF cookie and token from one GET per
   client), ours with the NIR and birth date of an existing account, the
   stock one with the email of an existing account, for --rounds rounds
   (the order of the kinds rotates); our API is measured alongside. Reported:
   requests per second and the ratio ours ÷ stock, both forms (goal: >= 1).

The server is gunicorn with W sync workers (default: the usable cores),
DEBUG and DEMO off, EMAIL_URL pointing at the SMTP server, a fresh SQLite
database in a temporary directory with --accounts active accounts, and
PASSWORD_RESET_LIMIT_PER_IP raised so that no request is throttled. No task
worker runs: the request is what is measured. Checked at the end: the SMTP
server received one email per stock request, and one task was queued per
request of ours. Clients and SMTP server share the machine with the server:
the CPU they used is reported.

The result is appended to docs/performance.md (--no-record to skip).
"""

import argparse
import itertools
import json
import multiprocessing
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

from bench.common import (
    BASE_DIR,
    RESULTS,
    STOCK_RESET_PATH,
    Reply,
    fetch,
    free_listener,
    log,
    machine_cells,
    prepare_database,
    print_log_tail,
    quantile_ms,
    record,
    server_environment,
    start_server,
    stop_server,
    usable_cores,
)

TIME_LIMIT = 85  # seconds, for the whole run: with bench/login.py, `make bench` stays near 2 min
EQUAL_TOLERANCE = 0.05  # existing ÷ unknown medians within 0.95–1.05
THROUGHPUT_GOAL = 1.0  # ours ÷ stock
API_PATH = "/api/v1/password-reset"
FORM_PATH = "/mot-de-passe-oublie/"
FORM_SENT_PATH = "/mot-de-passe-oublie/envoye/"
CSRF_COOKIE = "csrftoken"  # CSRF_COOKIE_NAME (Django's default, kept by the settings)
CSRF_FIELD = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')

COLUMNS = [
    "Date (UTC)",
    "Machine",
    "CPU",
    "Cores",
    "Python",
    "Server and load",
    "Load average before",
    "API p50 / p95 (ms): existing, unknown",
    "API ratio of medians (halves)",
    "Form p50 / p95 (ms): existing, unknown",
    "Form ratio of medians (halves)",
    "Ours/s: form, API",
    "Stock view/s (SMTP)",
    "Ratio ours ÷ stock, form (rounds' range)",
]
RESULTS_HEADING = "## Password-reset request (`make bench`)"
RESULTS_INTRO = """\
A reset request (NIR and birth date) only counts the attempt against the
client IP and queues a task: the worker matches the details and sends the
email later. `make bench` (see `bench/reset.py`) checks two consequences on a
real server (gunicorn, SQLite, DEBUG and DEMO off). First, the answer takes as
long for an existing account as for an unknown NIR, or its timing would tell
which NIRs have an account: one client alternates both, in random order,
through the API and through the web form, and the **ratio of the median
latencies** existing ÷ unknown should stay within 0.95–1.05 (the ratios of
the two halves of the run show the noise). Second, the request should serve
at least as many requests per second as Django's stock `PasswordResetView`,
which looks the account up by email and sends the email before answering:
the bench mounts it on the same server and database (bench-only settings and
URLconf) and has it send through a real SMTP server (aiosmtpd, in its own
process on loopback), so that it pays an SMTP round trip as in production,
on the cheapest network there is (a real relay is farther away, and the stock
view holds a worker for the whole exchange). Several clients post each form
in turn; the **ratio ours ÷ stock** (the two web forms, like for like; our
API is measured too) should be 1 or more. The clients and the SMTP server run
on the same machine and take CPU from the server, the SMTP server only while
the stock view is measured: their shares are in the row, and make the stock
view's figure somewhat pessimistic.

Each run appends a row to the table below.
"""


# --- the SMTP server ---------------------------------------------------------


def _smtp_sink(ports, stop, received, cpu) -> None:
    """A real SMTP server that accepts and counts messages (a spawned process)."""
    import asyncio

    from aiosmtpd.smtp import SMTP

    class Collector:
        async def handle_DATA(self, server, session, envelope):
            with received.get_lock():
                received.value += 1
            return "250 OK"

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        # An explicit hostname: the default one costs a DNS look-up per connection.
        server = await loop.create_server(
            lambda: SMTP(Collector(), hostname="smtp.bench.localhost"), "127.0.0.1", 0, backlog=512
        )
        # With the CPU used so far (imports, start), which serving mail does not cost.
        ports.put((server.sockets[0].getsockname()[1], time.process_time()))
        await loop.run_in_executor(None, stop.wait)
        server.close()

    asyncio.run(serve())
    cpu.value = time.process_time()


class SmtpSink:
    """The SMTP server's process: its `port`, the messages `received`, and at exit
    `cpu_per_message`, the CPU seconds it spent per message."""

    def __enter__(self) -> "SmtpSink":
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._received = context.Value("i", 0)
        self._cpu = context.Value("d", 0.0)
        ports = context.Queue()
        self._process = context.Process(
            target=_smtp_sink, args=(ports, self._stop, self._received, self._cpu), daemon=True
        )
        self._process.start()
        self.port, self._cpu_ready = ports.get(timeout=30)
        return self

    @property
    def received(self) -> int:
        return self._received.value

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self.cpu_per_message = (self._cpu.value - self._cpu_ready) / max(self.received, 1)


# --- who asks ----------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    nir: str  # 15 characters, as typed
    birth_date: str  # YYYY-MM-DD
    email: str = ""


def people(count: int) -> tuple[list[Person], list[Person]]:
    """Existing accounts (all of the database's), and `count` valid NIRs without an account."""
    from django.db import connections

    from portal.accounts.models import Account
    from portal.members.nir import NirError, key_for, parse
    from tests.factories import random_nir13

    def valid(nir: str) -> bool:
        try:
            parse(nir, require_key=True)
        except NirError:
            return False
        return True

    existing = [
        Person(account.member.nir, account.member.birth_date.isoformat(), account.email)
        for account in Account.objects.select_related("member").order_by("pk")
        if valid(account.member.nir)
    ]
    taken = {person.nir[:13] for person in existing}
    unknown: dict[str, Person] = {}
    while len(unknown) < count:
        nir = random_nir13()
        if nir not in taken and valid(nir + key_for(nir)):
            # The same birth date as the accounts': only the NIR differs.
            unknown[nir] = Person(
                nir + key_for(nir), existing[len(unknown) % len(existing)].birth_date
            )
    connections.close_all()
    return existing, list(unknown.values())


# --- the requests ------------------------------------------------------------


class Visitor:
    """One browser: its CSRF cookie, and the form token of the last page it opened."""

    def __init__(self, port: int):
        self.port = port
        self.cookie = ""
        self.token = ""

    def open(self, path: str) -> None:
        headers = {"Cookie": f"{CSRF_COOKIE}={self.cookie}"} if self.cookie else {}
        reply = fetch(self.port, "GET", path, headers=headers)
        if reply.status != 200:
            raise RuntimeError(f"GET {path}: HTTP {reply.status}")
        for header in reply.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            if name.strip() == CSRF_COOKIE:
                self.cookie = rest.split(";", 1)[0]
        match = CSRF_FIELD.search(reply.body)
        if not self.cookie or not match:
            raise RuntimeError(f"GET {path}: no CSRF cookie or token")
        self.token = match[1].decode()

    def post_form(self, path: str, fields: dict[str, str]) -> Reply:
        # Plain http: Django checks no Referer, the cookie and the field suffice.
        return fetch(
            self.port,
            "POST",
            path,
            urlencode({"csrfmiddlewaretoken": self.token, **fields}),
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"{CSRF_COOKIE}={self.cookie}",
            },
        )


def _redirected_to(reply: Reply, path: str) -> str | None:
    if reply.status == 302 and reply.headers.get("Location", "").endswith(path):
        return None
    return f"HTTP {reply.status}"


def ours_api(visitor: Visitor, person: Person) -> str | None:
    reply = fetch(
        visitor.port,
        "POST",
        API_PATH,
        json.dumps({"nir": person.nir, "birth_date": person.birth_date}),
        {"Content-Type": "application/json"},
    )
    return None if reply.status == 202 else f"HTTP {reply.status}"


def ours_form(visitor: Visitor, person: Person) -> str | None:
    reply = visitor.post_form(FORM_PATH, {"nir": person.nir, "birth_date": person.birth_date})
    return _redirected_to(reply, FORM_SENT_PATH)


def stock_form(visitor: Visitor, person: Person) -> str | None:
    reply = visitor.post_form(STOCK_RESET_PATH, {"email": person.email})
    return _redirected_to(reply, f"{STOCK_RESET_PATH}done/")


@dataclass(frozen=True)
class Kind:
    name: str
    page: str | None  # the form page to open first, for its CSRF token
    send: Callable[[Visitor, Person], str | None]
    ours: bool


OURS_API = Kind("ours, API", None, ours_api, ours=True)
OURS_FORM = Kind("ours, form", FORM_PATH, ours_form, ours=True)
STOCK_FORM = Kind("stock view, form", STOCK_RESET_PATH, stock_form, ours=False)
KINDS = [OURS_FORM, STOCK_FORM, OURS_API]  # the throughput phases of a round, rotated


def attempt(kind: Kind, visitor: Visitor, person: Person) -> tuple[str | None, float]:
    """One request: what went wrong (None: nothing) and its latency in seconds."""
    sent = time.perf_counter()
    try:
        error = kind.send(visitor, person)
    except OSError as exc:
        error = type(exc).__name__
    return error, time.perf_counter() - sent


# --- 1. same latency whatever the details ------------------------------------


@dataclass
class Latencies:
    kind: Kind
    existing: list[float] = field(default_factory=list)
    unknown: list[float] = field(default_factory=list)

    def ratio(self, part: slice = slice(None)) -> float:
        return statistics.median(self.existing[part]) / statistics.median(self.unknown[part])

    def halves(self) -> tuple[float, float]:
        middle = len(self.existing) // 2
        return self.ratio(slice(None, middle)), self.ratio(slice(middle, None))

    @property
    def met(self) -> bool:
        return abs(self.ratio() - 1) <= EQUAL_TOLERANCE

    def cell(self) -> str:
        return (
            f"{quantile_ms(self.existing, 0.5):.1f} / {quantile_ms(self.existing, 0.95):.1f}, "
            f"{quantile_ms(self.unknown, 0.5):.1f} / {quantile_ms(self.unknown, 0.95):.1f}"
        )


def measure_latencies(
    port: int, existing: list[Person], unknown: list[Person], pairs: int, budget: float
) -> tuple[list[Latencies], Counter, int]:
    """One client, one request at a time: the results, the errors, the pairs done."""
    kinds = [OURS_API, OURS_FORM]
    results = [Latencies(kind) for kind in kinds]
    errors: Counter = Counter()
    visitor = Visitor(port)
    visitor.open(FORM_PATH)
    shuffle = random.Random(2026).shuffle  # the same order from run to run
    deadline = time.perf_counter() + budget
    done = 0
    for i in range(pairs):
        if time.perf_counter() > deadline:
            break
        for result in results:
            pair = [(result.existing, existing[i % len(existing)]), (result.unknown, unknown[i])]
            shuffle(pair)
            for latencies, person in pair:
                error, latency = attempt(result.kind, visitor, person)
                if error:
                    errors[f"{result.kind.name}: {error}"] += 1
                else:
                    latencies.append(latency)
        done += 1
    return results, errors, done


# --- 2. throughput against the stock view ------------------------------------


@dataclass
class Phase:
    kind: Kind
    succeeded: int
    elapsed: float
    latencies: list[float]
    errors: Counter
    client_cpu: float

    @property
    def per_second(self) -> float:
        return self.succeeded / self.elapsed


def drive(port: int, kind: Kind, targets: list[Person], clients: int, duration: float) -> Phase:
    """`clients` threads, each opening the form once then posting it, for `duration` seconds."""
    sequence = itertools.count()  # next() on it is atomic under the GIL
    lock = threading.Lock()
    latencies: list[float] = []
    errors: Counter = Counter()
    window: dict[str, float] = {}

    def open_window() -> None:
        window["start"] = time.perf_counter()
        window["cpu"] = time.process_time()
        window["deadline"] = window["start"] + duration

    barrier = threading.Barrier(clients, action=open_window)

    def client() -> None:
        mine: list[float] = []
        my_errors: Counter = Counter()
        visitor = Visitor(port)
        try:
            if kind.page:
                visitor.open(kind.page)
        except (OSError, RuntimeError) as exc:
            my_errors[f"opening the form: {exc}"] += 1
        barrier.wait()
        while not my_errors and time.perf_counter() < window["deadline"]:
            error, latency = attempt(kind, visitor, targets[next(sequence) % len(targets)])
            if error is None:
                mine.append(latency)
            else:
                my_errors[error] += 1
        with lock:
            latencies.extend(mine)
            errors.update(my_errors)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - window["start"]
    client_cpu = time.process_time() - window["cpu"]
    return Phase(kind, len(latencies), elapsed, latencies, errors, client_cpu)


@dataclass
class Throughput:
    phases: list[Phase]

    def of(self, kind: Kind) -> list[Phase]:
        return [phase for phase in self.phases if phase.kind == kind]

    def rate(self, kind: Kind) -> float:
        phases = self.of(kind)
        return sum(p.succeeded for p in phases) / sum(p.elapsed for p in phases)

    def latency_ms(self, kind: Kind, quantile: float) -> float:
        return quantile_ms([x for p in self.of(kind) for x in p.latencies], quantile)

    def round_ratios(self, ours: Kind, stock: Kind) -> list[float]:
        return [
            a.per_second / b.per_second for a, b in zip(self.of(ours), self.of(stock), strict=True)
        ]

    @property
    def client_cores(self) -> float:
        return sum(p.client_cpu for p in self.phases) / sum(p.elapsed for p in self.phases)


# --- the run -----------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.reset", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--workers", type=int, default=usable_cores(), help="gunicorn workers")
    parser.add_argument("--clients", type=int, help="client threads (default: 2 × workers)")
    parser.add_argument(
        "--pairs",
        type=int,
        default=400,
        help="latency: existing/unknown pairs, through the API and as many through the form",
    )
    parser.add_argument(
        "--latency-budget",
        type=float,
        default=20,
        help="latency: stop after this many seconds even if pairs remain (default: 20)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds (default: 3)")
    parser.add_argument(
        "--duration",
        type=float,
        default=27,
        help="throughput: seconds for all rounds and kinds together (default: 27)",
    )
    parser.add_argument("--accounts", type=int, default=500, help="distinct accounts")
    parser.add_argument(
        "--no-record", action="store_true", help="do not append to docs/performance.md"
    )
    args = parser.parse_args(argv)
    args.clients = args.clients or 2 * args.workers
    if min(args.workers, args.clients, args.accounts, args.rounds, args.pairs) < 1:
        parser.error("--workers, --clients, --accounts, --rounds and --pairs must be at least 1")
    if args.duration + args.latency_budget > 50:
        parser.error(f"the run must stay under {TIME_LIMIT} s: at most 50 s of measures")
    return args


def _time_limit_reached(signum, frame):
    raise TimeoutError(f"the bench took more than {TIME_LIMIT} s")


@dataclass
class Measures:
    latencies: list[Latencies]
    pairs: int
    throughput: Throughput
    errors: Counter
    ours_sent: int  # every accepted request of ours, warm-up included
    stock_sent: int


def measure(
    args: argparse.Namespace,
    env: dict[str, str],
    tmp: Path,
    existing: list[Person],
    unknown: list[Person],
) -> Measures:
    listener = free_listener()
    port = listener.getsockname()[1]
    server_log = tmp / "gunicorn.log"
    log(f"Starting gunicorn: {args.workers} sync workers on 127.0.0.1:{port}")
    server = start_server(listener, args.workers, env, server_log)
    listener.close()  # gunicorn has its own copy
    phase = phase_seconds(args)
    warm_ups: list[Phase] = []
    try:
        wait_until_ready(server, port)
        # Every worker loads the application and warms up before the clock starts.
        for kind in KINDS:
            warm_ups.append(drive(port, kind, existing, args.clients, duration=1))
        log(f"Latency: 1 client, up to {args.pairs} pairs existing/unknown, API and form")
        latencies, errors, pairs = measure_latencies(
            port, existing, unknown, args.pairs, args.latency_budget
        )
        for result in latencies:
            log(
                f"  {result.kind.name}: p50 {quantile_ms(result.existing, 0.5):.2f} ms "
                f"existing, {quantile_ms(result.unknown, 0.5):.2f} ms unknown "
                f"({len(result.existing)} + {len(result.unknown)})"
            )
        throughput = Throughput([])
        for round_ in range(args.rounds):
            for kind in KINDS[round_ % len(KINDS) :] + KINDS[: round_ % len(KINDS)]:
                result = drive(port, kind, existing, args.clients, phase)
                throughput.phases.append(result)
                log(
                    f"  {kind.name}, {args.clients} clients, {phase:.1f} s: "
                    f"{result.per_second:.1f}/s"
                )
    except BaseException:
        stop_server(server)
        print_log_tail(server_log)
        raise
    stop_server(server)
    everything = warm_ups + throughput.phases
    for result in everything:
        errors.update({f"{result.kind.name}: {e}": n for e, n in result.errors.items()})
    ours_sent = sum(p.succeeded for p in everything if p.kind.ours) + sum(
        len(r.existing) + len(r.unknown) for r in latencies
    )
    stock_sent = sum(p.succeeded for p in everything if not p.kind.ours)
    return Measures(latencies, pairs, throughput, errors, ours_sent, stock_sent)


def wait_until_ready(server: subprocess.Popen, port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {server.returncode}")
        try:
            if fetch(port, "GET", "/healthz").status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer within {timeout:.0f} s")


def queued_tasks() -> int:
    from django.db import connections
    from django_tasks_db.models import DBTaskResult

    count = DBTaskResult.objects.count()
    connections.close_all()
    return count


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGALRM, _time_limit_reached)
    signal.alarm(TIME_LIMIT)
    load_before = os.getloadavg()[0]
    started_at = datetime.now(timezone.utc)  # noqa: UP017 (the project targets Python 3.10)

    with tempfile.TemporaryDirectory(prefix="portal-bench-") as tmp, SmtpSink() as smtp:
        env = {
            **server_environment(Path(tmp), settings_module="bench.settings"),
            # DEMO=0 needs a real mail server (check portal.E002): ours, on loopback.
            "EMAIL_URL": f"smtp://127.0.0.1:{smtp.port}",
            "PASSWORD_RESET_LIMIT_PER_IP": str(10**9),
        }
        os.environ.update(env)  # the setup below and the server share the settings
        log(f"SMTP server (aiosmtpd) on 127.0.0.1:{smtp.port}")
        log(f"Preparing a SQLite database with {args.accounts} accounts in {tmp}")
        prepare_database(args.accounts)
        existing, unknown = people(args.pairs)
        measures = measure(args, env, Path(tmp), existing, unknown)
        tasks = queued_tasks()
        mails = smtp.received
    signal.alarm(0)

    stock = STOCK_FORM
    throughput = measures.throughput
    ours_rate, api_rate, stock_rate = (
        throughput.rate(OURS_FORM),
        throughput.rate(OURS_API),
        throughput.rate(stock),
    )
    ratio = ours_rate / stock_rate
    ratios = throughput.round_ratios(OURS_FORM, stock)
    # What the SMTP server took from the machine while the stock view was measured.
    smtp_cores = smtp.cpu_per_message * stock_rate
    print()
    print(f"Latency, 1 client, {measures.pairs} pairs existing/unknown in random order:")
    for result in measures.latencies:
        halves = result.halves()
        print(
            f"  {result.kind.name:<11} existing p50 {quantile_ms(result.existing, 0.5):6.2f} ms"
            f" p95 {quantile_ms(result.existing, 0.95):6.2f} ms | unknown p50 "
            f"{quantile_ms(result.unknown, 0.5):6.2f} ms p95 "
            f"{quantile_ms(result.unknown, 0.95):6.2f} ms | ratio of medians "
            f"{result.ratio():.3f} (halves {halves[0]:.3f}, {halves[1]:.3f}; goal "
            f"{1 - EQUAL_TOLERANCE:.2f}–{1 + EQUAL_TOLERANCE:.2f}: "
            f"{'met' if result.met else 'NOT met'})"
        )
    print(f"Throughput, {args.clients} clients, {args.rounds} rounds:")
    for kind, rate in ((OURS_FORM, ours_rate), (OURS_API, api_rate), (stock, stock_rate)):
        print(
            f"  {kind.name:<16} {rate:8.1f} /s  (latency p50 "
            f"{throughput.latency_ms(kind, 0.5):.1f} ms, p95 {throughput.latency_ms(kind, 0.95):.1f} ms)"
        )
    print(
        f"  Ratio ours ÷ stock, form: {ratio:.2f} (rounds: "
        + ", ".join(f"{r:.2f}" for r in ratios)
        + f"; goal >= {THROUGHPUT_GOAL:g}: {'met' if ratio >= THROUGHPUT_GOAL else 'NOT met'});"
        f" API ÷ stock: {api_rate / stock_rate:.2f}"
    )
    print(
        f"Clients: {throughput.client_cores:.2f} core; SMTP server: {smtp_cores:.2f} core "
        f"at the stock view's rate ({smtp.cpu_per_message * 1000:.2f} ms per email)"
    )
    print(f"Emails received: {mails} (stock requests: {measures.stock_sent})")
    print(f"Tasks queued: {tasks} (our requests: {measures.ours_sent})")

    errors = measures.errors
    if mails != measures.stock_sent:
        errors["emails received ≠ stock requests"] += 1
    if tasks != measures.ours_sent:
        errors["tasks queued ≠ our requests"] += 1
    if errors:
        print(f"Failures: {dict(errors)}: not recorded.", file=sys.stderr)
        return 1

    if not args.no_record:
        api, form = measures.latencies
        record(
            heading=RESULTS_HEADING,
            intro=RESULTS_INTRO,
            columns=COLUMNS,
            row=[
                *machine_cells(started_at),
                f"gunicorn {args.workers} sync workers, {args.accounts} accounts, SQLite; "
                f"latency: 1 client, {measures.pairs} pairs per channel; throughput: "
                f"{args.clients} clients, {args.rounds} × {phase_seconds(args):g} s per kind; "
                f"clients used {throughput.client_cores:.2f} core, SMTP server "
                f"{smtp_cores:.2f} core",
                f"{load_before:.2f}",
                api.cell(),
                "**{:.3f}** ({:.3f}, {:.3f})".format(api.ratio(), *api.halves()),
                form.cell(),
                "**{:.3f}** ({:.3f}, {:.3f})".format(form.ratio(), *form.halves()),
                f"{ours_rate:.1f}, {api_rate:.1f}",
                f"{stock_rate:.1f}",
                f"**{ratio:.2f}** ({min(ratios):.2f}–{max(ratios):.2f})",
            ],
        )
        print(f"Recorded in {RESULTS.relative_to(BASE_DIR)}.")
    return 0


def phase_seconds(args: argparse.Namespace) -> float:
    return args.duration / (args.rounds * len(KINDS))


if __name__ == "__main__":
    sys.exit(main())
