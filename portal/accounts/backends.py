from django.contrib.auth.backends import BaseBackend

from .models import Account


class NirBackend(BaseBackend):
    """Loads the logged-in account for sessions.

    Credentials are checked by `services.account_authenticate` (which owns the
    throttling and the equal-time answer), never through `authenticate()`.
    """

    def authenticate(self, request, **credentials):
        return None

    def get_user(self, user_id):
        # At every request: a slice, not `.first()`, whose ORDER BY on the
        # primary key would be one more clause to build for at most one row.
        found = Account.objects.select_related("member__cpam").filter(
            pk=user_id, state=Account.State.ACTIVE
        )[:1]
        return found[0] if found else None
