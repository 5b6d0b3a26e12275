from contextvars import ContextVar

from django.contrib.auth.backends import BaseBackend

from portal.core.rows import JoinedRow

from .models import Account

# Read at every request: in SQL built once (portal/core/rows.py).
_ACTIVE_ACCOUNT = JoinedRow(Account, related=["member__cpam"], conditions=["pk", "state"])

# The account read with the request's session (portal/accounts/sessions.py),
# while `portal.accounts.middleware.AuthenticationMiddleware` asks Django for
# the request's user.
read_with_session: ContextVar[Account | None] = ContextVar("read_with_session", default=None)


class NirBackend(BaseBackend):
    """Loads the logged-in account for sessions.

    Credentials are checked by `services.account_authenticate` (which owns the
    throttling and the equal-time answer), never through `authenticate()`.
    """

    def authenticate(self, request, **credentials):
        return None

    def get_user(self, user_id):
        account = read_with_session.get()
        if account is not None and account.pk == user_id:
            return account if account.state == Account.State.ACTIVE else None
        try:
            return _ACTIVE_ACCOUNT.get(user_id, Account.State.ACTIVE)
        except (TypeError, ValueError):  # not an id
            return None
