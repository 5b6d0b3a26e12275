"""`make loadtest`: the mixed Locust scenario against `make prod-local`, then the checks.

1. Waits (up to --wait-idle seconds) for the 1-minute load average to fall
   under --max-load: the machine is shared, and the figures mean more on an
   idle one. Runs anyway after that, and says so in the row.
2. Starts the SMTP and SMS sinks, then `scripts/prod-local.sh` under
   var/loadtest/ (PostgreSQL, Redis, gunicorn, two task workers, the
   scheduler; DEMO off), and creates fresh members (`loadtest.seed`).
3. Runs Locust headless (`loadtest/locustfile.py`): --users users, spawned
   at --spawn-rate a second, for --duration seconds.
4. Waits for the task workers to deliver every email the run caused, then
   checks, from what the SMTP sink received and what the database holds:
   no 5xx (and no request left without an answer); no double booking (no
   two booked appointments of one advisor overlap; every 201 is one row);
   every reset request accepted gave exactly one email, delivered exactly
   once (counted per recipient at the sink, each recipient unique to one
   member), and every other email of the run too.
5. Reports p50/p95/p99, requests per second, and requests per second per
   core of the server: the CPU time the server's processes (gunicorn, task
   workers, PostgreSQL, Redis) used during the load, read from /proc, so
   that the figure holds on a machine shared with the load generator and
   with others. Appends a row to docs/performance.md (--no-record to skip).
   Stops everything it started. Exit status 1 when a check fails.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from loadtest.stack import (
    BASE_DIR,
    BIN,
    DEFAULT_DIR,
    Sink,
    Stack,
    django_setup,
    log,
    new_secret,
    wait_for,
    write_json,
)

RESULTS_HEADING = "## Load and faults: the mixed scenario on `make prod-local` (`make loadtest`)"
RESULTS_INTRO = """\
`make loadtest` (see `loadtest/run.py` and `loadtest/locustfile.py`) runs
Locust against the production topology of `make prod-local` (gunicorn 3
workers × 4 threads, PostgreSQL, Redis, two task workers, the scheduler;
DEBUG and DEMO off), started under `var/loadtest/` with a real SMTP server
(aiosmtpd) and an SMS gateway of ours as sinks. Fresh members each run (one
shared Argon2id hash, bulk-inserted). The users, each with their own address
in `X-Forwarded-For`: half log in on the web form and read Mes paiements and
Mes indemnités (logging in again now and then), a fifth ask for a reset link
(web form or API, each for a member never asked for before, from an address
of its own), the rest search the free phone slots of one motive over its six
weeks and book one of the ten first (so that they collide: `409 slot_taken`
is expected), with a bearer token. Think time 1–5 s (2–8 s for resets).
A GET sent on a kept-alive connection that gunicorn closed meanwhile (it
keeps idle ones 5 s) is sent again once; a POST is not (RFC 9110, and nginx
does not either), and counts as a request without an answer.

Checked, or the run fails: no 5xx and no request without an answer; no two
booked appointments of one advisor overlap, and every 201 is one row;
every reset request accepted gives exactly one email, received exactly once
by the SMTP server (per recipient: each is unique to one member), and so
does every other email of the run. **Requests/s per core** divides the
throughput by the cores the server's processes (gunicorn, task workers,
PostgreSQL, Redis) really used during the load, from their CPU times in
/proc, so that it holds on a machine shared with the load generator (its
share is in the row) and with other work: it is the figure the sizing in
docs/scaling.md starts from. The machine has 2 cores shared with other
work; the load average before the run is in the row.

Each run appends a row to the table below.
"""
COLUMNS = [
    "Date (UTC)",
    "Machine",
    "CPU",
    "Cores",
    "Python",
    "Load",
    "Load average before",
    "Requests, req/s",
    "p50 / p95 / p99 (ms)",
    "p95 by request (ms)",
    "5xx, no answer",
    "Server CPU (cores used: web, workers, PostgreSQL, Redis)",
    "Req/s per server core",
    "Bookings: 201, 409, overlaps",
    "Reset emails: accepted → delivered once",
    "Verdict",
]
SHORT_NAMES = {
    "POST /connexion/ (login)": "login",
    "GET /paiements/": "paiements",
    "GET /indemnites/": "indemnités",
    "GET /api/v1/appointments/slots": "slots",
    "POST /api/v1/appointments": "book",
    "POST /api/v1/password-reset": "reset API",
    "POST /mot-de-passe-oublie/": "reset form",
}


def quantile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def wait_until_idle(max_load: float, patience: float) -> tuple[float, bool]:
    """Poll the 1-minute load average; (the last one read, whether it went under max_load)."""
    deadline = time.monotonic() + patience
    load = os.getloadavg()[0]
    while load >= max_load and time.monotonic() < deadline:
        log(f"load average {load:.2f} ≥ {max_load}: waiting (at most {patience:.0f} s in all)")
        time.sleep(30)
        load = os.getloadavg()[0]
    return load, load < max_load


def run_locust(
    stack: Stack, data_path: Path, results_path: Path, users: int, rate: float, duration: int
) -> tuple[int, float]:
    """Locust headless; its exit code and the CPU seconds it used."""
    command = [
        str(BIN / "locust"),
        "-f",
        str(BASE_DIR / "loadtest" / "locustfile.py"),
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        str(rate),
        "--run-time",
        f"{duration}s",
        "--host",
        stack.url,
        "--only-summary",
        "--stop-timeout",
        "10",
        "--csv",
        str(results_path.with_suffix("")),
        "--exit-code-on-error",
        "0",
    ]
    env = {**os.environ, "LOADTEST_DATA": str(data_path), "LOADTEST_RESULTS": str(results_path)}
    log(f"locust: {users} users, {rate}/s, {duration} s")
    with (results_path.parent / "locust.log").open("w") as out:
        process = subprocess.Popen(  # noqa: S603 (our own locust and locustfile)
            command, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_utime + usage.ru_stime


def redis_commands(stack: Stack) -> int:
    """Commands Redis has processed since it started (INFO stats)."""
    import redis

    client = redis.Redis(
        host="127.0.0.1", port=stack.redis_port, password=stack.secret("redis-password")
    )
    try:
        return int(client.info("stats")["total_commands_processed"])
    finally:
        client.close()


# --- what the database holds -----------------------------------------------------------------


def drain(since: datetime, timeout: float) -> dict:
    """Wait until the emails and tasks caused since `since` are all done."""
    from django.db import close_old_connections
    from django.db.models import Q
    from django.utils import timezone
    from django_tasks_db.compat import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    from portal.notifications.models import OutboundMessage

    def left() -> tuple[int, int]:
        close_old_connections()
        pending = OutboundMessage.objects.filter(
            created_at__gte=since, status=OutboundMessage.Status.PENDING
        ).count()
        due = DBTaskResult.objects.filter(enqueued_at__gte=since).filter(
            Q(status=TaskResultStatus.RUNNING)
            | Q(status=TaskResultStatus.READY, run_after__lte=timezone.now())
        )
        return pending, due.count()

    started = time.monotonic()
    done = wait_for(lambda: left() == (0, 0), timeout, 2)
    pending, due = left()
    return {
        "drained": done,
        "seconds": round(time.monotonic() - started, 1),
        "pending": pending,
        "tasks": due,
    }


def overlaps() -> int:
    """Pairs of booked appointments of one advisor that overlap (double bookings): 0."""
    from django.db import connection

    from portal.appointments.models import Appointment

    table = Appointment._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {table} a JOIN {table} b ON a.advisor_id = b.advisor_id "  # noqa: S608
            "AND a.id < b.id AND a.starts_at < b.ends_at AND b.starts_at < a.ends_at "
            "WHERE a.status = %s AND b.status = %s",
            [Appointment.Status.BOOKED, Appointment.Status.BOOKED],
        )
        return cursor.fetchone()[0]


def booked_rows(emails: list[str], public_ids: list[str]) -> dict:
    from portal.appointments.models import Appointment

    rows = Appointment.objects.filter(member__email__in=emails)
    return {
        "rows": rows.count(),
        "answered_201_found": rows.filter(public_id__in=public_ids).count(),
    }


def email_checks(
    run: str, since: datetime, accepted: list[dict], sent: list[str], sink_events: list[dict]
) -> dict:
    """Every reset accepted → one email → received once; every other email of the run too.

    A request still in flight when the load stopped has no answer on the
    client's side: its member may get one email (never two), no one else.
    """
    from portal.notifications.models import OutboundMessage

    subject = (BASE_DIR / "portal/templates/emails/password_reset.subject.txt").read_text().strip()
    prefix = f"lt{run}-"
    received = [
        (rcpt, event["subject"])
        for event in sink_events
        if event.get("event") == "message"
        for rcpt in event["rcpt_tos"]
        if rcpt.startswith(prefix)
    ]
    per_pair = Counter(received)
    expected = {member["email"] for member in accepted}
    reset_received = Counter(rcpt for rcpt, s in received if s == subject)
    stored = OutboundMessage.objects.filter(
        created_at__gte=since, channel=OutboundMessage.Channel.EMAIL, recipient__startswith=prefix
    )
    stored_pairs = Counter(stored.values_list("recipient", "subject"))
    statuses = Counter(stored.values_list("status", flat=True))
    reset_stored = Counter(
        stored.filter(template="password_reset").values_list("recipient", flat=True)
    )
    message_ids = [e["message_id"] for e in sink_events if e.get("event") == "message"]
    result = {
        "reset_accepted": len(expected),
        "reset_accepted_requests": len(accepted),
        "reset_stored": sum(reset_stored.values()),
        "reset_received": sum(reset_received.values()),
        "reset_missing": sorted(expected - set(reset_received))[:10],
        "reset_missing_count": len(expected - set(reset_received)),
        "reset_twice": sorted(r for r, n in reset_received.items() if n > 1)[:10],
        "reset_unexpected": sorted(set(reset_received) - expected - set(sent))[:10],
        "reset_in_flight_at_stop": len(set(reset_received) - expected),
        "reset_stored_not_once": sorted(r for r in expected if reset_stored.get(r) != 1)[:10],
        "emails_stored": sum(stored_pairs.values()),
        "emails_received": len(received),
        "email_statuses": dict(statuses),
        "emails_received_not_once": sorted(
            f"{r} / {s}" for (r, s), n in stored_pairs.items() if per_pair.get((r, s)) != n
        )[:10],
        "duplicate_message_ids": len(message_ids) - len(set(message_ids)),
    }
    result["exactly_once"] = (
        len(accepted) == len(expected)  # one request per member
        and not result["reset_missing_count"]
        and not result["reset_twice"]
        and not result["reset_unexpected"]
        and not result["reset_stored_not_once"]
        and not result["emails_received_not_once"]
        and result["emails_received"] == result["emails_stored"]
        and not result["duplicate_message_ids"]
        and set(statuses) <= {OutboundMessage.Status.SENT}
    )
    return result


# --- the report ------------------------------------------------------------------------------


def summarize(results: dict) -> dict:
    everything = [v for values in results["latencies_ms"].values() for v in values]
    per_name = {
        name: {
            "count": len(values),
            "p50": quantile(values, 0.5),
            "p95": quantile(values, 0.95),
            "p99": quantile(values, 0.99),
        }
        for name, values in sorted(results["latencies_ms"].items())
    }
    codes = Counter()
    for counter in results["statuses"].values():
        codes.update(counter)
    return {
        "requests": len(everything),
        "p50": quantile(everything, 0.5),
        "p95": quantile(everything, 0.95),
        "p99": quantile(everything, 0.99),
        "per_name": per_name,
        "codes": dict(codes),
        "server_errors": sum(n for code, n in codes.items() if code.startswith("5")),
        "no_answer": codes.get("0", 0),
    }


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--duration", type=int, default=120, help="seconds")
    parser.add_argument("--spawn-rate", type=float, default=20)
    parser.add_argument("--advisors", type=int, default=40)
    parser.add_argument("--max-load", type=float, default=2.0)
    parser.add_argument(
        "--wait-idle", type=float, default=1200, help="seconds to wait for --max-load (0: none)"
    )
    parser.add_argument("--drain-timeout", type=float, default=300)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--no-record", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before, idle = wait_until_idle(args.max_load, args.wait_idle)
    run = datetime.now(UTC).strftime("%m%d%H%M%S")
    run_dir = args.dir / "runs" / run
    run_dir.mkdir(parents=True, exist_ok=True)
    sms_secret = new_secret()
    smtp = Sink("smtp", run_dir)
    sms = Sink("sms", run_dir, env={"SMS_SINK_SECRET": sms_secret})
    stack = Stack(
        directory=args.dir,
        smtp=smtp,
        sms=sms,
        sms_secret=sms_secret,
        log_path=run_dir / "stack.log",
    )
    started_at = datetime.now(UTC)
    try:
        smtp.start()
        sms.start()
        stack.start()
        django_setup(stack.django_env())
        from django.utils import timezone

        from loadtest import seed

        seeded = seed.seed(
            run=run,
            login=max(20, args.users * 5),
            reset=max(100, args.users * 15),
            book=max(50, args.users * 10),
            advisors=args.advisors,
        )
        data_path = run_dir / "data.json"
        write_json(data_path, seeded)
        log(
            f"seeded {len(seeded['login'])} readers ({seeded['lines']} lines), "
            f"{len(seeded['reset'])} reset members, {len(seeded['book'])} bookers"
        )
        since = timezone.now()
        redis_before = redis_commands(stack)
        cpu_before = stack.cpu_seconds()
        locust_started = time.monotonic()
        results_path = run_dir / "results.json"
        code, client_cpu = run_locust(
            stack, data_path, results_path, args.users, args.spawn_rate, args.duration
        )
        elapsed = time.monotonic() - locust_started
        cpu_after = stack.cpu_seconds()
        redis_used = redis_commands(stack) - redis_before
        stack_alive = stack.alive()
        if not results_path.exists():
            log(f"locust wrote no results (exit {code}): see {run_dir / 'locust.log'}")
            return 1
        results = json.loads(results_path.read_text())
        log("waiting for the workers to deliver the emails")
        drained = drain(since, args.drain_timeout)
        summary = summarize(results)
        load_seconds = results["stopped_at"] - results["started_at"]
        cpu = {k: cpu_after[k] - cpu_before[k] for k in cpu_before}
        server_cpu = sum(cpu.values())
        rate = summary["requests"] / load_seconds
        per_core = summary["requests"] / server_cpu if server_cpu else float("nan")
        bookings = results["bookings"]
        booked = booked_rows([b["email"] for b in bookings], [b["id"] for b in bookings])
        double = overlaps()
        conflicts = sum(
            n
            for name, counter in results["statuses"].items()
            if name == "POST /api/v1/appointments"
            for code_, n in counter.items()
            if code_ == "409"
        )
        emails = email_checks(
            run, since, results["reset_accepted"], results.get("reset_sent", []), smtp.events()
        )
        from portal.audit.models import AuditEntry

        audit_entries = AuditEntry.objects.filter(created_at__gte=since).count()
    finally:
        stack.stop()
        smtp.stop()
        sms.stop()

    checks = {
        "no 5xx": summary["server_errors"] == 0,
        "every request answered": summary["no_answer"] == 0,
        "no double booking": double == 0
        and booked["rows"] == len(bookings) == booked["answered_201_found"],
        "every reset email delivered exactly once": emails["exactly_once"] and drained["drained"],
        "stack stayed up": stack_alive,
        "reset pool large enough": not results["pools_exhausted"].get("reset"),
    }
    report = {
        "run": run,
        "users": args.users,
        "duration": args.duration,
        "load_average_before": load_before,
        "idle": idle,
        "elapsed": elapsed,
        "summary": summary,
        "cpu_seconds": cpu,
        "client_cpu_seconds": client_cpu,
        "redis_commands": redis_used,
        "audit_entries": audit_entries,
        "requests_per_second": rate,
        "requests_per_second_per_core": per_core,
        "bookings": {"201": len(bookings), "409": conflicts, "overlaps": double, **booked},
        "emails": emails,
        "drain": drained,
        "checks": checks,
    }
    write_json(run_dir / "report.json", report)
    print_report(report)
    ok = all(checks.values())
    if not args.no_record:
        record_row(report, started_at, ok)
    log(f"run directory: {run_dir}")
    return 0 if ok else 1


def print_report(report: dict) -> None:
    s = report["summary"]
    print()
    print(
        f"Requests: {s['requests']} in {report['elapsed']:.0f} s, {report['requests_per_second']:.1f}/s"
    )
    print(f"Latency (ms): p50 {s['p50']:.0f}, p95 {s['p95']:.0f}, p99 {s['p99']:.0f}")
    for name, row in s["per_name"].items():
        print(
            f"  {name:40} {row['count']:6}  p50 {row['p50']:7.0f}  p95 {row['p95']:7.0f}  p99 {row['p99']:7.0f}"
        )
    print(f"Status codes: {s['codes']}")
    cpu = report["cpu_seconds"]
    seconds = report["elapsed"]
    print(
        "Server CPU: "
        + ", ".join(f"{k} {v:.0f} s ({v / seconds:.2f} core)" for k, v in cpu.items())
        + f"; clients {report['client_cpu_seconds']:.0f} s ({report['client_cpu_seconds'] / seconds:.2f} core)"
    )
    print(f"Requests/s per server core: {report['requests_per_second_per_core']:.1f}")
    print(
        f"Redis commands: {report['redis_commands']} "
        f"({report['redis_commands'] / max(1, s['requests']):.1f} per request); "
        f"audit entries: {report['audit_entries']}"
    )
    print(f"Bookings: {report['bookings']}")
    e = report["emails"]
    print(
        f"Reset emails: {e['reset_accepted']} accepted, {e['reset_stored']} stored, "
        f"{e['reset_received']} received ({e['reset_in_flight_at_stop']} for requests in flight "
        f"at the stop); missing {e['reset_missing_count']}, twice {len(e['reset_twice'])}; "
        f"all emails: {e['emails_stored']} stored, {e['emails_received']} received, statuses {e['email_statuses']}"
    )
    print(f"Drain: {report['drain']}")
    for check, ok in report["checks"].items():
        print(f"  {'PASS' if ok else 'FAIL'}  {check}")


def record_row(report: dict, started_at: datetime, ok: bool) -> None:
    from bench.common import machine_cells, record

    s = report["summary"]
    cpu = report["cpu_seconds"]
    seconds = report["elapsed"]
    cores = sum(cpu.values()) / seconds
    p95 = ", ".join(
        f"{SHORT_NAMES[name]} {row['p95']:.0f}"
        for name, row in s["per_name"].items()
        if name in SHORT_NAMES
    )
    e = report["emails"]
    b = report["bookings"]
    idle = "" if report["idle"] else " (machine loaded: ran anyway after waiting)"
    row = [
        *machine_cells(started_at),
        f"{report['users']} users, {report['duration']} s; gunicorn 3 × 4 threads, 2 task workers, "
        f"PostgreSQL, Redis; clients used {report['client_cpu_seconds'] / seconds:.2f} core",
        f"{report['load_average_before']:.2f}{idle}",
        f"{s['requests']}, {report['requests_per_second']:.1f}/s",
        f"{s['p50']:.0f} / {s['p95']:.0f} / {s['p99']:.0f}",
        p95,
        f"{s['server_errors']}, {s['no_answer']}",
        f"{cores:.2f} ({', '.join(f'{v / seconds:.2f}' for v in cpu.values())})",
        f"**{report['requests_per_second_per_core']:.1f}**",
        f"{b['201']}, {b['409']}, {b['overlaps']}",
        f"{e['reset_accepted']} → {e['reset_received']} ({'exactly once' if e['exactly_once'] else 'NOT exactly once'})",
        "pass" if ok else "FAIL: " + ", ".join(k for k, v in report["checks"].items() if not v),
    ]
    record(heading=RESULTS_HEADING, intro=RESULTS_INTRO, columns=COLUMNS, row=row)
    log("row appended to docs/performance.md")


if __name__ == "__main__":
    sys.exit(main())
