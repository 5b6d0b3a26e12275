"""Read replicas: the read-only member pages read the payment tables from `replica`.

With `DATABASE_REPLICA_URL` set (config/settings/base.py), a second database
alias, `replica`, points at a streaming replica of the primary. Mes paiements
and Mes indemnités journalières are the most visited member pages and read
the largest tables (docs/scaling.md); their reads of the `payments` app go to
the replica, everything else stays on the primary (`default`):

- only during a request to one of `REPLICA_ROUTES`, with a safe method
  (`ReplicaReadsMiddleware` opens the scope; `replica_reads()` does it for
  other code), never in a task, a command or an import, whose reads must see
  their own writes;
- only the `payments` app: sessions, accounts and members are read from the
  primary, so that a password change or an account closure takes effect on
  the next request, whatever the replica's lag;
- never inside a transaction of the primary (a read there belongs with the
  writes around it);
- every write goes to the primary, whichever database an object was read from.

Payment lines are written only by the nightly imports: a replica a few
seconds behind shows the new ones a few seconds later, which is harmless.
Without `DATABASE_REPLICA_URL` the router changes nothing.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import DEFAULT_DB_ALIAS, connections

REPLICA = "replica"
REPLICA_APPS = frozenset({"payments"})
# GET/HEAD on these views (namespace:name) read from the replica.
REPLICA_ROUTES = frozenset(
    {
        "www:payments",
        "www:payments_export",
        "www:payment_line",
        "www:allowances",
        "api-v1:reimbursements",
        "api-v1:daily_allowances",
    }
)
SAFE_METHODS = frozenset({"GET", "HEAD"})

_replica_reads: ContextVar[bool] = ContextVar("replica_reads", default=False)


def replica_configured() -> bool:
    return REPLICA in connections


@contextmanager
def replica_reads() -> Iterator[None]:
    """Within this block, reads of the `payments` app may go to the replica."""
    token = _replica_reads.set(True)
    try:
        yield
    finally:
        _replica_reads.reset(token)


class ReplicaRouter:
    """Named in DATABASE_ROUTERS; see the module's docstring for the rules."""

    def db_for_read(self, model, **hints):
        if (
            _replica_reads.get()
            and model._meta.app_label in REPLICA_APPS
            and replica_configured()
            and not connections[DEFAULT_DB_ALIAS].in_atomic_block
        ):
            return REPLICA
        return None  # Django's default: the hinted instance's database, else `default`

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        # One database, two ways in: objects from either may be related.
        both = {DEFAULT_DB_ALIAS, REPLICA}
        if obj1._state.db in both and obj2._state.db in both:
            return True
        return None

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        # A physical replica follows the primary's schema: never migrated itself.
        if db == REPLICA:
            return False
        return None


class ReplicaReadsMiddleware:
    """Opens the replica scope for GET/HEAD requests to `REPLICA_ROUTES`."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.replica_reads_token = None
        try:
            return self.get_response(request)
        finally:
            if request.replica_reads_token is not None:
                _replica_reads.reset(request.replica_reads_token)

    def process_view(self, request, view_func, view_args, view_kwargs):
        match = request.resolver_match
        if (
            request.method in SAFE_METHODS
            and match is not None
            and match.view_name in REPLICA_ROUTES
            and replica_configured()
        ):
            request.replica_reads_token = _replica_reads.set(True)
        return None
