from django.core.exceptions import PermissionDenied

from .models import Account
from .perms import can_view_account


def account_for_viewer(*, viewer, account_id: int) -> Account:
    account = Account.objects.select_related("member__cpam").get(pk=account_id)
    if not can_view_account(viewer, account):
        raise PermissionDenied
    return account
