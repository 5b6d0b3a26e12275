"""Login throughput against the Argon2id ceiling: `make bench`.

A login costs one Argon2id verification by design, so a server cannot log
people in faster than the machine verifies Argon2id hashes. This measures both
in one run and prints the ratio logins/s ÷ verifications/s (goal: >= 0.8): what
is lost is the cost of the rest of a login (HTTP, Django, database writes,
audit entries) on top of the hash.

- The server is a real one: gunicorn with `config.settings.dev` (DEBUG off,
  whatever `make bench` exports), on a free loopback port, with a fresh SQLite
  database in a temporary directory holding --accounts active accounts that
  share one known password. Clients call `POST /api/v1/auth/token`.
- W sync workers (default: the usable CPU cores) verify at most W passwords at
  once. C client threads (default 2 W) keep every worker busy: a sync worker
  would otherwise idle while its client reads the answer and sends the next
  request.
- The ceiling is W processes, as many as the worker processes, verifying the
  hash the server verifies, the way Django's hasher does
  (`argon2.PasswordHasher().verify`, parameters from the hash, which are the
  settings' time/memory/parallelism: checked).
- The phases alternate, Argon2id then logins, --rounds times, and Argon2id
  again at the end, so that a change of the machine's speed during the run
  (neighbours, thermal throttling) weighs on both sides. The ratio of each
  round (logins against the Argon2id phases around them) shows the noise.
- The clients run on the same machine and take some CPU from the server, so
  the ratio is slightly pessimistic.

The result is appended to docs/performance.md (--no-record to skip).
"""

import argparse
import itertools
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import argon2

from bench.common import (
    BASE_DIR,
    PASSWORD,
    RESULTS,
    fetch,
    free_listener,
    log,
    machine_cells,
    prepare_database,
    print_log_tail,
    quantile_ms,
    record,
    start_server,
    stop_server,
    usable_cores,
)
from bench.common import server_environment as base_environment

TIME_LIMIT = 115  # seconds, for the whole run: the bench must stay under 2 minutes
GOAL = 0.8

COLUMNS = [
    "Date (UTC)",
    "Machine",
    "CPU",
    "Cores",
    "Python",
    "Argon2id",
    "Server and load",
    "Load average before",
    "Logins/s",
    "Argon2id verifications/s",
    "Ratio (rounds' range)",
]
RESULTS_HEADING = "## Login throughput against Argon2id (`make bench`)"
RESULTS_INTRO = """\
A login verifies one Argon2id hash by design, and that hash is meant to be
expensive: a server cannot log people in faster than its machine verifies
Argon2id hashes. `make bench` (see `bench/login.py`) measures, in the same run
and on the same machine, the logins per second of a real server (gunicorn,
SQLite, `POST /api/v1/auth/token`) and the raw Argon2id verifications per
second with the same parameters and as many processes as gunicorn workers. The
**ratio** of the two is what matters: it says how much a login costs on top of
its hash (goal: 0.8 or more). Raw numbers only compare runs on the same
machine, ratios compare across machines.

Numbers are noisy, the more so on shared or virtual machines (neighbours, CPU
steal, frequency scaling). The bench alternates Argon2id and login phases so
that a slowdown hits both, and records the range of the per-round ratios and
the 1-minute load average before the run to help judge a result: trust a
ratio whose rounds agree, taken on an idle machine, and compare several runs.

Each run appends a row to the table below.
"""


# --- the server --------------------------------------------------------------


def server_environment(tmp: Path) -> dict[str, str]:
    return {
        **base_environment(tmp),
        # Only failed logins are throttled; raised anyway so that a stray
        # failure cannot turn into delays and skew the run.
        "LOGIN_FREE_FAILURES": "1000000",
        "LOGIN_MAX_FAILURES_PER_ACCOUNT": "1000000",
        "LOGIN_FREE_FAILURES_PER_IP": "1000000",
        "LOGIN_MAX_FAILURES_PER_IP": "1000000",
    }


# --- the logins --------------------------------------------------------------


def login(port: int, nir: str) -> str | None:
    """One `POST /api/v1/auth/token`: None if a token came back, else what went wrong."""
    body = json.dumps({"nir": nir, "password": PASSWORD})
    try:
        reply = fetch(
            port, "POST", "/api/v1/auth/token", body, {"Content-Type": "application/json"}
        )
    except OSError as exc:
        return type(exc).__name__
    if reply.status == 200 and b"access_token" in reply.body:
        return None
    return f"HTTP {reply.status}"


@dataclass
class LoginResult:
    succeeded: int
    errors: Counter
    elapsed: float
    latencies: list[float]
    client_cpu: float = 0.0  # CPU seconds the client threads used

    @property
    def per_second(self) -> float:
        return self.succeeded / self.elapsed

    def latency_ms(self, quantile: float) -> float:
        return quantile_ms(self.latencies, quantile)


def drive_logins(port: int, nirs: list[str], clients: int, duration: float) -> LoginResult:
    """`clients` threads logging in one after the other, for `duration` seconds."""
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
        barrier.wait()
        while time.perf_counter() < window["deadline"]:
            nir = nirs[next(sequence) % len(nirs)]
            sent = time.perf_counter()
            error = login(port, nir)
            if error is None:
                mine.append(time.perf_counter() - sent)
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
    return LoginResult(len(latencies), errors, elapsed, latencies, client_cpu)


def wait_until_ready(server: subprocess.Popen, port: int, nir: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {server.returncode}")
        if login(port, nir) is None:
            return
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer a login within {timeout:.0f} s")


# --- the Argon2id ceiling ----------------------------------------------------


def _verify_loop(encoded: str, duration: float, barrier, results) -> None:
    # What Django's Argon2PasswordHasher.verify does: the parameters come from the hash.
    hasher = argon2.PasswordHasher()
    hasher.verify(encoded, PASSWORD)
    barrier.wait()
    start = time.perf_counter()
    done = 0
    while (elapsed := time.perf_counter() - start) < duration:
        hasher.verify(encoded, PASSWORD)
        done += 1
    results.put((done, elapsed))


def argon2_per_second(encoded: str, processes: int, duration: float) -> float:
    """Verifications per second of `processes` processes verifying side by side."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    workers = [
        context.Process(
            target=_verify_loop, args=(encoded, duration, barrier, results), daemon=True
        )
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        counts = [results.get(timeout=duration + 30) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.kill()
    return sum(done / elapsed for done, elapsed in counts)


# --- the run -----------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.login", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--workers", type=int, default=usable_cores(), help="gunicorn workers")
    parser.add_argument("--clients", type=int, help="client threads (default: 2 × workers)")
    parser.add_argument("--rounds", type=int, default=3, help="login phases (default: 3)")
    parser.add_argument(
        "--duration", type=float, default=18, help="seconds of logins, all rounds together"
    )
    parser.add_argument(
        "--argon2-duration",
        type=float,
        default=12,
        help="seconds of raw verifications, all phases together",
    )
    parser.add_argument("--accounts", type=int, default=500, help="distinct accounts")
    parser.add_argument(
        "--no-record", action="store_true", help="do not append to docs/performance.md"
    )
    args = parser.parse_args(argv)
    args.clients = args.clients or 2 * args.workers
    if min(args.workers, args.clients, args.accounts, args.rounds) < 1:
        parser.error("--workers, --clients, --accounts and --rounds must be at least 1")
    if args.duration + args.argon2_duration > 60:
        parser.error(f"the run must stay under {TIME_LIMIT} s: at most 60 s of measures")
    return args


def _time_limit_reached(signum, frame):
    raise TimeoutError(f"the bench took more than {TIME_LIMIT} s")


@dataclass
class Measures:
    logins: list[LoginResult]
    argon2: list[float]  # one more phase than logins: each login phase is bracketed

    @property
    def login_rate(self) -> float:
        return sum(r.succeeded for r in self.logins) / sum(r.elapsed for r in self.logins)

    @property
    def client_cores(self) -> float:
        """The clients' share of the machine, in cores (taken from the server)."""
        return sum(r.client_cpu for r in self.logins) / sum(r.elapsed for r in self.logins)

    @property
    def argon2_rate(self) -> float:
        return statistics.fmean(self.argon2)

    @property
    def ratio(self) -> float:
        return self.login_rate / self.argon2_rate

    def round_ratios(self) -> list[float]:
        return [
            result.per_second / statistics.fmean(self.argon2[i : i + 2])
            for i, result in enumerate(self.logins)
        ]

    @property
    def errors(self) -> Counter:
        return sum((r.errors for r in self.logins), Counter())

    def latency_ms(self, quantile: float) -> float:
        latencies = [latency for r in self.logins for latency in r.latencies]
        return LoginResult(0, Counter(), 1, latencies).latency_ms(quantile)


def measure(
    args: argparse.Namespace, env: dict[str, str], tmp: Path, nirs: list[str], encoded: str
) -> Measures:
    """Start the server, then alternate Argon2id and login phases: A L A L … A."""
    listener = free_listener()
    port = listener.getsockname()[1]
    server_log = tmp / "gunicorn.log"
    log(f"Starting gunicorn: {args.workers} sync workers on 127.0.0.1:{port}")
    server = start_server(listener, args.workers, env, server_log)
    listener.close()  # gunicorn has its own copy
    argon2_phase = args.argon2_duration / (args.rounds + 1)
    login_phase = args.duration / args.rounds
    measures = Measures([], [])
    try:
        wait_until_ready(server, port, nirs[0])
        # Every worker loads the application and warms up before the clock starts.
        drive_logins(port, nirs, args.clients, duration=2)
        for round_ in range(args.rounds + 1):
            rate = argon2_per_second(encoded, args.workers, argon2_phase)
            measures.argon2.append(rate)
            log(f"  Argon2id, {args.workers} processes, {argon2_phase:.1f} s: {rate:.1f}/s")
            if round_ == args.rounds:
                break
            result = drive_logins(port, nirs, args.clients, login_phase)
            measures.logins.append(result)
            log(f"  Logins, {args.clients} clients, {login_phase:.1f} s: {result.per_second:.1f}/s")
    except BaseException:
        stop_server(server)
        print_log_tail(server_log)
        raise
    stop_server(server)
    return measures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGALRM, _time_limit_reached)
    signal.alarm(TIME_LIMIT)
    load_before = os.getloadavg()[0]
    started_at = datetime.now(timezone.utc)  # noqa: UP017 (the project targets Python 3.10)

    with tempfile.TemporaryDirectory(prefix="portal-bench-") as tmp:
        # The setup below and the server share the settings, hence the same hash parameters.
        env = server_environment(Path(tmp))
        os.environ.update(env)
        log(f"Preparing a SQLite database with {args.accounts} accounts in {tmp}")
        nirs, encoded = prepare_database(args.accounts)
        from django.conf import settings

        parameters = (
            f"t={settings.ARGON2_TIME_COST}, m={settings.ARGON2_MEMORY_COST} KiB, "
            f"p={settings.ARGON2_PARALLELISM}"
        )
        log(f"Argon2id {parameters}; {args.rounds} rounds")
        measures = measure(args, env, Path(tmp), nirs, encoded.removeprefix("argon2"))
    signal.alarm(0)

    ratios = measures.round_ratios()
    verdict = "met" if measures.ratio >= GOAL else "NOT met"
    succeeded = sum(r.succeeded for r in measures.logins)
    print()
    print(
        f"Logins:    {measures.login_rate:8.1f} /s  ({succeeded} in {args.duration:g} s, "
        f"latency p50 {measures.latency_ms(0.5):.0f} ms, p95 {measures.latency_ms(0.95):.0f} ms)"
    )
    print(f"Argon2id:  {measures.argon2_rate:8.1f} /s  ({args.workers} processes)")
    print(f"Clients:   {measures.client_cores:8.2f} core (CPU the server could not use)")
    print(
        f"Ratio:     {measures.ratio:8.2f}     (rounds: "
        + ", ".join(f"{r:.2f}" for r in ratios)
        + f"; goal >= {GOAL}: {verdict})"
    )
    if measures.errors:
        print(f"Failed logins: {dict(measures.errors)}: not recorded.", file=sys.stderr)
        return 1

    if not args.no_record:
        record(
            heading=RESULTS_HEADING,
            intro=RESULTS_INTRO,
            columns=COLUMNS,
            row=[
                *machine_cells(started_at),
                parameters,
                f"gunicorn {args.workers} sync workers, {args.clients} clients, "
                f"{args.rounds} × {args.duration / args.rounds:g} s, "
                f"{args.accounts} accounts, SQLite; clients used "
                f"{measures.client_cores:.2f} core",
                f"{load_before:.2f}",
                f"{measures.login_rate:.1f}",
                f"{measures.argon2_rate:.1f} ({args.workers} processes)",
                f"**{measures.ratio:.2f}** ({min(ratios):.2f}–{max(ratios):.2f})",
            ],
        )
        print(f"Recorded in {RESULTS.relative_to(BASE_DIR)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
