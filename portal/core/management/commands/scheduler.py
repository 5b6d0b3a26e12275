"""`manage.py scheduler`: queue the periodic jobs when due, until stopped (SIGINT, SIGTERM)."""

import signal
import threading

from django.core.management.base import BaseCommand
from django.utils import timezone

from portal.core.scheduler import TICK_SECONDS, scheduler_run, scheduler_status, scheduler_tick


class Command(BaseCommand):
    help = (
        "Queue the periodic jobs (purges, SMS usage check) as tasks when due; "
        "a task worker runs them. Runs until stopped."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="One pass, then exit.")
        parser.add_argument("--list", action="store_true", help="List the jobs and their last run.")
        parser.add_argument(
            "--tick",
            type=float,
            default=TICK_SECONDS,
            help="Seconds between two passes (default: %(default)s).",
        )

    def handle(self, *args, **options):
        if options["list"]:
            for job in scheduler_status():
                last = job["last_enqueued_at"]
                when = timezone.localtime(last).isoformat(timespec="seconds") if last else "never"
                self.stdout.write(f"{job['name']}: every {job['interval']}, last queued {when}")
            return
        if options["once"]:
            queued = scheduler_tick()
            self.stdout.write(f"queued: {', '.join(queued) or 'nothing due'}")
            return
        stop = threading.Event()

        def request_stop(signum, frame):
            stop.set()

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        scheduler_run(stop=stop, tick=options["tick"])
