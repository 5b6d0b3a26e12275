"""Mes paiements at national scale: `make bench-payments-scale` (long: not in `make bench`).

The payments issue asks, on PostgreSQL with 1,000,000 members and 20,000,000
reimbursement lines:

1. that the first page of Mes paiements (`/paiements/`, a logged-in member)
   and of the API (`GET /api/v1/reimbursements`, a bearer token) answer in a
   time independent of the size of the table: the ratio of their medians at
   the large size over the small one (200,000 lines) at most 1.2;
2. that they answer within 3 times the median of `GET /healthz` in the same
   run (what the server costs for nothing);
3. that `import_reimbursements` sustains at least 50,000 lines/s, reported
   next to a raw `COPY` of the same file into a bare table (no index, no
   constraint, 19 text columns): the ratio import ÷ COPY compares machines.

How:

- A throwaway PostgreSQL cluster (`scripts/postgres-local.sh`, in --pg-dir,
  default settings but fsync off), one database per size.
- For each size, `generate_payments` writes the files (members × lines per
  member, a work stoppage for 5 % of the members), `import_members` loads the
  members; the reimbursements file is then copied raw into a bare table
  (timed, the table dropped) and imported by `import_reimbursements
  --no-email` (timed), as a first load of the history is; the allowances
  follow, then `VACUUM ANALYZE` (what autovacuum does after a load). Both
  are timed from the bench's process, Django already set up; the import
  checks the rows in worker processes (`--import-workers`, default: one per
  core for a large file) and writes the checked batches on more database
  connections (`--import-writers`, default: 2 for a large file).
- Some members spread over the register get an account (one known
  password). Two gunicorn servers (sync workers, DEBUG and DEMO off), one
  per size, each log them in for real: the web form for the cookies a
  browser then sends back (session and CSRF), `POST /api/v1/auth/token` for
  a token.
- One client then sends, --rounds × --requests times, one request to each
  endpoint of each server, in a shuffled order (the servers and endpoints
  interleaved, so that a change of the machine's speed hits all alike),
  with a different member each time. Reported: the median (and p95) of each,
  the ratios large ÷ small and page ÷ /healthz, and the ratio of each half
  of the run to show the noise.

Sizes are flags (--small-members, --large-members, --lines-per-member): run
it small to develop (e.g. --small-members 1000 --large-members 10000). The
generated files, the cluster and its data are under --work-dir (default
var/bench-scale) and deleted at the end unless --keep; --reuse measures
again a kept run without generating and importing anew.

The result is appended to docs/performance.md (--no-record to skip).
"""

import argparse
import io
import json
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

from bench.common import (
    BASE_DIR,
    PASSWORD,
    RESULTS,
    Reply,
    fetch,
    free_listener,
    log,
    machine_cells,
    print_log_tail,
    quantile_ms,
    record,
    start_server,
    stop_server,
)

POSTGRES_LOCAL = BASE_DIR / "scripts" / "postgres-local.sh"
IMPORT_GOAL = 50_000  # lines/s
SIZE_RATIO_GOAL = 1.2
HEALTHZ_RATIO_GOAL = 3.0
CSRF_COOKIE = "csrftoken"
SESSION_COOKIE = "portal_session"  # SESSION_COOKIE_NAME
CSRF_FIELD = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')

ENDPOINTS = ("healthz", "paiements", "api")
PATHS = {"healthz": "/healthz", "paiements": "/paiements/", "api": "/api/v1/reimbursements"}

COLUMNS = [
    "Date (UTC)",
    "Machine",
    "CPU",
    "Cores",
    "Python",
    "PostgreSQL",
    "Load average before",
    "Sizes (members × lines per member)",
    "Import lines/s: small, large (workers)",
    "Raw COPY lines/s, large",
    "Import ÷ COPY",
    "Medians ms, small: healthz, paiements, API",
    "Medians ms, large: healthz, paiements, API",
    "Large ÷ small: paiements, API (halves)",
    "Page ÷ healthz, large: paiements, API",
]
RESULTS_HEADING = "## Mes paiements at national scale (`make bench-payments-scale`)"
RESULTS_INTRO = """\
The payments issue asks that Mes paiements hold at the size of a national
fund, on PostgreSQL with 1,000,000 members and 20,000,000 reimbursement
lines: the first page of `/paiements/` and of `GET /api/v1/reimbursements`
in a time independent of the size of the table (ratio of the medians at
20,000,000 lines over 200,000 lines: 1.2 at most) and within 3 times the
median of `GET /healthz` in the same run; and `import_reimbursements` at
50,000 lines/s or more, reported next to a raw `COPY` of the same file into
a bare table (19 text columns, no index), whose ratio compares machines.

`make bench-payments-scale` (see `bench/payments_scale.py`; it takes 30 to 60
minutes at full size, hence not in `make bench`) starts its own PostgreSQL
cluster (`scripts/postgres-local.sh`: default settings, fsync off), and for
each size generates the files with `generate_payments`, loads the members,
copies the reimbursements file raw into a bare table (timed), imports it
with `import_reimbursements --no-email` as a first load of the history
(timed; rows checked in one worker process per core), then the daily
allowances, and runs `VACUUM ANALYZE`. Two gunicorn servers (DEBUG and DEMO
off), one per size, log in members spread over the register (web form and
API token); one client then sends requests to both servers and the three
endpoints, interleaved in shuffled order, a different member each time.
The halves of the run show the noise. Sizes are flags, for a quick run:
`make bench-payments-scale BENCH_ARGS="--small-members 1000 --large-members 10000"`.

Each run appends a row to the table below.
"""


def pg(*args: str) -> str:
    result = subprocess.run(  # noqa: S603 (our own script and arguments)
        [str(POSTGRES_LOCAL), *args], check=True, capture_output=True, text=True
    )
    return result.stdout.strip()


# --- one size: files, database, import -------------------------------------


@dataclass
class Size:
    name: str  # "small" or "large"
    members: int
    lines_per_member: int
    database: str = ""
    generate_seconds: float = 0.0
    reimbursement_lines: int = 0
    import_seconds: float = 0.0
    copy_seconds: float = 0.0
    import_summary: str = ""
    accounts: list[str] = field(default_factory=list)  # NIRs, 13 characters

    @property
    def import_rate(self) -> float:
        return self.reimbursement_lines / self.import_seconds

    @property
    def copy_rate(self) -> float:
        return self.reimbursement_lines / self.copy_seconds

    def label(self) -> str:
        return f"{self.members:,} × {self.lines_per_member}".replace(",", " ")


def use_database(name: str) -> None:
    """Point Django's default connection at another database of the cluster."""
    from django.db import connections

    connections.close_all()
    connections["default"].settings_dict["NAME"] = name


def create_database(name: str) -> None:
    from django.db import connection

    use_database("portal")
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name}")
        cursor.execute(f"CREATE DATABASE {name}")
    use_database(name)


def prepare_size(size: Size, args: argparse.Namespace, files: Path) -> None:
    """Generate the files of `size`, create its database, load and time."""
    from django.core.management import call_command
    from django.db import connection

    size.database = f"bench_scale_{size.name}"
    out = files / size.name
    log(f"[{size.name}] generating {size.label()} into {out}")
    started = time.perf_counter()
    call_command(
        "generate_payments",
        members=size.members,
        lines_per_member=size.lines_per_member,
        out=out,
        verbosity=0,
    )
    size.generate_seconds = time.perf_counter() - started
    reimbursements = out / "reimbursements.csv"
    with reimbursements.open("rb") as file:
        blocks = iter(lambda: file.read(1 << 20), b"")
        size.reimbursement_lines = sum(block.count(b"\n") for block in blocks) - 1  # the header
    log(f"[{size.name}] {size.reimbursement_lines} lines in {size.generate_seconds:.0f} s")

    create_database(size.database)
    call_command("migrate", verbosity=0)
    log(f"[{size.name}] importing the members")
    call_command("import_members", str(out / "members.csv"), "--create-cpams", verbosity=0)

    log(f"[{size.name}] raw COPY into a bare table")
    size.copy_seconds = raw_copy(reimbursements)
    log(f"[{size.name}] raw COPY: {size.copy_rate:,.0f} lines/s")

    log(f"[{size.name}] import_reimbursements --no-email")
    options = ["--no-email"]
    if args.import_workers is not None:
        options += ["--workers", str(args.import_workers)]
    if args.import_writers is not None:
        options += ["--writers", str(args.import_writers)]
    output = io.StringIO()
    started = time.perf_counter()
    call_command("import_reimbursements", str(reimbursements), *options, stdout=output)
    size.import_seconds = time.perf_counter() - started
    size.import_summary = output.getvalue().strip()
    log(f"[{size.name}] import: {size.import_rate:,.0f} lines/s ({size.import_summary})")

    call_command("import_allowances", str(out / "allowances.csv"), "--no-email", verbosity=0)
    log(f"[{size.name}] VACUUM ANALYZE")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    size.accounts = create_accounts(args.accounts)
    use_database("portal")


def raw_copy(path: Path) -> float:
    """Seconds to COPY `path` (CSV with its header) into a bare table of text columns."""
    from django.db import connection

    with path.open("rb") as file:
        columns = file.readline().decode().strip().split(",")
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_raw_copy")
        cursor.execute(
            "CREATE TABLE bench_raw_copy (" + ", ".join(f"{name} text" for name in columns) + ")"
        )
        started = time.perf_counter()
        with (
            path.open("rb") as file,
            cursor.copy("COPY bench_raw_copy FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
        ):
            while block := file.read(1 << 20):
                copy.write(block)
        elapsed = time.perf_counter() - started
        cursor.execute("DROP TABLE bench_raw_copy")
    return elapsed


def create_accounts(count: int) -> list[str]:
    """Active accounts for `count` members spread over the register; their 13-digit NIRs."""
    from django.contrib.auth.hashers import make_password
    from django.utils import timezone as django_timezone

    from portal.accounts.models import Account
    from portal.members.models import Member

    ids = list(Member.objects.order_by("id").values_list("id", flat=True)[:1]) + list(
        Member.objects.order_by("-id").values_list("id", flat=True)[:1]
    )
    low, high = ids[0], ids[-1]
    wanted = sorted({low + (high - low) * i // max(count - 1, 1) for i in range(count)})
    members = [Member.objects.filter(id__gte=pk).order_by("id").first() for pk in wanted]
    encoded = make_password(PASSWORD)
    now = django_timezone.now()
    Account.objects.bulk_create(
        Account(
            member=member,
            nir=member.nir[:13],
            email=f"bench.{member.pk}@example.org",
            state=Account.State.ACTIVE,
            activated_at=now,
            password=encoded,
        )
        for member in members
    )
    return [member.nir[:13] for member in members]


# --- the servers and the client ---------------------------------------------


@dataclass
class Server:
    size: Size
    process: subprocess.Popen
    port: int
    log_path: Path
    sessions: list[str] = field(default_factory=list)  # Cookie headers
    tokens: list[str] = field(default_factory=list)


def start(size: Size, env: dict[str, str], database_url: str, work: Path, workers: int) -> Server:
    listener = free_listener()
    port = listener.getsockname()[1]
    log_path = work / f"gunicorn-{size.name}.log"
    url = database_url.rsplit("/", 1)[0] + "/" + size.database
    process = start_server(listener, workers, {**env, "DATABASE_URL": url}, log_path)
    listener.close()
    server = Server(size, process, port, log_path)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn ({size.name}) exited with status {process.returncode}")
        try:
            if fetch(port, "GET", "/healthz").status == 200:
                return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"gunicorn ({size.name}) did not answer within 60 s")
        time.sleep(0.2)


def web_login(port: int, nir: str) -> str:
    """Log in through the form, as a browser: the Cookie header it then sends."""
    reply = fetch(port, "GET", "/connexion/")
    csrf = _cookie(reply, CSRF_COOKIE)
    match = CSRF_FIELD.search(reply.body)
    if not csrf or not match:
        raise RuntimeError("GET /connexion/: no CSRF cookie or token")
    reply = fetch(
        port,
        "POST",
        "/connexion/",
        urlencode(
            {"csrfmiddlewaretoken": match.group(1).decode(), "nir": nir, "password": PASSWORD}
        ),
        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"{CSRF_COOKIE}={csrf}"},
    )
    session = _cookie(reply, SESSION_COOKIE)
    if reply.status != 302 or not session:
        raise RuntimeError(f"web login of {nir[:5]}…: HTTP {reply.status}")
    # What a browser sends back: the session and the CSRF cookie (renewed at login).
    return f"{SESSION_COOKIE}={session}; {CSRF_COOKIE}={_cookie(reply, CSRF_COOKIE) or csrf}"


def api_login(port: int, nir: str) -> str:
    body = json.dumps({"nir": nir, "password": PASSWORD})
    reply = fetch(port, "POST", "/api/v1/auth/token", body, {"Content-Type": "application/json"})
    if reply.status != 200:
        raise RuntimeError(f"API login of {nir[:5]}…: HTTP {reply.status}")
    return json.loads(reply.body)["access_token"]


def _cookie(reply: Reply, name: str) -> str:
    for header in reply.headers.get_all("Set-Cookie") or []:
        key, _, rest = header.partition("=")
        if key.strip() == name:
            return rest.split(";", 1)[0]
    return ""


def request(server: Server, endpoint: str, turn: int) -> float:
    """One request; its latency in seconds. Raises if the answer is not the page."""
    headers = {}
    if endpoint == "paiements":
        headers["Cookie"] = server.sessions[turn % len(server.sessions)]
    elif endpoint == "api":
        headers["Authorization"] = f"Bearer {server.tokens[turn % len(server.tokens)]}"
    started = time.perf_counter()
    reply = fetch(server.port, "GET", PATHS[endpoint], headers=headers)
    elapsed = time.perf_counter() - started
    expected = {"healthz": b'"ok"', "paiements": b"Mes paiements", "api": b'"items"'}[endpoint]
    if reply.status != 200 or expected not in reply.body:
        raise RuntimeError(f"{server.size.name} {PATHS[endpoint]}: HTTP {reply.status}")
    if endpoint == "api" and b'"items": []' in reply.body:
        raise RuntimeError(f"{server.size.name}: the member has no reimbursement line")
    return elapsed


@dataclass
class Latencies:
    # (size, endpoint) → latencies in seconds, in the order measured
    samples: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def add(self, size: str, endpoint: str, seconds: float) -> None:
        self.samples.setdefault((size, endpoint), []).append(seconds)

    def median_ms(self, size: str, endpoint: str, part: slice = slice(None)) -> float:
        return statistics.median(self.samples[(size, endpoint)][part]) * 1000

    def p95_ms(self, size: str, endpoint: str) -> float:
        return quantile_ms(self.samples[(size, endpoint)], 0.95)

    def size_ratio(self, endpoint: str, part: slice = slice(None)) -> float:
        return self.median_ms("large", endpoint, part) / self.median_ms("small", endpoint, part)

    def healthz_ratio(self, size: str, endpoint: str) -> float:
        return self.median_ms(size, endpoint) / self.median_ms(size, "healthz")

    def halves(self, endpoint: str) -> tuple[float, float]:
        count = len(self.samples[("large", endpoint)])
        return (
            self.size_ratio(endpoint, slice(None, count // 2)),
            self.size_ratio(endpoint, slice(count // 2, None)),
        )


def measure(servers: list[Server], args: argparse.Namespace) -> Latencies:
    """Every turn: one request per server and endpoint, in shuffled order."""
    rng = random.Random(0)
    latencies = Latencies()
    pairs = [(server, endpoint) for server in servers for endpoint in ENDPOINTS]
    log(f"Warming up: {args.warmup} turns")
    for turn in range(args.warmup):
        for server, endpoint in pairs:
            request(server, endpoint, turn)
    turns = args.rounds * args.requests
    log(f"Measuring: {turns} turns of {len(pairs)} requests")
    for turn in range(turns):
        rng.shuffle(pairs)
        for server, endpoint in pairs:
            latencies.add(server.size.name, endpoint, request(server, endpoint, turn))
        if (turn + 1) % args.requests == 0:
            log(
                f"  round {(turn + 1) // args.requests}: medians so far "
                + ", ".join(
                    f"{size} {endpoint} {latencies.median_ms(size, endpoint):.1f} ms"
                    for size in ("small", "large")
                    for endpoint in ENDPOINTS
                )
            )
    return latencies


# --- the run -----------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.payments_scale", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--small-members", type=int, default=10_000)
    parser.add_argument("--large-members", type=int, default=1_000_000)
    parser.add_argument("--lines-per-member", type=int, default=20)
    parser.add_argument(
        "--import-workers",
        type=int,
        help="--workers of import_reimbursements (default: its own, by file size)",
    )
    parser.add_argument(
        "--import-writers",
        type=int,
        help="--writers of import_reimbursements (default: its own, by file size)",
    )
    parser.add_argument("--accounts", type=int, default=20, help="members logged in per size")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers per server")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=50, help="turns per round")
    parser.add_argument("--warmup", type=int, default=10, help="turns before measuring")
    parser.add_argument("--work-dir", type=Path, default=BASE_DIR / "var" / "bench-scale")
    parser.add_argument("--pg-port", type=int, default=54371)
    parser.add_argument(
        "--keep", action="store_true", help="keep the cluster and the files (see --reuse)"
    )
    parser.add_argument("--reuse", action="store_true", help="measure again what a --keep run left")
    parser.add_argument(
        "--no-record", action="store_true", help="do not append to docs/performance.md"
    )
    args = parser.parse_args(argv)
    if min(args.small_members, args.large_members, args.lines_per_member) < 1:
        parser.error("sizes must be positive")
    if min(args.accounts, args.workers, args.rounds, args.requests) < 1:
        parser.error("--accounts, --workers, --rounds and --requests must be at least 1")
    if args.rounds * args.requests < 2:
        parser.error("at least 2 turns")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()[0]
    started_at = datetime.now(timezone.utc)  # noqa: UP017 (the project targets Python 3.10)
    work = args.work_dir.resolve()
    pg_dir, files, state_path = work / "pg", work / "files", work / "state.json"
    work.mkdir(parents=True, exist_ok=True)

    log(f"Starting PostgreSQL in {pg_dir} on port {args.pg_port}")
    database_url = pg("start", str(pg_dir), str(args.pg_port))
    secret_key = (
        json.loads(state_path.read_text())["secret_key"]
        if args.reuse
        else secrets.token_urlsafe(50)
    )
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        "DATABASE_URL": database_url,
        "DEBUG": "0",
        "DEMO": "0",
        "SECRET_KEY": secret_key,
        # Logins are not what is measured: no throttling on the way.
        "LOGIN_FREE_FAILURES_PER_IP": "1000000",
        "LOGIN_MAX_FAILURES_PER_IP": "1000000",
    }
    os.environ.update(env)
    servers: list[Server] = []
    try:
        import django

        django.setup()
        from django.db import connection

        if args.reuse:
            state = json.loads(state_path.read_text())
            sizes = [Size(**values) for values in state["sizes"]]
            log("Reusing the databases and figures of the kept run")
        else:
            sizes = [
                Size("small", args.small_members, args.lines_per_member),
                Size("large", args.large_members, args.lines_per_member),
            ]
            for size in sizes:
                prepare_size(size, args, files)
                # The files are no longer needed: disk space for the next size.
                shutil.rmtree(files / size.name, ignore_errors=True)
            state_path.write_text(
                json.dumps({"secret_key": secret_key, "sizes": [asdict(s) for s in sizes]})
            )
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            postgres_version = cursor.fetchone()[0].split()[0]
        from django.db import connections

        connections.close_all()

        # DEBUG off serves the collected, hashed files, as `make run` does.
        from django.core.management import call_command

        call_command("collectstatic", "--noinput", verbosity=0)
        for size in sizes:
            log(f"Starting gunicorn for {size.name} ({args.workers} workers)")
            servers.append(start(size, env, database_url, work, args.workers))
        log("Logging the members in (web form and API)")
        for server in servers:
            server.sessions = [web_login(server.port, nir) for nir in server.size.accounts]
            server.tokens = [api_login(server.port, nir) for nir in server.size.accounts]
        latencies = measure(servers, args)
    except BaseException:
        for server in servers:
            print_log_tail(server.log_path, f"gunicorn ({server.size.name})")
        raise
    finally:
        for server in servers:
            stop_server(server.process)
        if args.keep:
            log(f"Kept: {work} (cluster stopped; --reuse to measure again)")
            pg("stop", str(pg_dir))
        else:
            pg("stop", str(pg_dir))
            shutil.rmtree(work, ignore_errors=True)
            log(f"Deleted {work}")

    small, large = sizes
    print()
    print(
        f"Import:   small {small.import_rate:10,.0f} lines/s, large {large.import_rate:10,.0f} "
        f"lines/s (goal >= {IMPORT_GOAL:,}: {'met' if large.import_rate >= IMPORT_GOAL else 'NOT met'})"
    )
    print(
        f"Raw COPY: small {small.copy_rate:10,.0f} lines/s, large {large.copy_rate:10,.0f} "
        f"lines/s; import ÷ COPY, large: {large.import_rate / large.copy_rate:.3f}"
    )
    for size in ("small", "large"):
        print(
            f"{size:<5} medians (p95), ms: "
            + ", ".join(
                f"{endpoint} {latencies.median_ms(size, endpoint):.1f} "
                f"({latencies.p95_ms(size, endpoint):.1f})"
                for endpoint in ENDPOINTS
            )
        )
    for endpoint in ("paiements", "api"):
        ratio, halves = latencies.size_ratio(endpoint), latencies.halves(endpoint)
        to_healthz = latencies.healthz_ratio("large", endpoint)
        print(
            f"{endpoint:<9} large ÷ small {ratio:.2f} (halves {halves[0]:.2f}, {halves[1]:.2f}; "
            f"goal <= {SIZE_RATIO_GOAL}: {'met' if ratio <= SIZE_RATIO_GOAL else 'NOT met'}); "
            f"÷ healthz, large {to_healthz:.1f} (goal <= {HEALTHZ_RATIO_GOAL:g}: "
            f"{'met' if to_healthz <= HEALTHZ_RATIO_GOAL else 'NOT met'})"
        )

    if not args.no_record:
        workers = (
            ", ".join(
                f"{name} {value}"
                for name, value in (
                    ("workers", args.import_workers),
                    ("writers", args.import_writers),
                )
                if value is not None
            )
            or "default"
        )
        record(
            heading=RESULTS_HEADING,
            intro=RESULTS_INTRO,
            columns=COLUMNS,
            row=[
                *machine_cells(started_at),
                postgres_version,
                f"{load_before:.2f}",
                f"{small.label()}; {large.label()}",
                f"{small.import_rate:,.0f}; **{large.import_rate:,.0f}** ({workers})".replace(
                    ",", " "
                ),
                f"{large.copy_rate:,.0f}".replace(",", " "),
                f"**{large.import_rate / large.copy_rate:.3f}**",
                _medians(latencies, "small"),
                _medians(latencies, "large"),
                ", ".join(
                    f"**{latencies.size_ratio(endpoint):.2f}** ("
                    + ", ".join(f"{half:.2f}" for half in latencies.halves(endpoint))
                    + ")"
                    for endpoint in ("paiements", "api")
                ),
                ", ".join(
                    f"**{latencies.healthz_ratio('large', endpoint):.1f}**"
                    for endpoint in ("paiements", "api")
                ),
            ],
        )
        print(f"Recorded in {RESULTS.relative_to(BASE_DIR)}.")
    return 0


def _medians(latencies: Latencies, size: str) -> str:
    return ", ".join(f"{latencies.median_ms(size, endpoint):.1f}" for endpoint in ENDPOINTS)


if __name__ == "__main__":
    sys.exit(main())
