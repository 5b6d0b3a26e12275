"""Who may do what with an account: named functions, each tested."""

from .models import Account


def can_view_account(actor, account: Account) -> bool:
    """A member sees only their own account."""
    return bool(
        getattr(actor, "is_authenticated", False)
        and isinstance(actor, Account)
        and actor.is_active
        and actor.pk == account.pk
    )
