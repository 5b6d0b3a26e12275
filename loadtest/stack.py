"""Starting and stopping what `make loadtest` and `make faults` run against.

`Stack` is `scripts/prod-local.sh` itself (the production topology of `make
prod-local`) under its own directory and free ports, with DEMO off, emails
through a real SMTP server and SMS through the webhook, both sinks of ours
(`loadtest.sinks`). `Sink` is one sink process. Everything started here is
stopped by `stop()`, and by the context managers on any exit.
"""

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

BASE_DIR = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("BIN", BASE_DIR / ".venv" / "bin"))
PYTHON = str(BIN / "python") if (BIN / "python").exists() else sys.executable
DEFAULT_DIR = BASE_DIR / "var" / "loadtest"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S', time.gmtime())}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, interval: float = 0.5, what: str = "") -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def http_status(url: str, timeout: float = 5) -> int:
    """The status of a GET, 0 when no answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback)
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def stop_process(process: subprocess.Popen, timeout: float = 20) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Sink:
    """One `loadtest.sinks` process; `kill()` and `start()` again keep the same port and log."""

    def __init__(self, kind: str, directory: Path, env: dict[str, str] | None = None):
        self.kind = kind
        self.port = free_port()
        self.log_path = directory / f"{kind}-sink.jsonl"
        self.control = directory / f"{kind}-sink.control"
        self.stderr_path = directory / f"{kind}-sink.out"
        self.env = env or {}
        self.process: subprocess.Popen | None = None

    def start(self) -> "Sink":
        option = "--slow-file" if self.kind == "smtp" else "--mode-file"
        with self.stderr_path.open("a") as out:
            self.process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
                [PYTHON, "-m", "loadtest.sinks", self.kind, "--port", str(self.port),
                 "--log", str(self.log_path), option, str(self.control)],
                cwd=BASE_DIR,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        ok = wait_for(self._listening, 20, 0.1)
        if not ok:
            raise RuntimeError(f"the {self.kind} sink did not start: see {self.stderr_path}")
        return self

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def set_control(self, value: str | None) -> None:
        if value is None:
            self.control.unlink(missing_ok=True)
        else:
            self.control.write_text(value)

    def kill(self) -> None:
        """Stop the server abruptly (SIGKILL): the portal finds nobody listening."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process:
            stop_process(self.process)
        self.set_control(None)

    def events(self) -> list[dict]:
        from loadtest.sinks import read_events

        return read_events(self.log_path)


class Stack:
    """`scripts/prod-local.sh` under `directory`, on free ports, in its own process group."""

    def __init__(
        self,
        *,
        directory: Path,
        smtp: Sink,
        sms: Sink,
        sms_secret: str,
        log_path: Path,
        extra_env: dict[str, str] | None = None,
    ):
        self.directory = directory
        self.port = free_port()
        self.pg_port = free_port()
        self.redis_port = free_port()
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{self.port}"
        self.script_env = {
            "BIN": str(BIN),
            "PROD_LOCAL_DIR": str(directory),
            "PORT": str(self.port),
            "PG_PORT": str(self.pg_port),
            "REDIS_PORT": str(self.redis_port),
            "DJANGO_SETTINGS_MODULE": "config.settings.dev",
            "SITE_URL": self.url,
            "DEMO": "0",
            "DEBUG": "0",
            "EMAIL_URL": f"smtp://127.0.0.1:{smtp.port}",
            "SMS_BACKEND": "webhook",
            "SMS_WEBHOOK_URL": f"http://127.0.0.1:{sms.port}/sms",
            "SMS_WEBHOOK_SECRET": sms_secret,
            # The load comes through this "proxy": each simulated member has
            # its own address in X-Forwarded-For, as behind nginx.
            "TRUSTED_PROXIES": "127.0.0.1",
            "LOG_FORMAT": "json",
            **(extra_env or {}),
        }
        self.process: subprocess.Popen | None = None

    # --- life ---------------------------------------------------------------------------------

    def start(self, timeout: float = 600) -> "Stack":
        self.directory.mkdir(parents=True, exist_ok=True)
        log(f"starting scripts/prod-local.sh on {self.url} (log: {self.log_path})")
        with self.log_path.open("a") as out:
            self.process = subprocess.Popen(  # noqa: S603 (the project's own script)
                [str(BASE_DIR / "scripts" / "prod-local.sh")],
                cwd=BASE_DIR,
                env={**os.environ, **self.script_env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        ready = wait_for(
            lambda: self.process.poll() is not None or http_status(f"{self.url}/readyz") == 200,
            timeout,
            1,
        )
        if not ready or self.process.poll() is not None:
            self.stop()
            raise RuntimeError(f"prod-local did not become ready: see {self.log_path}")
        # The workers and the scheduler start after gunicorn answers.
        wait_for(lambda: len(self.task_workers()) >= 2, 60, 0.5)
        log(f"prod-local ready: {len(self.task_workers())} task workers, pid {self.process.pid}")
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM to the script: its trap stops gunicorn, the workers, Redis and PostgreSQL."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                # Its own process group (start_new_session), still ours: the
                # script has not been reaped yet, so its id cannot be reused.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.postmaster_pid():
            self.pg_ctl("stop", "--mode=fast", "--wait", "--timeout=60")
        log("prod-local stopped")

    # --- the parts ----------------------------------------------------------------------------

    def secret(self, name: str) -> str:
        return (self.directory / name).read_text().strip()

    def django_env(self) -> dict[str, str]:
        """The environment the portal's processes run with (for this process's Django)."""
        return {
            **self.script_env,
            "DATABASE_URL": (
                f"postgres://portal:{self.secret('pg-password')}@127.0.0.1:{self.pg_port}/portal"
            ),
            "CACHE_URL": f"redis://:{self.secret('redis-password')}@127.0.0.1:{self.redis_port}/0",
        }

    def descendants(self) -> list[psutil.Process]:
        if not self.alive():
            return []
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def _matching(self, *words: str) -> list[psutil.Process]:
        found = []
        for child in self.descendants():
            try:
                line = " ".join(child.cmdline())
            except psutil.Error:
                continue
            if all(word in line for word in words):
                found.append(child)
        return found

    def task_workers(self) -> list[psutil.Process]:
        return [p for p in self._matching("manage.py", "task_worker") if p.name() != "runuser"]

    def scheduler(self) -> list[psutil.Process]:
        return self._matching("manage.py", "scheduler")

    def gunicorn_master(self) -> psutil.Process | None:
        masters = [p for p in self._matching("gunicorn") if p.ppid() == self.process.pid]
        return masters[0] if masters else None

    def redis_server(self) -> psutil.Process | None:
        servers = [p for p in self.descendants() if p.name() == "redis-server"]
        return servers[0] if servers else None

    def pg_data(self) -> Path:
        return self.directory / "pg" / "data"

    def postmaster_pid(self) -> int | None:
        try:
            pid = int((self.pg_data() / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if psutil.pid_exists(pid) else None

    def pg_ctl(self, *args: str) -> subprocess.CompletedProcess:
        binary = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        pg_ctl = str(binary[-1]) if binary else (shutil.which("pg_ctl") or "pg_ctl")
        command = [pg_ctl, *args, f"--pgdata={self.pg_data()}"]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, cwd="/", capture_output=True, text=True, check=False)  # noqa: S603

    # --- CPU accounting -----------------------------------------------------------------------

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by the web, the workers, PostgreSQL and Redis.

        Counts each live process and the reaped children of each (a
        PostgreSQL backend per connection ends with it: its time is then in
        the postmaster's children's times).
        """
        groups = {"web": 0.0, "workers": 0.0, "postgres": 0.0, "redis": 0.0}

        def total(process: psutil.Process) -> float:
            try:
                t = process.cpu_times()
            except psutil.Error:
                return 0.0
            return t.user + t.system + t.children_user + t.children_system

        master = self.gunicorn_master()
        if master:
            groups["web"] += total(master)
            for child in master.children(recursive=True):
                groups["web"] += total(child)
        for process in self.task_workers() + self.scheduler():
            groups["workers"] += total(process)
        redis = self.redis_server()
        if redis:
            groups["redis"] += total(redis)
        pid = self.postmaster_pid()
        if pid:
            postmaster = psutil.Process(pid)
            groups["postgres"] += total(postmaster)
            for child in postmaster.children(recursive=True):
                groups["postgres"] += total(child)
        return groups


def django_setup(env: dict[str, str]) -> None:
    """Django in this process, against the stack's database (its settings, its env)."""
    os.environ.update(env)
    import django

    django.setup()


def new_secret() -> str:
    return secrets.token_urlsafe(24)


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=1, default=str))
