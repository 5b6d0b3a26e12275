"""Gunicorn's settings for `make prod-local` and the container image (deploy/Dockerfile).

Environment: GUNICORN_BIND (default 127.0.0.1:8000), WEB_CONCURRENCY (worker
processes, default 3), GUNICORN_THREADS (threads per worker, default 4),
LOG_FORMAT (json: gunicorn's own lines as JSON too), PROMETHEUS_MULTIPROC_DIR.
"""

import os
from pathlib import Path

wsgi_app = "config.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = 30
graceful_timeout = 30
keepalive = 5  # behind nginx, which keeps its upstream connections open
# The access log comes from the app (portal.access), where tokens in paths are
# masked: gunicorn's own would write them in clear.
accesslog = None
errorlog = "-"

if os.environ.get("LOG_FORMAT", "").lower() == "json":
    # Gunicorn's own lines (boot, worker timeouts) as JSON. With a logging
    # config, gunicorn also emits its access log to `gunicorn.access`: dropped,
    # for the reason above.
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": "INFO", "handlers": []},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "formatters": {"json": {"()": "portal.core.logging.JsonFormatter"}},
    }


def on_starting(server):
    """Each start begins with empty metric files (prometheus_client's multiprocess mode)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
