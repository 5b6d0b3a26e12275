"""Probes and metrics: `/healthz` (the process answers), `/readyz` (it can
serve: database, task queue, shared cache), `/metrics` (Prometheus, restricted).

None of them says more than "ok" or "error" per check: the causes go to the
logs, which are masked, not to whoever asks.
"""

import logging
import secrets

from django.conf import settings
from django.core.cache import caches
from django.db import connections, router
from django.http import HttpResponse, HttpResponseForbidden, JsonResponse
from django.views.decorators.http import require_GET

from portal.core.metrics import metrics_access_allowed, metrics_render

logger = logging.getLogger(__name__)

REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"


@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


def _database_check() -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")


def _queue_check() -> None:
    """The task queue's table answers (django-tasks-db keeps the queue in the database)."""
    from django_tasks_db.models import DBTaskResult

    table = connections[router.db_for_read(DBTaskResult)].ops.quote_name(
        DBTaskResult._meta.db_table
    )
    with connections[router.db_for_read(DBTaskResult)].cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {table} LIMIT 1")  # noqa: S608 (a quoted table name)


def _cache_check() -> None:
    """A round trip to the shared cache: it holds the throttling counters."""
    cache = caches["default"]
    key = f"readyz:{secrets.token_hex(8)}"
    cache.set(key, "1", timeout=10)
    if cache.get(key) != "1":
        raise RuntimeError("the cache did not return what was just written")
    cache.delete(key)


def _checks() -> dict:
    checks = {"database": _database_check, "queue": _queue_check}
    # A per-process memory cache cannot be unreachable: only Redis is checked.
    if settings.CACHES["default"]["BACKEND"] == REDIS_CACHE:
        checks["cache"] = _cache_check
    return checks


@require_GET
def readyz(request):
    """200 when the database, the task queue and the shared cache (when
    configured) answer; 503 otherwise, so the load balancer stops sending traffic."""
    results = {}
    for name, check in _checks().items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # a probe repeats every few seconds: one line, no traceback
            logger.warning("readyz: the %s check failed: %s: %s", name, type(exc).__name__, exc)
            results[name] = "error"
    ok = all(value == "ok" for value in results.values())
    return JsonResponse(
        {"status": "ok" if ok else "error", "checks": results}, status=200 if ok else 503
    )


@require_GET
def metrics(request):
    """Prometheus metrics, for the monitoring only (docs/operations.md, "Metrics")."""
    if not metrics_access_allowed(request):
        return HttpResponseForbidden()
    body, content_type = metrics_render()
    response = HttpResponse(body, content_type=content_type)
    response.no_store = True  # NoStoreMiddleware: no copy in any cache on the way
    return response
