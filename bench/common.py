"""What the benches share: a real server on loopback, the machine's description, the record.

Every bench starts gunicorn on a free loopback port against a fresh SQLite
database in a temporary directory, with production-like settings (DEBUG and
DEMO off), and appends its result to its own section of docs/performance.md.
"""

import http.client
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import argon2

BASE_DIR = Path(__file__).resolve().parent.parent
RESULTS = BASE_DIR / "docs" / "performance.md"
PASSWORD = "Correct-Cheval-Agrafe-9"  # tests.factories.PASSWORD, which needs Django set up
# Django's stock PasswordResetView, mounted by bench/stock_reset_urls.py for bench/reset.py.
STOCK_RESET_PATH = "/bench/stock-reset/"


def log(message: str) -> None:
    print(message, flush=True)


# --- the database and the server ---------------------------------------------


def server_environment(tmp: Path, settings_module: str = "config.settings.dev") -> dict[str, str]:
    """The environment of the bench's process and of its server: production-like settings."""
    return {
        "DJANGO_SETTINGS_MODULE": settings_module,
        "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}",
        "DEBUG": "0",
        "DEMO": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
    }


def prepare_database(count: int) -> tuple[list[str], str]:
    """Migrate, then create `count` active accounts: their NIRs and the shared hash.

    One hash for all (same password, same salt) keeps the setup to one
    Argon2id computation; each login still verifies it in full. Django is set
    up here, with the settings of the environment (`server_environment`).
    """
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from django.db import connections
    from django.utils import timezone as django_timezone

    from portal.accounts.models import Account
    from portal.members.models import Member
    from portal.members.nir import key_for
    from tests.factories import CpamFactory, MemberFactory, random_nir13

    call_command("migrate", verbosity=0)
    encoded = make_password(PASSWORD)
    parameters = argon2.extract_parameters(encoded.removeprefix("argon2"))
    expected = (settings.ARGON2_TIME_COST, settings.ARGON2_MEMORY_COST, settings.ARGON2_PARALLELISM)
    actual = (parameters.time_cost, parameters.memory_cost, parameters.parallelism)
    if actual != expected:
        raise RuntimeError(f"hash parameters {actual} differ from the settings {expected}")

    nirs: set[str] = set()
    while len(nirs) < count:
        nirs.add(random_nir13())
    cpam = CpamFactory()
    members = Member.objects.bulk_create(
        MemberFactory.build(nir=nir + key_for(nir), cpam=cpam) for nir in sorted(nirs)
    )
    now = django_timezone.now()
    Account.objects.bulk_create(
        Account(
            member=member,
            nir=member.nir[:13],
            email=member.email,
            state=Account.State.ACTIVE,
            activated_at=now,
            password=encoded,
        )
        for member in members
    )
    connections.close_all()
    return sorted(nirs), encoded


def free_listener() -> socket.socket:
    """A listening socket on a free loopback port, handed to gunicorn as is (no race)."""
    return socket.create_server(("127.0.0.1", 0), backlog=512)


def start_server(
    listener: socket.socket, workers: int, env: dict[str, str], log_path: Path
) -> subprocess.Popen:
    fd = listener.fileno()
    with log_path.open("w") as log_file:
        return subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                f"--bind=fd://{fd}",
                f"--workers={workers}",
                "--worker-class=sync",
                "--log-level=warning",
            ],
            cwd=BASE_DIR,
            env={**os.environ, **env},
            pass_fds=(fd,),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            # Its own process group, so that stopping it reaches every worker.
            start_new_session=True,
        )


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def print_log_tail(path: Path, name: str = "gunicorn", lines: int = 20) -> None:
    tail = path.read_text().splitlines()[-lines:] if path.exists() else []
    if tail:
        print(f"{name}'s log ends with:", *tail, sep="\n  ", file=sys.stderr)


# --- the client --------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def fetch(
    port: int,
    method: str,
    path: str,
    body: str | bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One request on a new connection (gunicorn's sync workers close it anyway).

    Raises OSError (refused, reset, timed out…).
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body, headers or {})
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


def quantile_ms(latencies: list[float], quantile: float) -> float:
    """The `quantile` (0.5, 0.95…) of latencies in seconds, in milliseconds."""
    if len(latencies) < 2:
        return float("nan")
    return statistics.quantiles(latencies, n=100)[round(quantile * 100) - 1] * 1000


# --- the machine and the record ----------------------------------------------


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Hardware", "cpu model", "Model"):
            return " ".join(value.split())
    return platform.processor() or "unknown"


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine_cells(started_at: datetime) -> list[str]:
    """The first cells of every bench's row: date (UTC), machine, CPU, cores, Python."""
    cores = os.cpu_count() or 1
    return [
        started_at.strftime("%Y-%m-%d %H:%M"),
        platform.machine(),
        cpu_model(),
        str(cores) if cores == usable_cores() else f"{usable_cores()} of {cores}",
        platform.python_version(),
    ]


def table_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |"


def record(
    *, heading: str, intro: str, columns: list[str], row: list[str], path: Path = RESULTS
) -> None:
    """Append `row` to the table of the section titled `heading` in `path`.

    The row goes right after the last row of the first table following the
    heading, before the next section, so that each bench keeps its own table
    wherever its section sits in the file. A missing section (or file) is
    created at the end, with `intro` and the table's header.
    """
    header = [table_row(columns), "|" + "---|" * len(columns)]
    lines = path.read_text().splitlines() if path.exists() else ["# Performance"]
    if heading in lines:
        start = lines.index(heading)
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        rows = [i for i in range(start + 1, end) if lines[i].startswith("|")]
        if rows:
            at, new = rows[-1] + 1, [table_row(row)]
        else:
            at = end
            while at > start + 1 and not lines[at - 1].strip():
                at -= 1
            new = ["", *header, table_row(row)] + ([""] if at < len(lines) else [])
    else:
        while lines and not lines[-1].strip():
            lines.pop()
        at = len(lines)
        new = ["", heading, "", *intro.strip("\n").splitlines(), "", *header, table_row(row)]
    lines[at:at] = new
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written aside then renamed: an interrupted run cannot leave half a file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text("\n".join(lines) + "\n")
    os.replace(temporary, path)
