"""The "Nouveau paiement" email, sent after a payment import.

The imports leave one `NewPaymentNotice` per member and kind (reimbursements
or daily allowances) in the transactions that made the payments; this turns
them into emails, one per member, and deletes them in the same transaction
as the email is queued: the member hears once, and a crash in between only
delays the email to the next import of the same kind.
"""

from decimal import Decimal

from django.db import transaction

from portal.accounts.models import Account
from portal.members import nir as nir_rules
from portal.notifications.services import email_send

from .models import NewPaymentNotice

CHUNK_SIZE = 500


def euros(amount: Decimal) -> str:
    """`1234.5` → `1 234,50 €` (French grouping, non-breaking spaces)."""
    text = f"{amount:,.2f}".replace(",", "\u00a0").replace(".", ",")
    return f"{text}\u00a0€"


def new_payment_notices_send(*, kind: str, chunk_size: int = CHUNK_SIZE) -> int:
    """Queue the "Nouveau paiement" email for every pending notice of `kind`.

    Sent to the email of the member's active account, when that account has
    `notify_new_payments` on (the default); a member without one gets
    nothing, and the notice is dropped all the same. Works `chunk_size`
    notices per transaction, so memory stays flat for millions of members.
    Returns the number of emails queued.
    """
    queued = 0
    last_id = 0
    while True:
        with transaction.atomic():
            notices = list(
                NewPaymentNotice.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(kind=kind, id__gt=last_id)
                .select_related("member")
                .order_by("id")[:chunk_size]
            )
            if not notices:
                return queued
            last_id = notices[-1].id
            accounts = {
                account.member_id: account
                for account in Account.objects.filter(
                    member_id__in=[notice.member_id for notice in notices],
                    state=Account.State.ACTIVE,
                    notify_new_payments=True,
                )
            }
            for notice in notices:
                account = accounts.get(notice.member_id)
                if account is None:
                    continue
                email_send(
                    to=account.email,
                    template="new_payment",
                    context={
                        "member": notice.member,
                        "masked_nir": nir_rules.mask(notice.member.nir),
                        "allowances": kind == NewPaymentNotice.Kind.ALLOWANCE,
                        "payments": notice.payments,
                        "net_total": euros(notice.net_total),
                    },
                    member=notice.member,
                )
                queued += 1
            NewPaymentNotice.objects.filter(id__in=[notice.id for notice in notices]).delete()
