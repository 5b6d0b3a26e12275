"""`make loadtest` and `make faults`: the production topology under load and under faults.

Both start `scripts/prod-local.sh` (PostgreSQL, Redis, gunicorn, two task
workers, the scheduler) under `var/loadtest/` with real sinks for what leaves
the portal (an SMTP server, an SMS gateway), fill it with members
(`loadtest.seed`), and stop everything they started at the end.
See docs/performance.md ("Load and faults").
"""
