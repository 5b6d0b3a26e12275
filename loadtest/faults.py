"""`make faults`: five faults injected into `make prod-local`, each with its verdict.

Each fault is really injected, and each verdict is computed from what the
sinks received and what the database holds:

- `smtp`: the SMTP server is killed for 60 s while members ask for reset
  links, then started again on the same port. Every accepted request must
  give one email, received once, after the server is back.
- `kill`: a task worker is killed with SIGKILL in the middle of delivering
  a reset email (the SMTP server holds the RCPT, so the task is caught
  mid-flight). The stack's own two workers are paused (SIGSTOP) meanwhile,
  so that the delivery lands on a worker started here; once it is killed, a
  new worker is started (what a supervisor does) and the paused ones
  resume. Nothing is done by hand: the live workers must find the task
  orphaned (its worker's heartbeat stale) and queue it again, and the member
  get one email.
- `postgres`: PostgreSQL is stopped for 10 s (`pg_ctl stop -m fast`, then
  `pg_ctl start` with the same options) under a steady load of web pages,
  API calls and reset requests. Errors must happen only while it is down;
  afterwards every request must succeed and the workers must deliver again,
  with no process restarted.
- `redis`: the Redis server is frozen (SIGSTOP: it accepts connections and
  never answers, the worse of the two ways to be gone; killing it would end
  `make prod-local` as a whole) for 40 s. Logins, reset requests and slot
  searches must keep working (throttling falls back to per-process counters: degraded, not
  open), `/readyz` must say the cache is down, and the counters must go back
  to Redis once it answers.
- `sms`: the SMS gateway answers 500 to a message, then holds its second
  attempt past the portal's timeout (it does take it), then answers 200. The
  portal must retry with the same `id` and a valid signature each time, mark
  the message sent once, and the phone receive it once (the gateway drops
  an id it already took, the contract the `id` is for).

Every process started is stopped at the end; a fault that brings the stack
down is reported, and the stack started again for the next. A row per fault
is appended to docs/performance.md (--no-record to skip). Exit status 1
when a verdict fails.
"""

import argparse
import contextlib
import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from loadtest.stack import (
    BASE_DIR,
    DEFAULT_DIR,
    PYTHON,
    Sink,
    Stack,
    django_setup,
    http_status,
    log,
    new_secret,
    stop_process,
    wait_for,
    write_json,
)

FAULTS = ["smtp", "sms", "redis", "kill", "postgres"]
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
RESULTS_HEADING = "## Load and faults: faults injected into `make prod-local` (`make faults`)"
RESULTS_INTRO = """\
`make faults` (see `loadtest/faults.py`) injects five faults into the
production topology of `make prod-local` (started under `var/loadtest/`, DEMO
off, a real SMTP server and an SMS gateway of ours as sinks) and computes each
verdict from what the sinks received and what the database holds: the SMTP
server killed for 60 s during reset requests; a task worker killed with
SIGKILL while it delivers a reset email (held at RCPT by the SMTP server);
PostgreSQL stopped for 10 s under a steady load, then started again; Redis
frozen (SIGSTOP) for 40 s during logins and reset requests; the SMS gateway
answering 500, then holding the retry past the portal's timeout.

Each run appends a row per fault to the table below.
"""
COLUMNS = ["Date (UTC)", "Machine", "CPU", "Cores", "Python", "Fault", "Verdict", "What was seen"]


@dataclass
class Verdict:
    fault: str
    injected: str
    passed: bool
    facts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def print(self) -> None:
        print()
        print(f"=== {self.fault}: {'PASS' if self.passed else 'FAIL'}")
        print(f"    injected: {self.injected}")
        for fact in self.facts:
            print(f"    - {fact}")
        for note in self.notes:
            print(f"    note: {note}")


# --- a member's browser and API client -----------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Client:
    """Cookies, CSRF, no redirects followed; each client has its own address behind the proxy."""

    _count = 0

    def __init__(self, base: str):
        Client._count += 1
        self.base = base
        self.ip = f"10.99.{Client._count // 256}.{Client._count % 256}"
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), _NoRedirect
        )

    def request(self, method, path, *, form=None, json_body=None, headers=None, timeout=30):
        """(status, body, seconds); status 0 when no answer."""
        data, all_headers = None, {"X-Forwarded-For": self.ip, **(headers or {})}
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif json_body is not None:
            data = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        request = urllib.request.Request(  # noqa: S310 (the stack on loopback)
            self.base + path, data=data, method=method, headers=all_headers
        )
        started = time.monotonic()
        try:
            with self.opener.open(request, timeout=timeout) as response:
                return response.status, response.read().decode(), time.monotonic() - started
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace"), time.monotonic() - started
        except OSError:
            return 0, "", time.monotonic() - started

    def csrf(self, path: str) -> str:
        _, body, _ = self.request("GET", path)
        found = CSRF.search(body)
        return found.group(1) if found else ""

    def login(self, nir: str, password: str) -> tuple[int, float]:
        token = self.csrf("/connexion/")
        status, _, seconds = self.request(
            "POST",
            "/connexion/",
            form={"csrfmiddlewaretoken": token, "nir": nir, "password": password},
        )
        return status, seconds

    def reset_api(self, nir: str, birth_date: str) -> tuple[int, float]:
        status, _, seconds = self.request(
            "POST", "/api/v1/password-reset", json_body={"nir": nir, "birth_date": birth_date}
        )
        return status, seconds

    def reset_form(self, nir: str, birth_date: str) -> tuple[int, float]:
        token = self.csrf("/mot-de-passe-oublie/")
        year, month, day = birth_date.split("-")
        status, _, seconds = self.request(
            "POST",
            "/mot-de-passe-oublie/",
            form={"csrfmiddlewaretoken": token, "nir": nir, "birth_date": f"{day}/{month}/{year}"},
        )
        return status, seconds


# --- the context ---------------------------------------------------------------------------------


class Context:
    def __init__(self, run_dir: Path, directory: Path):
        self.run_dir = run_dir
        self.sms_secret = new_secret()
        self.smtp = Sink("smtp", run_dir)
        self.sms = Sink("sms", run_dir, env={"SMS_SINK_SECRET": self.sms_secret})
        self.stack = Stack(
            directory=directory,
            smtp=self.smtp,
            sms=self.sms,
            sms_secret=self.sms_secret,
            log_path=run_dir / "stack.log",
        )
        self.data: dict = {}
        self._resets = iter(())
        self.own_workers: list[subprocess.Popen] = []

    def start(self) -> None:
        self.smtp.start()
        self.sms.start()
        self.stack.start()
        django_setup(self.stack.django_env())
        from loadtest import seed

        self.data = seed.seed(
            run=datetime.now(UTC).strftime("f%m%d%H%M%S"), login=80, reset=800, book=5, advisors=40
        )
        self._resets = iter(self.data["reset"])
        self._logins = iter(self.data["login"])

    def ensure_stack(self) -> None:
        if not self.stack.alive():
            log("the stack is down: starting it again for the next fault")
            self.stack.stop()
            self.stack.start()

    def next_reset(self) -> dict:
        return next(self._resets)

    def next_login(self) -> str:
        return next(self._logins)

    def client(self) -> Client:
        return Client(self.stack.url)

    def start_worker(self, worker_id: str) -> subprocess.Popen:
        """A task worker of ours, like the stack's (`manage.py task_worker`)."""
        env = {**os.environ, **self.stack.django_env()}
        out = (self.run_dir / f"{worker_id}.log").open("a")
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and manage.py)
            [PYTHON, "manage.py", "task_worker", "--interval", "1", "--no-startup-delay",
             "--worker-id", worker_id],
            cwd=BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.own_workers.append(process)
        return process

    def stop(self) -> None:
        for process in self.own_workers:
            stop_process(process)
        for worker in self.stack.task_workers():
            with contextlib.suppress(Exception):
                worker.resume()
        redis = self.stack.redis_server()
        if redis:
            with contextlib.suppress(Exception):
                redis.resume()
        _resume_stopped(self.stack)
        self.stack.stop()
        self.smtp.stop()
        self.sms.stop()

    # --- what arrived ---------------------------------------------------------------------------

    def emails_to(self, address: str) -> list[dict]:
        return [
            event
            for event in self.smtp.events()
            if event.get("event") == "message" and address in event["rcpt_tos"]
        ]


def _messages(recipients: list[str]):
    from django.db import close_old_connections

    from portal.notifications.models import OutboundMessage

    close_old_connections()
    return OutboundMessage.objects.filter(recipient__in=recipients)


# --- the faults ----------------------------------------------------------------------------------


def fault_smtp(ctx: Context) -> Verdict:
    """The SMTP server down for 60 s while resets are requested."""
    accepted: list[dict] = []
    stop_sending = threading.Event()

    def send():
        client = ctx.client()
        while not stop_sending.is_set():
            member = ctx.next_reset()
            status, _ = client.reset_api(member["nir"], member["birth_date"])
            if status == 202:
                accepted.append(member)
            time.sleep(2)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    time.sleep(6)
    ctx.smtp.kill()
    down_at = time.time()
    log("SMTP server killed: down for 60 s")
    time.sleep(60)
    ctx.smtp.start()
    up_at = time.time()
    log("SMTP server started again")
    time.sleep(6)
    stop_sending.set()
    sender.join()
    addresses = [m["email"] for m in accepted]

    def all_arrived():
        return all(ctx.emails_to(a) for a in addresses)

    wait_for(all_arrived, 300, 3)
    time.sleep(5)  # a late duplicate would show now
    counts = Counter(a for a in addresses for _ in ctx.emails_to(a))
    rows = list(_messages(addresses).values("recipient", "status", "attempts"))
    statuses = Counter(r["status"] for r in rows)
    retried = sum(1 for r in rows if r["attempts"] > 1)
    received_times = [e["time"] for a in addresses for e in ctx.emails_to(a)]
    during = sum(1 for t in received_times if down_at <= t < up_at)
    once = all(counts.get(a) == 1 for a in addresses)
    passed = bool(addresses) and once and set(statuses) == {"sent"} and during == 0
    return Verdict(
        "SMTP server down 60 s during resets",
        f"SMTP sink killed (SIGKILL) at +6 s, started again 60 s later; {len(accepted)} reset "
        "requests accepted at one every 2 s across the outage",
        passed,
        [
            f"{len(addresses)} reset emails expected, {sum(counts.values())} received "
            f"({sum(1 for a in addresses if counts.get(a) == 1)} exactly once, "
            f"{sum(1 for a in addresses if counts.get(a, 0) > 1)} more than once, "
            f"{sum(1 for a in addresses if not counts.get(a))} never)",
            f"outbox: {dict(statuses)}; {retried} delivered after a failed attempt, "
            f"most attempts {max((r['attempts'] for r in rows), default=0)}",
            f"last email received {max(received_times, default=up_at) - up_at:.0f} s after the "
            "server came back (retries back off 30 s, 1 min, 2 min…)",
        ],
    )


def fault_kill(ctx: Context) -> Verdict:
    """SIGKILL a task worker while it delivers a reset email."""
    from django.db import close_old_connections
    from django_tasks_db.compat import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    member = ctx.next_reset()
    address = member["email"]
    paused = ctx.stack.task_workers()
    for worker in paused:
        worker.suspend()
    log(f"paused the stack's {len(paused)} task workers (SIGSTOP)")
    victim_id = f"faults-victim-{int(time.time())}"
    victim = ctx.start_worker(victim_id)
    ctx.smtp.set_control("30")  # the SMTP server holds each RCPT 30 s
    facts, notes = [], []
    try:
        status, _ = ctx.client().reset_api(member["nir"], member["birth_date"])
        facts.append(f"reset request answered {status}")
        caught = wait_for(
            lambda: any(
                e.get("event") == "rcpt_wait" and e.get("rcpt") == address
                for e in ctx.smtp.events()
            ),
            60,
            0.1,
        )
        close_old_connections()
        running = [
            (task_id, workers)
            for task_id, workers in DBTaskResult.objects.filter(
                status=TaskResultStatus.RUNNING, task_path__endswith="deliver_message"
            ).values_list("id", "worker_ids")
            if victim_id in workers
        ]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        killed_at = time.time()
        log(f"worker {victim.pid} killed (SIGKILL) mid-delivery")
        ctx.smtp.set_control(None)
        facts.append(
            f"the worker was in the SMTP exchange (RCPT held) when killed: {caught}; "
            f"delivery task running then: {[str(i) for i, _ in running]}"
        )
    finally:
        ctx.smtp.set_control(None)
        ctx.start_worker("faults-restarted")  # what a supervisor does
        for worker in paused:
            with contextlib.suppress(Exception):
                worker.resume()
    wait_for(lambda: ctx.emails_to(address), 150, 2)
    first_email_after = time.time() - killed_at
    time.sleep(5)
    received = len(ctx.emails_to(address))
    close_old_connections()
    rows = list(_messages([address]).values("id", "status", "attempts"))
    task_ids = [i for i, _ in running]
    task_states = list(
        DBTaskResult.objects.filter(id__in=task_ids).values_list("status", "worker_ids")
    )
    facts.append(
        f"within 150 s of the kill: {received} email(s) received for the member"
        + (f" (the first {first_email_after:.0f} s after the kill)" if received else "")
        + f"; outbox {rows}; the killed delivery task now {task_states} (requeued by the "
        "live workers once the victim's heartbeat was 60 s old, then run again)"
    )
    passed = received == 1 and all(r["status"] == "sent" for r in rows) and rows != []
    for process in ctx.own_workers:
        stop_process(process)
    ctx.own_workers.clear()
    return Verdict(
        "task worker killed mid-task (SIGKILL)",
        "stack's workers paused; our worker killed with SIGKILL while the SMTP server held "
        "its RCPT; a new worker started, the stack's resumed; nothing done by hand",
        passed,
        facts,
        notes,
    )


def _pg_outage(ctx: Context, *, pause_others: bool) -> dict:
    """Load, PostgreSQL stopped 10 s at +12 s, started again, load for 25 s more.

    With `pause_others`, the task workers and the scheduler are paused
    (SIGSTOP) across the outage and resumed once PostgreSQL is back: the web
    alone meets the fault.
    """
    stack = ctx.stack
    events: list[tuple[float, str, int]] = []
    stop_load = threading.Event()
    readers = [ctx.next_login() for _ in range(3)]
    others = stack.task_workers() + stack.scheduler()
    before = {
        "workers": sorted(p.pid for p in stack.task_workers()),
        "scheduler": sorted(p.pid for p in stack.scheduler()),
        "web": (m.pid if (m := stack.gunicorn_master()) else None),
    }

    def reader(nir: str):
        client = ctx.client()
        client.login(nir, ctx.data["password"])
        while not stop_load.is_set():
            status, _, _ = client.request("GET", "/paiements/")
            if status == 302:  # the session was lost: log in again
                client.login(nir, ctx.data["password"])
            events.append((time.time(), "paiements", status))
            time.sleep(0.3)

    def resetter():
        client = ctx.client()
        while not stop_load.is_set():
            member = ctx.next_reset()
            status, _ = client.reset_api(member["nir"], member["birth_date"])
            events.append((time.time(), "reset", status))
            time.sleep(1)

    threads = [threading.Thread(target=reader, args=(nir,), daemon=True) for nir in readers]
    threads.append(threading.Thread(target=resetter, daemon=True))
    for thread in threads:
        thread.start()
    time.sleep(12)
    if pause_others:
        for process in others:
            process.suspend()
    down_at = time.time()
    stack.pg_ctl("stop", "--mode=fast", "--wait", "--timeout=60")
    log("PostgreSQL stopped; starting it again in 10 s")
    time.sleep(10)
    options = f"-c listen_addresses=127.0.0.1 -p {stack.pg_port} -k {stack.directory / 'pg'}"
    started = stack.pg_ctl(
        "start",
        f"--log={stack.directory / 'pg' / 'postgres.log'}",
        "--wait",
        "--timeout=60",
        "-o",
        options,
    )
    up_at = time.time()
    log(f"PostgreSQL started again ({started.returncode})")
    if pause_others:
        for process in others:
            with contextlib.suppress(Exception):
                process.resume()
    time.sleep(25)
    stop_load.set()
    for thread in threads:
        thread.join()
    grace = 3.0
    bad = [(t, kind, s) for t, kind, s in events if s == 0 or s >= 500]
    outside = [e for e in bad if not (down_at <= e[0] <= up_at + grace)]
    after = [e for e in events if e[0] > up_at + grace]
    # The workers deliver again: a reset asked for now gets its email.
    member = ctx.next_reset()
    status, _ = ctx.client().reset_api(member["nir"], member["birth_date"])
    delivered = bool(wait_for(lambda: ctx.emails_to(member["email"]), 60, 2))
    after_pids = {
        "workers": sorted(p.pid for p in stack.task_workers()),
        "scheduler": sorted(p.pid for p in stack.scheduler()),
        "web": (m.pid if (m := stack.gunicorn_master()) else None),
    }
    return {
        "requests": len(events),
        "errors": dict(Counter((kind, s) for _, kind, s in bad)),
        "errors_outside_outage": len(outside),
        "after": len(after),
        "after_ok": bool(after) and all(0 < s < 500 for _, _, s in after),
        "down_seconds": up_at - down_at,
        "reset_after": status,
        "delivered_after": delivered,
        "same_processes": before == after_pids and before["web"] is not None,
        "before": before,
        "after_pids": after_pids,
    }


def _outage_facts(label: str, r: dict) -> str:
    return (
        f"{label}: {r['requests']} requests, errors {r['errors']} "
        f"({r['errors_outside_outage']} outside the {r['down_seconds']:.0f} s outage + 3 s); "
        f"{r['after']} requests after it, all answered: {r['after_ok']}; a reset asked after "
        f"it ({r['reset_after']}) emailed within 60 s: {r['delivered_after']}; same web, "
        f"task worker and scheduler processes (none restarted): {r['same_processes']} "
        f"(task workers {r['before']['workers']} → {r['after_pids']['workers']})"
    )


def fault_postgres(ctx: Context) -> Verdict:
    """PostgreSQL stopped 10 s, then started again, under load: twice."""
    notes = []
    web_only = _pg_outage(ctx, pause_others=True)
    if not ctx.stack.alive() or not web_only["same_processes"]:
        notes.append(_worker_exit_reason(ctx))
        ctx.ensure_stack()
    full = _pg_outage(ctx, pause_others=False)
    if not full["same_processes"]:
        notes.append(_worker_exit_reason(ctx))
    passed = (
        full["errors_outside_outage"] == 0
        and full["after_ok"]
        and full["delivered_after"]
        and full["same_processes"]
    )
    return Verdict(
        "PostgreSQL restarted under load",
        "pg_ctl stop -m fast, pg_ctl start 10 s later (same options), under 3 readers of "
        "Mes paiements and one reset request a second; first with the task workers and the "
        "scheduler paused across the outage (the web alone), then as is (the verdict)",
        passed,
        [
            _outage_facts("web alone (workers paused)", web_only),
            _outage_facts("as is (the verdict)", full),
        ],
        notes,
    )


def _worker_exit_reason(ctx: Context) -> str:
    lines = ctx.stack.log_path.read_text(errors="replace").splitlines()
    # The plain tracebacks are the task workers' (the web's lines are JSON).
    interesting = [
        line
        for line in lines
        if not line.startswith("{")
        and (line.startswith(("django.db.utils.", "File ")) or "a process ended" in line)
    ]
    worker_frames = [line for line in lines if "django_tasks_db/" in line]
    return "stack log: " + " | ".join(
        line.strip()[:160] for line in (worker_frames[-1:] + interesting[-2:])
    )


def fault_redis(ctx: Context) -> Verdict:
    """Redis frozen 40 s during logins and reset requests."""
    import redis as redis_client

    stack = ctx.stack
    server = stack.redis_server()
    connection = redis_client.Redis(
        host="127.0.0.1", port=stack.redis_port, password=stack.secret("redis-password")
    )
    token = ctx.data["book"][0]["token"]
    facts, notes = [], []
    server.suspend()
    frozen_at = time.time()
    log("Redis frozen (SIGSTOP) for 40 s")
    logins, resets, slots = [], [], []
    readyz_during = http_status(f"{stack.url}/readyz", timeout=10)
    try:
        while time.time() - frozen_at < 35:
            client = ctx.client()
            logins.append(client.login(ctx.next_login(), ctx.data["password"]))
            member = ctx.next_reset()
            resets.append(client.reset_api(member["nir"], member["birth_date"]))
            member = ctx.next_reset()
            resets.append(client.reset_form(member["nir"], member["birth_date"]))
            if len(slots) < 2:
                status, _, seconds = client.request(
                    "GET",
                    f"/api/v1/appointments/slots?motive={ctx.data['motive']}&channel=phone",
                    headers={"Authorization": f"Bearer {token}"},
                )
                slots.append((status, seconds))
            time.sleep(1)
        # Wrong passwords are still counted, per process: the throttle did not open.
        victim = ctx.next_login()
        client = ctx.client()
        wrong = [client.login(victim, "Pas-Le-Bon-Mot-De-Passe-1")[0] for _ in range(20)]
    finally:
        time.sleep(max(0, 40 - (time.time() - frozen_at)))
        server.resume()
        # runuser (how prod-local starts Redis as root) stops itself when its
        # child stops, as su does for job control: it needs a SIGCONT too.
        _resume_stopped(stack)
        log("Redis resumed (SIGCONT)")
    time.sleep(15)  # each process tries Redis again 10 s after its last failure
    readyz_after = http_status(f"{stack.url}/readyz", timeout=10)
    after_client = ctx.client()
    after_login = after_client.login(ctx.next_login(), ctx.data["password"])
    probe = ctx.next_login()
    wrong_after = ctx.client().login(probe, "Pas-Le-Bon-Mot-De-Passe-1")[0]
    # The failure must now be counted in Redis, where every process sees it.
    from portal.core import throttle

    key = throttle._key("login:nir", probe)
    raw = connection.keys(f"*{key}")
    counted_in_redis = bool(raw)
    log_lines = stack.log_path.read_text(errors="replace")
    tripped = log_lines.count("unreachable")
    login_ok = all(status == 302 for status, _ in logins)
    reset_ok = all(status in (202, 302) for status, _ in resets)
    passed = (
        login_ok
        and reset_ok
        and readyz_during == 503
        and readyz_after == 200
        and stack.alive()
        and 429 in wrong
        and after_login[0] == 302
        and counted_in_redis
        and slots != []
        and all(status == 200 for status, _ in slots)
    )
    facts += [
        f"during the freeze: {sum(1 for s, _ in logins if s == 302)}/{len(logins)} logins "
        f"succeeded (slowest {max((t for _, t in logins), default=0):.1f} s), "
        f"{sum(1 for s, _ in resets if s in (202, 302))}/{len(resets)} reset requests accepted "
        f"(slowest {max((t for _, t in resets), default=0):.1f} s)",
        f"20 wrong passwords on one account during the freeze: answers {dict(Counter(wrong))} "
        "(the progressive delay still applies: degraded, not open)",
        f"/readyz during: {readyz_during} (cache down, as it should say), after: {readyz_after}",
        f"after Redis answered again: login {after_login[0]}; a wrong password ({wrong_after}) "
        f"is counted in Redis again: {counted_in_redis}",
        f"'shared cache unreachable' errors logged: {tripped} (once per process per 10 s)",
    ]
    facts.append(
        "slot search (API) during the freeze, its cache on the same fallback: "
        f"{[(s, round(t, 1)) for s, t in slots]}"
    )
    return Verdict(
        "Redis stopped during logins and resets",
        "redis-server frozen with SIGSTOP for 40 s (connections accepted, never answered); "
        "logins, reset requests and slot searches meanwhile",
        passed,
        facts,
        notes,
    )


def _resume_stopped(stack: Stack) -> None:
    for process in stack.descendants():
        with contextlib.suppress(Exception):
            if process.status() == "stopped":
                process.resume()


def fault_sms(ctx: Context) -> Verdict:
    """The SMS gateway answers 500, then times out, then 200."""
    from django.db import close_old_connections

    from portal.audit.models import AuditEntry
    from portal.notifications.models import OutboundMessage

    ctx.sms.set_control("fail-then-timeout:15")
    client = ctx.client()
    nir = ctx.next_login()
    status, _ = client.login(nir, ctx.data["password"])
    token = client.csrf("/mon-compte/mobile/")
    changed, _, _ = client.request(
        "POST",
        "/mon-compte/mobile/",
        form={
            "csrfmiddlewaretoken": token,
            "mobile_phone": "06 98 76 54 32",
            "current_password": ctx.data["password"],
        },
    )
    started = time.time()
    log(f"mobile change requested ({status}, {changed}): an SMS code is queued")

    def message():
        close_old_connections()
        return (
            OutboundMessage.objects.filter(
                channel=OutboundMessage.Channel.SMS, recipient="+33698765432"
            )
            .order_by("-id")
            .first()
        )

    wait_for(lambda: (m := message()) is not None and m.status != "pending", 300, 3)
    ctx.sms.set_control(None)
    row = message()
    posts = [
        e
        for e in ctx.sms.events()
        if e.get("event") == "post" and row and e.get("id") == str(row.pk)
    ]
    answers = [e["answer"] for e in posts]
    taken = sum(1 for e in posts if e.get("taken"))
    received_copies = sum(1 for e in posts if e["answer"] in (200, "late"))
    same_text = len({e.get("text_sha256") for e in posts}) == 1
    signed = all(e.get("signature_ok") for e in posts)
    sent_audits = (
        AuditEntry.objects.filter(action="notification.sms.sent", data__message_id=row.pk).count()
        if row
        else 0
    )
    passed = bool(
        row
        and row.status == "sent"
        and len(posts) >= 3
        and answers[:2] == [500, "late"]
        and same_text
        and signed
        and taken == 1
        and sent_audits == 1
    )
    return Verdict(
        "SMS webhook: 500, then a timeout",
        "the gateway answers 500 to the first POST of the message, holds the second 15 s "
        "(the portal's timeout is 10 s) after taking it, answers 200 afterwards",
        passed,
        [
            f"mobile change: login {status}, form {changed}; message "
            f"{row.pk if row else None} {row.status if row else '-'} after "
            f"{row.attempts if row else 0} attempts, "
            f"{(row.sent_at.timestamp() - started) if row and row.sent_at else float('nan'):.0f} s",
            f"POSTs of that id: {answers}, every one signed: {signed}, same text: {same_text}",
            f"sent to the phone once (the gateway takes an id once): {taken == 1}; "
            f"copies the gateway read: {received_copies} (a gateway that ignored the id would "
            f"have sent {received_copies})",
            f"notification.sms.sent audit entries for it: {sent_audits}",
        ],
    )


RUNNERS = {
    "smtp": fault_smtp,
    "kill": fault_kill,
    "postgres": fault_postgres,
    "redis": fault_redis,
    "sms": fault_sms,
}


def record_rows(verdicts: list[Verdict], started_at: datetime) -> None:
    from bench.common import machine_cells, record

    for verdict in verdicts:
        seen = "; ".join(verdict.facts + [f"note: {n}" for n in verdict.notes])
        record(
            heading=RESULTS_HEADING,
            intro=RESULTS_INTRO,
            columns=COLUMNS,
            row=[
                *machine_cells(started_at),
                f"{verdict.fault}: {verdict.injected}",
                "**pass**" if verdict.passed else "**FAIL**",
                seen,
            ],
        )
    log("rows appended to docs/performance.md")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(FAULTS), help=f"comma-separated: {FAULTS}")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults: {sorted(unknown)}")
    started_at = datetime.now(UTC)
    run_dir = args.dir / "faults" / started_at.strftime("%m%d%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(run_dir, args.dir)
    verdicts: list[Verdict] = []
    try:
        ctx.start()
        for name in sorted(chosen, key=FAULTS.index):
            ctx.ensure_stack()
            log(f"--- fault: {name}")
            try:
                verdict = RUNNERS[name](ctx)
            except Exception as exc:  # a harness error is a failed verdict, said as such
                verdict = Verdict(
                    name, "(the harness failed)", False, [f"{type(exc).__name__}: {exc}"]
                )
            verdict.print()
            verdicts.append(verdict)
    finally:
        ctx.stop()
    write_json(run_dir / "verdicts.json", [v.__dict__ for v in verdicts])
    print()
    for verdict in verdicts:
        print(f"{'PASS' if verdict.passed else 'FAIL'}  {verdict.fault}")
    if not args.no_record:
        record_rows(verdicts, started_at)
    log(f"run directory: {run_dir}")
    return 0 if verdicts and all(v.passed for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
